// What an unprivileged client in the end-to-end tests needs around an
// acquired program: its own io_uring, and a look at what an fd really is.
#pragma once

#include "support/io.h"
#include "support/unprivileged_child.h"

#include <liburing.h>

#include <climits>
#include <string>
#include <unistd.h>

namespace bpfbroker::e2e {

// Owns an io_uring set up with io_uring_queue_init; fails the child if it cannot.
class Ring {
public:
    explicit Ring(unsigned entries)
    {
        int r = io_uring_queue_init(entries, &ring_, 0);
        test_support::require(r == 0, "io_uring_queue_init as uid 65534 failed: " + test_support::errno_text(-r));
    }
    ~Ring() { io_uring_queue_exit(&ring_); }
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    io_uring& get() { return ring_; }

private:
    io_uring ring_{};
};

// The /proc/self/fd link of `fd`, e.g. "anon_inode:bpf-prog".
inline std::string fd_link(int fd)
{
    char target[PATH_MAX] = {};
    auto path = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
    return n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "(readlink: " + test_support::errno_text(errno) + ")";
}

}  // namespace bpfbroker::e2e
