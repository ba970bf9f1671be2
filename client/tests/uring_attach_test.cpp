// io_uring attach against the real kernel. As root the test loads tiny
// socket_filter programs, hands their fds over SCM_RIGHTS to a forked child
// that has dropped to uid/gid 65534, and the child (unable to load BPF itself)
// attaches them through IORING_OP_URING_CMD / SOCKET_URING_OP_SETSOCKOPT and
// checks the effect on real UDP traffic. No mocks.
#include <bpfbroker/kernel_uapi.h>
#include <bpfbroker/uring_attach.h>

#include "wire/fd_passing.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <grp.h>
#include <liburing.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace bpfbroker {
namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

// ---- programs -------------------------------------------------------------------

bpf_insn mov64_r0(std::int32_t imm)
{
    bpf_insn insn{};
    insn.code = BPF_ALU64 | BPF_MOV | BPF_K;
    insn.dst_reg = BPF_REG_0;
    insn.imm = imm;
    return insn;
}

bpf_insn exit_insn()
{
    bpf_insn insn{};
    insn.code = BPF_JMP | BPF_EXIT;
    return insn;
}

// `r0 = verdict; exit`. As a socket filter 0 drops and a large value keeps
// the packet; as a reuseport program the value is the index of the socket.
// Returns the fd or -errno.
int load_constant_program(std::int32_t verdict)
{
    const std::array<bpf_insn, 2> insns{mov64_r0(verdict), exit_insn()};
    int fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "bpfbroker_test", "GPL", insns.data(),
                           insns.size(), nullptr);
    return fd >= 0 ? fd : -errno;
}

constexpr std::int32_t kDrop = 0;
constexpr std::int32_t kKeep = 0xffff;

// ---- environment ---------------------------------------------------------------

int read_sysctl(const char* path, int fallback)
{
    std::ifstream in(path);
    int value = fallback;
    if (!(in >> value))
        return fallback;
    return value;
}

// 0 = anyone may create rings. 1 = only root / io_uring_group (the child is
// in no group), 2 = nobody.
bool unprivileged_io_uring_allowed()
{
    return read_sysctl("/proc/sys/kernel/io_uring_disabled", 0) == 0;
}

// Does this kernel run socket commands (6.7+)? Probed with
// SOCKET_URING_OP_SIOCINQ, which came in the same release as SETSOCKOPT and
// uses none of the fields prep_attach() fills: a bug in our SETSOCKOPT
// encoding must fail the tests below, not make them skip.
bool ring_socket_commands_supported()
{
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    io_uring ring{};
    if (!sock || io_uring_queue_init(4, &ring, 0) != 0)
        return false;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    std::memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = sock.get();
    sqe->cmd_op = uapi::kSocketUringOpSiocinq;
    io_uring_cqe* cqe = nullptr;
    int res = -1;
    if (io_uring_submit(&ring) == 1 && io_uring_wait_cqe(&ring, &cqe) == 0) {
        res = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
    }
    io_uring_queue_exit(&ring);
    return res >= 0;  // bytes queued (0); -EOPNOTSUPP before 6.7
}

// ---- UDP helpers (used in the child: report, don't assert) ---------------------

UniqueFd udp_socket()
{
    return UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
}

bool bind_loopback(int fd, std::uint16_t port_host_order, sockaddr_in& bound)
{
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_host_order);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
        return false;
    socklen_t len = sizeof(bound);
    return ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0;
}

bool send_to(int fd, const sockaddr_in& to, const std::string& payload)
{
    return ::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                    sizeof(to)) == static_cast<ssize_t>(payload.size());
}

bool readable_within(int fd, int timeout_ms)
{
    pollfd p{fd, POLLIN, 0};
    int r;
    do
        r = ::poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r > 0 && (p.revents & POLLIN);
}

std::string recv_now(int fd)
{
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// errno is shown when set: the body clears it first and sets it where a
// kernel answer explains the failure.
int child_fail(int code, const char* what)
{
    const int err = errno;
    if (err != 0)
        std::fprintf(stderr, "[child uid %u] %s (errno %d: %s)\n", ::getuid(), what, err, std::strerror(err));
    else
        std::fprintf(stderr, "[child uid %u] %s\n", ::getuid(), what);
    return code;
}

// ---- running a body as uid 65534 -------------------------------------------------

struct ChildOutcome {
    bool exited = false;
    int status = -1;  // exit code, or the signal that killed it
    std::string describe() const
    {
        return exited ? "exit code " + std::to_string(status) : "killed by signal " + std::to_string(status);
    }
};

// Forks; the child drops to 65534:65534 with no supplementary groups, receives
// one program fd per verdict over SCM_RIGHTS, and returns body(fds) as its exit
// code. The parent loads the programs only after the fork, so the child can
// have them from nowhere but the socket.
ChildOutcome run_as_nobody(const std::vector<std::int32_t>& verdicts,
                           const std::function<int(std::vector<UniqueFd>&)>& body, std::string& parent_error)
{
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        parent_error = "socketpair failed";
        return {};
    }
    UniqueFd parent_end(sv[0]), child_end(sv[1]);

    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        parent_error = "fork failed";
        return {};
    }
    if (pid == 0) {
        parent_end.reset();
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::alarm(30);  // a hung child dies instead of hanging the test run
        int code;
        if (::setgroups(0, nullptr) != 0 || ::setgid(kNogroup) != 0 || ::setuid(kNobody) != 0)
            code = child_fail(10, "dropping privileges failed");
        else if (::setuid(0) == 0 || ::getuid() != kNobody || ::getgid() != kNogroup)
            code = child_fail(11, "privileges were not dropped");
        else {
            std::array<char, 16> buf{};
            auto got = recv_with_fds(child_end.get(), buf, verdicts.size());
            if (!got || got->fds.size() != verdicts.size())
                code = child_fail(12, "did not receive the program fds");
            else {
                errno = 0;
                code = body(got->fds);
            }
        }
        ::_exit(code);
    }

    child_end.reset();
    std::vector<UniqueFd> programs;
    for (auto verdict : verdicts) {
        int fd = load_constant_program(verdict);
        if (fd < 0) {
            parent_error = "bpf_prog_load as root failed: " + std::string(std::strerror(-fd));
            break;
        }
        programs.emplace_back(fd);
    }
    if (parent_error.empty()) {
        std::vector<int> raw;
        for (const auto& p : programs)
            raw.push_back(p.get());
        auto sent = send_all_with_fds(parent_end.get(), "programs", raw);
        if (!sent)
            parent_error = sent.error().describe();
    }
    programs.clear();    // the child holds its own references now
    parent_end.reset();  // on failure the child sees EOF and exits

    int wstatus = 0;
    pid_t w;
    do
        w = ::waitpid(pid, &wstatus, 0);
    while (w < 0 && errno == EINTR);
    ChildOutcome out;
    if (w == pid && WIFEXITED(wstatus)) {
        out.exited = true;
        out.status = WEXITSTATUS(wstatus);
    } else if (w == pid && WIFSIGNALED(wstatus)) {
        out.status = WTERMSIG(wstatus);
    }
    return out;
}

class UringAttachAsRoot : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (::geteuid() != 0)
            GTEST_SKIP() << "needs root to load BPF programs";
        if (!unprivileged_io_uring_allowed())
            GTEST_SKIP() << "kernel.io_uring_disabled forbids rings for unprivileged users";
    }
};

// ---- tests -------------------------------------------------------------------------

TEST(uring_attach, prep_fills_the_67_socket_command_layout)
{
    alignas(64) std::array<unsigned char, 64> raw{};
    raw.fill(0xAA);  // prep must not leave stale bytes behind
    auto* sqe = reinterpret_cast<io_uring_sqe*>(raw.data());
    const int storage = 7;
    prep_attach_reuseport(sqe, 5, &storage);

    auto u32_at = [&](std::size_t off) {
        std::uint32_t v;
        std::memcpy(&v, raw.data() + off, sizeof(v));
        return v;
    };
    auto u64_at = [&](std::size_t off) {
        std::uint64_t v;
        std::memcpy(&v, raw.data() + off, sizeof(v));
        return v;
    };
    EXPECT_EQ(sqe->opcode, IORING_OP_URING_CMD);
    EXPECT_EQ(sqe->fd, 5);
    EXPECT_EQ(sqe->cmd_op, uapi::kSocketUringOpSetsockopt);
    EXPECT_EQ(sqe->__pad1, 0u);
    EXPECT_EQ(u32_at(16), static_cast<std::uint32_t>(SOL_SOCKET));                 // level
    EXPECT_EQ(u32_at(20), static_cast<std::uint32_t>(SO_ATTACH_REUSEPORT_EBPF));   // optname
    EXPECT_EQ(u32_at(44), sizeof(int));                                           // optlen
    EXPECT_EQ(u64_at(48), reinterpret_cast<std::uintptr_t>(&storage));            // optval
    EXPECT_EQ(sqe->flags, 0);
    EXPECT_EQ(sqe->len, 0u);
    EXPECT_EQ(sqe->uring_cmd_flags, 0u);
    EXPECT_EQ(sqe->user_data, 0u);
    EXPECT_EQ(sqe->personality, 0);
    EXPECT_EQ(u64_at(56), 0u);

    prep_attach_socket_filter(sqe, 5, &storage);
    EXPECT_EQ(u32_at(20), static_cast<std::uint32_t>(SO_ATTACH_BPF));
}

TEST(uring_attach, ring_reports_kernel_errors_and_busy_rings)
{
    io_uring ring{};
    ASSERT_EQ(io_uring_queue_init(4, &ring, 0), 0);
    UniqueFd sock = udp_socket();
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd not_a_program(p[0]), other_end(p[1]);

    // A pipe is not a BPF program: the kernel says EINVAL (or, on a kernel
    // without socket commands, EOPNOTSUPP/EINVAL before even looking).
    auto r = attach_via_ring(ring, sock.get(), not_a_program.get(), AttachKind::SocketFilter);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::SystemError);
    EXPECT_TRUE(r.error().sys_errno == EINVAL || r.error().sys_errno == EOPNOTSUPP) << r.error().describe();
    EXPECT_EQ(io_uring_cq_ready(&ring), 0u) << "our completion was left behind";

    // Fallback re-runs the attach with setsockopt and reports its verdict.
    AttachPath path = AttachPath::Ring;
    auto fb = attach(&ring, sock.get(), not_a_program.get(), AttachKind::SocketFilter, &path);
    ASSERT_FALSE(fb);
    EXPECT_EQ(fb.error().sys_errno, EINVAL);

    // A ring with something queued is not ours to drive.
    io_uring_sqe* nop = io_uring_get_sqe(&ring);
    ASSERT_NE(nop, nullptr);
    io_uring_prep_nop(nop);
    auto busy = attach_via_ring(ring, sock.get(), not_a_program.get(), AttachKind::SocketFilter);
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code, ErrorCode::InvalidParameter);
    io_uring_queue_exit(&ring);
}

TEST_F(UringAttachAsRoot, nobody_cannot_load_but_attaches_via_ring)
{
    if (!ring_socket_commands_supported())
        GTEST_SKIP() << "kernel lacks SOCKET_URING_OP_SETSOCKOPT (6.7+)";
    const bool expect_eperm = read_sysctl("/proc/sys/kernel/unprivileged_bpf_disabled", 1) != 0;
    if (!expect_eperm)
        std::fprintf(stderr, "note: kernel.unprivileged_bpf_disabled=0, skipping the EPERM check\n");

    std::string parent_error;
    auto outcome = run_as_nobody(
        {kDrop, kKeep},
        [&](std::vector<UniqueFd>& progs) -> int {
            // The reason the broker exists: this uid cannot load a program.
            if (expect_eperm) {
                int fd = load_constant_program(kKeep);
                if (fd >= 0)
                    return child_fail(20, "bpf_prog_load succeeded as uid 65534");
                if (fd != -EPERM)
                    return child_fail(21, "bpf_prog_load failed, but not with EPERM");
            }

            UniqueFd sock = udp_socket();
            sockaddr_in self{};
            if (!sock || !bind_loopback(sock.get(), 0, self))
                return child_fail(22, "UDP socket setup failed");
            io_uring ring{};
            if (int e = io_uring_queue_init(8, &ring, 0); e != 0) {
                errno = -e;
                return child_fail(23, "io_uring_queue_init failed");
            }

            // Low level: our SQE, our completion loop, cqe->res == 0.
            const int drop_fd = progs[0].get();  // outlives the request below
            io_uring_sqe* sqe = io_uring_get_sqe(&ring);
            prep_attach_socket_filter(sqe, sock.get(), &drop_fd);
            sqe->user_data = 42;
            io_uring_cqe* cqe = nullptr;
            if (io_uring_submit(&ring) != 1 || io_uring_wait_cqe(&ring, &cqe) != 0)
                return child_fail(24, "submitting the attach failed");
            const int res = cqe->res;
            const auto user_data = cqe->user_data;
            io_uring_cqe_seen(&ring, cqe);
            if (user_data != 42 || res != 0) {
                errno = -res;
                return child_fail(25, "ring attach of the drop filter: cqe->res != 0");
            }

            // Effect: a datagram to ourselves is dropped by the filter.
            if (!send_to(sock.get(), self, "dropped"))
                return child_fail(26, "sendto failed");
            if (readable_within(sock.get(), 200))
                return child_fail(27, "datagram arrived despite the drop filter");

            // Convenience path: replace it with the keep-everything filter.
            auto r = attach_via_ring(ring, sock.get(), progs[1].get(), AttachKind::SocketFilter);
            if (!r) {
                errno = r.error().sys_errno;
                return child_fail(28, "attach_via_ring of the keep filter failed");
            }
            if (!send_to(sock.get(), self, "kept") || !readable_within(sock.get(), 2000))
                return child_fail(29, "datagram did not arrive through the keep filter");
            if (recv_now(sock.get()) != "kept")  // and the first one really was dropped
                return child_fail(30, "unexpected datagram");

            io_uring_queue_exit(&ring);
            return 0;
        },
        parent_error);
    ASSERT_EQ(parent_error, "");
    ASSERT_TRUE(outcome.exited) << outcome.describe();
    EXPECT_EQ(outcome.status, 0) << outcome.describe() << " (see the child's message above)";
}

TEST_F(UringAttachAsRoot, nobody_steers_reuseport_group_via_ring)
{
    if (!ring_socket_commands_supported())
        GTEST_SKIP() << "kernel lacks SOCKET_URING_OP_SETSOCKOPT (6.7+)";

    std::string parent_error;
    auto outcome = run_as_nobody(
        {1},  // always pick socket index 1 of the group
        [&](std::vector<UniqueFd>& progs) -> int {
            const int one = 1;
            UniqueFd first = udp_socket(), second = udp_socket();
            sockaddr_in group{}, again{};
            if (!first || !second ||
                ::setsockopt(first.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
                ::setsockopt(second.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
                !bind_loopback(first.get(), 0, group) ||
                !bind_loopback(second.get(), ntohs(group.sin_port), again))
                return child_fail(40, "reuseport group setup failed");

            io_uring ring{};
            if (int e = io_uring_queue_init(4, &ring, 0); e != 0) {
                errno = -e;
                return child_fail(41, "io_uring_queue_init failed");
            }
            AttachPath path = AttachPath::Setsockopt;
            auto r = attach(&ring, first.get(), progs[0].get(), AttachKind::Reuseport, &path);
            io_uring_queue_exit(&ring);
            if (!r) {
                errno = r.error().sys_errno;
                return child_fail(42, "reuseport attach failed");
            }
            if (path != AttachPath::Ring)
                return child_fail(43, "attach fell back although the ring supports it");

            // Many source ports: without the program the hash would spread them.
            constexpr int kDatagrams = 16;
            for (int i = 0; i < kDatagrams; ++i) {
                UniqueFd sender = udp_socket();
                if (!sender || !send_to(sender.get(), group, "d"))
                    return child_fail(44, "sendto failed");
            }
            int to_second = 0;
            while (to_second < kDatagrams && readable_within(second.get(), 2000))
                if (!recv_now(second.get()).empty())
                    ++to_second;
            if (to_second != kDatagrams || readable_within(first.get(), 100))
                return child_fail(45, "datagrams were not all steered to socket index 1");
            return 0;
        },
        parent_error);
    ASSERT_EQ(parent_error, "");
    ASSERT_TRUE(outcome.exited) << outcome.describe();
    EXPECT_EQ(outcome.status, 0) << outcome.describe() << " (see the child's message above)";
}

TEST_F(UringAttachAsRoot, nobody_attaches_via_setsockopt_fallback)
{
    std::string parent_error;
    auto outcome = run_as_nobody(
        {kDrop, kKeep},
        [&](std::vector<UniqueFd>& progs) -> int {
            UniqueFd sock = udp_socket();
            sockaddr_in self{};
            if (!sock || !bind_loopback(sock.get(), 0, self))
                return child_fail(50, "UDP socket setup failed");

            // Direct setsockopt path.
            auto r = attach_via_setsockopt(sock.get(), progs[0].get(), AttachKind::SocketFilter);
            if (!r) {
                errno = r.error().sys_errno;
                return child_fail(51, "attach_via_setsockopt failed");
            }
            if (!send_to(sock.get(), self, "dropped") || readable_within(sock.get(), 200))
                return child_fail(52, "drop filter attached by setsockopt had no effect");

            // attach() on a ring that cannot run socket commands: an IOPOLL
            // ring answers -EOPNOTSUPP, as a pre-6.7 kernel would.
            io_uring ring{};
            if (int e = io_uring_queue_init(4, &ring, IORING_SETUP_IOPOLL); e != 0) {
                errno = -e;
                return child_fail(53, "io_uring_queue_init(IOPOLL) failed");
            }
            AttachPath path = AttachPath::Ring;
            r = attach(&ring, sock.get(), progs[1].get(), AttachKind::SocketFilter, &path);
            io_uring_queue_exit(&ring);
            if (!r) {
                errno = r.error().sys_errno;
                return child_fail(54, "attach with fallback failed");
            }
            if (path != AttachPath::Setsockopt)
                return child_fail(55, "expected the setsockopt fallback to be used");
            if (!send_to(sock.get(), self, "kept") || !readable_within(sock.get(), 2000) ||
                recv_now(sock.get()) != "kept")
                return child_fail(56, "keep filter attached by fallback had no effect");

            // No ring at all.
            path = AttachPath::Ring;
            r = attach(nullptr, sock.get(), progs[0].get(), AttachKind::SocketFilter, &path);
            if (!r || path != AttachPath::Setsockopt)
                return child_fail(57, "attach(nullptr) did not use setsockopt");
            return 0;
        },
        parent_error);
    ASSERT_EQ(parent_error, "");
    ASSERT_TRUE(outcome.exited) << outcome.describe();
    EXPECT_EQ(outcome.status, 0) << outcome.describe() << " (see the child's message above)";
}

}  // namespace
}  // namespace bpfbroker
