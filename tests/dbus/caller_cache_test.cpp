// The D-Bus caller cache (brokerd/bus_caller_cache.h) on a real private
// dbus-daemon: one GetConnectionCredentials per unique name, answers as the
// bus recorded them (uid, pid, groups of the connecting process), and the
// entry dropped once the bus says the name is gone. A name that is already
// gone is refused, not cached.
#include "support/bus_fixture.h"

#include "brokerd/bus_caller_cache.h"

#include <unistd.h>

#include <algorithm>

namespace bpfbroker::dbus_test {
namespace {

class CallerCache : public BusFixture {
protected:
    bool runs_daemon_process() const override { return false; }
};

TEST_F(CallerCache, one_bus_call_per_name_dropped_when_the_name_goes)
{
    BrokerBus server;  // the connection the cache lives on, pumped by wait_for()
    brokerd::BusCallerCache cache(server.connection());
    auto client = std::make_unique<BrokerBus>();
    const std::string name = client->unique_name();

    auto first = cache.credentials(name);
    ASSERT_TRUE(first) << first.error().describe();
    EXPECT_EQ(first->uid, ::geteuid());
    EXPECT_EQ(first->pid, ::getpid());
    EXPECT_NE(std::find(first->gids.begin(), first->gids.end(), ::getegid()), first->gids.end())
        << "the bus's groups lack this process's gid";
    auto second = cache.credentials(name);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->uid, first->uid);
    EXPECT_EQ(cache.bus_calls(), 1u) << "asked the bus again for a name it already knew";
    EXPECT_TRUE(cache.contains(name));

    client.reset();  // the connection closes: the bus sends NameOwnerChanged
    EXPECT_TRUE(server.wait_for([&] { return !cache.contains(name); }))
        << "the entry of a closed connection stayed";
    EXPECT_EQ(cache.size(), 0u);

    auto gone = cache.credentials(name);
    EXPECT_FALSE(gone) << "credentials for a name nobody owns";
    EXPECT_FALSE(cache.contains(name));
}

TEST_F(CallerCache, another_uid_is_known_by_the_bus_not_by_what_it_says)
{
    BrokerBus server;
    brokerd::BusCallerCache cache(server.connection());
    // A child as uid 65534 connects and tells its unique name; the cache
    // must learn the uid from the bus.
    auto child = spawn_as(kNobodyUid, kNobodyGid, [](ChildChannel& ch) {
        BrokerBus bus;
        ch.tell_parent(bus.unique_name());
        ch.wait_parent();  // stays connected until the test is done asking
        return std::string("ok");
    });
    auto name = child.wait_message().value_or("");
    ASSERT_FALSE(name.empty());
    auto peer = cache.credentials(name);
    ASSERT_TRUE(peer) << peer.error().describe();
    EXPECT_EQ(peer->uid, kNobodyUid);
    EXPECT_EQ(peer->pid, child.pid());
    child.tell_child("done");
    auto result = child.wait();
    EXPECT_TRUE(result.ok()) << result.describe();
    EXPECT_TRUE(server.wait_for([&] { return !cache.contains(name); }));
}

}  // namespace
}  // namespace bpfbroker::dbus_test
