// Fail closed on the audit log: with --audit-log on /dev/full (every write
// ENOSPC, a fault the kernel makes) the daemon hands nothing out, per-client,
// shared or attached by the broker, since no hand-out may go unrecorded. Callers get a named
// SystemError without a single fd, no per-client instance stays loaded for
// them, the daemon says why in its log a few times however many calls are
// refused, and it goes on serving what needs no record of a hand-out.
#include "support/daemon_fixture.h"
#include "support/openmetrics_text.h"

#include <algorithm>
#include <thread>

namespace bpfbroker::e2e {
namespace {

using test_support::metric_or_zero;

class AuditFailureTest : public DaemonFixture {
protected:
    std::optional<std::string> audit_log_target() const override { return "/dev/full"; }
    // Room for every refused call: neither the rate nor the count of
    // instances the kernel has not freed yet may answer in the audit's place.
    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"max_instances_per_uid":1000,"max_requests_per_second":1000}})";
    }
};

std::size_t count_of(const std::string& text, const std::string& needle)
{
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size()))
        ++n;
    return n;
}

TEST_F(AuditFailureTest, NothingIsHandedOutThatTheAuditLogCannotHold)
{
    // The approvals are made (an admin action done is not undone); their
    // records are lost, and logged as lost.
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));   // per-client
    ASSERT_TRUE(approve("drop_small", for_users({"nobody"})));  // shared
    ASSERT_TRUE(approve("uring_stats", for_users({"nobody"})));  // attached by the broker: links
    constexpr int kCalls = 20;
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect: " + (client ? "" : client.error().describe()));
        for (int i = 0; i < kCalls; ++i)
            for (const char* name : {"udp_stats", "drop_small", "uring_stats"}) {
                auto p = client->acquire(name);
                require(!p, std::string(name) + " was handed out with an audit log that takes no record");
                require(p.error().code == ErrorCode::SystemError, name + (": " + p.error().describe()));
                require(p.error().message.find("audit log (No space left on device)") != std::string::npos,
                        name + (": " + p.error().describe()));
            }
        // Not one fd comes with the refusal.
        auto raw = RawConnection::connect(sock_path);
        require(raw.valid(), "raw connect");
        auto reply = raw.call("org.bpfbroker.Broker.AcquireProgram", {{"name", "udp_stats"}});
        require(reply.has_value(), "no reply to a raw AcquireProgram");
        require(error_name(*reply) == "org.bpfbroker.Broker.SystemError", "raw reply: " + reply->frame);
        require(raw.fds_received() == 0, std::to_string(raw.fds_received()) + " fds came with the refusal");
        // What hands nothing out is still served.
        auto listed = client->list_programs();
        require(bool(listed), "ListPrograms: " + (listed ? "" : listed.error().describe()));
        return "ok";
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    ASSERT_TRUE(daemon_alive());

    // The per-client instances loaded and attached for the refused calls
    // went with them (the kernel frees a released program a little later).
    auto admin = connect_client();
    ASSERT_TRUE(admin) << admin.error().describe();
    double live = -1;
    std::string text;
    for (int attempt = 0; attempt < 100 && live != 0; ++attempt) {
        auto read = admin->metrics();
        ASSERT_TRUE(read) << read.error().describe();
        text = *read;
        live = metric_or_zero(text, "bpfbroker_live_instances{program=\"udp_stats\"}") +
               metric_or_zero(text, "bpfbroker_live_instances{program=\"uring_stats\"}");
        if (live != 0)
            std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(live, 0) << text;

    // Every lost record is logged, throttled: 3 approvals and 3 * kCalls + 1
    // acquires lost theirs, a few lines say so.
    const std::string log = daemon_stderr();
    const std::size_t lines = count_of(log, "cannot write the audit record to /dev/full: No space left on device");
    EXPECT_GE(lines, 1u) << log;
    EXPECT_LE(lines, 6u) << log;
    EXPECT_NE(log.find("and nothing is handed out"), std::string::npos) << log;
}

}  // namespace
}  // namespace bpfbroker::e2e
