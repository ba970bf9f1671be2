// Fail closed on the audit log: with --audit-log on /dev/full (every write
// ENOSPC, a fault the kernel makes) the daemon hands nothing out, per-client,
// shared or attached by the broker, since no hand-out may go unrecorded.
// Callers get a named SystemError without a single fd; nothing made for a
// refused call stays behind in the daemon (no fd, no shared holder); the
// daemon says why in its log a few times however many calls are refused,
// counts the lost records, and goes on serving what hands nothing out.
#include "support/daemon_fixture.h"
#include "support/openmetrics_text.h"

#include <fstream>

namespace bpfbroker::e2e {
namespace {

using test_support::metric_or_zero;
using test_support::metric_sample;

class AuditFailureTest : public DaemonFixture {
protected:
    std::optional<std::string> audit_log_target() const override { return "/dev/full"; }
    // Room for every refused call: neither the rate nor the count of
    // instances the kernel has not freed yet may answer in the audit's place.
    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"max_instances_per_uid":1000,"max_requests_per_second":100000}})";
    }
};

std::size_t count_of(const std::string& text, const std::string& needle)
{
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size()))
        ++n;
    return n;
}

// One refused acquire of each program; "" or what went wrong.
std::string acquire_each_refused(Client& client)
{
    for (const char* name : {"udp_stats", "drop_small", "uring_stats"}) {
        auto p = client.acquire(name);
        if (p)
            return std::string(name) + " was handed out with an audit log that takes no record";
        if (p.error().code != ErrorCode::SystemError ||
            p.error().message.find("audit log (No space left on device)") == std::string::npos)
            return name + (": " + p.error().describe());
    }
    return "";
}

TEST_F(AuditFailureTest, NothingIsHandedOutThatTheAuditLogCannotHold)
{
    // The approvals are made (an admin action done is not undone); their
    // records are lost, and logged as lost.
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));    // per-client
    ASSERT_TRUE(approve("drop_small", for_users({"nobody"})));   // shared
    ASSERT_TRUE(approve("uring_stats", for_users({"nobody"})));  // attached by the broker: links
    constexpr int kCalls = 20;
    constexpr int kJournalFill = 600;  // past kJournalSlackLines / 2
    const std::string sock_path = socket_path();
    auto child = spawn_as(kNobodyUid, kNobodyGid, [&](ChildChannel& channel) -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect: " + (client ? "" : client.error().describe()));
        // The first round loads the shared instance, which stays loaded.
        auto first = acquire_each_refused(*client);
        require(first.empty(), first);
        // Not one fd comes with a refusal.
        auto raw = RawConnection::connect(sock_path);
        require(raw.valid(), "raw connect");
        auto reply = raw.call("org.bpfbroker.Broker.AcquireProgram", {{"name", "udp_stats"}});
        require(reply.has_value(), "no reply to a raw AcquireProgram");
        require(error_name(*reply) == "org.bpfbroker.Broker.SystemError", "raw reply: " + reply->frame);
        require(raw.fds_received() == 0, std::to_string(raw.fds_received()) + " fds came with the refusal");
        channel.tell_parent("warm");
        channel.wait_parent();
        for (int i = 0; i < kCalls; ++i) {
            auto again = acquire_each_refused(*client);
            require(again.empty(), again);
        }
        // Enough refused loads to fill the state journal's slack (each adds
        // a line and its forgetting another): the journal is rewritten.
        for (int i = 0; i < kJournalFill; ++i) {
            auto p = client->acquire("udp_stats");
            require(!p && p.error().code == ErrorCode::SystemError,
                    "refused load " + std::to_string(i) + ": " + (p ? "handed out" : p.error().describe()));
        }
        // What hands nothing out is still served.
        auto listed = client->list_programs();
        require(bool(listed), "ListPrograms: " + (listed ? "" : listed.error().describe()));
        channel.tell_parent("done");
        channel.wait_parent();
        return "ok";
    });
    auto warm = child.wait_message(30s);
    ASSERT_EQ(warm, std::optional<std::string>("warm")) << child.wait(30s).describe();
    const std::size_t fds_warm = settled_daemon_fd_count();
    child.tell_child("go");
    auto finished = child.wait_message(60s);
    ASSERT_EQ(finished, std::optional<std::string>("done")) << child.wait(30s).describe();
    // The state journal stays bounded (slack of 1,024 lines, and a few for
    // the shared instance), though every refused load was written to it.
    std::size_t journal_lines = 0;
    {
        std::ifstream journal(root() + "/run/bpfbroker/state.journal");
        for (std::string line; std::getline(journal, line);)
            ++journal_lines;
    }
    EXPECT_LE(journal_lines, 1100u);
    // Nothing the refused calls made is held for them: a per-client
    // instance's registry entry would keep the caller's pidfd (uring_stats)
    // until a sweep of the kernel's programs, which nothing asked for yet.
    EXPECT_EQ(settled_daemon_fd_count(), fds_warm);
    child.tell_child("exit");
    auto done = child.wait(30s);
    ASSERT_TRUE(done.ok()) << done.describe();
    ASSERT_TRUE(daemon_alive());

    // The uid that got nothing holds no part of the shared instance: ending
    // its grant cuts nothing.
    auto admin = connect_client();
    ASSERT_TRUE(admin) << admin.error().describe();
    auto revoked = admin->revoke("drop_small");
    ASSERT_TRUE(revoked) << revoked.error().describe();
    EXPECT_EQ(revoked->cut_instances.value_or(99), 0u);

    // No per-client instance of a refused call lives on (the kernel frees a
    // released program a little later), and every lost record is counted:
    // 3 approvals, 3 * (kCalls + 1) + 1 + kJournalFill acquires and the
    // revocation at least.
    auto live = [](const std::string& t) {
        return metric_or_zero(t, "bpfbroker_live_instances{program=\"udp_stats\"}") +
               metric_or_zero(t, "bpfbroker_live_instances{program=\"uring_stats\"}");
    };
    const std::string text = metrics_once(*admin, [&](const std::string& t) { return live(t) == 0; });
    EXPECT_EQ(live(text), 0) << text;
    EXPECT_GE(metric_sample(text, "bpfbroker_audit_records_lost_total"), 3.0 + 3 * (kCalls + 1) + 1 + kJournalFill + 1)
        << text;

    // Logged, throttled per action and decision: a few lines each for the
    // lost hand-outs and their lost refusals, and the approvals' and the
    // revocation's own.
    const std::string log = daemon_stderr();
    const std::string lost = "cannot write the audit record to /dev/full: No space left on device";
    EXPECT_LE(count_of(log, lost), 4u * 6u) << log;
    EXPECT_NE(log.find("the acquire record of uid 65534 is lost, and nothing is handed out"), std::string::npos) << log;
    EXPECT_NE(log.find("the approve record of uid 0 is lost"), std::string::npos) << log;
    EXPECT_NE(log.find("the revoke record of uid 0 is lost"), std::string::npos) << log;
}

}  // namespace
}  // namespace bpfbroker::e2e
