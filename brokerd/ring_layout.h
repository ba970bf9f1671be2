// The layout of a caller's io_uring ring as an AttachRing request states it
// (the values of io_uring_params that io_uring_setup returned to the
// caller): the broker checks it against the kernel's view of the ring
// (brokerd/ring_attach.h) and then binds it into the program's ring.*
// parameters.
#pragma once

#include <cstdint>

namespace bpfbroker::brokerd {

struct RingLayout {
    std::uint32_t flags = 0;  // io_uring_params.flags
    std::uint32_t sq_entries = 0;
    std::uint32_t cq_entries = 0;
    std::uint32_t cq_head_off = 0;  // io_uring_params.cq_off.head
    std::uint32_t cq_tail_off = 0;  // .cq_off.tail
    std::uint32_t cqes_off = 0;     // .cq_off.cqes
};

// An AttachRing request's ring: the fd NUMBER in the caller's own table
// (io_uring fds cannot travel over SCM_RIGHTS) and its stated layout.
struct RingRequest {
    int fd_number = -1;
    RingLayout layout;
};

}  // namespace bpfbroker::brokerd
