// A uid that connects and closes in a loop past its connection cap: the
// daemon refuses each connection, logs a few throttled lines rather than one
// per attempt (the attack run got 20,000+), and serves other users promptly
// throughout (they waited up to ~2 s before).
#include "support/daemon_fixture.h"

#include <algorithm>
#include <cctype>
#include <thread>

namespace bpfbroker::e2e {
namespace {

using Clock = std::chrono::steady_clock;

class ConnectionFloodLogTest : public DaemonFixture {
protected:
    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"max_connections_per_uid":2}})";
    }
};

std::size_t count_of(const std::string& text, const std::string& needle)
{
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
        ++n;
    return n;
}

TEST_F(ConnectionFloodLogTest, refused_connections_are_logged_throttled_and_others_stay_served)
{
    const std::string sock_path = socket_path();
    auto flood = spawn_as(kNobodyUid, kNobodyGid, [sock_path](ChildChannel& channel) -> std::string {
        std::vector<RawConnection> held;
        for (int i = 0; i < 2; ++i) {
            held.push_back(RawConnection::connect(sock_path));
            require(held.back().valid(), "connect " + std::to_string(i));
            require(held.back().call("org.varlink.service.GetInfo").has_value(), "held connection not served");
        }
        channel.tell_parent("holding");
        int attempts = 0;
        auto until = Clock::now() + 3s;
        while (Clock::now() < until) {
            auto extra = RawConnection::connect(sock_path);
            ++attempts;
        }
        return std::to_string(attempts);
    });
    ASSERT_EQ(flood.wait_message(20s).value_or(""), "holding");

    auto good = RawConnection::connect(socket_path());
    ASSERT_TRUE(good.valid());
    Millis worst{0};
    int served = 0;
    auto until = Clock::now() + 2500ms;
    while (Clock::now() < until) {
        auto start = Clock::now();
        auto reply = good.call("org.varlink.service.GetInfo", nlohmann::json::object(), 5s);
        ASSERT_TRUE(reply.has_value()) << "root's call got no reply during the flood";
        EXPECT_TRUE(error_name(*reply).empty()) << reply->frame;
        worst = std::max(worst, std::chrono::duration_cast<Millis>(Clock::now() - start));
        ++served;
        std::this_thread::sleep_for(10ms);
    }
    auto result = flood.wait(30s);
    ASSERT_TRUE(result.ok()) << result.describe();
    int attempts = std::stoi(result.report);
    ASSERT_GT(attempts, 1000) << "the flood was too slow to test anything";

    EXPECT_LT(worst, 500ms) << "another user's call waited " << worst.count() << " ms during the flood";
    EXPECT_GT(served, 20);
    auto log = daemon_stderr();
    std::transform(log.begin(), log.end(), log.begin(), [](unsigned char ch) { return std::tolower(ch); });
    auto lines = count_of(log, "refused a connection from uid 65534");
    EXPECT_GE(lines, 1u) << "the refusals were not logged at all";
    EXPECT_LE(lines, 10u) << attempts << " refused connections made " << lines << " log lines";
}

}  // namespace
}  // namespace bpfbroker::e2e
