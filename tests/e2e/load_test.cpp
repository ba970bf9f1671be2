// Sustained and concurrent acquires: every request is served, and the daemon
// gives back every fd it used (connections, instances) once clients are done.
#include "support/daemon_fixture.h"

#include <thread>

namespace bpfbroker::e2e {
namespace {

class LoadTest : public DaemonFixture {
protected:
    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"max_instances_per_uid":4096,"max_requests_per_second":100000,)"
               R"("max_connections_per_uid":64}})";
    }
};

// `count` acquires of udp_stats, each program closed before the next;
// a fresh connection every `per_connection` acquires.
std::string acquire_many(const std::string& sock_path, int count, int per_connection)
{
    std::optional<Client> client;
    for (int i = 0; i < count; ++i) {
        if (i % per_connection == 0) {
            client.reset();
            auto c = Client::connect_socket(sock_path, 20s);
            require(bool(c), "connect before acquire " + std::to_string(i) + ": " + (c ? "" : c.error().describe()));
            client.emplace(std::move(*c));
        }
        auto p = client->acquire("udp_stats");
        require(bool(p), "acquire " + std::to_string(i) + ": " + (p ? "" : p.error().describe()));
        require(p->fd().valid() && p->map("stats") != nullptr, "acquire " + std::to_string(i) + " lacks fds");
    }
    return std::to_string(count) + " ok";
}

TEST_F(LoadTest, SequentialThenConcurrentAcquiresAllSucceedAndFdsReturn)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    const auto baseline = settled_daemon_fd_count();
    const std::string sock_path = socket_path();

    auto sequential = run_as_nobody([&] { return acquire_many(sock_path, 200, 200); }, 90s);
    ASSERT_TRUE(sequential.ok()) << "sequential: " << sequential.describe();
    EXPECT_EQ(sequential.report, "200 ok");

    constexpr int kChildren = 16;
    constexpr int kEach = 100;
    std::vector<ChildProcess> children;
    for (int i = 0; i < kChildren; ++i)
        children.push_back(spawn_as(kNobodyUid, kNobodyGid, [&, i](ChildChannel&) {
            // Half the children reconnect every 10 acquires: connection churn too.
            return acquire_many(sock_path, kEach, i % 2 ? 10 : kEach);
        }));
    int succeeded = 0;
    for (int i = 0; i < kChildren; ++i) {
        auto r = children[static_cast<std::size_t>(i)].wait(90s);
        EXPECT_TRUE(r.ok()) << "child " << i << ": " << r.describe();
        succeeded += r.ok() && r.report == std::to_string(kEach) + " ok";
    }
    EXPECT_EQ(succeeded, kChildren);
    EXPECT_TRUE(daemon_alive());

    auto after = wait_daemon_fd_count_at_most(baseline, 5s);
    EXPECT_EQ(after, baseline) << "the daemon kept fds after every client was gone";

    std::size_t allows = 0;
    for (const auto& r : audit_records())
        allows += r.at("action") == "acquire" && r.at("decision") == "allow";
    EXPECT_EQ(allows, 200u + kChildren * kEach);
}

}  // namespace
}  // namespace bpfbroker::e2e
