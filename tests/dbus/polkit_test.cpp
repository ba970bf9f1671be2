// polkit decisions with Debian's real polkitd on the private bus. polkitd
// reads systemd/org.bpfbroker.policy and a test rules file:
//   org.bpfbroker.acquire: YES for nobody (65534), NO for daemon (kOtherUid)
//   org.bpfbroker.manage:  YES for daemon, NO for nobody
// Without logind polkitd finds no session for anyone (local/active false),
// so only the JS rules decide; the actions' defaults would say no/auth_admin.
//
// The files reach polkitd through a private mount namespace bind-mounted
// over /usr/share/polkit-1/actions and /etc/polkit-1/rules.d (nothing on the
// host changes); set BPFBROKER_DBUS_TEST_POLKIT_FILES=host to install them in
// the real directories instead (removed afterwards, one test at a time).
#include "support/bus_fixture.h"

#include <sstream>
#include <thread>

namespace bpfbroker::dbus_test {
namespace {

const std::string kPermissionDenied = "org.bpfbroker.Broker1.Error.PermissionDenied";

class DbusPolkit : public BusFixture {
protected:
    PolkitMode polkit_mode() const override { return PolkitMode::Real; }
    std::string polkit_rules() const override
    {
        std::ostringstream js;
        js << "polkit.addRule(function(action, subject) {\n"
           << "    if (action.id != \"org.bpfbroker.acquire\" && action.id != \"org.bpfbroker.manage\")\n"
           << "        return polkit.Result.NOT_HANDLED;\n"
           << "    polkit.log(\"bpfbroker-test: action=\" + action.id + \" user=\" + subject.user + \" pid=\" + subject.pid);\n"
           << "    if (action.id == \"org.bpfbroker.acquire\")\n"
           << "        return subject.user == \"" << polkit_user_name(kNobodyUid) << "\" ? polkit.Result.YES : polkit.Result.NO;\n"
           << "    return subject.user == \"" << polkit_user_name(kOtherUid) << "\" ? polkit.Result.YES : polkit.Result.NO;\n"
           << "});\n";
        return js.str();
    }

    // Whether polkitd logged a rule evaluation of `action` for process `pid`.
    bool polkit_asked(const std::string& action, pid_t pid, Millis timeout = 5s)
    {
        std::string needle = "bpfbroker-test: action=" + action + " user=";
        std::string pid_text = " pid=" + std::to_string(pid);
        auto deadline = std::chrono::steady_clock::now() + timeout;
        do {
            std::istringstream log(polkitd_log());
            for (std::string line; std::getline(log, line);)
                if (line.find(needle) != std::string::npos && line.size() >= pid_text.size() &&
                    line.compare(line.size() - pid_text.size(), pid_text.size(), pid_text) == 0)
                    return true;
            std::this_thread::sleep_for(20ms);
        } while (std::chrono::steady_clock::now() < deadline);
        return false;
    }
};

// A child calling Approve(program, users=[nobody]): "ok <sha>" or "ERROR <name>: <message>".
ChildResult approve_as(uid_t uid, gid_t gid, const std::string& program)
{
    return run_as(uid, gid, [program] {
        auto conn = sdbus::createSystemBusConnection();
        auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
        proxy->finishRegistration();
        std::string message, sha;
        std::string error = dbus_error_of(
            [&] {
                proxy->callMethod("Approve").onInterface(kInterface)
                    .withArguments(program, std::vector<std::string>{"nobody"}, std::vector<std::string>{}, false, false)
                    .storeResultsTo(sha);
            },
            &message);
        if (!error.empty())
            return "ERROR " + error + ": " + message;
        return "ok " + sha;
    });
}

TEST_F(DbusPolkit, polkit_grant_is_acquired_when_polkit_says_yes)
{
    ASSERT_EQ(approve_for_anyone_with_polkit("udp_stats").size(), 64u);

    auto child = spawn_acquirer(kNobodyUid, kNobodyGid, "udp_stats");
    pid_t pid = child.pid();
    auto result = child.wait();
    EXPECT_TRUE(result.ok() && result.report == "ok") << result.describe();
    // polkitd resolved the subject (the caller's bus name) to the calling process.
    EXPECT_TRUE(polkit_asked("org.bpfbroker.acquire", pid)) << "polkitd log:\n" << polkitd_log();
}

TEST_F(DbusPolkit, polkit_grant_is_refused_naming_polkit_when_polkit_says_no)
{
    ASSERT_EQ(approve_for_anyone_with_polkit("udp_stats").size(), 64u);

    auto child = spawn_acquirer(kOtherUid, kOtherGid, "udp_stats");
    pid_t pid = child.pid();
    auto result = child.wait();
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_EQ(result.report.rfind("ERROR " + kPermissionDenied + ": ", 0), 0u) << result.report;
    EXPECT_NE(result.report.find("polkit"), std::string::npos) << result.report;
    EXPECT_TRUE(polkit_asked("org.bpfbroker.acquire", pid)) << "polkitd log:\n" << polkitd_log();

    // The refusal is audited for the uid the bus recorded.
    EXPECT_TRUE(audited({{"action", "acquire"}, {"transport", "dbus"}, {"program", "udp_stats"}, {"uid", std::to_string(kOtherUid)},
                         {"decision", "deny"}, {"code", "PermissionDenied"}}))
        << read_text_file(scratch() + "/audit.log");
}

// A plain (non-polkit) grant needs no polkit round trip at all.
TEST_F(DbusPolkit, plain_grant_does_not_ask_polkit)
{
    ASSERT_EQ(approve_for_nobody("udp_stats").size(), 64u);
    auto child = spawn_acquirer(kNobodyUid, kNobodyGid, "udp_stats");
    pid_t pid = child.pid();
    auto result = child.wait();
    EXPECT_TRUE(result.ok() && result.report == "ok") << result.describe();
    EXPECT_FALSE(polkit_asked("org.bpfbroker.acquire", pid, 300ms)) << "polkitd log:\n" << polkitd_log();
}

TEST_F(DbusPolkit, non_root_approve_is_refused_when_polkit_says_no)
{
    BrokerBus watcher;
    auto result = approve_as(kNobodyUid, kNobodyGid, "udp_stats");
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_EQ(result.report.rfind("ERROR " + kPermissionDenied + ": ", 0), 0u) << result.report;
    EXPECT_NE(result.report.find("polkit denied org.bpfbroker.manage"), std::string::npos) << result.report;
    watcher.wait_for([] { return false; }, 300ms);
    EXPECT_TRUE(watcher.signals_named("ProgramApproved").empty());
}

TEST_F(DbusPolkit, non_root_approve_works_when_polkit_says_yes)
{
    BrokerBus watcher;
    auto result = approve_as(kOtherUid, kOtherGid, "drop_small");
    ASSERT_TRUE(result.ok()) << result.describe();
    ASSERT_EQ(result.report.rfind("ok ", 0), 0u) << result.report;
    std::string sha = result.report.substr(3);
    EXPECT_EQ(sha.size(), 64u) << sha;
    ASSERT_TRUE(watcher.wait_for([&] { return !watcher.signals_named("ProgramApproved").empty(); }));
    EXPECT_EQ(watcher.signals_named("ProgramApproved")[0].args, (std::vector<std::string>{"drop_small", sha}));

    // The approval took effect: nobody acquires drop_small (no polkit needed).
    auto acquirer = spawn_acquirer(kNobodyUid, kNobodyGid, "drop_small");
    auto acquired = acquirer.wait();
    EXPECT_TRUE(acquired.ok() && acquired.report == "ok") << acquired.describe();

    // Revoke and Reload are the same action.
    auto admin = run_as(kOtherUid, kOtherGid, [] {
        auto conn = sdbus::createSystemBusConnection();
        auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
        proxy->finishRegistration();
        std::uint32_t removed = 0;
        proxy->callMethod("Revoke").onInterface(kInterface).withArguments(std::string("drop_small")).storeResultsTo(removed);
        check(removed == 1, "Revoke removed " + std::to_string(removed) + " approvals");
        proxy->callMethod("Reload").onInterface(kInterface);
        return std::string("ok");
    });
    EXPECT_TRUE(admin.ok()) << admin.describe();
    EXPECT_TRUE(watcher.wait_for([&] {
        return !watcher.signals_named("ProgramRevoked").empty() && !watcher.signals_named("CatalogReloaded").empty();
    })) << "ProgramRevoked or CatalogReloaded missing";

    // The audit log names the polkit-authorized admin by uid.
    EXPECT_TRUE(audited({{"action", "approve"}, {"transport", "dbus"}, {"program", "drop_small"}, {"uid", std::to_string(kOtherUid)},
                         {"decision", "allow"}}))
        << read_text_file(scratch() + "/audit.log");
}

}  // namespace
}  // namespace bpfbroker::dbus_test
