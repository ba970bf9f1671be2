// Taking a caller's ring and registering an io_uring_ops program on it
// (brokerd/ring_attach.h). The ring checks run on any kernel with
// DEFER_TASKRUN rings (root: pidfd_getfd); the registration and
// a revocation's BPF_LINK_DETACH need Linux 7.1's io_uring_bpf_ops and say
// so when it is missing (the VM runs them: scripts/vm-test.sh).
#include "brokerd/live_instances.h"
#include "brokerd/parameter_values.h"
#include "brokerd/ring_attach.h"
#include "shipped_program.h"

#include <bpfbroker/kernel_uapi.h>

#include "ring_nops/ring_nops.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/io_uring.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fcntl.h>

#include <cstring>

namespace bpfbroker::brokerd {
namespace {

namespace uapi = bpfbroker::uapi;

struct OwnRing {
    io_uring_params params{};
    UniqueFd fd;
    explicit OwnRing(std::uint32_t flags, unsigned entries = 8)
    {
        params.flags = flags;
        fd = UniqueFd(static_cast<int>(::syscall(SYS_io_uring_setup, entries, &params)));
    }
    [[nodiscard]] RingLayout layout() const
    {
        return {params.flags,       params.sq_entries,  params.cq_entries,
                params.cq_off.head, params.cq_off.tail, params.cq_off.cqes};
    }
};

constexpr std::uint32_t kDeferred = uapi::kIoringSetupDeferTaskrun | uapi::kIoringSetupSingleIssuer;

RequestContext socket_context(const UniqueFd& pidfd)
{
    RequestContext ctx;
    ctx.transport = TransportKind::Socket;
    ctx.caller_pidfd = pidfd.get();
    return ctx;
}

UniqueFd own_pidfd()
{
    return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
}

bool has_io_uring_bpf_ops()
{
    btf* vmlinux = btf__load_vmlinux_btf();
    const bool found = vmlinux && btf__find_by_name_kind(vmlinux, uapi::kIoUringBpfOpsType, BTF_KIND_STRUCT) >= 0;
    btf__free(vmlinux);
    return found;
}

TEST(RingAttach, the_view_and_the_layout_checks_follow_the_kernel)
{
    OwnRing ring(kDeferred, 8);
    ASSERT_TRUE(ring.fd.valid()) << std::strerror(errno);
    auto view = read_ring_view(ring.fd.get());
    ASSERT_TRUE(view) << view.error().describe();
    EXPECT_EQ(view->sq_entries, ring.params.sq_entries);
    EXPECT_EQ(view->cq_entries, ring.params.cq_entries);
    EXPECT_FALSE(view->sqpoll);
    EXPECT_TRUE(check_ring_layout(ring.layout(), *view)) << "the ring's own layout was refused";

    auto refused = [&](RingLayout l, const char* needle) {
        auto r = check_ring_layout(l, *view);
        EXPECT_FALSE(r) << needle;
        if (!r) {
            EXPECT_EQ(r.error().code, ErrorCode::InvalidParameter);
            EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
        }
    };
    RingLayout l = ring.layout();
    l.cqes_off += 64;
    refused(l, "disagree");
    l = ring.layout();
    l.cq_entries *= 2;
    refused(l, "the kernel says");
    l = ring.layout();
    l.flags &= ~uapi::kIoringSetupDeferTaskrun;
    refused(l, "DEFER_TASKRUN");
    l = ring.layout();
    l.flags |= uapi::kIoringSetupIopoll;
    refused(l, "IOPOLL");
}

TEST(RingAttach, take_caller_ring_refuses_dbus_and_what_is_not_a_ring)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "pidfd_getfd of a process needs ptrace rights; the daemon is root";
    OwnRing ring(kDeferred);
    ASSERT_TRUE(ring.fd.valid());
    UniqueFd pidfd = own_pidfd();
    ASSERT_TRUE(pidfd.valid());

    RequestContext dbus;
    dbus.transport = TransportKind::Dbus;
    auto over_dbus = take_caller_ring(dbus, RingRequest{ring.fd.get(), ring.layout()});
    ASSERT_FALSE(over_dbus);
    EXPECT_EQ(over_dbus.error().code, ErrorCode::Unsupported);

    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto not_ring = take_caller_ring(socket_context(pidfd), RingRequest{sock.get(), ring.layout()});
    ASSERT_FALSE(not_ring);
    EXPECT_NE(not_ring.error().message.find("not an io_uring instance"), std::string::npos) << not_ring.error().message;

    auto taken = take_caller_ring(socket_context(pidfd), RingRequest{ring.fd.get(), ring.layout()});
    ASSERT_TRUE(taken) << taken.error().describe();
    EXPECT_NE(taken->fd.get(), ring.fd.get()) << "the daemon must hold its own copy";
    EXPECT_NE(::fcntl(taken->fd.get(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(RingAttach, entry_detach_stops_the_program_and_a_ring_takes_one_program)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "loading BPF needs root";
    if (!has_io_uring_bpf_ops())
        GTEST_SKIP() << "this kernel has no io_uring_bpf_ops (Linux 7.1+): run it in scripts/vm-test.sh";
    policy::CatalogEntry entry;
    ASSERT_TRUE(testing::shipped_entry("ring_nops", entry));
    OwnRing ring(kDeferred | uapi::kIoringSetupNoSqarray | uapi::kIoringSetupSqRewind, 16);
    ASSERT_TRUE(ring.fd.valid()) << std::strerror(errno);
    UniqueFd pidfd = own_pidfd();
    auto taken = take_caller_ring(socket_context(pidfd), RingRequest{ring.fd.get(), ring.layout()});
    ASSERT_TRUE(taken) << taken.error().describe();
    CallerIdentity me{::getpid(), ::getuid(), 0, taken->layout};
    auto values = resolve_parameters(*entry.manifest, me, {{"total", 1000000}, {"in_flight", 1}});
    ASSERT_TRUE(values) << values.error().describe();

    auto instance = load_instance(entry, *values);
    ASSERT_TRUE(instance) << instance.error().describe() << "\n" << instance.error().detail;
    ASSERT_TRUE(instance->struct_ops);
    auto link = register_on_ring(*instance, *taken);
    ASSERT_TRUE(link) << link.error().describe();
    // A second program on the same ring is the kernel's EBUSY, named.
    auto second = load_instance(entry, *values);
    ASSERT_TRUE(second);
    auto busy = register_on_ring(*second, *taken);
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code, ErrorCode::InvalidParameter);
    EXPECT_NE(busy.error().message.find("already runs"), std::string::npos) << busy.error().message;

    // A revocation reaches it through the registry: the daemon's duplicate
    // of the link is detached (BPF_LINK_DETACH), not just the guard set.
    LiveInstances live(4);
    LiveInstances::Entry registered;
    registered.held.program = "ring_nops";
    registered.held.peer.uid = ::getuid();
    registered.prog_id = instance->programs[0].id;
    registered.link_to_detach = UniqueFd::dup_cloexec(link->get());
    ASSERT_TRUE(live.add(std::move(registered)));
    auto judged = live.cut_where([](const LiveInstances::Entry&) { return std::optional<std::string>("revoked"); });
    ASSERT_EQ(judged.size(), 1u);
    EXPECT_TRUE(judged[0].cut) << judged[0].why_not_cut;
    // The caller's link fd still exists, but the ring runs no program: an
    // enter returns at once and the program counted no step.
    EXPECT_EQ(::syscall(SYS_io_uring_enter, ring.fd.get(), 0, 0, IORING_ENTER_GETEVENTS, nullptr, 0), 0);
    ring_nops_stats s{};
    const __u32 key = 0;
    ASSERT_EQ(bpf_map_lookup_elem(instance->maps.at(0).fd.get(), &key, &s), 0);
    EXPECT_EQ(s.steps, 0u) << "the program ran after the revocation detached its link";
}

}  // namespace
}  // namespace bpfbroker::brokerd
