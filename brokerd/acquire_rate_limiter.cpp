// Per-uid acquire rate; see acquire_rate_limiter.h.
#include "brokerd/acquire_rate_limiter.h"

#include <algorithm>

namespace bpfbroker::brokerd {

bool AcquireRateLimiter::allow(uid_t uid, unsigned per_second, std::chrono::steady_clock::time_point now)
{
    const double rate = per_second;
    std::lock_guard lock(mutex_);
    if (buckets_.size() >= kMaxTrackedUids && !buckets_.count(uid)) {
        // A bucket that refilled completely holds no information: drop those.
        std::erase_if(buckets_, [&](const auto& kv) {
            return kv.second.tokens + rate * std::chrono::duration<double>(now - kv.second.at).count() >= rate;
        });
        if (buckets_.size() >= kMaxTrackedUids)
            return false;  // fail closed rather than grow without bound
    }
    auto [it, inserted] = buckets_.try_emplace(uid, Bucket{rate, now});
    auto& b = it->second;
    b.tokens = std::min(rate, b.tokens + rate * std::chrono::duration<double>(now - b.at).count());
    b.at = now;
    if (b.tokens < 1.0)
        return false;
    b.tokens -= 1.0;
    return true;
}

}  // namespace bpfbroker::brokerd
