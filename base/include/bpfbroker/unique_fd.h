// UniqueFd: the one owner of a file descriptor. Move-only, closes on
// destruction, and never converts to int implicitly: `.get()` says when a raw
// descriptor escapes. Duplicates are always made with F_DUPFD_CLOEXEC.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace bpfbroker {

class UniqueFd {
public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    ~UniqueFd() { reset(); }

    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept
    {
        if (this != &other)
            reset(other.release());
        return *this;
    }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    // Gives up ownership; the caller must close the returned descriptor.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

    void reset(int fd = -1) noexcept
    {
        int old = std::exchange(fd_, fd);
        if (old >= 0) {
            int saved = errno;  // close() in a destructor must not clobber errno
            ::close(old);
            errno = saved;
        }
    }

    // A CLOEXEC duplicate, or an invalid UniqueFd with errno set.
    [[nodiscard]] static UniqueFd dup_cloexec(int fd) noexcept
    {
        return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
    }
    [[nodiscard]] UniqueFd dup() const noexcept { return dup_cloexec(fd_); }

private:
    int fd_ = -1;
};

}  // namespace bpfbroker
