// `bpfbrokerctl uring-stats -- CMD` as uid 65534 against a real root daemon:
// it prints CMD's own io_uring counts exactly (a helper that submits N NOPs)
// while another process floods NOPs, as JSON and as a table; its exit status
// is CMD's; refusals, an unwritable --output and a command that cannot run
// print no statistics.
#include "support/daemon_fixture.h"
#include "support/uring_nops.h"

#include <signal.h>

#include <regex>

namespace bpfbroker::e2e {
namespace {

class CtlUringStatsTest : public DaemonFixture {
protected:
    // bpfbrokerctl --root ROOT uring-stats ARGS..., as uid/gid 65534.
    CommandResult uring_stats_as_nobody(const std::vector<std::string>& args)
    {
        std::vector<std::string> argv{"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                      ctl_binary(), "--root", root(), "uring-stats"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv, 60s);
    }
};

TEST_F(CtlUringStatsTest, PrintsTheCommandsOwnCountsWhileAnotherProcessFloodsNops)
{
    ASSERT_TRUE(approve("uring_stats", for_users({"nobody"})));
    auto flooder = test_support::start_nop_flooder();
    auto ran = uring_stats_as_nobody({"--json", "--", BPFBROKER_TEST_URING_NOPS, "1000", "7"});
    flooder.tell_child("stop");
    EXPECT_TRUE(flooder.wait().ok());

    ASSERT_EQ(ran.exit_code, 7) << "the exit status is not the command's\n" << ran.describe();
    auto doc = nlohmann::json::parse(ran.out, nullptr, false);
    ASSERT_TRUE(doc.is_object()) << ran.out;
    EXPECT_EQ(doc.at("exit_status"), 7);
    EXPECT_GT(doc.at("pid").get<int>(), 0);
    EXPECT_EQ(doc.at("command").back(), "7");
    // Exactly the helper's NOPs: the flood's are another process's.
    ASSERT_EQ(doc.at("ops").size(), 1u) << doc.dump();
    const auto& nop = doc.at("ops").at("NOP");
    EXPECT_EQ(nop.at("opcode"), 0);
    EXPECT_EQ(nop.at("submitted"), 1000) << doc.dump();
    EXPECT_EQ(nop.at("completed"), 1000) << doc.dump();
    EXPECT_TRUE(doc.at("errors").empty()) << doc.dump();
    std::uint64_t timed = 0;
    for (const auto& bucket : doc.at("latency")) {
        EXPECT_LT(bucket.at("min_ns").get<std::uint64_t>(), bucket.at("max_ns").get<std::uint64_t>());
        timed += bucket.at("requests").get<std::uint64_t>();
    }
    EXPECT_EQ(timed, 1000u) << "every NOP has a latency";
}

TEST_F(CtlUringStatsTest, PrintsATableAndTheCommandSeesTheFdsAsWithExec)
{
    ASSERT_TRUE(approve("uring_stats", for_users({"nobody"})));
    auto table = uring_stats_as_nobody({"--", BPFBROKER_TEST_URING_NOPS, "250"});
    ASSERT_TRUE(table.ok()) << table.describe();
    EXPECT_TRUE(std::regex_search(table.out, std::regex("\n  NOP +250 +250\n"))) << table.out;
    EXPECT_NE(table.out.find("(" + std::string(BPFBROKER_TEST_URING_NOPS) + " 250), exit status 0"), std::string::npos)
        << table.out;

    // The command gets the links and maps in its environment, as with exec.
    auto env = uring_stats_as_nobody(
        {"--", "/bin/sh", "-c", "echo $BPFBROKER_PROGRAM; echo $BPFBROKER_MAP_FDS | tr , '\\n' | cut -d: -f1"});
    ASSERT_TRUE(env.ok()) << env.describe();
    EXPECT_TRUE(env.out.starts_with("uring_stats\nerrors\nlatency\nops\n")) << env.out;

    // Killed by a signal: the shell's 128 + N, and the report says so.
    auto killed = uring_stats_as_nobody({"--", "/bin/sh", "-c", "kill -TERM $$"});
    EXPECT_EQ(killed.exit_code, 128 + SIGTERM) << killed.describe();
    EXPECT_NE(killed.out.find("), killed by signal 15\n  no io_uring requests\n"), std::string::npos) << killed.out;
}

TEST_F(CtlUringStatsTest, WithoutAGrantOrACommandItPrintsNoStatistics)
{
    auto refused = uring_stats_as_nobody({"--", "/bin/sh", "-c", "echo RAN"});
    EXPECT_EQ(refused.exit_code, 1) << refused.describe();
    EXPECT_EQ(refused.out.find("RAN"), std::string::npos) << "the command ran without its statistics";
    EXPECT_NE(refused.err.find("PermissionDenied"), std::string::npos) << refused.err;

    ASSERT_TRUE(approve("uring_stats", for_users({"nobody"})));
    auto unwritable = uring_stats_as_nobody({"--output", root() + "/etc/stats.json", "--", "/bin/sh", "-c", "echo RAN"});
    EXPECT_EQ(unwritable.exit_code, 1) << unwritable.describe();
    EXPECT_EQ(unwritable.out.find("RAN"), std::string::npos) << "the command ran though its statistics could not be written";
    EXPECT_NE(unwritable.err.find("cannot open " + root() + "/etc/stats.json"), std::string::npos) << unwritable.err;

    auto missing = uring_stats_as_nobody({"--", "/nonexistent/command"});
    EXPECT_EQ(missing.exit_code, 127) << missing.describe();
    EXPECT_NE(missing.err.find("cannot run /nonexistent/command"), std::string::npos) << missing.err;
    EXPECT_EQ(missing.out.find("io_uring statistics"), std::string::npos) << missing.out;
}

}  // namespace
}  // namespace bpfbroker::e2e
