// The broker's registry of live per-client instances, of both attach
// models, so that a revocation reaches what was already handed out:
//   - client-attached (socket_filter, sk_reuseport): the caller holds the
//     program fd and attaches it where it likes; the registry keeps the
//     daemon's handle on the instance's revocation guard;
//   - broker-attached (tracepoints): the caller holds the only fd of each
//     link; the registry keeps the guard, and a watch on the caller's pidfd
//     that sets it once the caller exits, so a link fd it passed to a
//     process that lives on counts nothing more.
// Each entry also keeps what the grant was judged on (HeldGrant), so that
// cut_where() can judge it again after the policy changed. The registry
// holds no program or link fd (but see link_to_detach), so closing what the
// caller holds frees the program as before; the InstanceTracker, which
// learns when the kernel freed a program, calls forget() then.
//
// Bounded: at most `max_entries` entries (the tracker's own capacity);
// when full, entries whose program the kernel already freed are forgotten
// first.
#pragma once

#include "brokerd/caller_watch.h"
#include "brokerd/fd_store.h"
#include "brokerd/held_grant.h"
#include "brokerd/revocation_guard.h"
#include "brokerd/state_journal.h"

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
#include <string_view>
#include <utility>
#include <vector>

namespace bpfbroker::brokerd {

class LiveInstances {
public:
    // What the state journal keeps of an instance (SavedInstance: the held
    // grant, program id and tag, the map ids handed out, the guard by id,
    // and the caller of a broker-attached instance), and what lives only in
    // this daemon. A guard of none: the manifest declares no guard, and a
    // revocation cannot cut the instance live (it is reported "not cut").
    // The guard is kept by id, not by fd: the daemon must not hold an fd per
    // instance (its fd limit is the registry's size), so cutting re-opens it
    // by id, tag checked.
    struct Entry : SavedInstance {
        // Broker-attached links that BPF_LINK_DETACH can cut (struct_ops,
        // io_uring_ops): the broker's dup of the link, detached on
        // revocation before the guard is set. Empty for every other kind.
        UniqueFd link_to_detach;
        // The guard's map fd, while the service manager's fd store keeps a
        // copy (fd_store.h; at most kFdStoreMax): a cut sets it through this
        // fd instead of re-opening the map by id.
        std::optional<RevocationGuard> stored_guard;
        std::optional<CallerWatch::WatchId> watch;  // broker-attached with a caller pidfd only

        [[nodiscard]] const std::string& program() const noexcept { return held.program; }
        [[nodiscard]] uid_t uid() const noexcept { return held.peer.uid; }
        [[nodiscard]] bool can_be_cut() const noexcept { return guard.has_value() || link_to_detach.valid(); }
    };

    // One instance a revocation judged: cut, or why not.
    struct Judged {
        std::string program;
        uid_t uid = 0;
        std::uint32_t prog_id = 0;
        bool cut = false;
        std::string why_gone;  // why the grant is gone
        std::string why_not_cut;  // empty when cut
    };

    explicit LiveInstances(std::size_t max_entries);

    // Registers an instance. With a `caller_pidfd` (taken over) the guard is
    // set when that process exits, also when it exited already. LimitExceeded
    // when the registry is full of live instances; the error of
    // CallerWatch::create() when a pidfd is given and the daemon could not
    // make its watch.
    Result<void> add(Entry entry, UniqueFd caller_pidfd = {});

    // Forgets the instance of `uid` with program `prog_id` (the kernel freed it).
    void forget(uid_t uid, std::uint32_t prog_id);
    // Cuts (link detached, or guard set) and forgets a hand-out refused
    // after it was registered: a copy of its link that outlives the entry
    // (the fd store's, until the service manager drops it) keeps nothing
    // attached.
    void withdraw(uid_t uid, std::uint32_t prog_id);

    // Asks `gone` about every entry; each one it gives a reason for is cut
    // (its link detached, or its guard set) and forgotten, and reported with
    // whether it was cut. An entry without a guard is reported not cut.
    std::vector<Judged> cut_where(const std::function<std::optional<std::string>(const Entry&)>& gone);

    // Calls f for every entry of `program` (and of `uid`, when given), under the lock.
    void for_each(std::string_view program, std::optional<uid_t> uid, const std::function<void(const Entry&)>& f) const;

    // The caller watch's epoll fd (-1 without one), and what to call when it
    // is readable: sets the guards of exited callers and forgets them.
    [[nodiscard]] int exits_fd() const noexcept;
    void dispatch_exits();

    [[nodiscard]] std::size_t size() const;

    // Every change from now on is appended to `journal` (it must outlive the registry).
    void set_journal(StateJournal* journal);
    // A forgotten entry's fds are removed from `store` (it must outlive the registry).
    void set_fd_store(FdStore* store);
    // Rewrites the journal from the live set, when it has grown past its
    // bound or `force`. O(entries): rare, amortized over the adds.
    Result<void> rewrite_journal(bool force);

private:
    // A per-client program id is its instance's alone.
    using Key = std::pair<std::uint32_t, uid_t>;  // prog_id, uid
    void on_caller_exit(Key key);
    // Forgets entries whose program the kernel freed; returns how many.
    std::size_t forget_freed(std::unique_lock<std::mutex>& lock);
    // Drops `it`, and its caller watch.
    std::map<Key, Entry>::iterator erase(std::map<Key, Entry>::iterator it);

    std::size_t max_entries_;
    std::optional<CallerWatch> watch_;
    Error watch_error_;  // why watch_ is empty
    mutable std::mutex mutex_;
    std::map<Key, Entry> entries_;
    StateJournal* journal_ = nullptr;
    FdStore* fd_store_ = nullptr;
};

// Cuts one instance: BPF_LINK_DETACH on `link` when it is valid, else sets
// `guard`. "" when cut, else why not (no guard, or what the kernel said).
std::string cut_instance(const std::optional<RevocationGuard>& guard, const UniqueFd& link);
// The same for a registered instance, through its stored guard or else its
// guard re-opened by id with the tag checked; a program the kernel already
// freed runs nothing: "" too.
std::string cut_registered(const LiveInstances::Entry& e);

}  // namespace bpfbroker::brokerd
