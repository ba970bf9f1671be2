// Revoke over D-Bus reports the live instances it reached: RevokeWithSummary
// returns the cut and not-cut counts, the client's D-Bus transport fills
// RevokeResult with them, and `bpfbrokerctl --bus system revoke` prints them
// (text and --json). The old Revoke (s -> u) keeps working for old callers.
#include "support/bus_fixture.h"

#include <regex>

namespace bpfbroker::dbus_test {
namespace {

using DbusRevokeSummary = BusFixture;

// A child as nobody that acquires `program` over D-Bus, says "held", and
// keeps the instance (and its program fd) until the test lets it go.
Child spawn_holder(const std::string& program)
{
    return spawn_as(kNobodyUid, kNobodyGid, [program](ChildChannel& parent) {
        auto client = Client::connect_dbus(10s);
        check(bool(client), "connect: " + (client ? "" : client.error().describe()));
        auto held = client->acquire(program);
        check(bool(held), "acquire: " + (held ? "" : held.error().describe()));
        parent.tell_parent("held");
        parent.wait_parent();
        return std::string("ok");
    });
}

TEST_F(DbusRevokeSummary, ctl_revoke_over_the_bus_prints_the_live_instances_it_cut)
{
    ASSERT_EQ(approve_for_nobody("udp_stats").size(), 64u);
    Child holder = spawn_holder("udp_stats");
    ASSERT_EQ(holder.wait_message(), std::optional<std::string>("held"));

    auto json = run_command({ctl_binary(), "--bus", "system", "--json", "revoke", "udp_stats"});
    ASSERT_TRUE(json.ok()) << json.describe();
    EXPECT_TRUE(std::regex_search(json.out, std::regex(R"("cut_instances":\s*1\b)"))) << json.out;
    EXPECT_TRUE(std::regex_search(json.out, std::regex(R"("uncut_instances":\s*0\b)"))) << json.out;
    EXPECT_TRUE(std::regex_search(json.out, std::regex(R"("removed_approvals":\s*1\b)"))) << json.out;
    EXPECT_TRUE(audited({{"action", "cut"}, {"program", "udp_stats"}, {"uid", std::to_string(kNobodyUid)},
                         {"decision", "allow"}}))
        << "no per-instance cut record; audit lines: " << audit_lines().size();

    // The instance was reported once: a second revoke reaches nothing, and says so.
    auto text = run_command({ctl_binary(), "--bus", "system", "revoke", "udp_stats"});
    ASSERT_TRUE(text.ok()) << text.describe();
    EXPECT_NE(text.out.find("Live instances cut: 0, not cut (no revocation guard): 0\n"), std::string::npos) << text.out;

    holder.tell_child("done");
    auto done = holder.wait();
    EXPECT_TRUE(done.ok()) << done.describe();
}

TEST_F(DbusRevokeSummary, client_and_raw_callers_get_the_counts_and_old_revoke_still_answers)
{
    ASSERT_EQ(approve_for_nobody("udp_stats").size(), 64u);
    ASSERT_EQ(approve_for_nobody("drop_small").size(), 64u);
    Child holder = spawn_holder("udp_stats");
    ASSERT_EQ(holder.wait_message(), std::optional<std::string>("held"));

    auto admin = Client::connect_dbus(10s);
    ASSERT_TRUE(admin) << admin.error().describe();
    auto revoked = admin->revoke("udp_stats");
    ASSERT_TRUE(revoked) << revoked.error().describe();
    EXPECT_EQ(revoked->removed_approvals, 1u);
    EXPECT_EQ(revoked->cut_instances, std::optional<unsigned>(1));
    EXPECT_EQ(revoked->uncut_instances, std::optional<unsigned>(0));

    // The methods as any bus client calls them: the new one with three
    // counts, the old one with the approvals count alone.
    auto conn = sdbus::createSystemBusConnection();
    auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
    proxy->finishRegistration();
    std::uint32_t removed = 9, cut = 9, uncut = 9;
    proxy->callMethod("RevokeWithSummary").onInterface(kInterface).withArguments(std::string("udp_stats"))
        .storeResultsTo(removed, cut, uncut);
    EXPECT_EQ(std::tuple(removed, cut, uncut), std::tuple(0u, 0u, 0u));
    std::uint32_t old_removed = 9;
    proxy->callMethod("Revoke").onInterface(kInterface).withArguments(std::string("drop_small"))
        .storeResultsTo(old_removed);
    EXPECT_EQ(old_removed, 1u);

    holder.tell_child("done");
    auto done = holder.wait();
    EXPECT_TRUE(done.ok()) << done.describe();
}

TEST_F(DbusRevokeSummary, nobody_cannot_call_revoke_with_summary)
{
    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        auto conn = sdbus::createSystemBusConnection();
        auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
        proxy->finishRegistration();
        std::string error = dbus_error_of([&] {
            std::uint32_t removed = 0, cut = 0, uncut = 0;
            proxy->callMethod("RevokeWithSummary").onInterface(kInterface).withArguments(std::string("udp_stats"))
                .storeResultsTo(removed, cut, uncut);
        });
        return error;
    });
    ASSERT_TRUE(result.exited) << result.describe();
    EXPECT_EQ(result.report, "org.bpfbroker.Broker1.Error.PermissionDenied") << result.describe();
}

}  // namespace
}  // namespace bpfbroker::dbus_test
