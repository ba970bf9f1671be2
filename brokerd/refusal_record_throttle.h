// Bounds the audit records a caller can make the daemon write by being
// refused over and over without costing an acquire token: refusals by the
// rate limit itself and by the admin gate. Each uid gets a bucket of
// records (kRefusalRecordsPerSecond a second, bursts as large); past it a
// refusal is counted, not written, and the uid's next throttled refusal
// record that is written carries how many were not (`suppressed=N`). Every other record
// is bounded by the per-uid acquire rate or is an administrator's.
#pragma once

#include "brokerd/limits.h"

#include "base/token_bucket.h"

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace bpfbroker::brokerd {

class RefusalRecordThrottle {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr unsigned kPerSecond = Limits::kRefusalRecordsPerSecond;
    static constexpr std::size_t kMaxTrackedUids = Limits::kRateTrackedUids;

    // Whether `uid`'s refusal now is written: the number of its refusals
    // not written since its last written one, or nullopt when this one is
    // not written either (then it is counted for the uid's next record;
    // past kMaxTrackedUids busy uids, only by the caller's metric).
    std::optional<std::uint64_t> admit(uid_t uid, Clock::time_point now = Clock::now());

private:
    struct PerUid {
        TokenBucket bucket;
        std::uint64_t suppressed = 0;
    };
    std::mutex mutex_;
    std::unordered_map<uid_t, PerUid> per_uid_;
};

}  // namespace bpfbroker::brokerd
