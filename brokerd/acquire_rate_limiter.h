// A per-uid token bucket for acquires, shared by both transports: every
// acquire may load a program, so the rate a uid can make the kernel verify
// programs is bounded whether it asks over one connection, many, or D-Bus.
// The Broker keeps a second one for listings (each judges the catalog).
#pragma once

#include "brokerd/limits.h"

#include "base/token_bucket.h"

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <mutex>
#include <unordered_map>

namespace bpfbroker::brokerd {

class AcquireRateLimiter {
public:
    // Remembering a bucket per uid costs a few bytes; past this many uids,
    // full (idle) buckets are forgotten first.
    static constexpr std::size_t kMaxTrackedUids = Limits::kRateTrackedUids;

    // True when `uid` may make one more acquire now at `per_second`
    // sustained (bursts up to `per_second`).
    bool allow(uid_t uid, unsigned per_second, std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

private:
    std::mutex mutex_;
    std::unordered_map<uid_t, TokenBucket> buckets_;
};

}  // namespace bpfbroker::brokerd
