// The token bucket both rate limits use.
#include "base/token_bucket.h"

#include <gtest/gtest.h>

namespace bpfbroker {
namespace {

using namespace std::chrono_literals;

TEST(token_bucket, a_burst_of_one_seconds_worth_then_the_rate)
{
    auto t0 = TokenBucket::Clock::time_point{} + 1h;
    TokenBucket b(10, t0);
    int taken = 0;
    while (b.take(10, t0))
        ++taken;
    EXPECT_EQ(taken, 10);
    EXPECT_FALSE(b.take(10, t0 + 50ms));  // half a token
    EXPECT_TRUE(b.take(10, t0 + 100ms));  // one token back
    EXPECT_FALSE(b.take(10, t0 + 100ms));
}

TEST(token_bucket, refills_to_the_rate_and_no_further)
{
    auto t0 = TokenBucket::Clock::time_point{} + 1h;
    TokenBucket b(0, t0);
    EXPECT_FALSE(b.full(5, t0));
    EXPECT_TRUE(b.full(5, t0 + 1s));
    int taken = 0;
    while (b.take(5, t0 + 1h))
        ++taken;
    EXPECT_EQ(taken, 5);  // an hour idle is still a burst of one second
}

TEST(token_bucket, a_stamp_older_than_the_last_neither_takes_nor_gives_time)
{
    // The socket loop stamps a turn once; a connection accepted during that
    // turn has a bucket made a little later than the stamp of its first call.
    auto t0 = TokenBucket::Clock::time_point{} + 1h;
    TokenBucket b(1, t0 + 10ms);
    EXPECT_TRUE(b.take(10, t0));       // the burst is whole, not shrunk by -10 ms
    EXPECT_FALSE(b.take(10, t0 + 5ms));
    EXPECT_FALSE(b.take(10, t0 + 90ms));  // 80 ms after the bucket's stamp: 0.8 token
    EXPECT_TRUE(b.take(10, t0 + 110ms));
}

}  // namespace
}  // namespace bpfbroker
