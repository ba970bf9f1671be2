// Kernel feature probes; see feature_probe.h. Each probe asks the kernel to
// do the thing (or to refuse it in a way only a kernel that knows the thing
// would) and reads the answer.
#include "brokerd/feature_probe.h"

#include "brokerd/libbpf_handles.h"

#include "policy/manifest.h"

#include <bpfbroker/kernel_uapi.h>
#include <bpfbroker/unique_fd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>


// end TODO(lead)

namespace bpfbroker::brokerd {
namespace {

// The prefix the installed header knows must line up with the kernel's.
static_assert(offsetof(uapi::BpfProgLoadAttr, insns) == offsetof(bpf_attr, insns));
static_assert(offsetof(uapi::BpfProgLoadAttr, prog_name) == offsetof(bpf_attr, prog_name));
static_assert(offsetof(uapi::BpfProgLoadAttr, fd_array) == offsetof(bpf_attr, fd_array));
static_assert(offsetof(uapi::BpfProgLoadAttr, core_relo_rec_size) == offsetof(bpf_attr, core_relo_rec_size));
static_assert(offsetof(uapi::BpfProgLoadAttr, signature) == 152);
static_assert(offsetof(uapi::BpfProgLoadAttr, keyring_id) == 164);
static_assert(sizeof(uapi::BpfProgLoadAttr) == 168);
static_assert(sizeof(io_uring_sqe) == 64);
static_assert(offsetof(io_uring_sqe, cmd_op) == uapi::kSqeOffsetCmdOp);

FeatureProbe found(std::string_view name, std::string detail)
{
    return FeatureProbe{std::string(name), true, std::move(detail)};
}

FeatureProbe missing(std::string_view name, std::string detail)
{
    return FeatureProbe{std::string(name), false, std::move(detail)};
}

std::string errno_text(int err)
{
    const char* name = strerrorname_np(err);
    return std::string(name != nullptr ? name : "errno " + std::to_string(err)) + " (" + std::strerror(err) + ")";
}

// bpf(2) without libbpf: the probes need attr sizes and fields that
// libbpf 1.1 does not know.
int raw_bpf(int cmd, void* attr, std::size_t size)
{
    return static_cast<int>(::syscall(SYS_bpf, cmd, attr, size));
}

std::uint64_t pointer_value(const void* p)
{
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p));
}

// r0 = 0; exit: the smallest program every kernel accepts.
const bpf_insn kTrivialProgram[] = {
    {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
    {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
};
const char kLicense[] = "GPL";

FeatureProbe probe_prog_type(std::string_view name, bpf_prog_type type)
{
    LibbpfMessages quiet;  // keep libbpf's probe chatter off stderr
    const int answer = libbpf_probe_bpf_prog_type(type, nullptr);
    if (answer == 1)
        return found(name, "libbpf_probe_bpf_prog_type loaded a trivial program of this type");
    if (answer == 0)
        return missing(name, "libbpf_probe_bpf_prog_type: the kernel refused a trivial program of this type");
    return missing(name, "libbpf_probe_bpf_prog_type could not probe: " + errno_text(-answer));
}

void store_u32(io_uring_sqe* sqe, std::size_t offset, std::uint32_t value)
{
    std::memcpy(reinterpret_cast<unsigned char*>(sqe) + offset, &value, sizeof(value));
}

void store_u64(io_uring_sqe* sqe, std::size_t offset, std::uint64_t value)
{
    std::memcpy(reinterpret_cast<unsigned char*>(sqe) + offset, &value, sizeof(value));
}

// IORING_OP_URING_CMD / SOCKET_URING_OP_SETSOCKOPT (Linux 6.7) setting
// SO_RCVBUF on a UDP socket. No helper in uring_attach.h fits (they only
// attach programs), so the SQE is filled here at the same uapi offsets.
FeatureProbe probe_uring_cmd_setsockopt()
{
    constexpr std::string_view name = "uring_cmd_setsockopt";
    // Static storage: the kernel reads the option value when it issues the
    // request, which could outlive this frame if waiting failed.
    static const int kReceiveBuffer = 64 * 1024;

    io_uring ring;
    if (const int r = io_uring_queue_init(2, &ring, 0); r < 0)
        return missing(name, "io_uring_queue_init failed: " + errno_text(-r));
    struct RingCloser {
        io_uring* ring;
        ~RingCloser() { io_uring_queue_exit(ring); }
    } ring_closer{&ring};

    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock)
        sock.reset(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock)
        return missing(name, "cannot create a UDP socket to probe with: " + errno_text(errno));

    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr)
        return missing(name, "no submission queue entry on a fresh ring");
    // Everything the socket command does not use must be zero (__pad1,
    // uring_cmd_flags), or the kernel answers EINVAL.
    std::memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = uapi::kIoringOpUringCmd;
    sqe->fd = sock.get();
    store_u32(sqe, uapi::kSqeOffsetCmdOp, uapi::kSocketUringOpSetsockopt);
    store_u32(sqe, uapi::kSqeOffsetLevel, SOL_SOCKET);
    store_u32(sqe, uapi::kSqeOffsetOptname, SO_RCVBUF);
    store_u32(sqe, uapi::kSqeOffsetOptlen, sizeof(kReceiveBuffer));
    store_u64(sqe, uapi::kSqeOffsetOptval, pointer_value(&kReceiveBuffer));

    int submitted;
    do
        submitted = io_uring_submit(&ring);
    while (submitted == -EINTR);
    if (submitted != 1)
        return missing(name, "io_uring_submit failed: " +
                                 (submitted < 0 ? errno_text(-submitted) : std::string("no entry consumed")));

    io_uring_cqe* cqe = nullptr;
    int waited;
    do
        waited = io_uring_wait_cqe(&ring, &cqe);
    while (waited == -EINTR);
    if (waited < 0)
        return missing(name, "waiting for the completion failed: " + errno_text(-waited));
    const int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);

    if (res == 0)
        return found(name, "IORING_OP_URING_CMD with SOCKET_URING_OP_SETSOCKOPT set SO_RCVBUF on a UDP socket");
    if (res == -EINVAL)
        return missing(name, "the ring answered EINVAL: no IORING_OP_URING_CMD (before Linux 5.19)");
    if (res == -EOPNOTSUPP)
        return missing(name, "the ring answered EOPNOTSUPP: no socket commands (before Linux 6.7)");
    return missing(name, "SOCKET_URING_OP_SETSOCKOPT(SO_RCVBUF) failed: " + errno_text(-res));
}

// The io_uring struct_ops (loop_step, bpf_io_uring_submit_sqes...) exist
// when vmlinux BTF describes struct io_uring_bpf_ops.
FeatureProbe probe_io_uring_bpf_ops()
{
    constexpr std::string_view name = "io_uring_bpf_ops";
    LibbpfMessages quiet;
    BtfPtr vmlinux(btf__load_vmlinux_btf());
    if (!vmlinux)
        return missing(name, "cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): " + errno_text(errno));
    const int id = btf__find_by_name_kind(vmlinux.get(), "io_uring_bpf_ops", BTF_KIND_STRUCT);
    if (id > 0)
        return found(name, "vmlinux BTF has struct io_uring_bpf_ops (type id " + std::to_string(id) + ")");
    return missing(name, "vmlinux BTF has no struct io_uring_bpf_ops");
}

// BPF_TOKEN_CREATE with bpffs_fd = -1. kernel/bpf/token.c answers EBADF for
// a bad bpffs fd (after flags == 0 passed); a kernel without the command
// falls through __sys_bpf's switch to its default, EINVAL.
FeatureProbe probe_bpf_token()
{
    constexpr std::string_view name = "bpf_token";
    uapi::BpfTokenCreateAttr attr{};
    attr.bpffs_fd = static_cast<std::uint32_t>(-1);
    const int fd = raw_bpf(uapi::kBpfCmdTokenCreate, &attr, sizeof(attr));
    const int err = errno;
    if (fd >= 0) {
        ::close(fd);
        return found(name, "BPF_TOKEN_CREATE returned a token for fd -1 (unexpected, closed)");
    }
    if (err == EBADF)
        return found(name, "BPF_TOKEN_CREATE (bpf cmd 36) answered EBADF for an invalid bpffs fd: the command exists "
                           "(a token also needs a bpffs mounted with delegate_* options)");
    if (err == EINVAL)
        return missing(name, "bpf cmd 36 answered EINVAL: the kernel has no BPF_TOKEN_CREATE (before Linux 6.9)");
    return missing(name, "BPF_TOKEN_CREATE could not be probed: " + errno_text(err));
}

// BPF_PROG_LOAD of a trivial program with the 6.18 signature fields set
// (a garbage signature, keyring 0 = the kernel's builtin trusted keys).
//  - A kernel whose bpf_attr ends before the fields sees a non-zero tail:
//    bpf_check_uarg_tail_zero answers E2BIG before anything else.
//  - A 6.18 kernel copies the signature and hands it to the PKCS#7 parser
//    (bpf_prog_verify_signature) before the verifier runs, which rejects
//    the garbage (EBADMSG). The program is freed: nothing is ever loaded.
//  - EINVAL: the fields are refused (no keyring, or a kernel that knows a
//    longer attr but not these fields); EOPNOTSUPP: built without
//    CONFIG_SYSTEM_DATA_VERIFICATION.
FeatureProbe probe_signed_prog_load()
{
    constexpr std::string_view name = "signed_prog_load";
    static const unsigned char kGarbageSignature[16] = {};

    uapi::BpfProgLoadAttr attr;
    std::memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insn_cnt = sizeof(kTrivialProgram) / sizeof(kTrivialProgram[0]);
    attr.insns = pointer_value(kTrivialProgram);
    attr.license = pointer_value(kLicense);
    attr.signature = pointer_value(kGarbageSignature);
    attr.signature_size = sizeof(kGarbageSignature);
    attr.keyring_id = 0;

    const int fd = raw_bpf(BPF_PROG_LOAD, &attr, sizeof(attr));
    const int err = errno;
    if (fd >= 0) {
        ::close(fd);
        return missing(name, "BPF_PROG_LOAD accepted a garbage signature (program closed): the kernel ignores it");
    }
    switch (err) {
    case EBADMSG:
    case EKEYREJECTED:
    case ENOKEY:
        return found(name, "BPF_PROG_LOAD checked prog_load.signature and rejected a garbage one with " +
                               errno_text(err));
    case E2BIG:
        return missing(name, "BPF_PROG_LOAD answered E2BIG: the kernel's bpf_attr ends before prog_load.signature "
                             "(before Linux 6.18)");
    case EINVAL:
        return missing(name, "BPF_PROG_LOAD refused the signature fields with EINVAL");
    case EOPNOTSUPP:
        return missing(name, "BPF_PROG_LOAD knows the signature fields (EOPNOTSUPP, not E2BIG) but cannot verify "
                             "PKCS#7 signatures: kernel built without CONFIG_SYSTEM_DATA_VERIFICATION");
    default:
        return missing(name, "BPF_PROG_LOAD with a signature could not be probed: " + errno_text(err));
    }
}

FeatureProbe probe_known_feature(std::string_view name)
{
    if (name == "uring_cmd_setsockopt")
        return probe_uring_cmd_setsockopt();
    if (name == "io_uring_bpf_ops")
        return probe_io_uring_bpf_ops();
    if (name == "bpf_token")
        return probe_bpf_token();
    if (name == "signed_prog_load")
        return probe_signed_prog_load();
    return missing(name, "no probe for this feature in this version of bpfbrokerd");
}

}  // namespace

std::set<std::string, std::less<>> FeatureReport::available() const
{
    std::set<std::string, std::less<>> names;
    for (const auto& probe : probes)
        if (probe.available)
            names.insert(probe.name);
    return names;
}

const FeatureProbe* FeatureReport::find(std::string_view name) const
{
    for (const auto& probe : probes)
        if (probe.name == name)
            return &probe;
    return nullptr;
}

nlohmann::json FeatureReport::to_json() const
{
    auto out = nlohmann::json::object();
    for (const auto& probe : probes)
        out[probe.name] = {{"available", probe.available}, {"detail", probe.detail}};
    return out;
}

FeatureReport probe_kernel_features()
{
    FeatureReport report;
    report.probes.push_back(probe_prog_type(kFeatureProgTypeSocketFilter, BPF_PROG_TYPE_SOCKET_FILTER));
    report.probes.push_back(probe_prog_type(kFeatureProgTypeSkReuseport, BPF_PROG_TYPE_SK_REUSEPORT));
    for (std::string_view name : policy::kKnownFeatures)
        report.probes.push_back(probe_known_feature(name));
    return report;
}

}  // namespace bpfbroker::brokerd
