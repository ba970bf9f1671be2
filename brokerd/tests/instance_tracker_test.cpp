// InstanceTracker: counting follows the kernel's view of which programs are
// alive (real kernel, as root); the kernel is asked only at a uid's limit,
// a deferred free is waited for but a kept map is not let through, and
// reservations hold the limit under concurrency (substituted liveness
// checks, unprivileged).
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
#include <map>
#include <memory>
#include <optional>
#include <algorithm>
#include <atomic>
#include <mutex>
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

// A liveness check over a set of ids the test edits, counting its calls;
// safe to call from the tracker's threads.
class FakeKernel {
public:
    void add_program(std::uint32_t id) { edit([&] { programs_.insert(id); }); }
    void drop_program(std::uint32_t id) { edit([&] { programs_.erase(id); }); }
    void add_map(std::uint32_t id) { edit([&] { maps_.insert(id); }); }
    void drop_map(std::uint32_t id) { edit([&] { maps_.erase(id); }); }
    // The next `n` probes of map `id` still find it, then it is gone: the
    // kernel's deferred free of a released program's maps.
    void free_map_after(std::uint32_t id, unsigned n) { edit([&] { maps_.insert(id); late_[id] = n; }); }

    ProgramLiveness program_check()
    {
        return [this](std::uint32_t id) {
            ++program_probes;
            std::lock_guard lock(mutex_);
            return programs_.contains(id);
        };
    }
    MapLiveness map_check()
    {
        return [this](std::uint32_t id) {
            ++map_probes;
            std::lock_guard lock(mutex_);
            if (auto it = late_.find(id); it != late_.end() && it->second-- == 0) {
                late_.erase(it);
                maps_.erase(id);
            }
            return maps_.contains(id);
        };
    }
    std::atomic<unsigned> program_probes{0};
    std::atomic<unsigned> map_probes{0};

private:
    template <typename F>
    void edit(F f)
    {
        std::lock_guard lock(mutex_);
        f();
    }
    std::mutex mutex_;
    std::set<std::uint32_t> programs_, maps_;
    std::map<std::uint32_t, unsigned> late_;
};

constexpr SettlePolicy kQuickSettle{5, std::chrono::milliseconds(1)};

// Reserves and commits one instance; false when refused.
bool take(InstanceTracker& tracker, uid_t uid, unsigned limit, std::uint32_t prog_id,
          std::vector<std::uint32_t> map_ids = {})
{
    auto slot = tracker.reserve(uid, limit);
    if (!slot)
        return false;
    slot.commit(prog_id, std::move(map_ids));
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
    ASSERT_TRUE(take(tracker, uid, 1, id));
    EXPECT_EQ(tracker.count(uid, 1), 1u);
    EXPECT_EQ(tracker.count(uid + 1, 1), 0u);

    // A client's copy of the program fd keeps it alive after the daemon's goes.
    auto client_copy = duplicate_for_client(instance->programs.at(0).fd);
    ASSERT_TRUE(client_copy);
    instance.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(tracker.count(uid, 1), 1u) << "the client still holds the program";
    EXPECT_FALSE(tracker.reserve(uid, 1)) << "at its limit";

    *client_copy = UniqueFd();
    EXPECT_TRUE(eventually([&] { return tracker.count(uid, 1) == 0; }))
        << "program " << id << " still exists 2 s after its last fd closed";
    EXPECT_EQ(tracker.size(), 0u) << "released instances are forgotten";
    EXPECT_FALSE(kernel_has_program(id));
}

// The churn case against the real kernel: an instance whose program and map
// fds were all just closed must not be counted, however late the kernel
// frees the maps; one whose map fd is kept must be.
TEST(instance_tracker, a_closed_instance_frees_its_slot_at_once_but_a_kept_map_does_not)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "loading BPF programs needs root";
    policy::CatalogEntry entry;
    ASSERT_TRUE(testing::shipped_entry("udp_stats", entry));
    InstanceTracker tracker;
    const uid_t uid = 4243;
    auto load_and_take = [&](std::optional<LoadedInstance>& out) {
        auto loaded = load_instance(entry);
        ASSERT_TRUE(loaded) << loaded.error().describe();
        std::vector<std::uint32_t> maps;
        for (const auto& m : loaded->maps)
            if (m.access != policy::ClientAccess::None)
                maps.push_back(m.id);
        ASSERT_FALSE(maps.empty()) << "udp_stats hands out a map";
        ASSERT_TRUE(take(tracker, uid, 1, loaded->programs.at(0).id, maps));
        out = std::move(*loaded);
    };

    for (int round = 0; round < 20; ++round) {
        std::optional<LoadedInstance> inst;
        load_and_take(inst);
        if (::testing::Test::HasFatalFailure())
            return;
        inst.reset();  // every fd closed: the kernel frees the maps later
        auto slot = tracker.reserve(uid, 1);
        ASSERT_TRUE(slot) << "round " << round << ": a closed instance was still counted";
    }

    std::optional<LoadedInstance> inst;
    load_and_take(inst);
    if (::testing::Test::HasFatalFailure())
        return;
    const std::uint32_t kept_prog = inst->programs.at(0).id;
    auto handed = std::find_if(inst->maps.begin(), inst->maps.end(),
                               [](const LoadedMap& m) { return m.access != policy::ClientAccess::None; });
    auto kept_map = UniqueFd::dup_cloexec(handed->fd.get());
    ASSERT_TRUE(kept_map);
    inst.reset();
    ASSERT_TRUE(eventually([&] { return !kernel_has_program(kept_prog); })) << "the program itself is released";
    EXPECT_FALSE(tracker.reserve(uid, 1)) << "a client keeping the map fd must not escape the limit";
    kept_map = UniqueFd();
    EXPECT_TRUE(eventually([&] { return static_cast<bool>(tracker.reserve(uid, 1)); }));
}

TEST(instance_tracker, asks_the_kernel_nothing_below_the_limit)
{
    FakeKernel kernel;
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), kQuickSettle);
    for (std::uint32_t id = 1; id <= 15; ++id) {
        kernel.add_program(id);
        ASSERT_TRUE(take(tracker, 7, 16, id, {1000 + id}));
        EXPECT_EQ(tracker.count(7, 16), id);
    }
    EXPECT_EQ(kernel.program_probes + kernel.map_probes, 0u) << "an acquire below the limit costs no bpf() call";

    kernel.add_program(16);
    ASSERT_TRUE(take(tracker, 7, 16, 16));
    ASSERT_TRUE(take(tracker, 8, 16, 99)) << "limits are per uid";
    EXPECT_EQ(tracker.count(7, 16), 16u);
    EXPECT_EQ(kernel.program_probes, 16u * (1 + kQuickSettle.reprobes))
        << "at the limit, only this uid's own instances are probed, for one settle window";
    kernel.program_probes = 0;
    EXPECT_EQ(tracker.count(7, 16), 16u);
    EXPECT_EQ(kernel.program_probes, 16u) << "instances held through a window are probed once, without waiting";
}

TEST(instance_tracker, at_the_limit_a_released_instance_frees_its_slot)
{
    FakeKernel kernel;
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), kQuickSettle);
    for (std::uint32_t id : {1u, 2u}) {
        kernel.add_program(id);
        ASSERT_TRUE(take(tracker, 9, 2, id));
    }
    EXPECT_FALSE(tracker.reserve(9, 2)) << "the uid is at its limit";
    EXPECT_FALSE(tracker.reserve(9, 0)) << "a limit of 0 admits nothing";
    kernel.drop_program(1);
    EXPECT_EQ(tracker.count(9, 2), 1u);
    EXPECT_TRUE(take(tracker, 9, 2, 3));
    EXPECT_EQ(tracker.size(), 2u);
}

// A client that keeps every new instance could make each acquire at its
// limit wait a window on the thread serving everyone; the uid's budget of
// waiting bounds that. Probe counts tell waiting (a re-probe per step).
TEST(instance_tracker, a_uid_that_spent_its_budget_of_waiting_is_not_waited_for)
{
    FakeKernel kernel;
    // One window is 1+2+4+8+16 = 31 ms; the budget holds one and does not refill.
    const SettlePolicy policy{5, std::chrono::milliseconds(1), std::chrono::milliseconds(31), std::chrono::milliseconds(0)};
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), policy);
    for (std::uint32_t id : {1u, 2u}) {
        kernel.add_program(id);  // held by the client
        ASSERT_TRUE(take(tracker, 5, 2, id));
    }
    EXPECT_EQ(tracker.count(5, 2), 2u);
    EXPECT_EQ(kernel.program_probes, 2u * (1 + policy.reprobes)) << "one whole window, the budget's all";

    kernel.drop_program(1);
    kernel.add_program(3);
    ASSERT_TRUE(take(tracker, 5, 2, 3)) << "the released instance freed its slot without a wait";
    kernel.program_probes = 0;
    EXPECT_EQ(tracker.count(5, 2), 2u) << "what lingers past the budget counts";
    EXPECT_LE(kernel.program_probes, 2u + 1u) << "the new instance was waited for with the budget spent";
}

TEST(instance_tracker, closing_every_instance_does_not_bring_the_budget_of_waiting_back)
{
    FakeKernel kernel;
    const SettlePolicy policy{5, std::chrono::milliseconds(1), std::chrono::milliseconds(31), std::chrono::milliseconds(0)};
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), policy);
    for (std::uint32_t id : {1u, 2u}) {
        kernel.add_program(id);
        ASSERT_TRUE(take(tracker, 5, 2, id));
    }
    EXPECT_EQ(tracker.count(5, 2), 2u);  // one whole window: the budget's all
    kernel.drop_program(1);
    kernel.drop_program(2);
    EXPECT_EQ(tracker.count(5, 2), 0u) << "both released: the uid holds nothing";
    for (std::uint32_t id : {3u, 4u}) {
        kernel.add_program(id);
        ASSERT_TRUE(take(tracker, 5, 2, id));
    }
    kernel.program_probes = 0;
    EXPECT_EQ(tracker.count(5, 2), 2u);
    EXPECT_EQ(kernel.program_probes, 2u) << "a uid that held nothing for a moment was given a fresh budget";
}

TEST(instance_tracker, the_budget_of_waiting_refills)
{
    FakeKernel kernel;
    const SettlePolicy policy{5, std::chrono::milliseconds(1), std::chrono::milliseconds(31),
                              std::chrono::milliseconds(1000)};
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), policy);
    for (std::uint32_t id : {1u, 2u}) {
        kernel.add_program(id);
        ASSERT_TRUE(take(tracker, 5, 2, id));
    }
    EXPECT_EQ(tracker.count(5, 2), 2u);
    kernel.drop_program(1);
    kernel.add_program(3);
    ASSERT_TRUE(take(tracker, 5, 2, 3));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // refills 100 ms, capped at 31
    kernel.program_probes = 0;
    EXPECT_EQ(tracker.count(5, 2), 2u);
    EXPECT_EQ(kernel.program_probes, 1u + (1 + policy.reprobes)) << "the held one once, the new one for a whole window";
}

// A window asks whether the uid is under its limit: it ends once enough
// instances are gone, not after every lingering one was waited for.
TEST(instance_tracker, a_window_ends_once_the_uid_is_under_its_limit)
{
    FakeKernel kernel;
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), kQuickSettle);
    for (std::uint32_t id = 1; id <= 3; ++id) {
        kernel.add_program(id);  // 2 and 3 held by the client
        kernel.add_map(10 + id);
        ASSERT_TRUE(take(tracker, 5, 3, id, {10 + id}));
    }
    kernel.drop_program(1);
    kernel.free_map_after(11, 1);  // freed at the second look: the first re-probe
    kernel.program_probes = 0;
    EXPECT_TRUE(tracker.reserve(5, 3));
    EXPECT_EQ(kernel.program_probes, 2u * 3u) << "every instance probed, then re-probed once, not for a whole window";
}

// A client that held all its instances (marked held, with their programs)
// and then closes one and asks again at once gets a settle for it, not a
// refusal while the kernel frees the closed one's map; one that keeps
// holding costs no wait however often it asks.
TEST(instance_tracker, a_held_instance_whose_program_is_closed_is_waited_for_again)
{
    FakeKernel kernel;
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), kQuickSettle);
    for (std::uint32_t id : {1u, 2u}) {
        kernel.add_program(id);
        kernel.add_map(10 + id);
        ASSERT_TRUE(take(tracker, 5, 2, id, {10 + id}));
    }
    EXPECT_FALSE(tracker.reserve(5, 2)) << "both held: a whole window, then marked";
    kernel.program_probes = 0;
    EXPECT_FALSE(tracker.reserve(5, 2));
    EXPECT_EQ(kernel.program_probes, 2u) << "held as they were: probed once each, no wait";
    kernel.drop_program(1);
    kernel.free_map_after(11, 2);
    EXPECT_TRUE(tracker.reserve(5, 2)) << "the closed one was counted while its map was being freed";
}

TEST(instance_tracker, waits_for_the_kernels_deferred_free_of_maps)
{
    FakeKernel kernel;
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), kQuickSettle);
    kernel.add_program(1);
    kernel.add_map(10);
    ASSERT_TRUE(take(tracker, 5, 1, 1, {10}));
    // Closed by the client; the kernel has dropped the program but frees its
    // map only after three more looks.
    kernel.drop_program(1);
    kernel.free_map_after(10, 3);
    EXPECT_TRUE(tracker.reserve(5, 1)) << "a deferred free is not a held map";
}

TEST(instance_tracker, a_client_keeping_only_the_maps_stays_counted_and_is_waited_for_once)
{
    FakeKernel kernel;
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), kQuickSettle);
    kernel.add_program(1);
    kernel.add_map(10);
    kernel.add_map(11);
    ASSERT_TRUE(take(tracker, 5, 1, 1, {10, 11}));
    kernel.drop_program(1);  // the client closed the program but kept the maps
    kernel.drop_map(10);

    EXPECT_FALSE(tracker.reserve(5, 1)) << "kept map fds still count against the limit";
    EXPECT_EQ(kernel.map_probes, 2u * (1 + kQuickSettle.reprobes)) << "both maps, once and then once a re-probe";
    kernel.map_probes = 0;
    EXPECT_FALSE(tracker.reserve(5, 1));
    EXPECT_EQ(kernel.map_probes, 2u) << "a map that outlived one window is not waited for again";

    kernel.drop_map(11);
    EXPECT_TRUE(tracker.reserve(5, 1)) << "once the maps go, so does the instance";
}

// The metrics' live-instance gauge: counted up at commit, down only once the
// tracker learns the kernel released the instance; forget_released_now()
// makes it exact on demand, below every uid's limit.
TEST(instance_tracker, a_live_gauge_follows_commits_and_releases)
{
    FakeKernel kernel;
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), kQuickSettle);
    std::atomic<std::int64_t> live{0};
    for (std::uint32_t id : {10u, 11u, 12u}) {
        kernel.add_program(id);
        auto slot = tracker.reserve(1000, 16);
        ASSERT_TRUE(slot);
        slot.commit(id, {}, &live);
    }
    {
        auto dropped = tracker.reserve(1000, 16);  // reserved, never committed: not live
        ASSERT_TRUE(dropped);
    }
    EXPECT_EQ(live.load(), 3);
    kernel.drop_program(11);
    EXPECT_EQ(live.load(), 3) << "below the limit nothing probes by itself";
    tracker.forget_released_now();
    EXPECT_EQ(live.load(), 2);
    EXPECT_EQ(tracker.count(1000, 16), 2u);
    tracker.forget_released_now();
    EXPECT_EQ(live.load(), 2) << "a release is counted down once";
}

TEST(instance_tracker, a_reservation_holds_a_slot_until_committed_or_dropped)
{
    FakeKernel kernel;
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), kQuickSettle);
    {
        auto slot = tracker.reserve(3, 1);
        ASSERT_TRUE(slot);
        EXPECT_EQ(tracker.count(3, 1), 1u);
        EXPECT_FALSE(tracker.reserve(3, 1)) << "a load under way holds the uid's slot";
        auto moved = std::move(slot);
        EXPECT_FALSE(slot);
        EXPECT_TRUE(moved);
    }  // the load failed: dropped without commit
    EXPECT_EQ(tracker.size(), 0u);
    EXPECT_EQ(tracker.count(3, 1), 0u);
    EXPECT_TRUE(tracker.reserve(3, 1)) << "a dropped reservation frees its slot";
}

TEST(instance_tracker, concurrent_requests_of_one_uid_never_pass_the_limit_together)
{
    FakeKernel kernel;
    InstanceTracker tracker(1000, kernel.program_check(), kernel.map_check(), kQuickSettle);
    constexpr unsigned kLimit = 3;
    std::atomic<unsigned> admitted{0};
    std::atomic<std::uint32_t> next_id{1};
    std::vector<std::thread> threads;
    for (int t = 0; t < 12; ++t)
        threads.emplace_back([&] {
            auto slot = tracker.reserve(11, kLimit);
            if (!slot)
                return;
            const auto id = next_id++;
            kernel.add_program(id);  // "loaded"
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            slot.commit(id, {});
            ++admitted;
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(admitted, kLimit);
    EXPECT_EQ(tracker.count(11, kLimit), kLimit);
}

TEST(instance_tracker, bounds_the_table_and_probes_everyone_only_when_full)
{
    FakeKernel kernel;
    InstanceTracker tracker(4, kernel.program_check(), kernel.map_check(), kQuickSettle);
    for (std::uint32_t id = 1; id <= 4; ++id) {
        kernel.add_program(id);
        ASSERT_TRUE(take(tracker, id % 2 == 0 ? 1000u : 1001u, 16, id));
    }
    EXPECT_EQ(tracker.size(), 4u);
    EXPECT_FALSE(tracker.reserve(1000, 16)) << "full of live programs: refused";
    EXPECT_EQ(tracker.size(), 4u);

    kernel.drop_program(1);  // uid 1001's program was released
    EXPECT_TRUE(take(tracker, 1000, 16, 5)) << "a released instance of another uid makes room";
    EXPECT_EQ(tracker.count(1000, 16), 3u);
    EXPECT_EQ(tracker.count(1001, 16), 1u);
}

TEST(instance_tracker, keeps_counting_what_it_cannot_check)
{
    // Liveness "unknown" (EPERM, EMFILE...) must not free a slot: the
    // default check only forgets on ENOENT; a substitute returning true for
    // everything models that.
    InstanceTracker tracker(8, [](std::uint32_t) { return true; }, [](std::uint32_t) { return true; }, kQuickSettle);
    ASSERT_TRUE(take(tracker, 7, 2, 10));
    ASSERT_TRUE(take(tracker, 7, 2, 11));
    EXPECT_EQ(tracker.count(7, 2), 2u);
    EXPECT_FALSE(tracker.reserve(7, 2));
}

TEST(instance_tracker, is_safe_to_use_from_several_threads)
{
    // Programs whose id is a multiple of 3 are released at once; each uid
    // keeps its limit's worth of the others.
    InstanceTracker tracker(100000, [](std::uint32_t id) { return id % 3 != 0; }, [](std::uint32_t) { return false; },
                            kQuickSettle);
    constexpr unsigned kLimit = 50;
    std::vector<std::thread> threads;
    for (uid_t uid = 0; uid < 4; ++uid)
        threads.emplace_back([&tracker, uid] {
            for (std::uint32_t i = 1; i <= 3000; ++i)
                (void)take(tracker, uid, kLimit, uid * 100000 + i);
        });
    for (auto& t : threads)
        t.join();
    for (uid_t uid = 0; uid < 4; ++uid)
        EXPECT_EQ(tracker.count(uid, kLimit), kLimit) << "uid " << uid;
}

}  // namespace
}  // namespace bpfbroker::brokerd

namespace bpfbroker::brokerd {
namespace {

TEST(instance_tracker, waits_for_a_program_released_late)
{
    // Under load the kernel can finish even a program's release after the
    // client's close() returned (a deferred fput): within the window, it
    // does not count.
    std::atomic<int> looks_left{3};
    InstanceTracker tracker(
        100, [&](std::uint32_t) { return looks_left-- > 0; }, [](std::uint32_t) { return false; }, kQuickSettle);
    ASSERT_TRUE(take(tracker, 6, 1, 1));
    EXPECT_TRUE(tracker.reserve(6, 1)) << "a release in progress is not a held instance";
}

}  // namespace
}  // namespace bpfbroker::brokerd
