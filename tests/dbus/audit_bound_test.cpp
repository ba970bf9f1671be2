// What an unprivileged D-Bus caller can make the daemon write: a refused
// Approve, Revoke or AcquireProgram naming a 4 MiB program writes a short
// audit record, not a 4 MiB one (the attack run wrote 126 MB in 3 s).
#include "support/bus_fixture.h"

namespace bpfbroker::dbus_test {
namespace {

using DbusAuditBound = BusFixture;

TEST_F(DbusAuditBound, refused_calls_with_a_4mib_name_write_short_audit_records)
{
    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        const std::string huge(4 << 20, 'p');
        auto conn = sdbus::createSystemBusConnection();
        auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
        proxy->finishRegistration();
        auto approve = dbus_error_of([&] {
            std::string sha;
            proxy->callMethod("Approve").onInterface(kInterface)
                .withArguments(huge, std::vector<std::string>{"nobody"}, std::vector<std::string>{}, false, false)
                .storeResultsTo(sha);
        });
        check(!approve.empty(), "Approve of a 4 MiB name succeeded");
        auto revoke = dbus_error_of([&] {
            std::uint32_t removed = 0;
            proxy->callMethod("Revoke").onInterface(kInterface).withArguments(huge).storeResultsTo(removed);
        });
        check(!revoke.empty(), "Revoke of a 4 MiB name succeeded");
        auto acquire = dbus_error_of([&] {
            proxy->callMethod("AcquireProgram").onInterface(kInterface).withArguments(huge);
        });
        check(!acquire.empty(), "AcquireProgram of a 4 MiB name succeeded");
        return std::string("ok");
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    std::size_t total = 0;
    std::size_t refusals = 0;
    for (const auto& line : audit_lines()) {
        total += line.size();
        EXPECT_LT(line.size(), 2048u) << "an audit record of " << line.size() << " bytes";
        if (line.find("uid=65534") != std::string::npos && line.find("decision=deny") != std::string::npos)
            ++refusals;
    }
    EXPECT_GE(refusals, 3u) << "the refused calls were not all audited";
    EXPECT_LT(total, 64u * 1024) << "three refused calls made the daemon write " << total << " audit bytes";
    EXPECT_TRUE(daemon_running());
}

}  // namespace
}  // namespace bpfbroker::dbus_test
