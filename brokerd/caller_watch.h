// Notice of callers' exits, for what the broker must do when a caller is
// gone (set the revocation guard of its broker-attached instances, so a link
// fd it passed on cannot go on counting a reused pid). One pidfd per watched
// process (SO_PEERPIDFD on the socket gives a race-free one) in one epoll
// set; the daemon's loop polls fd() and calls dispatch() when it is readable.
// A pidfd of a process becomes readable once its whole thread group exited.
#pragma once

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace bpfbroker::brokerd {

class CallerWatch {
public:
    using WatchId = std::uint64_t;

    // At most `max_watches` processes at once (each costs an fd).
    static Result<CallerWatch> create(std::size_t max_watches);

    // Watches the process behind `pidfd` (taken over; CLOEXEC, as the kernel
    // makes every pidfd). `on_exit` runs once, from dispatch(), after the
    // process exited, also when it had exited already. InvalidParameter when
    // the fd is not a pidfd; LimitExceeded past max_watches.
    Result<WatchId> watch(UniqueFd pidfd, std::function<void()> on_exit);
    // Forgets a watch; its callback will not run. Unknown ids are ignored.
    void unwatch(WatchId id);

    // The epoll fd: readable when some watched process exited.
    [[nodiscard]] int fd() const noexcept { return epoll_.get(); }
    // Runs the callbacks of the processes that exited (without blocking),
    // outside the lock, and forgets them. Returns how many ran.
    Result<std::size_t> dispatch();
    [[nodiscard]] std::size_t size() const;

    CallerWatch(CallerWatch&& other) noexcept;
    CallerWatch& operator=(CallerWatch&&) = delete;
    CallerWatch(const CallerWatch&) = delete;
    CallerWatch& operator=(const CallerWatch&) = delete;
    ~CallerWatch() = default;

private:
    CallerWatch(UniqueFd epoll, std::size_t max_watches);

    struct Watched {
        UniqueFd pidfd;
        std::function<void()> on_exit;
    };

    UniqueFd epoll_;
    std::size_t max_watches_;
    mutable std::mutex mutex_;
    // Takes the watch out of the epoll set and forgets it; under mutex_.
    void forget_locked(std::map<WatchId, Watched>::iterator it);

    std::map<WatchId, Watched> watched_;
    WatchId next_id_ = 1;
};

}  // namespace bpfbroker::brokerd
