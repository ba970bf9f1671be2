// pidfd-based notice of callers' exits; see caller_watch.h.
#include "brokerd/caller_watch.h"

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <utility>
#include <vector>

namespace bpfbroker::brokerd {

CallerWatch::CallerWatch(UniqueFd epoll, std::size_t max_watches)
    : epoll_(std::move(epoll)), max_watches_(max_watches)
{
}

CallerWatch::CallerWatch(CallerWatch&& other) noexcept
    : epoll_(std::move(other.epoll_)), max_watches_(other.max_watches_)
{
    std::lock_guard lock(other.mutex_);
    watched_ = std::move(other.watched_);
    next_id_ = other.next_id_;
}

Result<CallerWatch> CallerWatch::create(std::size_t max_watches)
{
    UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll)
        return fail(make_system_error("epoll_create1 failed", errno));
    return CallerWatch(std::move(epoll), max_watches);
}

Result<CallerWatch::WatchId> CallerWatch::watch(UniqueFd pidfd, std::function<void()> on_exit)
{
    // Signal 0 checks without sending: EBADF means the fd is no pidfd (a
    // pipe would be readable for other reasons); ESRCH only that it exited.
    if (!pidfd || (::syscall(SYS_pidfd_send_signal, pidfd.get(), 0, nullptr, 0) != 0 && errno != ESRCH))
        return fail(Error{ErrorCode::InvalidParameter, "not a pidfd of a process", errno, {}});

    std::lock_guard lock(mutex_);
    if (watched_.size() >= max_watches_)
        return fail(ErrorCode::LimitExceeded, "already watching " + std::to_string(watched_.size()) +
                                                  " processes (limit " + std::to_string(max_watches_) + ")");
    const WatchId id = next_id_++;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = id;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, pidfd.get(), &event) != 0)
        return fail(make_system_error("watching a pidfd failed", errno));
    watched_.emplace(id, Watched{std::move(pidfd), std::move(on_exit)});
    return id;
}

void CallerWatch::unwatch(WatchId id)
{
    std::lock_guard lock(mutex_);
    if (auto it = watched_.find(id); it != watched_.end())
        forget_locked(it);
}

void CallerWatch::forget_locked(std::map<WatchId, Watched>::iterator it)
{
    // Removed by hand: closing our fd removes it from the epoll set only
    // when it was the last fd of the pidfd, and the broker watches a
    // duplicate of the connection's own. Left there, the registration
    // outlives the watch: a new duplicate given the same number could not
    // be added (EEXIST), and the caller's exit would make it readable for
    // nothing until the connection closed.
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.pidfd.get(), nullptr);
    watched_.erase(it);
}

Result<std::size_t> CallerWatch::dispatch()
{
    std::vector<std::function<void()>> due;
    for (;;) {
        std::array<epoll_event, 64> events;
        const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(make_system_error("epoll_wait on the caller watch failed", errno));
        std::lock_guard lock(mutex_);
        for (int i = 0; i < n; ++i) {
            auto it = watched_.find(events[static_cast<std::size_t>(i)].data.u64);
            if (it == watched_.end())
                continue;  // unwatched between the wait and here
            due.push_back(std::move(it->second.on_exit));
            forget_locked(it);
        }
        if (static_cast<std::size_t>(n) < events.size())
            break;
    }
    for (auto& on_exit : due)
        if (on_exit)
            on_exit();
    return due.size();
}

std::size_t CallerWatch::size() const
{
    std::lock_guard lock(mutex_);
    return watched_.size();
}

}  // namespace bpfbroker::brokerd
