// The per-uid budget of refusal records: a burst of kPerSecond, then
// refusals counted and handed to the uid's next written record; uids
// apart; the table bounded, forgetting only uids with nothing counted.
#include "brokerd/refusal_record_throttle.h"

#include <gtest/gtest.h>

using bpfbroker::brokerd::RefusalRecordThrottle;
using namespace std::chrono_literals;

namespace {

constexpr unsigned kBurst = RefusalRecordThrottle::kPerSecond;
const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

}  // namespace

TEST(refusal_record_throttle, writes_a_burst_then_counts_and_hands_the_count_to_the_next_record)
{
    RefusalRecordThrottle throttle;
    for (unsigned i = 0; i < kBurst; ++i) {
        auto admitted = throttle.admit(1000, t0);
        ASSERT_TRUE(admitted) << i;
        EXPECT_EQ(*admitted, 0u);
    }
    for (int i = 0; i < 500; ++i)
        EXPECT_FALSE(throttle.admit(1000, t0)) << i;
    EXPECT_EQ(throttle.admit(1001, t0).value_or(99), 0u) << "another uid has its own budget";
    auto next = throttle.admit(1000, t0 + 1000ms / kBurst + 1ms);
    ASSERT_TRUE(next) << "a refilled token writes a record again";
    EXPECT_EQ(*next, 500u) << "the record carries what was not written";
    EXPECT_FALSE(throttle.admit(1000, t0 + 1000ms / kBurst + 1ms));
    EXPECT_EQ(throttle.admit(1000, t0 + 2s).value_or(99), 1u) << "counted once, handed on once";
}

TEST(refusal_record_throttle, a_full_table_refuses_new_uids_until_idle_ones_can_be_forgotten)
{
    RefusalRecordThrottle throttle;
    const auto n = static_cast<uid_t>(RefusalRecordThrottle::kMaxTrackedUids);
    for (uid_t uid = 0; uid < n; ++uid)
        ASSERT_TRUE(throttle.admit(uid, t0)) << uid;
    for (unsigned i = 1; i < kBurst; ++i)
        ASSERT_TRUE(throttle.admit(7, t0)) << i;
    EXPECT_FALSE(throttle.admit(7, t0)) << "uid 7 spent its burst";
    EXPECT_FALSE(throttle.admit(n, t0)) << "a new uid past the table's bound, with no bucket refilled yet";
    EXPECT_TRUE(throttle.admit(n, t0 + 10s)) << "refilled buckets with nothing counted are forgotten";
    EXPECT_EQ(throttle.admit(7, t0 + 10s).value_or(99), 1u) << "uid 7's count, held while it had one, survived";
}
