// The per-uid bound on live per-client instances (max_instances_per_uid):
// enforced while the instances live, lifted once the client closes them,
// and not applied to shared programs, which cost nothing per caller.
#include "support/daemon_fixture.h"

#include <thread>

namespace bpfbroker::e2e {
namespace {

class InstanceCapTest : public DaemonFixture {
protected:
    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"max_instances_per_uid":3}})";
    }
};

TEST_F(InstanceCapTest, FourthPerClientInstanceRefusedUntilOthersClosed)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    ASSERT_TRUE(approve("drop_small", for_anyone()));
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect");
        std::string report;
        {
            std::vector<Program> held;
            for (int i = 0; i < 3; ++i) {
                auto p = client->acquire("udp_stats");
                require(bool(p), "acquire " + std::to_string(i + 1) + " of 3: " + (p ? "" : p.error().describe()));
                held.push_back(std::move(*p));
            }
            auto fourth = client->acquire("udp_stats");
            require(!fourth, "a 4th live instance was handed out with max_instances_per_uid 3");
            require(fourth.error().code == ErrorCode::LimitExceeded, "4th: " + fourth.error().describe());
            report = fourth.error().message;

            // Another connection of the same uid shares the same budget.
            auto other = Client::connect_socket(sock_path, 10s);
            require(bool(other), "second connection");
            auto via_other = other->acquire("udp_stats");
            require(!via_other && via_other.error().code == ErrorCode::LimitExceeded,
                    "a second connection escaped the per-uid instance limit");

            // Shared programs are not per-client instances.
            std::vector<Program> shared;
            for (int i = 0; i < 5; ++i) {
                auto s = client->acquire("drop_small");
                require(bool(s), "drop_small while at the per-client cap: " + (s ? "" : s.error().describe()));
                shared.push_back(std::move(*s));
            }
        }  // every fd closes here

        // The kernel frees a program after an RCU grace period; poll, bounded.
        auto deadline = std::chrono::steady_clock::now() + 5s;
        for (;;) {
            auto again = client->acquire("udp_stats");
            if (again)
                break;
            require(again.error().code == ErrorCode::LimitExceeded, "after closing: " + again.error().describe());
            require(std::chrono::steady_clock::now() < deadline,
                    "still LimitExceeded 5 s after closing every instance: " + again.error().describe());
            std::this_thread::sleep_for(50ms);
        }
        return report;
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_NE(result.report.find("3"), std::string::npos) << "the refusal should state the limit: " << result.report;

    auto records = audit_records();
    std::size_t limit_denials = 0;
    for (const auto& r : records)
        if (r.at("action") == "acquire" && r.at("decision") == "deny" && r.count("code") &&
            r.at("code") == "LimitExceeded")
            ++limit_denials;
    EXPECT_GE(limit_denials, 2u) << "LimitExceeded refusals were not audited";
}

// Found in review: a client that closes the program fd but keeps the map
// fds keeps the maps (and their memory, charged to the daemon) alive; such
// an instance must still count against the limit.
TEST_F(InstanceCapTest, KeptMapFdsStillCountAgainstTheLimit)
{
    ASSERT_TRUE(approve("src_allow", for_users({"nobody"})));
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect");
        std::vector<std::map<std::string, UniqueFd>> kept_maps;
        for (int i = 0; i < 3; ++i) {
            auto p = client->acquire("src_allow");
            require(bool(p), "acquire " + std::to_string(i + 1) + ": " + (p ? "" : p.error().describe()));
            kept_maps.push_back(p->release_maps());  // the program fd closes with p
        }
        std::this_thread::sleep_for(200ms);  // let the programs go (RCU)
        auto fourth = client->acquire("src_allow");
        require(!fourth, "a 4th instance was handed out while 3 instances' maps were still held");
        require(fourth.error().code == ErrorCode::LimitExceeded, "4th: " + fourth.error().describe());
        kept_maps.clear();
        auto deadline = std::chrono::steady_clock::now() + 5s;
        for (;;) {
            auto again = client->acquire("src_allow");
            if (again)
                break;
            require(std::chrono::steady_clock::now() < deadline, "still refused 5 s after the maps closed");
            std::this_thread::sleep_for(50ms);
        }
        return "ok";
    });
    ASSERT_TRUE(result.ok()) << result.describe();
}

// Found in review: the request rate was bounded per connection only, so a uid
// with many connections (or D-Bus) could make the daemon load programs at
// will. Acquires are now also bounded per uid across connections.
class AcquireRateTest : public DaemonFixture {
protected:
    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"max_requests_per_second":20}})";
    }
};

TEST_F(AcquireRateTest, AcquiresAreBoundedPerUidAcrossConnections)
{
    ASSERT_TRUE(approve("drop_small", for_anyone()));
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        int ok = 0, limited = 0;
        for (int c = 0; c < 4; ++c) {
            auto client = Client::connect_socket(sock_path, 10s);
            require(bool(client), "connect");
            for (int i = 0; i < 15; ++i) {
                auto p = client->acquire("drop_small");
                if (p)
                    ++ok;
                else if (p.error().code == ErrorCode::LimitExceeded &&
                         p.error().message.find("per second") != std::string::npos)
                    ++limited;
                else
                    require(false, "unexpected: " + p.error().describe());
            }
        }
        require(limited > 0, "60 acquires over 4 connections were not limited at 20/s per uid");
        require(ok >= 20 && ok < 50, "allowed " + std::to_string(ok) + " of 60");
        return "ok";
    });
    ASSERT_TRUE(result.ok()) << result.describe();
}

// Found in review: idle connections never expired, so enough uids holding
// connections open could fill the total and lock everyone out. At the cap
// the longest-idle connection now makes room.
class ConnectionCapTest : public DaemonFixture {
protected:
    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"max_connections_total":4}})";
    }
};

TEST_F(ConnectionCapTest, LongestIdleConnectionMakesRoomAtTheTotalCap)
{
    std::vector<RawConnection> idle;
    for (int i = 0; i < 4; ++i) {
        idle.push_back(RawConnection::connect(socket_path()));
        ASSERT_TRUE(idle.back().valid());
        std::this_thread::sleep_for(20ms);  // distinct idle ages
    }
    ASSERT_TRUE(idle[3].call("org.bpfbroker.Broker.GetFeatures").has_value()) << "the 4th connection is served";
    auto client = connect_client();
    ASSERT_TRUE(client);
    auto list = client->list_programs();
    ASSERT_TRUE(list) << "a new client at the total cap was not served: " << list.error().describe();
    EXPECT_TRUE(idle[0].wait_closed(5s)) << "the longest-idle connection was not the one closed";
    auto still = idle[3].call("org.bpfbroker.Broker.GetFeatures");
    EXPECT_TRUE(still.has_value() && error_name(*still).empty()) << "the recently active connection was closed";
}

// Found in review: limits were read only at start-up; a reload must apply them.
TEST_F(DaemonFixture, ReloadAppliesNewConnectionLimits)
{
    auto conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(conn.valid());
    auto burst = [&] {
        std::string calls;
        for (int i = 0; i < 30; ++i)
            calls += nlohmann::json{{"method", "org.varlink.service.GetInfo"}}.dump() + '\0';
        EXPECT_TRUE(conn.send_bytes(calls));
        int limited = 0;
        for (int i = 0; i < 30; ++i) {
            auto reply = conn.read_message();
            if (!reply)
                break;
            limited += error_name(*reply) == "org.bpfbroker.Broker.LimitExceeded";
        }
        return limited;
    };
    EXPECT_EQ(burst(), 0) << "30 calls are within the default 200/s";
    ASSERT_TRUE(test_support::write_text_file(root() + "/etc/bpfbroker/bpfbroker.json",
                                              R"({"limits":{"max_requests_per_second":5}})", 0644));
    auto client = connect_client();
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->reload()) << "Reload";
    std::this_thread::sleep_for(100ms);  // the loop applies new limits at the end of the turn that reloaded
    EXPECT_GT(burst(), 0) << "max_requests_per_second 5 did not apply after the reload";
}

}  // namespace
}  // namespace bpfbroker::e2e
