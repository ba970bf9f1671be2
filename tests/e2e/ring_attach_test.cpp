// io_uring_ops programs end to end (issue 11, Linux 7.1 io_uring_bpf_ops):
// uid 65534 names its own ring by fd number; the daemon copies it with
// pidfd_getfd, checks it, registers ring_nops on it and hands back one link.
// N NOPs then complete inside ONE io_uring_enter of the caller, who could not
// load the program itself; every unusable ring is a named error and leaves
// nothing registered; BPF_LINK_DETACH, a revoke and the caller's exit release the
// program; the per-uid limit counts it; the program runs only in the
// caller's own process; an audit log that refuses the record leaves nothing
// on the ring. On a kernel without io_uring_bpf_ops every test says it is
// skipped and why.
#include "support/client_ring.h"
#include "support/approved_for_nobody.h"
#include "support/loop_ring.h"

#include "ring_nops/ring_nops.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace bpfbroker::e2e {
namespace {

using test_support::kLoopRingFlags;
using test_support::LoopRing;

constexpr const char* kProgram = "ring_nops";

class RingAttachTest : public ApprovedForNobodyFixture {
protected:
    std::vector<std::string> programs_for_nobody() const override { return {kProgram}; }
    bool needs_io_uring_bpf_ops() const override { return true; }
    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"max_instances_per_uid":2,"max_requests_per_second":1000}})";
    }
};

Client connect_as_child(const std::string& socket)
{
    auto client = Client::connect_socket(socket, 30s);
    require(bool(client), "connect: " + (client ? "" : client.error().describe()));
    return std::move(*client);
}

Program attach(Client& client, const LoopRing& ring, std::uint64_t total = 100, std::uint64_t in_flight = 4)
{
    auto p = client.attach_ring(kProgram, ring.fd(), ring.params(),
                                AcquireOptions{{{"total", total}, {"in_flight", in_flight}}});
    require(bool(p), "attach_ring: " + (p ? "" : p.error().describe()));
    return std::move(*p);
}

ring_nops_stats stats_of(const Program& p)
{
    const UniqueFd* map = p.map("stats");
    require(map != nullptr, "the reply holds no \"stats\" map");
    __u32 key = 0;
    ring_nops_stats s{};
    require(bpf_map_lookup_elem(map->get(), &key, &s) == 0, "lookup stats: " + errno_text(errno));
    return s;
}

// The errno of loading ring_nops's object directly, as the calling user.
int own_load_errno(const std::string& object)
{
    bpf_object* obj = bpf_object__open_file(object.c_str(), nullptr);
    if (obj == nullptr)
        return errno;
    const int err = bpf_object__load(obj);
    bpf_object__close(obj);
    return -err;
}

// The fdinfo value `key` of `fd` ("" when absent).
std::string fdinfo_value(int fd, const std::string& key)
{
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    for (std::string line; std::getline(in, line);)
        if (line.starts_with(key + ":")) {
            auto value = line.substr(key.size() + 1);
            value.erase(0, value.find_first_not_of(" \t"));
            return value;
        }
    return "";
}

// Whether the kernel frees program `id` within 10 s: it frees a struct_ops
// program after an RCU grace period.
bool freed_soon(std::uint32_t id)
{
    for (int i = 0; i < 500; ++i) {
        UniqueFd probe(bpf_prog_get_fd_by_id(id));
        if (!probe && errno == ENOENT)
            return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

void require_refused(const Result<Program>& p, const std::string& needle, const std::string& what)
{
    require(!p, what + " was accepted");
    require(p.error().code == ErrorCode::InvalidParameter, what + ": expected InvalidParameter, got " + p.error().describe());
    require(p.error().message.find(needle) != std::string::npos,
            what + ": the error does not say \"" + needle + "\": " + p.error().message);
}

TEST_F(RingAttachTest, RingNopsCompletesExactlyNNopsInsideOneEnterAndTheCallerCannotLoadIt)
{
    const std::string socket = socket_path();
    const std::string object = build_dir() + "/programs/ring_nops/ring_nops.bpf.o";
    auto r = run_as_nobody([&] {
        const int own = own_load_errno(object);
        require(own == EPERM, "uid 65534 loading ring_nops itself: expected EPERM, got " + errno_text(own));
        auto client = connect_as_child(socket);
        LoopRing ring(16);
        auto p = attach(client, ring, 100, 4);
        require(!p.fd().valid(), "the reply carried a program fd");
        require(p.links().size() == 1, "expected one link");
        const int link = p.links().begin()->second.get();
        require(fd_link(link) == "anon_inode:bpf_link", "the link is " + fd_link(link));
        require(p.info().type == "io_uring_ops", "info.type is " + p.info().type);
        const int entered = ring.enter();
        require(entered == 0, "io_uring_enter returned " + std::to_string(entered));
        const auto s = stats_of(p);
        require(s.completions == 100 && s.submitted == 100 && s.submit_errors == 0,
                "after one io_uring_enter: " + std::to_string(s.completions) + " completions, " +
                    std::to_string(s.submitted) + " submitted, " + std::to_string(s.submit_errors) + " errors");
        // 4 in flight: 25 steps submit, one more reaps the last and stops.
        require(s.steps >= 25 && s.steps <= 27, "loop steps: " + std::to_string(s.steps));
        return "completions=" + std::to_string(s.completions) + " steps=" + std::to_string(s.steps);
    });
    ASSERT_TRUE(r.ok()) << r.describe();
    std::cout << "ring_nops in one io_uring_enter as uid 65534: " << r.report << "\n";
}

TEST_F(RingAttachTest, EveryUnusableRingIsANamedErrorAndNothingIsRegistered)
{
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        auto client = connect_as_child(socket);
        LoopRing good(16);

        LoopRing plain(16, 0);
        require_refused(client.attach_ring(kProgram, plain.fd(), plain.params()), "DEFER_TASKRUN",
                        "a ring without DEFER_TASKRUN");
        LoopRing polled(16, uapi::kIoringSetupSqpoll);
        require_refused(client.attach_ring(kProgram, polled.fd(), polled.params()), "SQPOLL", "an SQPOLL ring");
        // An SQPOLL ring whose request hides the flag: the kernel's view decides.
        io_uring_params lying = polled.params();
        lying.flags = kLoopRingFlags;
        auto hidden = client.attach_ring(kProgram, polled.fd(), lying);
        require(!hidden && hidden.error().code == ErrorCode::InvalidParameter,
                "an SQPOLL ring stated as DEFER_TASKRUN was accepted");
        UniqueFd not_a_ring(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        require_refused(client.attach_ring(kProgram, not_a_ring.get(), good.params()), "not an io_uring instance",
                        "a socket fd");
        require_refused(client.attach_ring(kProgram, 1000, good.params()), "no such open fd", "a closed fd number");
        io_uring_params moved = good.params();
        moved.cq_off.tail += 4;
        require_refused(client.attach_ring(kProgram, good.fd(), moved), "disagree", "a ring with wrong offsets");
        io_uring_params bigger = good.params();
        bigger.cq_entries *= 2;
        require_refused(client.attach_ring(kProgram, good.fd(), bigger), "the kernel says", "wrong entries");
        // Two fds in one request: the method takes exactly one fd number.
        auto raw = RawConnection::connect(socket);
        nlohmann::json ring = {{"flags", kLoopRingFlags}, {"sq_entries", 16}, {"cq_entries", 32},
                               {"cq_head_off", 0}, {"cq_tail_off", 0}, {"cqes_off", 0}};
        auto two = raw.call("org.bpfbroker.Broker.AttachRing",
                            {{"name", kProgram}, {"ring_fd", {good.fd(), plain.fd()}}, {"ring", ring}});
        require(two && error_name(*two) == "org.varlink.service.InvalidParameter" && two->fds.empty(),
                "two ring fds: " + (two ? two->frame : std::string("no reply")));
        // Nothing was registered: the ring runs no program (an enter returns
        // at once) and takes one now.
        require(good.enter() == 0, "io_uring_enter on the untouched ring failed");
        auto p = attach(client, good, 8, 2);
        require(good.enter() == 0 && stats_of(p).completions == 8, "the ring did not take ring_nops after the refusals");
        return std::string("refused");
    });
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "refused");
}

TEST_F(RingAttachTest, TheProgramRunsOnlyInTheCallersOwnProcess)
{
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        // The ring is this process's (its submitter); a child that inherited
        // the fd attaches ring_nops to it, bound to the child's tgid.
        LoopRing ring(16);
        int attached[2], entered[2];
        require(::pipe2(attached, O_CLOEXEC) == 0 && ::pipe2(entered, O_CLOEXEC) == 0, "pipe2");
        const pid_t child = ::fork();
        require(child >= 0, "fork");
        if (child == 0) {
            int verdict = 1;
            try {
                auto client = connect_as_child(socket);
                auto p = attach(client, ring, 100, 4);
                char c = 'a';
                (void)!::write(attached[1], &c, 1);
                (void)!::read(entered[0], &c, 1);
                const auto s = stats_of(p);
                verdict = s.steps == 1 && s.completions == 0 && s.submitted == 0 ? 0 : 2;
            } catch (...) {
            }
            ::_exit(verdict);
        }
        char c = 0;
        require(::read(attached[0], &c, 1) == 1, "the child did not attach");
        // The loop runs in this process's io_uring_enter: the program sees
        // another tgid than the one it was bound to and stops at once.
        const int rc = ring.enter();
        (void)!::write(entered[1], &c, 1);
        int status = 0;
        require(::waitpid(child, &status, 0) == child, "waitpid");
        for (int fd : {attached[0], attached[1], entered[0], entered[1]})
            ::close(fd);
        require(rc == 0, "io_uring_enter returned " + std::to_string(rc));
        require(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "the program ran in a process other than its caller (child status " + std::to_string(status) + ")");
        return std::string("stopped");
    });
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "stopped");
}

TEST_F(RingAttachTest, BpfLinkDetachStopsTheProgram)
{
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        auto client = connect_as_child(socket);
        LoopRing ring(16);
        auto p = attach(client, ring, 1000000, 1);
        union bpf_attr attr;
        std::memset(&attr, 0, sizeof(attr));
        attr.link_detach.link_fd = static_cast<__u32>(p.links().begin()->second.get());
        require(::syscall(SYS_bpf, BPF_LINK_DETACH, &attr, sizeof(attr)) == 0,
                "BPF_LINK_DETACH of the ring's link: " + errno_text(errno));
        require(ring.enter() == 0, "io_uring_enter after the detach failed");
        const auto s = stats_of(p);
        require(s.steps == 0 && s.completions == 0,
                "the program ran after BPF_LINK_DETACH: " + std::to_string(s.steps) + " steps");
        return std::string("detached");
    });
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "detached");
}

// A revocation reaches the ring at once: the daemon detaches its duplicate
// of the link (BPF_LINK_DETACH), so the caller's next io_uring_enter runs
// no program although the caller still holds its link fd; the cut is
// counted and audited.
TEST_F(RingAttachTest, RevokeDetachesTheProgramFromTheCallersRing)
{
    const std::string socket = socket_path();
    auto caller = spawn_as(kNobodyUid, kNobodyGid, [&](ChildChannel& channel) {
        auto client = connect_as_child(socket);
        LoopRing ring(16);
        auto p = attach(client, ring, 1000000, 1);
        channel.tell_parent("attached");
        channel.wait_parent();
        require(ring.enter() == 0, "io_uring_enter after the revocation failed");
        const auto s = stats_of(p);
        require(s.steps == 0 && s.completions == 0,
                "the program ran after the revocation: " + std::to_string(s.steps) + " steps");
        return std::string("cut");
    });
    ASSERT_TRUE(caller.wait_message()) << "the caller did not attach: " << caller.wait().describe();
    auto admin = connect_client();
    ASSERT_TRUE(admin) << admin.error().describe();
    auto revoked = admin->revoke(kProgram);
    ASSERT_TRUE(revoked) << revoked.error().describe();
    EXPECT_EQ(revoked->cut_instances.value_or(0), 1u);
    EXPECT_EQ(revoked->uncut_instances.value_or(99), 0u);
    caller.tell_child("go");
    auto r = caller.wait();
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "cut");
    bool audited = false;
    for (auto& rec : audit_records())
        audited = audited || (rec["action"] == "cut" && rec["program"] == kProgram &&
                              rec["uid"] == std::to_string(kNobodyUid));
    EXPECT_TRUE(audited) << "no cut audit record for " << kProgram;
}

TEST_F(RingAttachTest, TheCallersExitReleasesTheProgram)
{
    const std::string socket = socket_path();
    // The caller attaches, reports the program id, and exits when told,
    // leaving nothing open; the daemon's duplicate of the link must go too.
    auto caller = spawn_as(kNobodyUid, kNobodyGid, [&](ChildChannel& channel) {
        auto client = connect_as_child(socket);
        LoopRing ring(16);
        auto p = attach(client, ring, 8, 2);
        // A struct_ops link's fdinfo names its map, not the program: the reply does.
        require(fdinfo_value(p.links().begin()->second.get(), "link_type") == "struct_ops", "not a struct_ops link");
        channel.tell_parent(std::to_string(p.info().id));
        channel.wait_parent();
        return std::string("exiting");
    });
    auto line = caller.wait_message();
    ASSERT_TRUE(line) << "the caller reported nothing";
    const std::uint32_t prog_id = static_cast<std::uint32_t>(std::stoul(*line));
    ASSERT_GT(prog_id, 0u);
    UniqueFd alive(bpf_prog_get_fd_by_id(prog_id));
    ASSERT_TRUE(alive.valid()) << "the program is gone while its caller lives";
    alive.reset();
    caller.tell_child("exit");
    EXPECT_TRUE(caller.wait().ok());
    EXPECT_TRUE(freed_soon(prog_id)) << "program " << prog_id << " lives on after its caller exited";
}

TEST_F(RingAttachTest, ThePerUidLimitCountsRingInstances)
{
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        auto client = connect_as_child(socket);
        LoopRing a(8), b(8), c(8);
        auto first = attach(client, a, 4, 1);
        auto second = attach(client, b, 4, 1);
        auto third = client.attach_ring(kProgram, c.fd(), c.params());
        require(!third, "a third ring instance was handed out past the limit of 2");
        require(third.error().code == ErrorCode::LimitExceeded, "expected LimitExceeded: " + third.error().describe());
        return std::string("limited");
    });
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "limited");
}

// With an audit log that takes no record (/dev/full), attaching to a ring
// is refused like every hand-out (audit_failure_test.cpp). The instance was
// loaded and registered on the caller's ring before its record was refused:
// it comes off the ring again, keeps no slot and is freed.
class RingAttachAuditFailureTest : public RingAttachTest {
protected:
    std::optional<std::string> audit_log_target() const override { return "/dev/full"; }
};

TEST_F(RingAttachAuditFailureTest, ARefusedRecordLeavesNothingOnTheRing)
{
    const std::string socket = socket_path();
    const std::size_t fds_before = settled_daemon_fd_count();
    auto r = run_as_nobody([&] {
        auto client = connect_as_child(socket);
        LoopRing ring(16);
        std::string ids;
        // One more than the per-uid limit of 2: a refused attach holds no slot.
        for (int i = 0; i < 3; ++i) {
            auto p = client.attach_ring(kProgram, ring.fd(), ring.params(), AcquireOptions{{{"total", 8}, {"in_flight", 2}}});
            require(!p, "attach_ring was handed out with an audit log that takes no record");
            require(p.error().code == ErrorCode::SystemError &&
                        p.error().message.find("audit log (No space left on device)") != std::string::npos,
                    "attach " + std::to_string(i) + ": " + p.error().describe());
            const std::string marker = "program id ";
            const auto at = p.error().message.find(marker);
            require(at != std::string::npos, "the refusal names no program id: " + p.error().message);
            ids += " " + std::to_string(std::stoul(p.error().message.substr(at + marker.size())));
        }
        // A program left on the ring would run in this enter and post CQEs.
        const std::string tail = fdinfo_value(ring.fd(), "CqTail");
        require(!tail.empty(), "the ring's fdinfo has no CqTail");
        require(ring.enter() == 0, "io_uring_enter on the refused ring failed");
        require(fdinfo_value(ring.fd(), "CqTail") == tail,
                "a program ran on the ring after the refusals: CqTail " + tail + " -> " + fdinfo_value(ring.fd(), "CqTail"));
        return "refused" + ids;
    });
    ASSERT_TRUE(r.ok()) << r.describe();
    std::istringstream report(r.report);
    std::string word;
    report >> word;
    ASSERT_EQ(word, "refused") << r.report;
    int checked = 0;
    for (std::uint32_t id = 0; report >> id; ++checked)
        EXPECT_TRUE(freed_soon(id)) << "refused program " << id << " lives on";
    EXPECT_EQ(checked, 3) << r.report;
    // Nothing made for the refused calls is held for them: no link, ring copy or caller watch.
    EXPECT_EQ(settled_daemon_fd_count(), fds_before);
}

}  // namespace
}  // namespace bpfbroker::e2e
