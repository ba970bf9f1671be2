// GetMetrics over D-Bus: acquires made on the bus count under
// transport="dbus", allowed and denied once each, and `bpfbrokerctl --bus
// system metrics` run by an unprivileged user prints the same text.
#include "support/bus_fixture.h"

#include "support/openmetrics_text.h"

namespace bpfbroker::dbus_test {
namespace {

using test_support::acquires_series;
using test_support::metric_or_zero;
using test_support::metric_sample;

class DbusMetrics : public BusFixture {};

TEST_F(DbusMetrics, bus_acquires_are_counted_and_ctl_prints_them)
{
    ASSERT_EQ(approve_for_nobody("udp_stats").size(), 64u);

    auto acquired = run_as(kNobodyUid, kNobodyGid, [] {
        auto client = Client::connect_dbus(10s);
        check(bool(client), "connect: " + (client ? "" : client.error().describe()));
        check(bool(client->acquire("udp_stats")), "an approved acquire was refused");
        check(!client->acquire("src_allow"), "src_allow is not approved, yet it was handed out");
        return std::string("ok");
    });
    ASSERT_TRUE(acquired.ok()) << acquired.describe();

    auto ctl = run_command({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctl_binary(), "--bus",
                            "system", "metrics"});
    ASSERT_TRUE(ctl.ok()) << ctl.describe();
    const std::string& text = ctl.out;
    EXPECT_EQ(metric_or_zero(text, acquires_series("udp_stats", "dbus", "allowed")), 1) << text;
    EXPECT_EQ(metric_or_zero(text, acquires_series("src_allow", "dbus", "denied")), 1) << text;
    EXPECT_EQ(metric_or_zero(text, acquires_series("udp_stats", "socket", "allowed")), 0) << text;
    EXPECT_EQ(metric_sample(text, "bpfbroker_acquire_duration_seconds_count"), 1.0) << text;
    EXPECT_TRUE(metric_sample(text, "bpfbroker_live_instances{program=\"udp_stats\"}")) << text;
    EXPECT_GE(metric_or_zero(text, "bpfbroker_catalog_programs{state=\"valid\"}"), 1) << text;

    // The raw method, as any bus client calls it.
    auto conn = sdbus::createSystemBusConnection();
    auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
    proxy->finishRegistration();
    std::string raw;
    proxy->callMethod("GetMetrics").onInterface(kInterface).storeResultsTo(raw);
    EXPECT_EQ(metric_or_zero(raw, acquires_series("udp_stats", "dbus", "allowed")), 1) << raw;
    EXPECT_EQ(raw.substr(raw.size() - 6), "# EOF\n");
}

}  // namespace
}  // namespace bpfbroker::dbus_test
