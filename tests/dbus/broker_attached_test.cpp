// Broker-attached programs over D-Bus (issue 9): the plain AcquireProgram
// has no place for links and refuses them naming the method that has, and
// a program bound to the calling process is refused on the bus (it vouches
// for no pidfd) with an error that says to use the socket.
#include "support/bus_fixture.h"

namespace bpfbroker::dbus_test {
namespace {

const std::string kInvalidParameter = "org.bpfbroker.Broker1.Error.InvalidParameter";

using DbusBrokerAttached = BusFixture;

TEST_F(DbusBrokerAttached, uring_stats_is_refused_by_AcquireProgram_and_its_tgid_binding_by_the_bus)
{
    ASSERT_EQ(approve_for_nobody("uring_stats").size(), 64u);

    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        std::string message;
        std::string error = raw_acquire("uring_stats", &message);
        check(error == kInvalidParameter, "AcquireProgram(uring_stats): got \"" + error + "\": " + message);
        check(message.find("AcquireProgramWithOptions") != std::string::npos,
              "the refusal does not name AcquireProgramWithOptions: " + message);

        auto client = Client::connect_dbus(10s);
        check(client.has_value(), "connect_dbus");
        auto p = client->acquire("uring_stats", AcquireOptions{});
        check(!p, "uring_stats (bound to caller.tgid) was handed out over D-Bus");
        check(p.error().code == ErrorCode::Unsupported && p.error().message.find("socket") != std::string::npos,
              "expected Unsupported saying to use the socket: " + p.error().describe());
        return std::string("ok");
    });
    EXPECT_TRUE(result.ok()) << result.describe();
}

}  // namespace
}  // namespace bpfbroker::dbus_test
