// How an io_uring_ops program reaches the caller's own ring (Linux 7.1's
// io_uring_bpf_ops struct_ops): the broker copies the caller's ring fd with
// pidfd_getfd() on the connection's SO_PEERPIDFD (never a pid from the
// request), checks the copy is an io_uring instance whose layout and flags
// agree with what the request says, then fills the loaded struct_ops value
// (ring_fd = the copy's number in the DAEMON's table, where the kernel's
// reg resolves it) and registers it with BPF_LINK_CREATE. The copy is closed
// afterwards; the caller gets the link only, never the program or the
// struct_ops map (with that it could register the program on any ring).
#pragma once

#include "brokerd/program_loader.h"
#include "brokerd/request_context.h"
#include "brokerd/ring_layout.h"

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <cstdint>
#include <string>

namespace bpfbroker::brokerd {

// The daemon's copy of a caller's ring and its checked layout.
struct CallerRing {
    UniqueFd fd;         // CLOEXEC, in the daemon's table
    int caller_fd = -1;  // its number in the caller's table, for messages
    RingLayout layout;
};

// What the kernel says of an io_uring fd (its /proc fdinfo).
struct RingView {
    std::uint32_t sq_entries = 0;  // SqMask + 1
    std::uint32_t cq_entries = 0;  // CqMask + 1
    bool sqpoll = false;           // SqThread is a thread, not -1
};

// Takes and checks the caller's ring. Errors, each before anything is
// registered:
//   Unsupported: not the socket, or no caller pidfd (D-Bus cannot vouch for one);
//   InvalidParameter: no such fd in the caller, not an io_uring instance, an
//     SQPOLL or IOPOLL ring, a ring without DEFER_TASKRUN, entries or
//     offsets that disagree with the ring;
//   SystemError: a syscall of the daemon failed.
Result<CallerRing> take_caller_ring(const RequestContext& ctx, const RingRequest& request);

// Reads the view of `fd` (the daemon's own fd number) from /proc/self/fdinfo.
Result<RingView> read_ring_view(int fd);

// Whether `layout` agrees with the ring the kernel shows (`view`) and with
// the offsets this kernel gives every ring of its flags and entries. Empty
// when it does, else the reason (InvalidParameter).
Result<void> check_ring_layout(const RingLayout& layout, const RingView& view);

// Registers `instance`'s struct_ops value on `ring` and returns the new
// struct_ops link (CLOEXEC): closing its last fd, BPF_LINK_DETACH, or the
// ring's exit ejects the program. InvalidParameter when the kernel refuses
// the ring (EOPNOTSUPP: flags; EBUSY: it has a program already); Internal
// when the instance has no struct_ops value; SystemError otherwise.
Result<UniqueFd> register_on_ring(const LoadedInstance& instance, const CallerRing& ring);

}  // namespace bpfbroker::brokerd
