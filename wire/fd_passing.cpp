// SCM_RIGHTS send/receive with strict bounds; see fd_passing.h.
#include "wire/fd_passing.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace bpfbroker {
namespace {

// Room for the largest SCM_RIGHTS message the kernel sends, on the stack.
// cmsghdr alignment is what CMSG_FIRSTHDR/CMSG_NXTHDR assume.
struct ControlBuffer {
    alignas(struct cmsghdr) unsigned char bytes[CMSG_SPACE(sizeof(int) * uapi::kScmMaxFd)];
};

Unexpected system_error(const char* what, int err)
{
    return fail(make_system_error(what, err));
}

}  // namespace

bool would_block(const Error& error) noexcept
{
    return error.code == ErrorCode::SystemError &&
           (error.sys_errno == EAGAIN || error.sys_errno == EWOULDBLOCK);
}

Result<std::size_t> send_with_fds(int sock, std::string_view bytes, std::span<const int> fds)
{
    if (fds.size() > uapi::kScmMaxFd)
        return fail(ErrorCode::InvalidParameter,
                    "cannot pass " + std::to_string(fds.size()) + " fds in one message (kernel limit " +
                        std::to_string(uapi::kScmMaxFd) + ")");
    if (bytes.empty()) {
        if (!fds.empty())
            return fail(ErrorCode::InvalidParameter, "fds need at least one byte to travel with");
        return std::size_t{0};
    }

    struct iovec iov {};
    iov.iov_base = const_cast<char*>(bytes.data());  // sendmsg does not write through it
    iov.iov_len = bytes.size();
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;

    ControlBuffer control{};
    if (!fds.empty()) {
        const std::size_t payload = sizeof(int) * fds.size();
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(payload);
        struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(payload);
        std::memcpy(CMSG_DATA(cmsg), fds.data(), payload);
    }

    for (;;) {
        ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (n >= 0)
            return static_cast<std::size_t>(n);
        if (errno == EINTR)
            continue;
        return system_error("sendmsg failed", errno);
    }
}

Result<void> send_all_with_fds(int sock, std::string_view bytes, std::span<const int> fds)
{
    auto sent = send_with_fds(sock, bytes, fds);
    if (!sent)
        return fail(std::move(sent).error());
    std::size_t done = *sent;
    while (done < bytes.size()) {
        sent = send_with_fds(sock, bytes.substr(done), {});
        if (!sent)
            return fail(std::move(sent).error());
        done += *sent;
    }
    return {};
}

namespace {

Result<Received> receive(int sock, std::span<char> buffer, std::size_t max_fds, int flags)
{
    if (max_fds > uapi::kScmMaxFd)
        return fail(ErrorCode::InvalidParameter,
                    "max_fds above the kernel limit of " + std::to_string(uapi::kScmMaxFd));

    struct iovec iov {};
    iov.iov_base = buffer.data();
    iov.iov_len = buffer.size();
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;

    // Sized for max_fds; CMSG_SPACE rounds up, so the kernel may fit one more
    // fd than asked without setting MSG_CTRUNC. The count check below catches it.
    ControlBuffer control{};
    if (max_fds > 0) {
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);
    }

    ssize_t n;
    for (;;) {
        n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
        if (n >= 0)
            break;
        if (errno == EINTR)
            continue;
        return system_error("recvmsg failed", errno);
    }

    // Take ownership of every fd the kernel installed before judging the
    // message, so that every error path below closes them.
    Received received;
    received.bytes = static_cast<std::size_t>(n);
    bool unexpected_control = false;
    if (msg.msg_controllen > 0) {
        for (struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
            const bool carries_fds = cmsg->cmsg_level == SOL_SOCKET &&
                                     (cmsg->cmsg_type == SCM_RIGHTS || cmsg->cmsg_type == SCM_PIDFD);
            if (!carries_fds) {
                unexpected_control = true;
                continue;
            }
            if (cmsg->cmsg_type != SCM_RIGHTS)
                unexpected_control = true;  // a pidfd we did not ask for: close it too
            if (cmsg->cmsg_len < CMSG_LEN(0))
                continue;
            const std::size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            const unsigned char* data = CMSG_DATA(cmsg);
            for (std::size_t i = 0; i < count; ++i) {
                int fd = -1;
                std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
                received.fds.emplace_back(fd);
            }
        }
    }

    if (msg.msg_flags & MSG_CTRUNC)
        return fail(ErrorCode::ProtocolError,
                    "control data truncated: the peer sent more fds than the limit of " +
                        std::to_string(max_fds));
    if (received.fds.size() > max_fds)
        return fail(ErrorCode::ProtocolError, "the peer sent " + std::to_string(received.fds.size()) +
                                                  " fds, more than the limit of " +
                                                  std::to_string(max_fds));
    if (msg.msg_flags & MSG_TRUNC)
        return fail(ErrorCode::ProtocolError, "message truncated: larger than the receive buffer");
    if (unexpected_control)
        return fail(ErrorCode::ProtocolError, "unexpected control message (not SCM_RIGHTS)");
    return received;
}

}  // namespace

Result<Received> recv_with_fds(int sock, std::span<char> buffer, std::size_t max_fds)
{
    return receive(sock, buffer, max_fds, 0);
}

Result<Received> peek_with_fds(int sock, std::span<char> buffer, std::size_t max_fds)
{
    return receive(sock, buffer, max_fds, MSG_PEEK);
}

}  // namespace bpfbroker
