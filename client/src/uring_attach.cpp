// Attach a program to a socket through io_uring (SOCKET_URING_OP_SETSOCKOPT)
// or setsockopt(2); see bpfbroker/uring_attach.h.
#include <bpfbroker/uring_attach.h>

#include <bpfbroker/kernel_uapi.h>

#include <liburing.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

namespace bpfbroker {

// The installed liburing header must agree with the 6.7 layout we write by
// offset. The fields it does have pin the union slots the new members share.
static_assert(sizeof(io_uring_sqe) == 64);
static_assert(IORING_OP_URING_CMD == uapi::kIoringOpUringCmd);
static_assert(offsetof(io_uring_sqe, cmd_op) == uapi::kSqeOffsetCmdOp);
static_assert(offsetof(io_uring_sqe, addr) == uapi::kSqeOffsetLevel);  // level, then optname
static_assert(uapi::kSqeOffsetOptname == uapi::kSqeOffsetLevel + sizeof(std::uint32_t));
static_assert(offsetof(io_uring_sqe, file_index) == uapi::kSqeOffsetOptlen);
static_assert(offsetof(io_uring_sqe, addr3) == uapi::kSqeOffsetOptval);

namespace {

int optname_for(AttachKind kind)
{
    return kind == AttachKind::Reuseport ? SO_ATTACH_REUSEPORT_EBPF : SO_ATTACH_BPF;
}

const char* optname_text(AttachKind kind)
{
    return kind == AttachKind::Reuseport ? "SO_ATTACH_REUSEPORT_EBPF" : "SO_ATTACH_BPF";
}

template <typename T>
void store_at(io_uring_sqe* sqe, std::size_t offset, T value)
{
    std::memcpy(reinterpret_cast<unsigned char*>(sqe) + offset, &value, sizeof(value));
}

Unexpected attach_error(const char* how, AttachKind kind, int err)
{
    return fail(make_system_error(std::string("attaching a program with ") + optname_text(kind) +
                                      " via " + how + " failed",
                                  err));
}

}  // namespace

void prep_attach(io_uring_sqe* sqe, int sockfd, const int* prog_fd_storage, AttachKind kind)
{
    // Everything the socket command does not use must be zero: the kernel
    // rejects a non-zero __pad1 or unknown uring_cmd_flags with -EINVAL.
    std::memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = uapi::kIoringOpUringCmd;
    sqe->fd = sockfd;
    sqe->cmd_op = uapi::kSocketUringOpSetsockopt;
    store_at<std::uint32_t>(sqe, uapi::kSqeOffsetLevel, SOL_SOCKET);
    store_at<std::uint32_t>(sqe, uapi::kSqeOffsetOptname, static_cast<std::uint32_t>(optname_for(kind)));
    store_at<std::uint32_t>(sqe, uapi::kSqeOffsetOptlen, sizeof(int));
    store_at<std::uint64_t>(sqe, uapi::kSqeOffsetOptval, reinterpret_cast<std::uintptr_t>(prog_fd_storage));
}

void prep_attach_socket_filter(io_uring_sqe* sqe, int sockfd, const int* prog_fd_storage)
{
    prep_attach(sqe, sockfd, prog_fd_storage, AttachKind::SocketFilter);
}

void prep_attach_reuseport(io_uring_sqe* sqe, int sockfd, const int* prog_fd_storage)
{
    prep_attach(sqe, sockfd, prog_fd_storage, AttachKind::Reuseport);
}

Result<void> attach_via_ring(io_uring& ring, int sockfd, int prog_fd, AttachKind kind)
{
    if (io_uring_sq_ready(&ring) != 0 || io_uring_cq_ready(&ring) != 0)
        return fail(ErrorCode::InvalidParameter,
                    "attach_via_ring needs an idle ring (queued submissions or unreaped completions found)");

    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr)
        return fail(ErrorCode::Internal, "no free submission queue entry on an idle ring");

    // The kernel reads *storage when it issues the request. On every path
    // where the request may still be in flight when we return, the storage is
    // deliberately leaked (4 bytes) rather than left dangling.
    auto storage = std::make_unique<int>(prog_fd);
    prep_attach(sqe, sockfd, storage.get(), kind);
    sqe->user_data = kAttachUserData;

    int submitted;
    do
        submitted = io_uring_submit(&ring);
    while (submitted == -EINTR);
    if (submitted < 0) {
        (void)storage.release();  // the SQE stays queued; a later submit would issue it
        return fail(make_system_error("io_uring_submit failed", -submitted));
    }
    if (submitted == 0)  // the kernel dropped the entry: no completion will come
        return fail(ErrorCode::Internal, "io_uring_submit consumed no entry");

    for (;;) {
        unsigned head;
        unsigned ahead = 0;  // completions in front of ours
        io_uring_cqe* cqe = nullptr;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            if (cqe->user_data == kAttachUserData)
                break;
            ++ahead;
        }
        if (cqe != nullptr) {
            const int res = cqe->res;
            if (ahead == 0)
                io_uring_cqe_seen(&ring, cqe);
            // else: a foreign completion came first; leave both for the
            // caller's loop (see the header) rather than lose theirs.
            if (res < 0)
                return attach_error("io_uring", kind, -res);
            return {};
        }
        int waited = io_uring_wait_cqe_nr(&ring, &cqe, ahead + 1);
        if (waited < 0 && waited != -EINTR) {
            (void)storage.release();  // still in flight
            return fail(make_system_error("waiting for the io_uring completion failed", -waited));
        }
    }
}

Result<void> attach_via_setsockopt(int sockfd, int prog_fd, AttachKind kind)
{
    const int value = prog_fd;
    if (::setsockopt(sockfd, SOL_SOCKET, optname_for(kind), &value, sizeof(value)) != 0)
        return attach_error("setsockopt", kind, errno);
    return {};
}

Result<void> attach(io_uring* ring, int sockfd, int prog_fd, AttachKind kind, AttachPath* path_used)
{
    if (ring != nullptr) {
        auto via_ring = attach_via_ring(*ring, sockfd, prog_fd, kind);
        if (via_ring) {
            if (path_used != nullptr)
                *path_used = AttachPath::Ring;
            return {};
        }
        const Error& err = via_ring.error();
        const bool kernel_lacks_it = err.code == ErrorCode::SystemError &&
                                     (err.sys_errno == EOPNOTSUPP || err.sys_errno == EINVAL);
        if (!kernel_lacks_it)
            return via_ring;
    }
    auto via_setsockopt = attach_via_setsockopt(sockfd, prog_fd, kind);
    if (via_setsockopt && path_used != nullptr)
        *path_used = AttachPath::Setsockopt;
    return via_setsockopt;
}

}  // namespace bpfbroker
