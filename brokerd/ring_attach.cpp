// Taking a caller's ring and registering an io_uring_ops program on it; see ring_attach.h.
#include "brokerd/ring_attach.h"

#include "brokerd/libbpf_handles.h"

#include <bpfbroker/kernel_uapi.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fcntl.h>
#include <optional>
#include <cstring>
#include <mutex>
#include <string_view>
#include <vector>

namespace bpfbroker::brokerd {

namespace {

constexpr std::string_view kIoUringLink = "anon_inode:[io_uring]";
// fdinfo lists the masks in its first lines; the rest (every pending SQE
// and CQE) is not read, so a ring of any size costs one small read.
constexpr std::size_t kFdinfoHeadBytes = 4096;

std::string fd_text(const CallerRing& ring)
{
    return "ring fd " + std::to_string(ring.caller_fd);
}

Unexpected invalid_ring(int caller_fd, const std::string& why)
{
    return fail(ErrorCode::InvalidParameter, "ring fd " + std::to_string(caller_fd) + " of the caller: " + why);
}

// The value of "Name:\t0x..." (hex) or "Name:\tN" in fdinfo text.
std::optional<std::int64_t> fdinfo_number(std::string_view text, std::string_view name)
{
    std::string key = "\n" + std::string(name) + ":";
    auto at = text.find(key);
    if (at == std::string_view::npos)
        return std::nullopt;
    auto rest = text.substr(at + key.size());
    while (!rest.empty() && (rest.front() == '\t' || rest.front() == ' '))
        rest.remove_prefix(1);
    int base = 10;
    if (rest.starts_with("0x")) {
        rest.remove_prefix(2);
        base = 16;
    }
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value, base);
    if (ec != std::errc{})
        return std::nullopt;
    return value;
}

std::string flag_names(std::uint32_t flags)
{
    std::string out;
    auto add = [&](std::uint32_t bit, const char* name) {
        if (flags & bit)
            out += (out.empty() ? "" : "|") + std::string(name);
    };
    add(uapi::kIoringSetupSqpoll, "SQPOLL");
    add(uapi::kIoringSetupIopoll, "IOPOLL");
    return out;
}

// Where this kernel puts the CQ fields of a ring with these flags and
// entries: a throwaway ring of the daemon's own (the offsets are the same
// for every ring of that shape).
Result<io_uring_params> kernel_offsets(const RingLayout& layout)
{
    io_uring_params p;
    std::memset(&p, 0, sizeof(p));
    p.flags = (layout.flags & (uapi::kIoringSetupCqe32 | uapi::kIoringSetupSqe128 | uapi::kIoringSetupNoSqarray)) |
              uapi::kIoringSetupCqsize;
    p.cq_entries = layout.cq_entries;
    UniqueFd probe(static_cast<int>(::syscall(SYS_io_uring_setup, layout.sq_entries, &p)));
    if (!probe)
        return fail(make_system_error("io_uring_setup of a ring shaped like the caller's failed", errno));
    return p;
}

// The layout of the kernel's value for io_uring_bpf_ops, from vmlinux BTF:
// the value type's size and where the members the broker fills lie in it.
struct OpsValueLayout {
    std::uint32_t size = 0;
    std::uint32_t loop_step = 0;  // offsets from the start of the value
    std::uint32_t ring_fd = 0;
};

Result<std::uint32_t> member_offset(const btf* b, const btf_type* t, std::string_view name)
{
    const btf_member* m = btf_members(t);
    for (unsigned i = 0; i < btf_vlen(t); ++i, ++m)
        if (name == btf__name_by_offset(b, m->name_off))
            return static_cast<std::uint32_t>(btf_member_bit_offset(t, i) / 8);
    return fail(ErrorCode::Unsupported, "vmlinux BTF has no member " + std::string(name) + " in the io_uring_bpf_ops "
                                        "value; this kernel's io_uring_bpf_ops is not the one the broker knows");
}

Result<OpsValueLayout> read_ops_value_layout()
{
    BtfPtr vmlinux(btf__load_vmlinux_btf());
    if (!vmlinux)
        return fail(make_system_error("loading vmlinux BTF failed", errno));
    const int value_id = btf__find_by_name_kind(vmlinux.get(), uapi::kIoUringBpfOpsValueType, BTF_KIND_STRUCT);
    const int ops_id = btf__find_by_name_kind(vmlinux.get(), uapi::kIoUringBpfOpsType, BTF_KIND_STRUCT);
    if (value_id < 0 || ops_id < 0)
        return fail(ErrorCode::Unsupported, "vmlinux BTF has no struct io_uring_bpf_ops: this kernel cannot run "
                                            "io_uring_ops programs (Linux 7.1+ with CONFIG_IO_URING_BPF_OPS)");
    const btf_type* value = btf__type_by_id(vmlinux.get(), value_id);
    const btf_type* ops = btf__type_by_id(vmlinux.get(), ops_id);
    auto data = member_offset(vmlinux.get(), value, "data");
    auto loop_step = member_offset(vmlinux.get(), ops, "loop_step");
    auto ring_fd = member_offset(vmlinux.get(), ops, "ring_fd");
    for (const auto* r : {&data, &loop_step, &ring_fd})
        if (!*r)
            return fail(r->error());
    return OpsValueLayout{value->size, *data + *loop_step, *data + *ring_fd};
}

// The kernel does not change under a running daemon: read once.
Result<OpsValueLayout> ops_value_layout()
{
    static std::once_flag once;
    static Result<OpsValueLayout> layout = fail(ErrorCode::Internal, "not read");
    std::call_once(once, [] { layout = read_ops_value_layout(); });
    return layout;
}

}  // namespace

Result<RingView> read_ring_view(int fd)
{
    const std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
    UniqueFd info(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!info)
        return fail(make_system_error("opening " + path + " failed", errno));
    std::string text(kFdinfoHeadBytes, '\0');
    text[0] = '\n';  // every key is looked up after a newline
    std::size_t used = 1;
    while (used < text.size()) {
        const ssize_t n = ::read(info.get(), text.data() + used, text.size() - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(make_system_error("reading " + path + " failed", errno));
        if (n == 0)
            break;
        used += static_cast<std::size_t>(n);
    }
    text.resize(used);
    auto sq_mask = fdinfo_number(text, "SqMask");
    auto cq_mask = fdinfo_number(text, "CqMask");
    if (!sq_mask || !cq_mask)
        return fail(ErrorCode::Internal, path + " shows no SqMask/CqMask: not the io_uring fdinfo the broker knows");
    RingView view;
    view.sq_entries = static_cast<std::uint32_t>(*sq_mask + 1);
    view.cq_entries = static_cast<std::uint32_t>(*cq_mask + 1);
    // SqThread follows the SQE and CQE listings; it is within the head only
    // for a ring with few pending entries. The kernel's own check at
    // registration refuses an SQPOLL ring in any case.
    if (auto thread = fdinfo_number(text, "SqThread"))
        view.sqpoll = *thread != -1;
    return view;
}

Result<void> check_ring_layout(const RingLayout& layout, const RingView& view)
{
    auto refuse = [](const std::string& why) { return fail(ErrorCode::InvalidParameter, why); };
    const std::uint32_t polled = layout.flags & (uapi::kIoringSetupSqpoll | uapi::kIoringSetupIopoll);
    if (polled != 0 || view.sqpoll)
        return refuse("the ring is " + (polled ? flag_names(polled) : std::string("SQPOLL")) +
                      "; io_uring_ops programs run in the owner's io_uring_enter, which a polled ring does not "
                      "make (set it up with IORING_SETUP_DEFER_TASKRUN instead)");
    if (!(layout.flags & uapi::kIoringSetupDeferTaskrun))
        return refuse("the ring was set up without IORING_SETUP_DEFER_TASKRUN, which io_uring_ops programs need "
                      "(with IORING_SETUP_SINGLE_ISSUER)");
    if (layout.sq_entries != view.sq_entries || layout.cq_entries != view.cq_entries)
        return refuse("the request says sq_entries " + std::to_string(layout.sq_entries) + ", cq_entries " +
                      std::to_string(layout.cq_entries) + "; the kernel says this ring has " +
                      std::to_string(view.sq_entries) + " and " + std::to_string(view.cq_entries));
    auto kernel = kernel_offsets(layout);
    if (!kernel)
        return fail(std::move(kernel).error());
    if (layout.cq_head_off != kernel->cq_off.head || layout.cq_tail_off != kernel->cq_off.tail ||
        layout.cqes_off != kernel->cq_off.cqes)
        return refuse("the request's CQ offsets (head " + std::to_string(layout.cq_head_off) + ", tail " +
                      std::to_string(layout.cq_tail_off) + ", cqes " + std::to_string(layout.cqes_off) +
                      ") disagree with the kernel's for this ring (head " + std::to_string(kernel->cq_off.head) +
                      ", tail " + std::to_string(kernel->cq_off.tail) + ", cqes " +
                      std::to_string(kernel->cq_off.cqes) + ")");
    return {};
}

Result<CallerRing> take_caller_ring(const RequestContext& ctx, const RingRequest& request)
{
    if (ctx.transport != TransportKind::Socket || ctx.caller_pidfd < 0)
        return fail(ErrorCode::Unsupported,
                    "a ring is taken from the caller with pidfd_getfd() on the connection's own pidfd "
                    "(SO_PEERPIDFD), which only the socket (org.bpfbroker.Broker) has; D-Bus gives a pid "
                    "that can be reused");
    if (request.fd_number < 0)
        return invalid_ring(request.fd_number, "not an fd number");
    CallerRing ring;
    ring.caller_fd = request.fd_number;
    ring.layout = request.layout;
    // O_CLOEXEC is pidfd_getfd's default.
    ring.fd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_getfd, ctx.caller_pidfd, request.fd_number, 0)));
    if (!ring.fd) {
        const int err = errno;
        if (err == EBADF)
            return invalid_ring(request.fd_number, "the caller has no such open fd");
        if (err == ESRCH)
            return fail(ErrorCode::PermissionDenied, "the process that opened this connection has exited");
        return fail(make_system_error("pidfd_getfd of " + fd_text(ring) + " failed", err));
    }
    char target[64] = {};
    const std::string link = "/proc/self/fd/" + std::to_string(ring.fd.get());
    const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    if (n < 0)
        return fail(make_system_error("readlink of " + link + " failed", errno));
    if (std::string_view(target, static_cast<std::size_t>(n)) != kIoUringLink)
        return invalid_ring(request.fd_number, "not an io_uring instance (it is " +
                                                   std::string(target, static_cast<std::size_t>(n)) + ")");
    auto view = read_ring_view(ring.fd.get());
    if (!view)
        return fail(std::move(view).error());
    if (auto ok = check_ring_layout(ring.layout, *view); !ok)
        return invalid_ring(request.fd_number, ok.error().message);
    return ring;
}

Result<UniqueFd> register_on_ring(const LoadedInstance& instance, const CallerRing& ring)
{
    if (!instance.struct_ops || instance.programs.size() != 1)
        return fail(ErrorCode::Internal, "an io_uring_ops instance needs one program and its struct_ops value");
    auto layout = ops_value_layout();
    if (!layout)
        return fail(layout.error());
    bpf_map_info info;
    std::memset(&info, 0, sizeof(info));
    __u32 info_len = sizeof(info);
    if (bpf_obj_get_info_by_fd(instance.struct_ops->fd.get(), &info, &info_len) != 0)
        return fail(make_system_error("reading the struct_ops map's info failed", errno));
    if (info.value_size != layout->size || layout->loop_step + 8 > layout->size || layout->ring_fd + 4 > layout->size)
        return fail(ErrorCode::Internal, "the struct_ops map's value (" + std::to_string(info.value_size) +
                                             " bytes) is not vmlinux's io_uring_bpf_ops value (" +
                                             std::to_string(layout->size) + " bytes)");

    // The kernel's value: zero but for the callback (a program fd, as the
    // kernel reads function members) and ring_fd, which the kernel's reg
    // resolves with fget() in this process: the daemon's copy.
    std::vector<unsigned char> value(layout->size, 0);
    const std::uint64_t prog_fd = static_cast<std::uint64_t>(instance.programs.front().fd.get());
    const std::uint32_t ring_fd = static_cast<std::uint32_t>(ring.fd.get());
    std::memcpy(value.data() + layout->loop_step, &prog_fd, sizeof(prog_fd));
    std::memcpy(value.data() + layout->ring_fd, &ring_fd, sizeof(ring_fd));
    const std::uint32_t key = 0;
    if (bpf_map_update_elem(instance.struct_ops->fd.get(), &key, value.data(), 0) != 0)
        return fail(make_system_error("writing the io_uring_bpf_ops value failed", errno));

    // libbpf 1.1.2 does not know this attach type: BPF_LINK_CREATE by hand.
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof(attr));
    attr.link_create.prog_fd = static_cast<__u32>(instance.struct_ops->fd.get());  // map_fd since 6.4: same field
    attr.link_create.attach_type = uapi::kBpfStructOpsAttachType;
    UniqueFd link(static_cast<int>(::syscall(SYS_bpf, BPF_LINK_CREATE, &attr, sizeof(attr))));
    if (!link) {
        const int err = errno;
        if (err == EOPNOTSUPP)
            return invalid_ring(ring.caller_fd, "the kernel refused to run a program in this ring: it is SQPOLL or "
                                                "IOPOLL, or lacks IORING_SETUP_DEFER_TASKRUN (the request's "
                                                "flags do not match the ring)");
        if (err == EBUSY)
            return invalid_ring(ring.caller_fd, "the ring already runs an io_uring_bpf_ops program");
        return fail(make_system_error("BPF_LINK_CREATE of the io_uring_bpf_ops value on " + fd_text(ring) +
                                          " failed",
                                      err));
    }
    return link;  // the kernel makes every bpf link fd O_CLOEXEC
}

}  // namespace bpfbroker::brokerd
