// The service manager's fd store (issue 10), with a stand-in service
// manager since no systemd runs as PID 1 here: what the daemon stores
// follows its live instances (stored at the acquire, removed at the cut), a
// shared program that nobody holds keeps its id across `kill -9` because the
// store held it, a shared program's map comes back with what it counted, and what the store hands back is checked: an fd that is not
// the recorded object, or carries a name the daemon never gives, is removed
// from the store and closed, and the instance is still cut by id.
// (RevocationAcrossRestartTest runs the restart tests through the store too.)
#include "support/daemon_fixture.h"
#include "udp_stats_holder.h"

#include "brokerd/fd_store.h"

#include <bpf/bpf.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <thread>

namespace bpfbroker::e2e {
namespace {

using test_support::LoopbackSocket;

TEST(FdStoreUnit, TheUnitsFileDescriptorStoreMaxIsTheDaemonsBound)
{
    EXPECT_EQ(test_support::unit_fd_store_max(), brokerd::kFdStoreMax)
        << "systemd/bpfbrokerd.service and brokerd/fd_store.h disagree on the store's size";
}

class FdStoreTest : public DaemonFixture {
protected:
    bool under_service_manager() const override { return true; }

    bool stored(const std::string& name) const
    {
        auto names = service_manager()->stored_names();
        return std::find(names.begin(), names.end(), name) != names.end();
    }
    // The stand-in reads the notify socket on its own thread: waits up to 2 s
    // for `name` to be stored (or, `present` false, gone).
    bool wait_stored(const std::string& name, bool present = true) const
    {
        for (int i = 0; i < 200; ++i) {
            if (stored(name) == present)
                return true;
            std::this_thread::sleep_for(10ms);
        }
        return false;
    }
    // Acquires `name` as root; fails the test (an exception) when refused.
    Program acquire(const std::string& name)
    {
        auto client = connect_client();
        test_support::require(bool(client), "connect: " + (client ? "" : client.error().describe()));
        auto p = client->acquire(name);
        test_support::require(bool(p), "acquire " + name + ": " + (p ? "" : p.error().describe()));
        return std::move(*p);
    }
    // "shared_stats": udp_stats as a shared instance (the shipped shared
    // program, drop_small, has no map).
    void install_shared_stats()
    {
        install_signed_variant("udp_stats", "shared_stats", [](nlohmann::json& m) { m["instance"] = "shared"; });
    }
    std::string names() const
    {
        std::string out;
        for (const auto& n : service_manager()->stored_names())
            out += n + " ";
        return out;
    }
};

TEST_F(FdStoreTest, WhatTheDaemonStoresFollowsItsLiveInstances)
{
    ASSERT_TRUE(approve("udp_stats", for_anyone()));
    auto per_client = acquire("udp_stats");
    const std::string guard = brokerd::guard_fd_name(per_client.info().id);
    EXPECT_TRUE(wait_stored(guard)) << "stored: " << names();

    ASSERT_NO_FATAL_FAILURE(install_shared_stats());
    ASSERT_TRUE(approve("shared_stats", for_anyone()));
    auto shared = acquire("shared_stats");
    const auto program = brokerd::shared_program_fd_name(shared.info().id);
    EXPECT_TRUE(wait_stored(program)) << "stored: " << names();
    const UniqueFd* stats = shared.map("stats");
    ASSERT_NE(stats, nullptr);
    EXPECT_TRUE(wait_stored(brokerd::shared_map_fd_name(shared.info().id, brokerd::bpf_fd_id(stats->get(), brokerd::BpfFdKind::Map))))
        << "the shared program's map was not stored: " << names();

    auto client = connect_client();
    ASSERT_TRUE(client);
    auto revoked = client->revoke("udp_stats");
    ASSERT_TRUE(revoked) << revoked.error().describe();
    EXPECT_EQ(revoked->cut_instances, std::optional<unsigned>(1));
    EXPECT_TRUE(wait_stored(guard, false)) << "the cut instance's guard stayed in the store: " << names();
    revoked = client->revoke("shared_stats");
    ASSERT_TRUE(revoked) << revoked.error().describe();
    EXPECT_TRUE(wait_stored(program, false)) << "the dropped shared program stayed in the store: " << names();
    // The map's removal is the daemon's next message after the program's.
    for (int i = 0; i < 200 && !names().empty(); ++i)
        std::this_thread::sleep_for(10ms);
    EXPECT_EQ(names(), "") << "a dropped instance left fds in the store";
    EXPECT_EQ(service_manager()->refused(), 0u);
}

// A shared program with a map, restored from the store: the same program
// and map, and what it counted before the crash is still there.
TEST_F(FdStoreTest, ASharedProgramAndItsMapComeBackFromTheStoreAfterKillNine)
{
    ASSERT_NO_FATAL_FAILURE(install_shared_stats());
    ASSERT_TRUE(approve("shared_stats", for_anyone()));
    auto before = acquire("shared_stats");
    LoopbackSocket socket;
    attach_through_ring(socket, before.fd());
    ASSERT_EQ(socket.send_and_receive(3), 3u);
    ASSERT_TRUE(wait_stored(brokerd::shared_program_fd_name(before.info().id))) << "stored: " << names();
    ASSERT_EQ(kill_and_restart_daemon(), "");
    EXPECT_NE(daemon_stderr().find("1 shared instances of a previous run, 1 of them from the fd store"),
              std::string::npos)
        << daemon_stderr();
    auto after = acquire("shared_stats");
    EXPECT_EQ(after.info().id, before.info().id);
    EXPECT_EQ(packets_counted(after), 3u) << "the restored map is not the one the program counted in";
    ASSERT_EQ(socket.send_and_receive(2), 2u);
    EXPECT_EQ(packets_counted(after), 5u);
}

TEST_F(FdStoreTest, ASharedProgramNobodyHoldsKeepsItsIdAcrossKillNine)
{
    ASSERT_TRUE(approve("drop_small", for_anyone()));
    std::uint32_t id = 0;
    {
        auto p = acquire("drop_small");
        ASSERT_TRUE(p.fd().valid());
        id = p.info().id;
        ASSERT_TRUE(wait_stored(brokerd::shared_program_fd_name(id))) << "stored: " << names();
    }  // nobody holds it now but the daemon and the store
    ASSERT_EQ(kill_and_restart_daemon(), "");
    auto again = acquire("drop_small");
    ASSERT_TRUE(again.fd().valid());
    EXPECT_EQ(again.info().id, id) << "the shared program was loaded anew after kill -9";
    EXPECT_NE(daemon_stderr().find("1 shared instances of a previous run, 1 of them from the fd store"),
              std::string::npos)
        << daemon_stderr();
}

TEST_F(FdStoreTest, AStoredFdThatIsNotTheRecordedObjectIsRefusedAndTheInstanceStillCut)
{
    ASSERT_TRUE(approve("udp_stats", for_anyone()));
    auto p = acquire("udp_stats");
    ASSERT_TRUE(p.fd().valid());
    LoopbackSocket socket;
    attach_through_ring(socket, p.fd());
    ASSERT_EQ(socket.send_and_receive(3), 3u);
    ASSERT_EQ(packets_counted(p), 3u);
    const std::string guard = brokerd::guard_fd_name(p.info().id);
    ASSERT_TRUE(wait_stored(guard)) << "stored: " << names();

    // Another map (of the right kind, mmapable, the same size) in its place,
    // and an fd under a name the daemon never gives.
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_MMAPABLE);
    UniqueFd impostor(bpf_map_create(BPF_MAP_TYPE_ARRAY, "impostor", 4, 4096, 1, &opts));
    ASSERT_TRUE(impostor) << test_support::errno_text(errno);
    service_manager()->replace(guard, std::move(impostor));
    service_manager()->replace("not-ours", UniqueFd(::eventfd(0, EFD_CLOEXEC)));
    ASSERT_EQ(kill_and_restart_daemon(), "");

    EXPECT_NE(daemon_stderr().find(guard + " is not the object the state journal recorded"), std::string::npos)
        << daemon_stderr();
    EXPECT_NE(daemon_stderr().find("an fd named \"not-ours\""), std::string::npos) << daemon_stderr();
    EXPECT_TRUE(wait_stored(guard, false)) << "the impostor stayed in the store: " << names();
    EXPECT_TRUE(wait_stored("not-ours", false)) << "the unknown fd stayed in the store: " << names();

    auto client = connect_client();
    ASSERT_TRUE(client);
    auto revoked = client->revoke("udp_stats");
    ASSERT_TRUE(revoked) << revoked.error().describe();
    EXPECT_EQ(revoked->cut_instances, std::optional<unsigned>(1)) << "the instance was lost with its stored guard";
    EXPECT_EQ(socket.send_and_receive(3), 3u);
    EXPECT_EQ(packets_counted(p), 3u) << "the revoked filter went on counting";
}

}  // namespace
}  // namespace bpfbroker::e2e
