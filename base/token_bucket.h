// A token bucket: refills at `rate` tokens a second up to `rate` (a burst of
// one second's worth), and each admitted event takes one token. The one
// rate rule of the daemon: per uid for acquires, per connection for calls.
#pragma once

#include <algorithm>
#include <chrono>

namespace bpfbroker {

class TokenBucket {
public:
    using Clock = std::chrono::steady_clock;

    TokenBucket(double initial_tokens, Clock::time_point now) : tokens_(initial_tokens), at_(now) {}

    // Refills for the time since the last call, then takes a token if one is there.
    bool take(double rate, Clock::time_point now)
    {
        tokens_ = level(rate, now);
        at_ = std::max(at_, now);  // a stamp older than the last (a loop's turn start) adds nothing
        if (tokens_ < 1.0)
            return false;
        tokens_ -= 1.0;
        return true;
    }

    // True when the bucket has refilled completely: it then says nothing
    // that a new bucket would not, and may be forgotten.
    [[nodiscard]] bool full(double rate, Clock::time_point now) const { return level(rate, now) >= rate; }

private:
    [[nodiscard]] double level(double rate, Clock::time_point now) const
    {
        const auto elapsed = std::max(now - at_, Clock::duration::zero());
        return std::min(rate, tokens_ + rate * std::chrono::duration<double>(elapsed).count());
    }

    double tokens_;
    Clock::time_point at_;
};

}  // namespace bpfbroker
