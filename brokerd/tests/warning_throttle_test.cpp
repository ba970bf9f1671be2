// The throttle for caller-triggered warnings: a few lines per key and
// window, the rest counted and reported by the next line logged.
#include "brokerd/warning_throttle.h"

#include <gtest/gtest.h>

using bpfbroker::brokerd::WarningThrottle;
using namespace std::chrono_literals;

TEST(warning_throttle, logs_a_few_per_window_then_suppresses)
{
    WarningThrottle t(3, 60s);
    auto now = WarningThrottle::Clock::now();
    int logged = 0;
    for (int i = 0; i < 20000; ++i)
        if (t.admit("connection-limit uid=65534", "refused", now))
            ++logged;
    EXPECT_EQ(logged, 3);
}

TEST(warning_throttle, next_window_reports_how_many_were_suppressed)
{
    WarningThrottle t(1, 60s);
    auto now = WarningThrottle::Clock::now();
    EXPECT_EQ(t.admit("k", "refused", now), "refused");
    EXPECT_FALSE(t.admit("k", "refused", now + 1s));
    EXPECT_FALSE(t.admit("k", "refused", now + 2s));
    EXPECT_EQ(t.admit("k", "refused", now + 61s), "refused (2 similar warnings suppressed)");
    EXPECT_EQ(t.admit("k", "refused", now + 200s), "refused");
}

TEST(warning_throttle, keys_are_throttled_apart)
{
    WarningThrottle t(1, 60s);
    auto now = WarningThrottle::Clock::now();
    EXPECT_TRUE(t.admit("uid=1", "a", now));
    EXPECT_FALSE(t.admit("uid=1", "a", now));
    EXPECT_TRUE(t.admit("uid=2", "b", now)) << "one uid's flood silenced another's warning";
}

TEST(warning_throttle, remembers_a_bounded_number_of_keys)
{
    WarningThrottle t(1, 60s);
    auto now = WarningThrottle::Clock::now();
    for (std::size_t i = 0; i < 3 * WarningThrottle::kMaxKeys; ++i)
        EXPECT_TRUE(t.admit("uid=" + std::to_string(i), "x", now + std::chrono::milliseconds(i)));
    // The newest keys are still remembered (and throttled).
    EXPECT_FALSE(t.admit("uid=" + std::to_string(3 * WarningThrottle::kMaxKeys - 1), "x", now + std::chrono::milliseconds(3 * WarningThrottle::kMaxKeys)));
}
