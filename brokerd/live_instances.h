// The broker's registry of live per-client broker-attached instances: for
// each, the daemon's handle on its revocation guard, and a watch on the
// caller's pidfd that sets the guard once the caller exits, so a link fd it
// passed to a process that lives on counts nothing more. The caller holds
// the only fd of each link; the registry holds no program or link, so
// closing the links frees the program as before.
//
// Bounded: at most `max_entries` entries; when full, entries whose program
// the kernel already freed (every link closed) are forgotten first.
// Revocation (issue 10) walks it by program and uid with for_each().
#pragma once

#include "brokerd/caller_watch.h"
#include "brokerd/revocation_guard.h"

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

namespace bpfbroker::brokerd {

class LiveInstances {
public:
    struct Entry {
        std::string program;  // catalog name
        uid_t uid = 0;        // the caller's
        std::uint32_t prog_id = 0;
        RevocationGuard guard;
        std::optional<CallerWatch::WatchId> watch;  // none without a caller pidfd (D-Bus)
        // io_uring_ops: the daemon's duplicate of the struct_ops link it
        // registered on the caller's ring (struct_ops links, unlike
        // tracepoint ones, support BPF_LINK_DETACH); closed when the caller
        // exits. Invalid for other programs.
        UniqueFd link;

        // BPF_LINK_DETACH of `link`: the program leaves the ring at once,
        // whoever holds other fds of the link. Unsupported without a link.
        [[nodiscard]] Result<void> detach() const;
    };

    explicit LiveInstances(std::size_t max_entries);

    // Registers an instance. With a `caller_pidfd` (taken over) the guard is
    // set when that process exits, also when it exited already. LimitExceeded
    // when the registry is full of live instances; the error of
    // CallerWatch::create() when the daemon could not make its watch.
    // `link`: the duplicate of an io_uring_ops link (Entry::link), or none.
    Result<void> add(std::string program, uid_t uid, std::uint32_t prog_id, RevocationGuard guard,
                     UniqueFd caller_pidfd, UniqueFd link = {});

    // Calls f for every entry of `program` (and of `uid`, when given), under the lock.
    void for_each(std::string_view program, std::optional<uid_t> uid, const std::function<void(const Entry&)>& f) const;

    // The caller watch's epoll fd (-1 without one), and what to call when it
    // is readable: sets the guards of exited callers and forgets them.
    [[nodiscard]] int exits_fd() const noexcept;
    void dispatch_exits();

    [[nodiscard]] std::size_t size() const;

private:
    using Key = std::uint64_t;
    void on_caller_exit(Key key);
    // Forgets entries whose program the kernel freed; returns how many.
    std::size_t forget_freed(std::unique_lock<std::mutex>& lock);

    std::size_t max_entries_;
    std::optional<CallerWatch> watch_;
    Error watch_error_;  // why watch_ is empty
    mutable std::mutex mutex_;
    std::map<Key, Entry> entries_;
    Key next_key_ = 1;
};

}  // namespace bpfbroker::brokerd
