// The wire format and introspection data as tools not written here see
// them: systemd's busctl and GLib's gdbus (package libglib2.0-bin).
#include "support/bus_fixture.h"

#include <regex>

namespace bpfbroker::dbus_test {
namespace {

std::vector<std::string> busctl(const std::string& address, std::vector<std::string> rest)
{
    std::vector<std::string> argv = {"busctl", "--address=" + address, "--no-pager"};
    argv.insert(argv.end(), rest.begin(), rest.end());
    return argv;
}

std::vector<std::string> busctl_call(const std::string& address, std::vector<std::string> method_and_args)
{
    std::vector<std::string> rest = {"call", kBusName, kObjectPath, kInterface};
    rest.insert(rest.end(), method_and_args.begin(), method_and_args.end());
    return busctl(address, rest);
}

std::vector<std::string> as_nobody(std::vector<std::string> argv)
{
    std::vector<std::string> out = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

std::vector<std::string> gdbus_call(const std::string& address, const std::string& method, std::vector<std::string> args)
{
    std::vector<std::string> argv = {"gdbus", "call", "--address", address, "--dest", kBusName, "--object-path",
                                     kObjectPath, "--method", std::string(kInterface) + "." + method};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

bool have(const std::string& tool)
{
    return run_command({"sh", "-c", "command -v " + tool}).ok();
}

class DbusTools : public BusFixture {
protected:
    void SetUp() override
    {
        BusFixture::SetUp();
        if (IsSkipped() || HasFatalFailure())
            return;
        sha_ = approve_for_nobody("udp_stats");
        ASSERT_EQ(sha_.size(), 64u);
    }
    std::string sha_;
};

TEST_F(DbusTools, busctl_list_programs_and_features)
{
    if (!have("busctl"))
        GTEST_SKIP() << "busctl is missing (Debian package systemd)";
    auto list = run_command(busctl_call(bus_address(), {"ListPrograms"}));
    ASSERT_TRUE(list.ok()) << list.describe();
    // busctl prints the reply signature, the element count, then the values.
    // (name, fields): a dictionary, so fields can be added without breaking callers.
    EXPECT_TRUE(std::regex_search(list.out, std::regex(R"(^a\(sa\{sv\}\) [1-9][0-9]* )"))) << list.out;
    EXPECT_TRUE(std::regex_search(list.out, std::regex(R"("udp_stats" 9 "allowed" b false "cut_live" b true "description" s ")"))) << list.out;
    EXPECT_NE(list.out.find("\"state\" s \"valid\" \"version\" s \"1.0.0\""), std::string::npos) << list.out;
    EXPECT_NE(list.out.find("\"drop_small\""), std::string::npos) << list.out;

    auto features = run_command(busctl_call(bus_address(), {"GetFeatures"}));
    ASSERT_TRUE(features.ok()) << features.describe();
    EXPECT_TRUE(std::regex_search(features.out, std::regex(R"(^a\{s\(bs\)\} [1-9][0-9]* )"))) << features.out;
    EXPECT_TRUE(std::regex_search(features.out, std::regex(R"("prog_type:socket_filter" true ")"))) << features.out;
    EXPECT_NE(features.out.find("\"uring_cmd_setsockopt\""), std::string::npos) << features.out;
}

TEST_F(DbusTools, busctl_acquire_as_nobody_returns_fds_or_the_refusal)
{
    if (!have("busctl") || !have("setpriv"))
        GTEST_SKIP() << "busctl (systemd) or setpriv (util-linux) is missing";
    auto ok = run_command(as_nobody(busctl_call(bus_address(), {"AcquireProgram", "s", "udp_stats"})));
    ASSERT_TRUE(ok.ok()) << ok.describe();
    // h a{sh} a{sv}: a program fd, one map "stats" with its fd, then info.
    EXPECT_TRUE(std::regex_search(ok.out, std::regex(R"(^ha\{sh\}a\{sv\} [0-9]+ 1 "stats" [0-9]+ [0-9]+ )"))) << ok.out;
    EXPECT_TRUE(std::regex_search(ok.out, std::regex(R"("id" u [1-9][0-9]*)"))) << ok.out;
    EXPECT_NE(ok.out.find("\"map_access\" a{ss} 1 \"stats\" \"read\""), std::string::npos) << ok.out;
    EXPECT_NE(ok.out.find("\"type\" s \"socket_filter\""), std::string::npos) << ok.out;
    EXPECT_NE(ok.out.find("\"name\" s \"udp_stats\""), std::string::npos) << ok.out;

    auto refused = run_command(as_nobody(busctl_call(bus_address(), {"AcquireProgram", "s", "drop_small"})));
    EXPECT_TRUE(refused.exited && refused.exit_code != 0) << refused.describe();
    EXPECT_NE(refused.err.find("Call failed: "), std::string::npos) << refused.describe();
    EXPECT_NE(refused.err.find("drop_small"), std::string::npos) << refused.describe();
    EXPECT_TRUE(refused.out.empty()) << refused.describe();

    // Admin calls from nobody are refused; from root they work.
    auto approve = run_command(as_nobody(busctl_call(bus_address(), {"Approve", "sasasbb", "drop_small", "0", "0", "true", "false"})));
    EXPECT_TRUE(approve.exited && approve.exit_code != 0) << approve.describe();
    auto root_approve = run_command(busctl_call(bus_address(), {"Approve", "sasasbb", "drop_small", "1", "nobody", "0", "false", "false"}));
    ASSERT_TRUE(root_approve.ok()) << root_approve.describe();
    EXPECT_TRUE(std::regex_search(root_approve.out, std::regex(R"(^s "[0-9a-f]{64}"\s*$)"))) << root_approve.out;
}

TEST_F(DbusTools, busctl_introspect_lists_methods_and_signals)
{
    if (!have("busctl"))
        GTEST_SKIP() << "busctl is missing (Debian package systemd)";
    auto r = run_command(busctl(bus_address(), {"introspect", kBusName, kObjectPath, kInterface}));
    ASSERT_TRUE(r.ok()) << r.describe();
    const std::vector<std::string> rows = {
        R"(\.AcquireProgram\s+method\s+s\s+ha\{sh\}a\{sv\})", R"(\.Approve\s+method\s+sasasbb\s+s\s)",
        R"(\.GetFeatures\s+method\s+-\s+a\{s\(bs\)\})",      R"(\.ListPrograms\s+method\s+-\s+a\(sa\{sv\}\))",
        R"(\.GetMetrics\s+method\s+-\s+s\s)",
        R"(\.Version\s+property\s+s\s+")" + std::string(BPFBROKER_TEST_PROJECT_VERSION) + R"("\s+const)",
        R"(\.Features\s+property\s+a\{s\(bs\)\}\s+[1-9][0-9]* "[a-z_:]+" (true|false) .*\sconst)",
        R"(\.Reload\s+method\s+-\s+-)",                      R"(\.Revoke\s+method\s+s\s+u\s)",
        R"(\.RevokeWithSummary\s+method\s+s\s+uuu\s)",
        R"(\.CatalogReloaded\s+signal\s+u\s)",               R"(\.ProgramApproved\s+signal\s+ss\s)",
        R"(\.ProgramRevoked\s+signal\s+s\s)"};
    for (const auto& row : rows)
        EXPECT_TRUE(std::regex_search(r.out, std::regex(row))) << "no row matching " << row << " in:\n" << r.out;
}

// Read-only properties any caller may get, as GetFeatures and GetInfo say.
TEST_F(DbusTools, busctl_gets_the_version_and_features_properties_as_nobody)
{
    if (!have("busctl") || !have("setpriv"))
        GTEST_SKIP() << "busctl (systemd) or setpriv (util-linux) is missing";
    auto version = run_command(as_nobody(busctl(bus_address(), {"get-property", kBusName, kObjectPath, kInterface, "Version"})));
    ASSERT_TRUE(version.ok()) << version.describe();
    EXPECT_EQ(version.out, "s \"" + std::string(BPFBROKER_TEST_PROJECT_VERSION) + "\"\n");
    auto features = run_command(as_nobody(busctl(bus_address(), {"get-property", kBusName, kObjectPath, kInterface, "Features"})));
    ASSERT_TRUE(features.ok()) << features.describe();
    auto method = run_command(busctl_call(bus_address(), {"GetFeatures"}));
    ASSERT_TRUE(method.ok()) << method.describe();
    EXPECT_EQ(features.out, method.out) << "the Features property differs from GetFeatures";
    auto write = run_command(busctl(bus_address(), {"set-property", kBusName, kObjectPath, kInterface, "Version", "s", "9"}));
    EXPECT_FALSE(write.ok()) << "Version is writable: " << write.describe();
}

TEST_F(DbusTools, gdbus_introspect_shows_methods_signals_and_argument_names)
{
    if (!have("gdbus"))
        GTEST_SKIP() << "gdbus is missing: install the Debian package libglib2.0-bin";
    auto r = run_command({"gdbus", "introspect", "--address", bus_address(), "--dest", kBusName, "--object-path", kObjectPath});
    ASSERT_TRUE(r.ok()) << r.describe();
    auto iface = r.out.find("interface org.bpfbroker.Broker1 {");
    ASSERT_NE(iface, std::string::npos) << r.out;
    std::string body = r.out.substr(iface);
    auto compact = std::regex_replace(body, std::regex(R"(\s+)"), " ");
    for (const char* expected : {
             "AcquireProgram(in s name, out h program, out a{sh} maps, out a{sv} info);",
             "Approve(in s program, in as users, in as groups, in b anyone, in b polkit, out s manifest_sha256);",
             "GetFeatures(out a{s(bs)} features);",
             "ListPrograms(out a(sa{sv}) programs);",
             "GetMetrics(out s text);",
             "readonly s Version = '" BPFBROKER_TEST_PROJECT_VERSION "';",
             "readonly a{s(bs)} Features = {",
             "Reload();",
             "Revoke(in s program, out u removed_approvals);",
             "RevokeWithSummary(in s program, out u removed_approvals, out u cut_instances, out u uncut_instances);",
             "CatalogReloaded(u programs);",
             "ProgramApproved(s program, s manifest_sha256);",
             "ProgramRevoked(s program);",
         })
        EXPECT_NE(compact.find(expected), std::string::npos) << "missing \"" << expected << "\" in:\n" << body;
}

TEST_F(DbusTools, gdbus_calls_and_error_names)
{
    if (!have("gdbus") || !have("setpriv"))
        GTEST_SKIP() << "gdbus is missing: install the Debian package libglib2.0-bin (or setpriv, util-linux)";
    auto list = run_command(gdbus_call(bus_address(), "ListPrograms", {}));
    ASSERT_TRUE(list.ok()) << list.describe();
    EXPECT_TRUE(std::regex_search(list.out, std::regex(R"(^\(\[\('drop_small', \{'allowed': <)"))) << list.out;
    auto row = list.out.find("('udp_stats', {");
    ASSERT_NE(row, std::string::npos) << list.out;
    auto udp_stats = list.out.substr(row, list.out.find("})", row) - row);
    for (const char* field : {"'allowed': <false>", "'error': <'PermissionDenied'>", "'instance': <'per-client'>",
                              "'needs_polkit': <false>", "'state': <'valid'>", "'version': <'1.0.0'>"})
        EXPECT_NE(udp_stats.find(field), std::string::npos) << "root has no grant for udp_stats; no " << field << " in "
                                                           << udp_stats;

    auto features = run_command(gdbus_call(bus_address(), "GetFeatures", {}));
    ASSERT_TRUE(features.ok()) << features.describe();
    EXPECT_TRUE(std::regex_search(features.out, std::regex(R"('prog_type:socket_filter': \(true, ')"))) << features.out;

    // As nobody: the approved program comes back as handles, GVariant style.
    auto acquired = run_command(as_nobody(gdbus_call(bus_address(), "AcquireProgram", {"udp_stats"})));
    ASSERT_TRUE(acquired.ok()) << acquired.describe();
    EXPECT_TRUE(std::regex_search(acquired.out, std::regex(R"(^\(handle 0, \{'stats': handle 1\}, \{)"))) << acquired.out;
    EXPECT_TRUE(std::regex_search(acquired.out, std::regex(R"('id': <uint32 [1-9][0-9]*>)"))) << acquired.out;
    EXPECT_NE(acquired.out.find("'map_access': <{'stats': 'read'}>"), std::string::npos) << acquired.out;

    // Refusals: gdbus prints the D-Bus error name the daemon sent.
    auto denied = run_command(as_nobody(gdbus_call(bus_address(), "AcquireProgram", {"drop_small"})));
    EXPECT_TRUE(denied.exited && denied.exit_code != 0) << denied.describe();
    EXPECT_NE(denied.err.find("GDBus.Error:org.bpfbroker.Broker1.Error.PermissionDenied: "), std::string::npos)
        << denied.describe();
    auto missing = run_command(as_nobody(gdbus_call(bus_address(), "AcquireProgram", {"no_such_program"})));
    EXPECT_NE(missing.err.find("GDBus.Error:org.bpfbroker.Broker1.Error.ProgramNotFound: "), std::string::npos)
        << missing.describe();
    auto approve = run_command(as_nobody(gdbus_call(bus_address(), "Approve", {"udp_stats", "['nobody']", "@as []", "false", "false"})));
    EXPECT_NE(approve.err.find("GDBus.Error:org.bpfbroker.Broker1.Error.PermissionDenied: "), std::string::npos)
        << approve.describe();
    // A call with the wrong signature is refused before the daemon's code runs.
    std::string message;
    std::string error = dbus_error_of(
        [] {
            auto conn = sdbus::createSystemBusConnection();
            auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
            proxy->finishRegistration();
            std::uint32_t removed = 0;
            proxy->callMethod("Revoke").onInterface(kInterface).withArguments(std::uint32_t{1}).storeResultsTo(removed);
        },
        &message);
    EXPECT_EQ(error, "org.freedesktop.DBus.Error.InvalidArgs") << message;

    // Revoke from root with gdbus: one approval removed.
    auto revoke = run_command(gdbus_call(bus_address(), "Revoke", {"udp_stats"}));
    ASSERT_TRUE(revoke.ok()) << revoke.describe();
    EXPECT_TRUE(std::regex_search(revoke.out, std::regex(R"(^\(uint32 [1-9][0-9]*,\))"))) << revoke.out;
}

}  // namespace
}  // namespace bpfbroker::dbus_test
