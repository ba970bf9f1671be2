// Per-uid acquire rate; see acquire_rate_limiter.h.
#include "brokerd/acquire_rate_limiter.h"


namespace bpfbroker::brokerd {

bool AcquireRateLimiter::allow(uid_t uid, unsigned per_second, std::chrono::steady_clock::time_point now)
{
    const double rate = per_second;
    std::lock_guard lock(mutex_);
    if (buckets_.size() >= kMaxTrackedUids && !buckets_.count(uid)) {
        // A bucket that refilled completely holds no information: drop those.
        std::erase_if(buckets_, [&](const auto& kv) { return kv.second.full(rate, now); });
        if (buckets_.size() >= kMaxTrackedUids)
            return false;  // fail closed rather than grow without bound
    }
    auto it = buckets_.try_emplace(uid, rate, now).first;
    return it->second.take(rate, now);
}

}  // namespace bpfbroker::brokerd
