// The example UDP server and its own ring statistics, as uid 65534 against
// a real root daemon. `bpfbrokerctl uring-stats -- <the server>` prints
// exactly the server's own io_uring requests (its receives, attaches,
// signal reads and the cancels at its exit) while another process floods
// NOPs; the server itself prints them on SIGUSR1 and at its stop. Without
// uring_stats granted, the server says why and serves on.
#include "support/approved_for_nobody.h"
#include "support/process.h"
#include "support/uring_nops.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <thread>

namespace bpfbroker::e2e {
namespace {

constexpr unsigned kDatagrams = 3;

class UdpServerRingStatsTest : public ApprovedForNobodyFixture {
protected:
    std::vector<std::string> programs_for_nobody() const override { return {"src_allow", "udp_stats"}; }
    void SetUp() override
    {
        ApprovedForNobodyFixture::SetUp();
        if (IsSkipped() || HasFatalFailure())
            return;
        // A folder uid 65534 may write the CLI's report into.
        out_dir_ = (std::filesystem::path(root()).parent_path() / "nobody-out").string();
        ASSERT_EQ(::mkdir(out_dir_.c_str(), 0755), 0) << errno_text(errno);
        ASSERT_EQ(::chown(out_dir_.c_str(), kNobodyUid, kNobodyGid), 0) << errno_text(errno);
    }

    // `prefix` then the server's own arguments, as uid 65534; its stdout and
    // stderr go to server.log.
    test_support::Process start_as_nobody(std::vector<std::string> prefix)
    {
        std::vector<std::string> argv{"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
        argv.insert(argv.end(), prefix.begin(), prefix.end());
        for (const char* arg : {BPFBROKER_TEST_UDP_SERVER, "--socket"})
            argv.emplace_back(arg);
        argv.push_back(socket_path());
        argv.emplace_back("--count");
        argv.push_back(std::to_string(kDatagrams));
        test_support::SpawnOptions options;
        options.argv = argv;
        options.output_file = log_path();
        return test_support::spawn(options);
    }

    [[nodiscard]] std::string log_path() const { return out_dir_ + "/server.log"; }
    [[nodiscard]] std::string report_path() const { return out_dir_ + "/uring-stats.json"; }
    [[nodiscard]] std::string log() const { return test_support::read_text_file(log_path()); }

    // Waits (at most 20 s) until the log holds a match of `pattern`; its first group.
    std::optional<std::string> wait_for_log(const std::string& pattern)
    {
        const std::regex re(pattern);
        for (int i = 0; i < 400; ++i) {
            std::smatch m;
            const std::string text = log();
            if (std::regex_search(text, m, re))
                return m.size() > 1 ? m[1].str() : m[0].str();
            std::this_thread::sleep_for(50ms);
        }
        return std::nullopt;
    }

    // The counted port the server announced ("ports: guarded=N counted=N").
    std::optional<std::uint16_t> counted_port()
    {
        auto port = wait_for_log("ports: guarded=[0-9]+ counted=([0-9]+)\n");
        if (!port)
            return std::nullopt;
        return static_cast<std::uint16_t>(std::stoul(*port));
    }

private:
    std::string out_dir_;
};

void send_datagrams(std::uint16_t port, unsigned count)
{
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(sock.valid()) << errno_text(errno);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (unsigned i = 0; i < count; ++i)
        ASSERT_EQ(::sendto(sock.get(), "hello", 5, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 5)
            << errno_text(errno);
}

// The only child of `pid` (the CLI's child, which became the server).
pid_t only_child_of(pid_t pid)
{
    const std::string children =
        test_support::read_text_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    return children.empty() ? -1 : static_cast<pid_t>(std::stol(children));
}

TEST_F(UdpServerRingStatsTest, UringStatsOfTheServerPrintsItsOwnOpcodeCounts)
{
    ASSERT_TRUE(approve("uring_stats", for_users({"nobody"})));
    auto flooder = test_support::start_nop_flooder();
    auto ctl = start_as_nobody({ctl_binary(), "--root", root(), "uring-stats", "--json", "--output", report_path(), "--"});
    auto port = counted_port();
    ASSERT_TRUE(port) << log();
    EXPECT_NE(log().find("ring statistics: uring_stats's maps inherited"), std::string::npos) << log();

    // SIGUSR1: the server prints its counts so far and serves on. Only once
    // it said it waits: before, the signal is not blocked yet and would kill it.
    ASSERT_TRUE(wait_for_log("SIGUSR1 prints the ring statistics")) << log();
    const pid_t server = only_child_of(ctl.pid());
    ASSERT_GT(server, 0);
    ASSERT_EQ(::kill(server, SIGUSR1), 0);
    ASSERT_TRUE(wait_for_log("ring statistics of this server so far")) << log();
    send_datagrams(*port, kDatagrams);
    ASSERT_TRUE(ctl.wait_exit(30s)) << log();
    flooder.tell_child("stop");
    EXPECT_TRUE(flooder.wait().ok());
    ASSERT_TRUE(WIFEXITED(ctl.status()) && WEXITSTATUS(ctl.status()) == 0) << "status " << ctl.status() << "\n" << log();

    // At its stop, before cancelling: a receive per socket at the start and
    // one more after each of the first two datagrams were submitted (the
    // third's is only queued), three completed.
    EXPECT_TRUE(std::regex_search(log(), std::regex("at the stop \\(uring_stats\\):\n  opcode.*\n  RECVMSG +4 +3\n")))
        << log();

    auto doc = nlohmann::json::parse(test_support::read_text_file(report_path()), nullptr, false);
    ASSERT_TRUE(doc.is_object()) << test_support::read_text_file(report_path());
    EXPECT_EQ(doc.at("exit_status"), 0);
    EXPECT_EQ(doc.at("pid"), server);
    const auto& ops = doc.at("ops");
    auto counts = [&](const char* op) {
        return ops.contains(op) ? std::to_string(ops.at(op).at("submitted").get<std::uint64_t>()) + "/" +
                                      std::to_string(ops.at(op).at("completed").get<std::uint64_t>())
                                : std::string("none");
    };
    // Receives: two at the start, one after each datagram, all complete (the
    // last two cancelled at the exit).
    EXPECT_EQ(counts("RECVMSG"), std::to_string(kDatagrams + 2) + "/" + std::to_string(kDatagrams + 2)) << doc.dump();
    // The signalfd read that saw SIGUSR1 and the one cancelled at the exit.
    EXPECT_EQ(counts("READ"), "2/2") << doc.dump();
    // One cancel for each request still in flight at the exit.
    EXPECT_EQ(counts("ASYNC_CANCEL"), "3/3") << doc.dump();
    if (log().find("via io_uring (IORING_OP_URING_CMD") != std::string::npos) {
        EXPECT_EQ(counts("URING_CMD"), "2/2") << "the two socket filters are attached on the ring\n" << doc.dump();
    }
    EXPECT_EQ(counts("NOP"), "none") << "the flood's NOPs are another process's";
    ASSERT_TRUE(doc.at("errors").contains("ECANCELED")) << doc.dump();
    EXPECT_EQ(doc.at("errors").at("ECANCELED").at("completions"), 3) << doc.dump();
}

TEST_F(UdpServerRingStatsTest, WithoutUringStatsTheServerSaysWhyAndServesOn)
{
    auto server = start_as_nobody({});
    auto port = counted_port();
    ASSERT_TRUE(port) << log();
    EXPECT_TRUE(std::regex_search(log(), std::regex("ring statistics: not available: PermissionDenied: .*uring_stats")))
        << log();
    send_datagrams(*port, kDatagrams);
    ASSERT_TRUE(server.wait_exit(30s)) << log();
    EXPECT_TRUE(WIFEXITED(server.status()) && WEXITSTATUS(server.status()) == 0) << log();
    EXPECT_NE(log().find("received on the counted socket (port " + std::to_string(*port) + ", udp_stats): 3 datagrams"),
              std::string::npos)
        << log();
}

}  // namespace
}  // namespace bpfbroker::e2e
