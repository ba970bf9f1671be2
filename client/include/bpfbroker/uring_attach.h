// Attaching a program the broker handed out to a socket the caller owns,
// queued on the caller's io_uring: IORING_OP_URING_CMD with cmd_op
// SOCKET_URING_OP_SETSOCKOPT (Linux 6.7+), level SOL_SOCKET and optname
// SO_ATTACH_BPF or SO_ATTACH_REUSEPORT_EBPF. Attaching needs no privilege:
// the kernel only checks that the fd is a program of the right type.
//
// Older kernels lack the command; attach() then falls back to setsockopt(2),
// which does the same thing synchronously.
//
// liburing 2.3 (Debian 12) has no io_uring_prep_cmd_sock and its
// struct io_uring_sqe lacks the level/optname/optlen/optval members, so the
// prep functions fill those fields at their 6.7 uapi offsets
// (bpfbroker/kernel_uapi.h).
#pragma once

#include <bpfbroker/result.h>

struct io_uring;
struct io_uring_sqe;

namespace bpfbroker {

enum class AttachKind {
    SocketFilter,  // SO_ATTACH_BPF: the program filters what the socket receives
    Reuseport,     // SO_ATTACH_REUSEPORT_EBPF: the program picks a socket in the SO_REUSEPORT group
};

enum class AttachPath {
    Ring,        // IORING_OP_URING_CMD / SOCKET_URING_OP_SETSOCKOPT
    Setsockopt,  // plain setsockopt(2)
};

// Fill `sqe` (from io_uring_get_sqe) to attach the program whose fd is
// *prog_fd_storage to `sockfd`. The whole SQE is overwritten, user_data
// included: set user_data afterwards.
//
// Lifetime: the kernel reads the program fd through the pointer when it
// *issues* the request, which may be after io_uring_submit() returns (SQPOLL,
// IOSQE_ASYNC, a link chain, or a punt to io-wq). *prog_fd_storage must stay
// valid and unchanged until the request's CQE has been reaped; keep it in the
// object that owns the pending request, not on a stack frame that returns
// before the completion. The int is read, never written.
//
// CQE: res == 0 on success; -errno otherwise (-EOPNOTSUPP or -EINVAL when the
// kernel lacks socket commands, see attach()).
void prep_attach_socket_filter(io_uring_sqe* sqe, int sockfd, const int* prog_fd_storage);
void prep_attach_reuseport(io_uring_sqe* sqe, int sockfd, const int* prog_fd_storage);
void prep_attach(io_uring_sqe* sqe, int sockfd, const int* prog_fd_storage, AttachKind kind);

// The user_data attach_via_ring() gives its request ("bpfatach").
inline constexpr unsigned long long kAttachUserData = 0x6270666174616368ULL;

// Synchronous convenience for setup code: queue the attach on `ring`, submit,
// wait for its completion. The ring must be idle: nothing queued and no
// completion waiting (InvalidParameter otherwise), and no request of the
// caller's should complete meanwhile. If one does anyway, its CQE is left in
// the ring, and so is ours (user_data kAttachUserData) behind it, for the
// caller's loop to skip; the result is still returned. Event loops with
// requests in flight should use prep_attach() and handle the CQE themselves.
//
// SystemError with sys_errno = the CQE's -res on failure.
Result<void> attach_via_ring(io_uring& ring, int sockfd, int prog_fd, AttachKind kind);

// setsockopt(sockfd, SOL_SOCKET, SO_ATTACH_BPF / SO_ATTACH_REUSEPORT_EBPF, &prog_fd).
Result<void> attach_via_setsockopt(int sockfd, int prog_fd, AttachKind kind);

// attach_via_ring when `ring` is non-null, falling back to setsockopt when the
// ring answers -EOPNOTSUPP (no socket commands: kernels 5.19-6.6, a protocol
// without them, an IOPOLL ring) or -EINVAL (no IORING_OP_URING_CMD at all:
// before 5.19). -EINVAL can also be the setsockopt's own verdict (e.g.
// SO_ATTACH_REUSEPORT_EBPF on a socket without SO_REUSEPORT); the fallback
// then fails the same way and that error is returned, so retrying is
// harmless. `path_used`, when given, says which path succeeded.
Result<void> attach(io_uring* ring, int sockfd, int prog_fd, AttachKind kind,
                    AttachPath* path_used = nullptr);

}  // namespace bpfbroker
