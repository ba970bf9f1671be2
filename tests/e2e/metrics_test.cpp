// `bpfbrokerctl metrics` against a real daemon: allowed and denied acquires
// over the socket are counted once each under their catalog name (an unknown
// name under program=""), allowed ones are observed by the duration
// histogram, live instances follow what the kernel still holds, and the
// catalog's states add up to its entries. Read by an unprivileged user.
#include "support/daemon_fixture.h"

#include "support/openmetrics_text.h"

#include <algorithm>

namespace bpfbroker::e2e {
namespace {

using test_support::acquires_series;
using test_support::metric_or_zero;
using test_support::metric_sample;

class MetricsTest : public DaemonFixture {
protected:
    // bpfbrokerctl --root ROOT metrics, as uid/gid 65534: anyone may read them.
    std::string metrics_as_nobody()
    {
        auto r = run_command({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctl_binary(),
                              "--root", root(), "metrics"},
                             30s);
        EXPECT_TRUE(r.ok()) << r.describe();
        return r.out;
    }
};

TEST_F(MetricsTest, SocketAcquiresLiveInstancesAndCatalogStatesAreCounted)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));   // per-client
    ASSERT_TRUE(approve("drop_small", for_users({"nobody"})));  // shared
    const std::string before = metrics_as_nobody();
    ASSERT_EQ(metric_sample(before, "bpfbroker_acquire_duration_seconds_count"), 0.0) << before;

    const std::string sock_path = socket_path();
    auto child = spawn_as(kNobodyUid, kNobodyGid, [&](ChildChannel& channel) -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect: " + (client ? "" : client.error().describe()));
        auto first = client->acquire("udp_stats");
        auto second = client->acquire("udp_stats");
        auto shared = client->acquire("drop_small");
        require(first && second && shared, "an approved acquire was refused");
        require(!client->acquire("src_allow"), "src_allow is not approved, yet it was handed out");
        require(!client->acquire("no_such_program"), "an unknown program was handed out");
        channel.tell_parent("held");
        channel.wait_parent();
        return "ok";  // the fds close as the child exits
    });
    ASSERT_EQ(child.wait_message(30s), "held");

    const std::string text = metrics_as_nobody();
    EXPECT_EQ(metric_or_zero(text, acquires_series("udp_stats", "socket", "allowed")), 2) << text;
    EXPECT_EQ(metric_or_zero(text, acquires_series("drop_small", "socket", "allowed")), 1) << text;
    EXPECT_EQ(metric_or_zero(text, acquires_series("src_allow", "socket", "denied")), 1) << text;
    EXPECT_EQ(metric_or_zero(text, acquires_series("", "socket", "denied")), 1) << text;
    EXPECT_EQ(metric_or_zero(text, acquires_series("udp_stats", "dbus", "allowed")), 0) << text;
    EXPECT_EQ(text.find("no_such_program"), std::string::npos) << "a caller's word became a label:\n" << text;
    EXPECT_EQ(metric_sample(text, "bpfbroker_acquire_duration_seconds_count"), 3.0) << text;
    EXPECT_EQ(metric_sample(text, "bpfbroker_acquire_duration_seconds_bucket{le=\"+Inf\"}"), 3.0) << text;
    EXPECT_GT(metric_or_zero(text, "bpfbroker_acquire_duration_seconds_sum"), 0.0) << text;
    EXPECT_EQ(metric_sample(text, "bpfbroker_live_instances{program=\"udp_stats\"}"), 2.0) << text;
    EXPECT_EQ(metric_sample(text, "bpfbroker_live_instances{program=\"drop_small\"}"), 1.0) << text;
    EXPECT_EQ(metric_sample(text, "bpfbroker_revoked_instances_total"), 0.0) << text;
    ASSERT_GE(text.size(), 6u);
    EXPECT_EQ(text.substr(text.size() - 6), "# EOF\n");

    // The catalog's states, as the daemon lists them.
    auto admin = connect_client();
    ASSERT_TRUE(admin) << admin.error().describe();
    auto list = admin->list_programs();
    ASSERT_TRUE(list) << list.error().describe();
    std::map<std::string, double> states;
    for (const auto& e : *list)
        ++states[e.state];
    ASSERT_TRUE(states.count("valid")) << text;
    for (const auto& [state, n] : states)
        EXPECT_EQ(metric_sample(text, "bpfbroker_catalog_programs{state=\"" + state + "\"}"), n) << state << "\n" << text;

    // Released by the kernel when the child exits: the per-client gauge goes
    // back to 0 (a map freed late may count for a few ms), the shared
    // instance stays, held by the daemon.
    child.tell_child("release");
    auto done = child.wait(30s);
    ASSERT_TRUE(done.ok()) << done.describe();
    const std::string udp_live = "bpfbroker_live_instances{program=\"udp_stats\"}";
    const std::string after =
        metrics_once(*admin, [&](const std::string& t) { return metric_or_zero(t, udp_live) == 0; });
    EXPECT_EQ(metric_or_zero(after, udp_live), 0) << after;
    EXPECT_EQ(metric_sample(after, "bpfbroker_live_instances{program=\"drop_small\"}"), 1.0) << after;
}

// Whatever names callers send, the text keeps its lines: unknown names all
// count under program="".
TEST_F(MetricsTest, CallersCannotGrowTheText)
{
    auto client = connect_client();
    ASSERT_TRUE(client) << client.error().describe();
    ASSERT_FALSE(client->acquire("unknown_0"));
    auto first = client->metrics();
    ASSERT_TRUE(first) << first.error().describe();
    for (int n = 1; n < 50; ++n)
        ASSERT_FALSE(client->acquire("unknown_" + std::to_string(n)));
    auto second = client->metrics();
    ASSERT_TRUE(second) << second.error().describe();
    EXPECT_EQ(std::count(second->begin(), second->end(), '\n'), std::count(first->begin(), first->end(), '\n'))
        << *second;
    EXPECT_EQ(metric_or_zero(*second, acquires_series("", "socket", "denied")), 50) << *second;
}

}  // namespace
}  // namespace bpfbroker::e2e
