// Per-uid bound on refusal records; see refusal_record_throttle.h.
#include "brokerd/refusal_record_throttle.h"

#include <utility>

namespace bpfbroker::brokerd {

std::optional<std::uint64_t> RefusalRecordThrottle::admit(uid_t uid, Clock::time_point now)
{
    constexpr double rate = kPerSecond;
    std::lock_guard lock(mutex_);
    if (per_uid_.size() >= kMaxTrackedUids && !per_uid_.count(uid)) {
        // A full bucket with nothing counted says nothing a new one would not.
        std::erase_if(per_uid_, [&](const auto& kv) { return kv.second.suppressed == 0 && kv.second.bucket.full(rate, now); });
        if (per_uid_.size() >= kMaxTrackedUids)
            return std::nullopt;  // rather than grow without bound
    }
    auto& u = per_uid_.try_emplace(uid, PerUid{TokenBucket(rate, now)}).first->second;
    if (!u.bucket.take(rate, now)) {
        ++u.suppressed;
        return std::nullopt;
    }
    return std::exchange(u.suppressed, 0);
}

}  // namespace bpfbroker::brokerd
