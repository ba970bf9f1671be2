// Throttles warnings that callers can trigger (a refused connection, a
// malformed bus call): per key, the first few in each window are logged and
// the rest are counted, and the next logged line says how many were dropped.
// A uid that connects and closes in a loop thus makes a handful of lines a
// minute, not one per attempt, and never slows the loop down with writes.
#pragma once

#include "brokerd/limits.h"

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace bpfbroker::brokerd {

class WarningThrottle {
public:
    using Clock = std::chrono::steady_clock;

    // Distinct keys remembered at once; past it the oldest windows are dropped.
    static constexpr std::size_t kMaxKeys = Limits::kThrottledWarningKeys;

    WarningThrottle(unsigned per_window, std::chrono::seconds window) : per_window_(per_window), window_(window) {}

    // The line to log for `message` under `key` now, or nullopt when it is
    // suppressed. After suppressed lines the next logged one ends with
    // " (N similar warnings suppressed)".
    std::optional<std::string> admit(std::string_view key, std::string message, Clock::time_point now = Clock::now());

private:
    struct Window {
        Clock::time_point start;
        unsigned logged = 0;
        std::size_t suppressed = 0;
    };
    void forget_oldest();

    unsigned per_window_;
    std::chrono::seconds window_;
    std::mutex mutex_;
    std::map<std::string, Window, std::less<>> windows_;
};

}  // namespace bpfbroker::brokerd
