// Throttled caller-triggered warnings; see warning_throttle.h.
#include "brokerd/warning_throttle.h"

#include <algorithm>

namespace bpfbroker::brokerd {

std::optional<std::string> WarningThrottle::admit(std::string_view key, std::string message, Clock::time_point now)
{
    std::lock_guard lock(mutex_);
    auto it = windows_.find(key);
    if (it == windows_.end()) {
        if (windows_.size() >= kMaxKeys)
            forget_oldest();
        it = windows_.emplace(std::string(key), Window{now, 0, 0}).first;
    }
    auto& w = it->second;
    if (now - w.start >= window_) {
        w.start = now;
        w.logged = 0;  // `suppressed` is reported by the next line logged
    }
    if (w.logged >= per_window_) {
        ++w.suppressed;
        return std::nullopt;
    }
    ++w.logged;
    if (w.suppressed > 0) {
        message += " (" + std::to_string(w.suppressed) + " similar warnings suppressed)";
        w.suppressed = 0;
    }
    return message;
}

void WarningThrottle::forget_oldest()
{
    auto oldest = std::min_element(windows_.begin(), windows_.end(),
                                   [](const auto& a, const auto& b) { return a.second.start < b.second.start; });
    if (oldest != windows_.end())
        windows_.erase(oldest);
}

}  // namespace bpfbroker::brokerd
