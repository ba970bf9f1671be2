// Admin calls over D-Bus without polkit on the bus: uid 65534 is refused,
// root succeeds, and every change is announced with a signal carrying the
// right arguments (and only changes that happened are announced).
#include "support/bus_fixture.h"

#include <algorithm>

namespace bpfbroker::dbus_test {
namespace {

const std::string kPermissionDenied = "org.bpfbroker.Broker1.Error.PermissionDenied";

// Approve through a raw proxy on a fresh connection: "" or the error name.
std::string raw_approve(const std::string& program, const std::vector<std::string>& users, bool anyone, bool polkit,
                        std::string* message = nullptr, std::string* sha = nullptr)
{
    auto conn = sdbus::createSystemBusConnection();
    auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
    proxy->finishRegistration();
    return dbus_error_of(
        [&] {
            std::string out;
            proxy->callMethod("Approve").onInterface(kInterface)
                .withArguments(program, users, std::vector<std::string>{}, anyone, polkit)
                .storeResultsTo(out);
            if (sha)
                *sha = out;
        },
        message);
}

std::string raw_revoke(const std::string& program, std::string* message = nullptr)
{
    auto conn = sdbus::createSystemBusConnection();
    auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
    proxy->finishRegistration();
    return dbus_error_of(
        [&] {
            std::uint32_t removed = 0;
            proxy->callMethod("Revoke").onInterface(kInterface).withArguments(program).storeResultsTo(removed);
        },
        message);
}

std::string raw_reload(std::string* message = nullptr)
{
    auto conn = sdbus::createSystemBusConnection();
    auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
    proxy->finishRegistration();
    return dbus_error_of([&] { proxy->callMethod("Reload").onInterface(kInterface); }, message);
}

using DbusAdmin = BusFixture;

TEST_F(DbusAdmin, nobody_cannot_approve_revoke_or_reload_without_polkit)
{
    BrokerBus watcher;
    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        std::string message;
        std::string error = raw_approve("udp_stats", {"nobody"}, false, false, &message);
        check(error == kPermissionDenied, "Approve: got \"" + error + "\": " + message);
        // No polkitd on this bus: the daemon says polkit could not be asked.
        check(message.find("polkit could not be asked") != std::string::npos &&
                  message.find("ServiceUnknown") != std::string::npos,
              "Approve refusal does not say polkit could not be asked (ServiceUnknown): " + message);
        error = raw_revoke("udp_stats", &message);
        check(error == kPermissionDenied, "Revoke: got \"" + error + "\": " + message);
        error = raw_reload(&message);
        check(error == kPermissionDenied, "Reload: got \"" + error + "\": " + message);

        auto client = Client::connect_dbus(10s);
        check(client.has_value(), "connect_dbus");
        ApproveOptions who;
        who.anyone = true;
        auto approved = client->approve("udp_stats", who);
        check(!approved && approved.error().code == ErrorCode::PermissionDenied,
              "Client::approve as nobody was not PermissionDenied");
        return std::string("ok");
    });
    EXPECT_TRUE(result.ok()) << result.describe();

    // Nothing changed, so nothing was announced; and nobody still cannot acquire.
    watcher.wait_for([] { return false; }, 300ms);
    EXPECT_TRUE(watcher.signals().empty()) << "a refused call emitted " << watcher.signals().front().member;
    auto acquire = run_as(kNobodyUid, kNobodyGid, [] {
        auto client = Client::connect_dbus(10s);
        check(client.has_value(), "connect_dbus");
        auto p = client->acquire("udp_stats");
        check(!p && p.error().code == ErrorCode::PermissionDenied, "udp_stats was acquirable after refused approvals");
        return std::string("ok");
    });
    EXPECT_TRUE(acquire.ok()) << acquire.describe();
}

TEST_F(DbusAdmin, root_approve_and_revoke_emit_signals_with_their_arguments)
{
    BrokerBus watcher;
    const std::string broker = watcher.owner_of(kBusName);
    ASSERT_FALSE(broker.empty());

    auto client = Client::connect_dbus(10s);
    ASSERT_TRUE(client.has_value()) << client.error().describe();
    ApproveOptions who;
    who.users = {"nobody"};
    auto sha = client->approve("udp_stats", who);
    ASSERT_TRUE(sha.has_value()) << sha.error().describe();
    ASSERT_EQ(sha->size(), 64u);

    ASSERT_TRUE(watcher.wait_for([&] { return !watcher.signals_named("ProgramApproved").empty(); }))
        << "no ProgramApproved signal within 10 s";
    auto approved = watcher.signals_named("ProgramApproved");
    ASSERT_EQ(approved.size(), 1u);
    EXPECT_EQ(approved[0].args, (std::vector<std::string>{"udp_stats", *sha}));
    EXPECT_EQ(approved[0].sender, broker);
    EXPECT_EQ(approved[0].path, kObjectPath);

    // The hash in the signal is the one nobody's acquire is bound to.
    auto acquire = run_as(kNobodyUid, kNobodyGid, [] {
        auto c = Client::connect_dbus(10s);
        check(c.has_value(), "connect_dbus");
        auto p = c->acquire("udp_stats");
        check(p.has_value(), "acquire after approval: " + (p ? std::string() : p.error().describe()));
        return std::string("ok");
    });
    EXPECT_TRUE(acquire.ok()) << acquire.describe();

    auto removed = client->revoke("udp_stats");
    ASSERT_TRUE(removed.has_value()) << removed.error().describe();
    EXPECT_GE(removed->removed_approvals, 1u);
    ASSERT_TRUE(watcher.wait_for([&] { return !watcher.signals_named("ProgramRevoked").empty(); }))
        << "no ProgramRevoked signal within 10 s";
    auto revoked = watcher.signals_named("ProgramRevoked");
    ASSERT_EQ(revoked.size(), 1u);
    EXPECT_EQ(revoked[0].args, (std::vector<std::string>{"udp_stats"}));
    EXPECT_EQ(revoked[0].sender, broker);

    // Order on the bus: approved before revoked.
    const auto& all = watcher.signals();
    auto a = std::find_if(all.begin(), all.end(), [](const auto& s) { return s.member == "ProgramApproved"; });
    auto r = std::find_if(all.begin(), all.end(), [](const auto& s) { return s.member == "ProgramRevoked"; });
    EXPECT_LT(a - all.begin(), r - all.begin());

    auto after = run_as(kNobodyUid, kNobodyGid, [] {
        auto c = Client::connect_dbus(10s);
        check(c.has_value(), "connect_dbus");
        auto p = c->acquire("udp_stats");
        check(!p && p.error().code == ErrorCode::PermissionDenied, "udp_stats still acquirable after revoke");
        return std::string("ok");
    });
    EXPECT_TRUE(after.ok()) << after.describe();
}

TEST_F(DbusAdmin, root_reload_emits_catalog_reloaded_with_the_program_count)
{
    BrokerBus watcher;
    auto client = Client::connect_dbus(10s);
    ASSERT_TRUE(client.has_value()) << client.error().describe();
    auto list = client->list_programs();
    ASSERT_TRUE(list.has_value()) << list.error().describe();
    auto reloaded = client->reload();
    ASSERT_TRUE(reloaded.has_value()) << reloaded.error().describe();
    ASSERT_TRUE(watcher.wait_for([&] { return !watcher.signals_named("CatalogReloaded").empty(); }))
        << "no CatalogReloaded signal within 10 s";
    auto s = watcher.signals_named("CatalogReloaded");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].args, (std::vector<std::string>{std::to_string(list->size())}));
}

// A grant that asks for polkit, with no polkit on the bus: refused, and the
// refusal says polkit is why.
TEST_F(DbusAdmin, polkit_grant_without_polkit_on_the_bus_is_refused)
{
    ASSERT_EQ(approve_for_anyone_with_polkit("udp_stats").size(), 64u);
    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        std::string message;
        std::string error = raw_acquire("udp_stats", &message);
        check(error == kPermissionDenied, "got \"" + error + "\": " + message);
        check(message.find("polkit") != std::string::npos, "the refusal does not name polkit: " + message);
        return std::string("ok");
    });
    EXPECT_TRUE(result.ok()) << result.describe();
}

}  // namespace
}  // namespace bpfbroker::dbus_test
