// Bytes plus file descriptors over an AF_UNIX socket (SCM_RIGHTS), shared by
// the client library and the daemon (internal: in-tree only, never installed).
//
// Receiving is where the care goes: every received fd is CLOEXEC from the
// moment it exists (MSG_CMSG_CLOEXEC) and owned by a UniqueFd; a message that
// carries more fds than the caller allows, or whose control data the kernel
// had to truncate, is refused with every fd it did carry closed, so a peer
// cannot make us leak descriptors.
//
// Both calls retry on EINTR. On a non-blocking socket EAGAIN comes back as a
// SystemError with sys_errno EAGAIN (see would_block()); nothing was sent or
// received then.
#pragma once

#include <bpfbroker/error.h>
#include <bpfbroker/kernel_uapi.h>
#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace bpfbroker {

// A reasonable default bound for fds per message; the kernel allows up to
// uapi::kScmMaxFd (253).
inline constexpr std::size_t kDefaultMaxFdsPerMessage = 16;

// Sends `bytes` with `fds` attached (MSG_NOSIGNAL: a closed peer is EPIPE, not
// SIGPIPE). Returns how many bytes went out: on a non-blocking stream socket
// that can be fewer than bytes.size(). The fds travel with the first byte, so
// send the rest with no fds. InvalidParameter for fds without bytes (a stream
// socket cannot carry them alone) or more than uapi::kScmMaxFd fds.
Result<std::size_t> send_with_fds(int sock, std::string_view bytes, std::span<const int> fds);

// send_with_fds() until every byte is out; for blocking sockets (a
// non-blocking one returns EAGAIN part-way, with the fds already sent).
Result<void> send_all_with_fds(int sock, std::string_view bytes, std::span<const int> fds);

struct Received {
    std::size_t bytes = 0;         // 0 with no fds: the peer shut down (EOF)
    std::vector<UniqueFd> fds;     // in the order the peer attached them
};

// Receives up to buffer.size() bytes and at most max_fds fds. ProtocolError
// (with all received fds closed) when the message carried more than max_fds
// fds, when the kernel truncated the control data (MSG_CTRUNC) or the
// datagram (MSG_TRUNC), or when it carried a control message other than
// SCM_RIGHTS. max_fds may be 0 (then any fd is a ProtocolError); at most
// uapi::kScmMaxFd.
Result<Received> recv_with_fds(int sock, std::span<char> buffer,
                               std::size_t max_fds = kDefaultMaxFdsPerMessage);

// recv_with_fds() with MSG_PEEK: the bytes stay on the socket (with
// SO_PEEK_OFF set, the next peek starts after them). Any fd attached to
// them is refused the same way, and none is installed when max_fds is 0.
Result<Received> peek_with_fds(int sock, std::span<char> buffer, std::size_t max_fds);

// True for the SystemError a non-blocking socket returns when it would block.
[[nodiscard]] bool would_block(const Error& error) noexcept;

}  // namespace bpfbroker
