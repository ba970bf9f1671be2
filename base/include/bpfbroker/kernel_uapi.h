// The one place for kernel ABI constants that Debian 12's headers
// (linux-libc-dev 6.1, liburing 2.3, libbpf 1.1.2) are too old to know.
// The running kernel is newer than the headers; every value here was checked
// against the kernel's uapi headers and is annotated with the release that
// introduced it. Whether the running kernel actually has a feature is found
// by probing, never by comparing version strings.
//
// Two kinds of constant, two treatments:
//  - Preprocessor macros (SO_*, SCM_*) get the usual `#ifndef` guard, after
//    <sys/socket.h> has been included so that a newer libc/kernel header wins.
//  - Enumerators in the kernel headers (IORING_OP_URING_CMD, SOCKET_URING_OP_*)
//    are invisible to `#ifndef`, and `#define`-ing one would break any newer
//    header declaring it later. They live here as namespaced constexprs; the
//    code that includes the real header static_asserts that they agree.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

// ---- socket options (asm-generic/socket.h numbering) -------------------------
//
// parisc and sparc number SOL_SOCKET options differently (SO_PEERPIDFD is
// 0x404B on parisc); rather than carry their tables, refuse to guess.
#if defined(__hppa__) || defined(__sparc__)
#error "bpfbroker: kernel_uapi.h only knows the asm-generic SO_* numbering"
#endif

// Linux 3.19. Attach an eBPF socket_filter program by fd.
#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

// Linux 4.5. Attach an eBPF program (socket_filter, or sk_reuseport on later
// kernels) that picks the socket within a SO_REUSEPORT group.
#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif

// Linux 6.5. getsockopt: a pidfd for the peer of an AF_UNIX socket.
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

// Linux 6.5. Ask for SCM_PIDFD control messages (a pidfd of the sender).
#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif

// Linux 6.5. Control message carrying a pidfd (include/linux/socket.h; glibc
// names it from 2.39). Listed because it carries an fd: a receiver that does
// not expect it must still close it.
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

namespace bpfbroker::uapi {

// Kernel's limit on fds in one SCM_RIGHTS message (SCM_MAX_FD, include/net/scm.h).
inline constexpr std::size_t kScmMaxFd = 253;

// ---- io_uring ------------------------------------------------------------------

// Linux 5.19. enum io_uring_op: IORING_OP_URING_CMD, a file-specific command.
inline constexpr std::uint8_t kIoringOpUringCmd = 46;

// Linux 6.7. Values of sqe->cmd_op when the file is a socket
// (anonymous enum at the end of include/uapi/linux/io_uring.h).
inline constexpr std::uint32_t kSocketUringOpSiocinq = 0;
inline constexpr std::uint32_t kSocketUringOpSiocoutq = 1;
inline constexpr std::uint32_t kSocketUringOpGetsockopt = 2;
inline constexpr std::uint32_t kSocketUringOpSetsockopt = 3;

// Linux 6.7. Where the socket-command arguments live in struct io_uring_sqe.
// The 6.7 uapi adds them as union members that older headers lack:
//   union { __u64 addr; ...; struct { __u32 level; __u32 optname; }; }  offset 16
//   union { __s32 splice_fd_in; __u32 file_index; __u32 optlen; ... }   offset 44
//   union { struct { __u64 addr3; __u64 __pad2[1]; }; __u64 optval; ... } offset 48
// cmd_op/__pad1 overlay `off` (offset 8) since 5.19. uring_attach.cpp checks
// these offsets against the fields the installed header does have.
inline constexpr std::size_t kSqeOffsetCmdOp = 8;
inline constexpr std::size_t kSqeOffsetLevel = 16;
inline constexpr std::size_t kSqeOffsetOptname = 20;
inline constexpr std::size_t kSqeOffsetOptlen = 44;
inline constexpr std::size_t kSqeOffsetOptval = 48;

}  // namespace bpfbroker::uapi

// ---- bpf(2) commands and attributes newer than the 6.1 headers ----------------
namespace bpfbroker::uapi {

// Linux 6.9. enum bpf_cmd: BPF_TOKEN_CREATE (after BPF_PROG_BIND_MAP = 35).
inline constexpr int kBpfCmdTokenCreate = 36;

// Linux 6.9. union bpf_attr, the BPF_TOKEN_CREATE member.
struct BpfTokenCreateAttr {
    std::uint32_t flags;
    std::uint32_t bpffs_fd;
};

// Linux 6.18. union bpf_attr, the BPF_PROG_LOAD member up to its last field
// (BPF_PROG_LOAD_LAST_FIELD keyring_id). The 6.1 header ends at
// core_relo_rec_size; the fields after it are annotated with their release.
struct BpfProgLoadAttr {
    std::uint32_t prog_type;
    std::uint32_t insn_cnt;
    alignas(8) std::uint64_t insns;
    alignas(8) std::uint64_t license;
    std::uint32_t log_level;
    std::uint32_t log_size;
    alignas(8) std::uint64_t log_buf;
    std::uint32_t kern_version;
    std::uint32_t prog_flags;
    char prog_name[16];
    std::uint32_t prog_ifindex;
    std::uint32_t expected_attach_type;
    std::uint32_t prog_btf_fd;
    std::uint32_t func_info_rec_size;
    alignas(8) std::uint64_t func_info;
    std::uint32_t func_info_cnt;
    std::uint32_t line_info_rec_size;
    alignas(8) std::uint64_t line_info;
    std::uint32_t line_info_cnt;
    std::uint32_t attach_btf_id;
    std::uint32_t attach_prog_fd;
    std::uint32_t core_relo_cnt;
    alignas(8) std::uint64_t fd_array;
    alignas(8) std::uint64_t core_relos;
    std::uint32_t core_relo_rec_size;
    std::uint32_t log_true_size;            // Linux 6.4
    std::int32_t prog_token_fd;             // Linux 6.9
    std::uint32_t fd_array_cnt;             // Linux 6.14
    alignas(8) std::uint64_t signature;     // Linux 6.18: pointer to a PKCS#7 signature of the insns
    std::uint32_t signature_size;           // Linux 6.18
    std::int32_t keyring_id;                // Linux 6.18: 0..2 system keyrings, else a key serial
};

}  // namespace bpfbroker::uapi

// ---- io_uring_bpf_ops (Linux 7.1) ------------------------------------------------
//
// A struct_ops type whose loop_step callback runs inside the ring owner's
// io_uring_enter (io_uring/bpf-ops.c, io_uring/loop.c). The broker registers
// one per ring with a struct_ops link; see brokerd/ring_attach.h.
namespace bpfbroker::uapi {

// Linux 6.4. enum bpf_attach_type: BPF_STRUCT_OPS (after BPF_LSM_CGROUP = 43),
// the attach type of BPF_LINK_CREATE for a struct_ops map.
inline constexpr std::uint32_t kBpfStructOpsAttachType = 44;
// Linux 6.4. BPF_MAP_CREATE flag BPF_F_LINK: a struct_ops map registered by
// BPF_LINK_CREATE (and detachable with BPF_LINK_DETACH), not by its update.
inline constexpr std::uint32_t kBpfFLink = 1U << 13;
// Linux 5.10. BPF_PROG_LOAD flag BPF_F_SLEEPABLE (in the 6.1 header too,
// repeated so struct_ops code reads from one place).
inline constexpr std::uint32_t kBpfFSleepable = 1U << 4;

// io_uring_setup flags (include/uapi/linux/io_uring.h).
inline constexpr std::uint32_t kIoringSetupIopoll = 1U << 0;
inline constexpr std::uint32_t kIoringSetupSqpoll = 1U << 1;
inline constexpr std::uint32_t kIoringSetupCqsize = 1U << 3;
inline constexpr std::uint32_t kIoringSetupSqe128 = 1U << 10;        // Linux 5.19
inline constexpr std::uint32_t kIoringSetupCqe32 = 1U << 11;         // Linux 5.19
inline constexpr std::uint32_t kIoringSetupSingleIssuer = 1U << 12;  // Linux 6.0
inline constexpr std::uint32_t kIoringSetupDeferTaskrun = 1U << 13;  // Linux 6.1
inline constexpr std::uint32_t kIoringSetupNoSqarray = 1U << 16;     // Linux 6.6
inline constexpr std::uint32_t kIoringSetupSqRewind = 1U << 20;      // Linux 7.1

// Linux 7.1. loop_step's return values (io_uring/loop.h) and the region ids
// of the bpf_io_uring_get_region kfunc (io_uring/bpf-ops.h).
inline constexpr int kIouLoopContinue = 0;
inline constexpr int kIouLoopStop = 1;
inline constexpr std::uint32_t kIouRegionMem = 0;
inline constexpr std::uint32_t kIouRegionCq = 1;
inline constexpr std::uint32_t kIouRegionSq = 2;

// The kernel's names, looked up in vmlinux BTF: the struct_ops type, its
// value wrapper (BPF_STRUCT_OPS value types are "bpf_struct_ops_" + name,
// with the ops in member "data") and the members the broker fills.
inline constexpr const char* kIoUringBpfOpsType = "io_uring_bpf_ops";
inline constexpr const char* kIoUringBpfOpsValueType = "bpf_struct_ops_io_uring_bpf_ops";

}  // namespace bpfbroker::uapi
