// What the daemon must find again after it restarts or is killed (kill -9)
// without systemd's fd store: every registered per-client instance, so that
// a revocation still reaches it and its uid's instance count stays what it
// was. One file, RUNTIME_DIR/state.journal (run/bpfbroker under the root),
// owned by the daemon's user and mode 0600; any other file there is not
// trusted, and replaced.
//
// One JSON line per change: {"add": {...}} when an instance is registered,
// {"forget": {"prog_id": N, "uid": N}} when it is forgotten. Client-attached
// shared instances have their own records, by their shared key:
// {"shared_add": {...}} when loaded, {"shared_hold": {"key", grant}} for
// each new holder uid, {"shared_overflowed": {"key"}} once holders go
// unrecorded, {"shared_forget": {"key"}} when dropped. Appending is one
// write() to an O_APPEND fd: a killed daemon loses nothing the kernel
// accepted (/run is tmpfs, and a reboot ends both the file and every
// instance). The file is rewritten (temporary file, rename) from the live
// set when it holds more than twice as many lines as live instances plus
// kJournalSlackLines, so it stays bounded by the registry's own bound.
//
// The journal names kernel objects by id, which the kernel reuses: a
// restore re-opens each program by id as root and keeps it only when its tag
// is the one recorded (and the guard map is one of that program's maps), so
// a reused id is never mistaken for the instance.
#pragma once

#include "brokerd/held_grant.h"

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace bpfbroker::brokerd {

inline constexpr std::size_t kJournalSlackLines = 1024;
// A line longer than this, or a file larger, is not replayed (the registry's
// bound times the longest honest line, with room to spare).
inline constexpr std::size_t kMaxJournalLineBytes = 16 * 1024;
inline constexpr std::size_t kMaxJournalBytes = 256u * 1024 * 1024;

struct SavedGuard {
    std::string name;
    std::uint32_t map_id = 0;
    std::uint32_t offset = 0;
};

// A shared instance's map, by id; what a client may do with it comes from
// the manifest at restore, never from the file.
struct SavedMap {
    std::string name;
    std::uint32_t id = 0;
};

// One client-attached shared instance (Broker::shared_instances_), as
// written to the journal: enough to re-adopt it by id after a restart so
// that its program id stays, and to judge its holders again.
struct SavedShared {
    std::string key;              // shared_key(manifest_sha256, parameters)
    std::string manifest_sha256;
    std::map<std::string, std::uint64_t, std::less<>> parameters;  // the resolved values
    std::string prog_name;        // the function name
    std::uint32_t prog_id = 0;
    std::string tag;
    std::vector<SavedMap> maps;
    std::optional<SavedGuard> guard;
    std::map<uid_t, HeldGrant> holders;  // at most kMaxSavedSharedHolders
    bool overflowed = false;
};
// Bounds of what a replay keeps of shared records (the broker's own bounds:
// kMaxSharedHoldersPerInstance, and 64 per manifest of a bounded catalog).
inline constexpr std::size_t kMaxSavedSharedHolders = 1024;
inline constexpr std::size_t kMaxSavedShared = 4096;

// One registered per-client instance, as written to the journal.
struct SavedInstance {
    HeldGrant held;
    std::uint32_t prog_id = 0;
    std::string tag;                      // hex of bpf_prog_info.tag
    std::vector<std::uint32_t> map_ids;   // handed out with it (the tracker counts them)
    std::optional<SavedGuard> guard;
    // Broker-attached: the caller, to watch again after a restart; the start
    // time (/proc/PID/stat) tells a reused pid from the caller.
    bool broker_attached = false;
    pid_t caller_pid = 0;
    std::uint64_t caller_start_time = 0;
    // The id of the link the broker keeps for BPF_LINK_DETACH (io_uring_ops),
    // 0 for none: what a link handed back by the fd store must be.
    std::uint32_t link_id = 0;
};

class StateJournal {
public:
    // Opens RUNTIME_DIR/state.journal (created 0600). A file there that is
    // not a regular file owned by `owner` without group/other access is
    // refused: `distrusted` says why, and the journal starts empty.
    static Result<StateJournal> open(const std::string& runtime_dir, uid_t owner);

    // The instances the journal holds: adds minus forgets, in order. Lines
    // that do not parse are skipped and counted in `skipped`.
    [[nodiscard]] std::vector<SavedInstance> replay(std::size_t& skipped) const;
    // The shared instances it holds (shared_add and holders, minus
    // shared_forget); malformed shared lines are counted in `skipped`. The
    // journal keeps them: rewrite() writes them again.
    std::vector<SavedShared> replay_shared(std::size_t& skipped);

    // Each appends one record. A write that fails (a full disk) is logged,
    // throttled, and the next record starts on a line of its own, so replay
    // skips only the torn one. record_added says so: a per-client instance
    // a restart would not find is not handed out (LiveInstances::add).
    Result<void> record_added(const SavedInstance& instance);
    void record_forgotten(uid_t uid, std::uint32_t prog_id);
    void record_shared_added(const SavedShared& shared);  // holders included
    void record_shared_holder(const std::string& key, const HeldGrant& held);
    void record_shared_overflowed(const std::string& key);
    void record_shared_forgotten(const std::string& key);
    // Whether it has grown past 2 * (live + its shared lines) + kJournalSlackLines lines.
    [[nodiscard]] bool wants_rewrite(std::size_t live) const;
    // Replaces the file with exactly `live` and the shared instances it
    // holds (temporary file, fsync, rename).
    Result<void> rewrite(const std::vector<SavedInstance>& live);

    [[nodiscard]] const std::string& distrusted() const noexcept { return distrusted_; }

    StateJournal(StateJournal&& other) noexcept;
    StateJournal& operator=(StateJournal&&) = delete;
    StateJournal(const StateJournal&) = delete;
    StateJournal& operator=(const StateJournal&) = delete;
    ~StateJournal() = default;

private:
    StateJournal(UniqueFd dir, UniqueFd file, std::size_t lines, std::string distrusted);
    Result<void> append(std::string line);
    Result<void> append_locked(std::string line);  // under mutex_
    [[nodiscard]] std::size_t shared_lines() const;  // under mutex_

    UniqueFd dir_;
    UniqueFd file_;
    mutable std::mutex mutex_;
    std::size_t lines_ = 0;
    bool torn_ = false;  // the last write left part of a line
    std::string distrusted_;
    std::map<std::string, SavedShared> shared_;  // by key, under mutex_
};

// /proc/PID/stat's start time of `pid` (clock ticks since boot), 0 when unknown.
std::uint64_t process_start_time(pid_t pid);

}  // namespace bpfbroker::brokerd
