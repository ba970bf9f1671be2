// InstanceTracker: counting follows the kernel's view of which programs are
// alive (real kernel, as root), and the table stays bounded (a substituted
// liveness check, unprivileged).
#include "brokerd/instance_tracker.h"

#include "shipped_program.h"

#include "brokerd/program_loader.h"
#include "policy/catalog.h"
#include "policy/manifest.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace bpfbroker::brokerd {
namespace {


// The kernel frees a program after an RCU grace period once its last
// reference is gone, so "gone" is polled for, with a bound.
template <typename Predicate>
bool eventually(Predicate done, std::chrono::milliseconds limit = std::chrono::seconds(2))
{
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

TEST(instance_tracker, counts_a_program_while_any_fd_to_it_lives)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "loading BPF programs needs root";
    policy::CatalogEntry entry;
    ASSERT_TRUE(testing::shipped_entry("udp_stats", entry));
    ASSERT_EQ(entry.manifest->instance, policy::InstanceMode::PerClient);

    auto instance = std::make_unique<LoadedInstance>();
    {
        auto loaded = load_instance(entry);
        ASSERT_TRUE(loaded) << loaded.error().describe();
        *instance = std::move(*loaded);
    }
    const uid_t uid = 4242;
    const std::uint32_t id = instance->programs.at(0).id;

    InstanceTracker tracker;
    ASSERT_TRUE(tracker.record(uid, id));
    ASSERT_TRUE(tracker.record(uid, id)) << "recording twice is harmless";
    EXPECT_EQ(tracker.live_count(uid), 1u);
    EXPECT_EQ(tracker.live_count(uid + 1), 0u);

    // A client's copy of the program fd keeps it alive after the daemon's goes.
    auto client_copy = duplicate_for_client(instance->programs.at(0).fd);
    ASSERT_TRUE(client_copy);
    instance.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(tracker.live_count(uid), 1u) << "the client still holds the program";

    *client_copy = UniqueFd();
    EXPECT_TRUE(eventually([&] { return tracker.live_count(uid) == 0; }))
        << "program " << id << " still exists 2 s after its last fd closed";
    EXPECT_EQ(tracker.size(), 0u) << "dead ids are forgotten";
    EXPECT_FALSE(kernel_has_program(id));
}

TEST(instance_tracker, bounds_the_table_and_prunes_before_refusing)
{
    std::set<std::uint32_t> alive;
    InstanceTracker tracker(4, [&](std::uint32_t id) { return alive.contains(id); });

    for (std::uint32_t id = 1; id <= 4; ++id) {
        alive.insert(id);
        ASSERT_TRUE(tracker.record(id % 2 == 0 ? 1000u : 1001u, id));
    }
    EXPECT_EQ(tracker.size(), 4u);

    alive.insert(5);
    EXPECT_FALSE(tracker.record(1000, 5)) << "full of live programs: refused";
    EXPECT_EQ(tracker.size(), 4u);

    alive.erase(1);  // uid 1001's program died
    EXPECT_TRUE(tracker.record(1000, 5)) << "a dead entry of another uid makes room";
    EXPECT_EQ(tracker.live_count(1000), 3u);
    EXPECT_EQ(tracker.live_count(1001), 1u);
}

TEST(instance_tracker, record_within_limit_counts_and_records_at_once)
{
    std::set<std::uint32_t> alive{1, 2, 3};
    InstanceTracker tracker(16, [&](std::uint32_t id) { return alive.contains(id); });
    EXPECT_FALSE(tracker.record_within_limit(9, 1, 0));
    ASSERT_TRUE(tracker.record_within_limit(9, 1, 2));
    ASSERT_TRUE(tracker.record_within_limit(9, 2, 2));
    EXPECT_FALSE(tracker.record_within_limit(9, 3, 2)) << "the uid is at its limit";
    EXPECT_TRUE(tracker.record_within_limit(9, 2, 2)) << "an id already counted is not a new instance";
    alive.erase(1);
    EXPECT_TRUE(tracker.record_within_limit(9, 3, 2)) << "a dead instance frees its slot";
    EXPECT_EQ(tracker.live_count(9), 2u);
    EXPECT_TRUE(tracker.record_within_limit(10, 1, 2)) << "limits are per uid";
}

TEST(instance_tracker, keeps_counting_what_it_cannot_check)
{
    // Liveness "unknown" (EPERM, EMFILE...) must not free a slot: the
    // default check only forgets on ENOENT; a substitute returning true for
    // everything models that.
    InstanceTracker tracker(8, [](std::uint32_t) { return true; });
    ASSERT_TRUE(tracker.record(7, 10));
    ASSERT_TRUE(tracker.record(7, 11));
    EXPECT_EQ(tracker.live_count(7), 2u);
}

TEST(instance_tracker, is_safe_to_use_from_several_threads)
{
    InstanceTracker tracker(100000, [](std::uint32_t id) { return id % 3 != 0; });
    std::vector<std::thread> threads;
    for (uid_t uid = 0; uid < 4; ++uid)
        threads.emplace_back([&tracker, uid] {
            for (std::uint32_t i = 1; i <= 3000; ++i) {
                (void)tracker.record(uid, uid * 100000 + i);
                if (i % 100 == 0)
                    (void)tracker.live_count(uid);
            }
        });
    for (auto& t : threads)
        t.join();
    for (uid_t uid = 0; uid < 4; ++uid)
        EXPECT_EQ(tracker.live_count(uid), 2000u) << "uid " << uid;
}

}  // namespace
}  // namespace bpfbroker::brokerd

TEST(instance_tracker, an_instance_lives_while_any_map_handed_out_with_it_lives)
{
    std::set<std::uint32_t> live_programs{1}, live_maps{10, 11};
    bpfbroker::brokerd::InstanceTracker tracker(
        100, [&](std::uint32_t id) { return live_programs.count(id) > 0; },
        [&](std::uint32_t id) { return live_maps.count(id) > 0; });
    ASSERT_TRUE(tracker.record_within_limit(5, 1, 1, {10, 11}));
    live_programs.clear();  // the client closed the program fd but kept the maps
    EXPECT_EQ(tracker.live_count(5), 1u);
    EXPECT_FALSE(tracker.record_within_limit(5, 2, 1, {12})) << "kept map fds still count against the limit";
    live_maps.erase(10);
    EXPECT_EQ(tracker.live_count(5), 1u);
    live_maps.clear();
    EXPECT_EQ(tracker.live_count(5), 0u);
    EXPECT_TRUE(tracker.record_within_limit(5, 2, 1, {12}));
}
