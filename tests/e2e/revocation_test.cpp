// Revocation reaches live instances (issue 10), on the real kernel with a
// root daemon and uid-65534 clients: after `revoke`, a socket filter that
// is attached counts nothing more, nor does the same program attached to a
// new socket with the fd the holder kept; a shared filter stops filtering;
// a broker-attached uring_stats stops counting. Masking the signer's key and
// removing one uid's grant cut too, the latter that uid's instances alone.
// A program without a guard is reported and audited as not cut.
#include "support/daemon_fixture.h"
#include "udp_stats_holder.h"

#include "uring_stats/uring_stats.h"

#include <bpfbroker/uring_attach.h>

#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace bpfbroker::e2e {
namespace {

constexpr uid_t kOtherUid = 65533;  // a second unprivileged caller (no name needed: granted by id)

using test_support::LoopbackSocket;

Program acquire_or_fail(const std::string& socket, const std::string& name)
{
    auto client = Client::connect_socket(socket, 10s);
    require(bool(client), "connect: " + (client ? "" : client.error().describe()));
    auto p = client->acquire(name);
    require(bool(p), "acquire " + name + ": " + (p ? "" : p.error().describe()));
    return std::move(*p);
}

// Runs `n` NOPs on `ring`, one at a time; returns the NOP submissions
// uring_stats counted for this caller so far.
std::uint64_t nops_counted_after(Ring& ring, const Program& p, unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring.get());
        require(sqe != nullptr, "no sqe");
        io_uring_prep_nop(sqe);
        require(io_uring_submit_and_wait(&ring.get(), 1) == 1, "submit");
        io_uring_cqe* cqe = nullptr;
        require(io_uring_wait_cqe(&ring.get(), &cqe) == 0, "wait cqe");
        io_uring_cqe_seen(&ring.get(), cqe);
    }
    __u32 key = IORING_OP_NOP;
    uring_op_counts c{};
    require(p.map("ops") != nullptr && bpf_map_lookup_elem(p.map("ops")->get(), &key, &c) == 0, "lookup ops");
    return c.submitted;
}

// A holder of udp_stats: counts datagrams on an attached socket, tells the
// test, then after "go" sends again on it and on a new socket it attaches
// the kept program fd to. Reports "before=N after_old=N after_new=N delivered=N".
ChildProcess spawn_udp_stats_holder(uid_t uid, const std::string& socket, const std::string& program = "udp_stats")
{
    return spawn_as(uid, uid, [socket, program](ChildChannel& channel) {
        auto p = acquire_or_fail(socket, program);
        LoopbackSocket old_socket;
        attach_through_ring(old_socket, p.fd());
        require(old_socket.send_and_receive(3) == 3, "a counting filter dropped datagrams");
        const auto before = packets_counted(p);
        channel.tell_parent("counting " + std::to_string(before));
        channel.wait_parent();
        unsigned delivered = old_socket.send_and_receive(3);
        const auto after_old = packets_counted(p);
        LoopbackSocket new_socket;
        attach_through_ring(new_socket, p.fd());  // the held fd still attaches: the kernel allows it
        delivered += new_socket.send_and_receive(3);
        const auto after_new = packets_counted(p);
        return "before=" + std::to_string(before) + " after_old=" + std::to_string(after_old) +
               " after_new=" + std::to_string(after_new) + " delivered=" + std::to_string(delivered);
    });
}

class RevocationTest : public DaemonFixture {
protected:
    RevokeResult revoke_as_root(const std::string& program)
    {
        auto admin = connect_client();
        if (!admin) {
            ADD_FAILURE() << admin.error().describe();
            return {};
        }
        auto r = admin->revoke(program);
        if (!r) {
            ADD_FAILURE() << r.error().describe();
            return {};
        }
        return *r;
    }
    // Waits for the holder's first message, revokes `program` as root, lets
    // the holder go on; returns its report ("" when it failed, which fails
    // the test) and the revocation's counts in `revoked`.
    std::string revoke_between(ChildProcess& holder, const std::string& program, RevokeResult& revoked)
    {
        if (!holder.wait_message()) {
            ADD_FAILURE() << "the holder did not get going: " << holder.wait().describe();
            return {};
        }
        revoked = revoke_as_root(program);
        holder.tell_child("go");
        auto r = holder.wait();
        if (!r.ok()) {
            ADD_FAILURE() << r.describe();
            return {};
        }
        return r.report;
    }
    void reload_as_root()
    {
        auto admin = connect_client();
        ASSERT_TRUE(admin) << admin.error().describe();
        auto r = admin->reload();
        ASSERT_TRUE(r) << r.error().describe();
    }
    // The "cut" audit records of `program` for `uid`.
    std::vector<AuditFields> cut_records(const std::string& program, uid_t uid) const
    {
        std::vector<AuditFields> out;
        for (auto& r : audit_records())
            if (r["action"] == "cut" && r["program"] == program && r["uid"] == std::to_string(uid))
                out.push_back(r);
        return out;
    }
    // Writes `text` to `path` (0644, root's), making its directory.
    static void write_file(const std::string& path, const std::string& text)
    {
        std::filesystem::create_directories(std::filesystem::path(path).parent_path());
        std::ofstream(path) << text;
        ::chmod(path.c_str(), 0644);
    }
    std::string manifest_sha256(const std::string& name) const
    {
        auto r = run_command({"sha256sum", program_dir(name) + "/manifest.json"});
        return r.ok() ? r.out.substr(0, 64) : std::string();
    }
    // "unguarded_stats": udp_stats under a manifest that declares no revocation guard.
    void install_unguarded_copy()
    {
        install_signed_variant("udp_stats", "unguarded_stats", [](nlohmann::json& m) { m.erase("revocation"); });
    }
};

// A cut udp_stats holder's report: nothing counted after the cut, every
// datagram still delivered (the pass-through verdict).
constexpr const char* kCutReport = "before=3 after_old=3 after_new=3 delivered=6";

void expect_cut_holder(ChildProcess& holder)
{
    auto r = holder.wait();
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, kCutReport) << "the revoked program went on counting (on the attached socket or a new one)";
}

TEST_F(RevocationTest, ASocketFilterAndItsHeldFdCountNothingAfterRevoke)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    auto holder = spawn_udp_stats_holder(kNobodyUid, socket_path());
    RevokeResult revoked;
    EXPECT_EQ(revoke_between(holder, "udp_stats", revoked), kCutReport)
        << "the revoked program went on counting (on the attached socket or a new one)";
    EXPECT_EQ(revoked.cut_instances, std::optional<unsigned>(1));
    EXPECT_EQ(revoked.uncut_instances, std::optional<unsigned>(0));

    auto records = cut_records("udp_stats", kNobodyUid);
    ASSERT_EQ(records.size(), 1u) << "one audit record per instance cut";
    EXPECT_EQ(records[0]["decision"], "allow");
    EXPECT_NE(records[0]["prog_id"], "");
    EXPECT_NE(records[0]["reason"].find("cut live"), std::string::npos) << records[0]["reason"];
}

TEST_F(RevocationTest, ASharedFilterStopsFilteringAfterRevoke)
{
    ASSERT_TRUE(approve("drop_small", for_users({"nobody"})));
    const std::string socket = socket_path();
    auto holder = spawn_as(kNobodyUid, kNobodyGid, [socket](ChildChannel& channel) {
        auto p = acquire_or_fail(socket, "drop_small");
        LoopbackSocket s;
        attach_through_ring(s, p.fd());
        const unsigned before = s.send_and_receive(2, 1);  // shorter than drop_small's minimum of 8
        channel.tell_parent("filtering");
        channel.wait_parent();
        const unsigned after = s.send_and_receive(2, 1);
        return "before=" + std::to_string(before) + " after=" + std::to_string(after);
    });
    RevokeResult revoked;
    EXPECT_EQ(revoke_between(holder, "drop_small", revoked), "before=0 after=2")
        << "the shared filter went on dropping after revoke";
    EXPECT_EQ(revoked.cut_instances, std::optional<unsigned>(1));
}

TEST_F(RevocationTest, ABrokerAttachedInstanceStopsCountingAfterRevoke)
{
    ASSERT_TRUE(approve("uring_stats", for_users({"nobody"})));
    const std::string socket = socket_path();
    auto holder = spawn_as(kNobodyUid, kNobodyGid, [socket](ChildChannel& channel) {
        auto p = acquire_or_fail(socket, "uring_stats");
        Ring ring(8);
        const auto before = nops_counted_after(ring, p, 10);
        channel.tell_parent("counting");
        channel.wait_parent();
        return "before=" + std::to_string(before) + " after=" + std::to_string(nops_counted_after(ring, p, 10));
    });
    RevokeResult revoked;
    EXPECT_EQ(revoke_between(holder, "uring_stats", revoked), "before=10 after=10")
        << "the broker-attached instance went on counting after revoke";
    EXPECT_EQ(revoked.cut_instances, std::optional<unsigned>(1));
}

TEST_F(RevocationTest, MaskingTheSignersKeyCutsLiveInstances)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    auto holder = spawn_udp_stats_holder(kNobodyUid, socket_path());
    ASSERT_EQ(holder.wait_message(), std::optional<std::string>("counting 3")) << holder.wait().describe();

    const std::string mask = root() + "/etc/bpfbroker/keys.d/bpfbroker-dev.pem";
    ASSERT_EQ(::symlink("/dev/null", mask.c_str()), 0) << errno_text(errno);
    reload_as_root();
    holder.tell_child("go");
    expect_cut_holder(holder);
    auto records = cut_records("udp_stats", kNobodyUid);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0]["decision"], "allow");
    EXPECT_EQ(records[0]["transport"], "socket");
}

TEST_F(RevocationTest, RemovingOneUidsGrantCutsOnlyThatUidsInstances)
{
    const std::string hash = manifest_sha256("udp_stats");
    ASSERT_EQ(hash.size(), 64u);
    const std::string allowlist = root() + "/etc/bpfbroker/allowlist.d/test.json";
    auto grant_to = [&](const std::string& uids) {
        return R"({"program":"udp_stats","match":{"manifest_sha256":")" + hash + R"("},"principals":{"users":[)" + uids +
               "]}}";
    };
    write_file(allowlist, grant_to("65534, 65533"));
    reload_as_root();
    auto losing = spawn_udp_stats_holder(kNobodyUid, socket_path());
    auto keeping = spawn_udp_stats_holder(kOtherUid, socket_path());
    ASSERT_EQ(losing.wait_message(), std::optional<std::string>("counting 3")) << losing.wait().describe();
    ASSERT_EQ(keeping.wait_message(), std::optional<std::string>("counting 3")) << keeping.wait().describe();

    write_file(allowlist, grant_to("65533"));
    reload_as_root();
    losing.tell_child("go");
    keeping.tell_child("go");
    expect_cut_holder(losing);
    auto kept = keeping.wait();
    ASSERT_TRUE(kept.ok()) << kept.describe();
    EXPECT_EQ(kept.report, "before=3 after_old=6 after_new=9 delivered=6") << "a uid still granted lost its instance";
    EXPECT_EQ(cut_records("udp_stats", kNobodyUid).size(), 1u);
    EXPECT_TRUE(cut_records("udp_stats", kOtherUid).empty());
}

TEST_F(RevocationTest, AProgramWithoutAGuardIsReportedAndAuditedAsNotCut)
{
    ASSERT_NO_FATAL_FAILURE(install_unguarded_copy());
    ASSERT_TRUE(approve("unguarded_stats", for_users({"nobody"})));
    {
        auto admin = connect_client();
        ASSERT_TRUE(admin);
        auto list = admin->list_programs();
        ASSERT_TRUE(list);
        for (const auto& e : *list) {
            if (e.name == "unguarded_stats" || e.name == "udp_stats") {
                EXPECT_EQ(e.cut_live, e.name == "udp_stats") << e.name;
            }
        }
    }
    auto holder = spawn_udp_stats_holder(kNobodyUid, socket_path(), "unguarded_stats");
    RevokeResult revoked;
    EXPECT_EQ(revoke_between(holder, "unguarded_stats", revoked), "before=3 after_old=6 after_new=9 delivered=6")
        << "nothing could cut it, and nothing did";
    EXPECT_EQ(revoked.cut_instances, std::optional<unsigned>(0));
    EXPECT_EQ(revoked.uncut_instances, std::optional<unsigned>(1));
    auto records = cut_records("unguarded_stats", kNobodyUid);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0]["decision"], "deny");
    EXPECT_NE(records[0]["reason"].find("not cut (the manifest declares no revocation guard)"), std::string::npos)
        << records[0]["reason"];

    auto ctl = run_command({ctl_binary(), "--root", root(), "metrics"});
    ASSERT_TRUE(ctl.ok()) << ctl.describe();
    EXPECT_NE(ctl.out.find("bpfbroker_uncut_instances_total 1\n"), std::string::npos) << ctl.out;
    EXPECT_NE(ctl.out.find("bpfbroker_revoked_instances_total 0\n"), std::string::npos) << ctl.out;
}

}  // namespace
}  // namespace bpfbroker::e2e

namespace bpfbroker::e2e {
namespace {

// The same with the daemon killed (SIGKILL) and started again between the
// acquire and the revocation, both ways a daemon finds its instances again:
// as a plain child, from its state journal and by id; and under a stand-in
// service manager, from the journal and the fd store it handed back.
enum class RestartPath { Journal, FdStore };

class RevocationAcrossRestartTest : public RevocationTest, public ::testing::WithParamInterface<RestartPath> {
protected:
    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"max_instances_per_uid":2,"max_requests_per_second":1000}})";
    }
    bool under_service_manager() const override { return GetParam() == RestartPath::FdStore; }
};

INSTANTIATE_TEST_SUITE_P(Restart, RevocationAcrossRestartTest,
                         ::testing::Values(RestartPath::Journal, RestartPath::FdStore),
                         [](const auto& param_info) { return param_info.param == RestartPath::Journal ? "Journal" : "FdStore"; });

TEST_P(RevocationAcrossRestartTest, ASocketFilterIsCutByARevokeAfterKillNineAndRestart)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    auto holder = spawn_udp_stats_holder(kNobodyUid, socket_path());
    ASSERT_EQ(holder.wait_message(), std::optional<std::string>("counting 3")) << holder.wait().describe();
    ASSERT_EQ(kill_and_restart_daemon(), "");

    auto revoked = revoke_as_root("udp_stats");
    EXPECT_EQ(revoked.cut_instances, std::optional<unsigned>(1)) << "the restarted daemon lost the instance";
    holder.tell_child("go");
    expect_cut_holder(holder);
}

TEST_P(RevocationAcrossRestartTest, ABrokerAttachedInstanceIsCutByARevokeAfterKillNineAndRestart)
{
    ASSERT_TRUE(approve("uring_stats", for_users({"nobody"})));
    const std::string socket = socket_path();
    auto holder = spawn_as(kNobodyUid, kNobodyGid, [socket](ChildChannel& channel) {
        auto p = acquire_or_fail(socket, "uring_stats");
        Ring ring(8);
        const auto before = nops_counted_after(ring, p, 10);
        channel.tell_parent("counting");
        channel.wait_parent();  // restarted: still counting, the caller lives
        const auto restarted = nops_counted_after(ring, p, 10);
        channel.tell_parent("still counting");
        channel.wait_parent();  // revoked
        return "before=" + std::to_string(before) + " restarted=" + std::to_string(restarted) +
               " after=" + std::to_string(nops_counted_after(ring, p, 10));
    });
    ASSERT_TRUE(holder.wait_message()) << holder.wait().describe();
    ASSERT_EQ(kill_and_restart_daemon(), "");
    holder.tell_child("restarted");
    ASSERT_TRUE(holder.wait_message()) << holder.wait().describe();
    auto revoked = revoke_as_root("uring_stats");
    EXPECT_EQ(revoked.cut_instances, std::optional<unsigned>(1));
    holder.tell_child("revoked");
    auto r = holder.wait();
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "before=10 restarted=20 after=20");
}

TEST_P(RevocationAcrossRestartTest, AUidAtItsInstanceLimitStaysAtItAcrossARestart)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    const std::string socket = socket_path();
    auto holder = spawn_as(kNobodyUid, kNobodyGid, [socket](ChildChannel& channel) {
        auto first = acquire_or_fail(socket, "udp_stats");
        auto second = acquire_or_fail(socket, "udp_stats");
        channel.tell_parent("holding 2");
        channel.wait_parent();
        auto client = Client::connect_socket(socket, 10s);
        require(bool(client), "connect");
        auto third = client->acquire("udp_stats");
        require(!third, "a third instance was handed out past the limit of 2 after the restart");
        require(third.error().code == ErrorCode::LimitExceeded, "expected LimitExceeded: " + third.error().describe());
        return std::string("limited");
    });
    ASSERT_EQ(holder.wait_message(), std::optional<std::string>("holding 2")) << holder.wait().describe();
    ASSERT_EQ(kill_and_restart_daemon(), "");
    holder.tell_child("restarted");
    auto r = holder.wait();
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "limited");
}

// A holder of the shared drop_small, attached to a socket, across a
// `kill -9` and restart of the daemon: it reports the program id it got
// before, then (after "go") what an acquire on a new connection gets and
// how many short datagrams its socket let through; after a second "go"
// (the revoke), how many pass.
ChildProcess spawn_shared_filter_holder(const std::string& socket)
{
    return spawn_as(kNobodyUid, kNobodyGid, [socket](ChildChannel& channel) {
        auto p = acquire_or_fail(socket, "drop_small");
        LoopbackSocket s;
        attach_through_ring(s, p.fd());
        require(s.send_and_receive(2, 1) == 0, "the shared filter let short datagrams through");
        channel.tell_parent("id=" + std::to_string(p.info().id));
        channel.wait_parent();  // restarted
        auto again = acquire_or_fail(socket, "drop_small");
        const unsigned restarted = s.send_and_receive(2, 1);
        channel.tell_parent("id=" + std::to_string(again.info().id) + " passed=" + std::to_string(restarted));
        channel.wait_parent();  // revoked
        return "after=" + std::to_string(s.send_and_receive(2, 1));
    });
}

TEST_P(RevocationAcrossRestartTest, ASharedProgramKeepsItsIdAndIsCutByARevokeAfterKillNineAndRestart)
{
    ASSERT_TRUE(approve("drop_small", for_users({"nobody"})));
    auto holder = spawn_shared_filter_holder(socket_path());
    auto before = holder.wait_message();
    ASSERT_TRUE(before) << holder.wait().describe();
    ASSERT_EQ(kill_and_restart_daemon(), "");
    holder.tell_child("restarted");
    auto after = holder.wait_message();
    ASSERT_TRUE(after) << holder.wait().describe();
    EXPECT_EQ(*after, *before + " passed=0") << "the shared program's id changed across the restart, or it stopped filtering";

    auto revoked = revoke_as_root("drop_small");
    EXPECT_EQ(revoked.cut_instances, std::optional<unsigned>(1)) << "the restarted daemon lost the shared instance";
    holder.tell_child("revoked");
    auto r = holder.wait();
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "after=2") << "the shared filter acquired before the restart went on dropping after revoke";
    EXPECT_FALSE(cut_records("drop_small", kNobodyUid).empty()) << "the cut was not audited";
}

TEST_P(RevocationAcrossRestartTest, AJournalNotOwnedByRootOrNot0600IsReplacedNotRead)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    auto holder = spawn_udp_stats_holder(kNobodyUid, socket_path());
    ASSERT_EQ(holder.wait_message(), std::optional<std::string>("counting 3")) << holder.wait().describe();
    const std::string journal = root() + "/run/bpfbroker/state.journal";
    ASSERT_EQ(::chmod(journal.c_str(), 0644), 0) << errno_text(errno);
    ASSERT_EQ(kill_and_restart_daemon(), "");
    EXPECT_NE(daemon_stderr().find("was not trusted"), std::string::npos) << daemon_stderr();
    struct stat st {};
    ASSERT_EQ(::stat(journal.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "the replacement journal is not 0600";
    auto revoked = revoke_as_root("udp_stats");
    EXPECT_EQ(revoked.cut_instances, std::optional<unsigned>(0)) << "an untrusted journal was read";
    holder.tell_child("go");
    EXPECT_TRUE(holder.wait().ok());
}

}  // namespace
}  // namespace bpfbroker::e2e
