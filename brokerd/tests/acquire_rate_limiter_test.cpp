// The per-uid acquire bucket: bursts up to the rate, refills with time,
// independent per uid.
#include "brokerd/acquire_rate_limiter.h"

#include <gtest/gtest.h>

using bpfbroker::brokerd::AcquireRateLimiter;
using namespace std::chrono_literals;

TEST(acquire_rate_limiter, bursts_to_the_rate_then_refills)
{
    AcquireRateLimiter limiter;
    auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    for (int i = 0; i < 10; ++i)
        EXPECT_TRUE(limiter.allow(1000, 10, t0)) << i;
    EXPECT_FALSE(limiter.allow(1000, 10, t0));
    EXPECT_TRUE(limiter.allow(1001, 10, t0)) << "another uid has its own bucket";
    EXPECT_FALSE(limiter.allow(1000, 10, t0 + 50ms)) << "half a token";
    EXPECT_TRUE(limiter.allow(1000, 10, t0 + 100ms));
    EXPECT_FALSE(limiter.allow(1000, 10, t0 + 100ms));
}
