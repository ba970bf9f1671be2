// Accounting of live per-client instances, per uid, for the
// max_instances_per_uid limit.
//
// The daemon closes its own fds once it has handed an instance out, so a
// per-client program lives exactly as long as the client keeps an fd to it
// or an attachment (a socket holding it). The tracker therefore remembers
// only program ids and asks the kernel, when counting, which of them still
// exist: a program the kernel no longer has (BPF_PROG_GET_FD_BY_ID answers
// ENOENT) is forgotten. Any other answer keeps it counted: when in doubt the
// count errs high, which refuses a request rather than exceeding a limit.
//
// Thread-safe: the socket and D-Bus transports call it concurrently.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace bpfbroker::brokerd {

// Bound on ids tracked across all uids: each uid's own limit (settings,
// 16 by default) keeps the table small; this cap keeps it bounded even with
// many uids or a generous limit. 65536 entries cost about 1 MiB at most.
inline constexpr std::size_t kMaxTrackedInstances = 65536;

// True while the kernel still has program `id`. The default asks the kernel
// (needs CAP_SYS_ADMIN, i.e. the daemon's root); tests may substitute.
using ProgramLiveness = std::function<bool(std::uint32_t id)>;
bool kernel_has_program(std::uint32_t id);
// The same question about a map id. A client that keeps only the map fds it
// was given keeps the instance's maps (and their memory, charged to the
// daemon) alive: such an instance still counts.
using MapLiveness = std::function<bool(std::uint32_t id)>;
bool kernel_has_map(std::uint32_t id);

class InstanceTracker {
public:
    explicit InstanceTracker(std::size_t capacity = kMaxTrackedInstances,
                             ProgramLiveness alive = kernel_has_program, MapLiveness map_alive = kernel_has_map);

    InstanceTracker(const InstanceTracker&) = delete;
    InstanceTracker& operator=(const InstanceTracker&) = delete;

    // Counts program `prog_id` as a live instance of `uid`. Recording the
    // same (uid, id) twice counts it once. When the table is full, dead ids
    // of every uid are pruned first; if it is still full the id is not
    // recorded and false is returned: the caller must then refuse the
    // request (and close the instance), since an unrecorded instance would
    // escape the uid's limit.
    // `map_ids` are the maps handed out with the program: the instance is
    // live while the program or any of them exists.
    [[nodiscard]] bool record(uid_t uid, std::uint32_t prog_id, std::vector<std::uint32_t> map_ids = {});

    // record(), refused (false) as well when `uid` already has `limit` live
    // instances. Counting and recording happen under one lock, so two
    // concurrent requests of one uid that both passed an earlier
    // live_count() check cannot both be recorded past the limit: the loser
    // drops its freshly loaded instance.
    [[nodiscard]] bool record_within_limit(uid_t uid, std::uint32_t prog_id, unsigned limit,
                                           std::vector<std::uint32_t> map_ids = {});

    // The number of `uid`'s recorded programs that the kernel still has,
    // after forgetting those it no longer has.
    unsigned live_count(uid_t uid);

    // Ids currently tracked across all uids (without pruning).
    [[nodiscard]] std::size_t size() const;

private:
    bool record_locked(uid_t uid, std::uint32_t prog_id, std::vector<std::uint32_t>& map_ids);
    // Drops the ids of `ids` the kernel no longer has; caller holds mutex_.
    struct Instance {
        std::uint32_t prog_id;
        std::vector<std::uint32_t> map_ids;
    };
    [[nodiscard]] bool alive(const Instance& instance) const;
    void prune_locked(std::vector<Instance>& instances);
    void prune_all_locked();

    mutable std::mutex mutex_;
    std::unordered_map<uid_t, std::vector<Instance>> by_uid_;
    std::size_t total_ = 0;
    const std::size_t capacity_;
    const ProgramLiveness alive_;
    const MapLiveness map_alive_;
};

}  // namespace bpfbroker::brokerd
