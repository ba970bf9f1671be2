// The daemon's metrics, rendered as OpenMetrics text for `bpfbrokerctl
// metrics` and GetMetrics on both transports.
//
// Cheap on the hot path: an acquire does relaxed atomic increments on slots
// that already exist. Per-program slots are made when a catalog is loaded,
// from the catalog's names — never from a caller's words, so no caller can
// grow the set of label values — and are kept for the daemon's life so that
// counters only ever grow. A request for a name the catalog does not hold
// counts under program="".
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bpfbroker::brokerd {

enum class MetricTransport : std::uint8_t { Socket = 0, Dbus = 1 };
inline constexpr std::size_t kMetricTransports = 2;

// Distinct program names that get a slot of their own (the catalog's cap);
// past it, names share the program="" slot.
inline constexpr std::size_t kMaxProgramSlots = 16384;

// A fixed-bucket histogram of durations, in seconds on the way out.
class DurationHistogram {
public:
    // Upper bounds of the buckets, in seconds; +Inf is implicit.
    static constexpr std::array<double, 12> kBounds = {25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3,
                                                       2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1.0};

    void observe(std::chrono::nanoseconds d) noexcept;

    struct Reading {
        std::array<std::uint64_t, kBounds.size() + 1> cumulative{};  // last: +Inf (= count)
        double sum_seconds = 0;
    };
    [[nodiscard]] Reading read() const noexcept;

private:
    std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> counts_{};
    std::atomic<std::uint64_t> sum_ns_{0};
};

struct ProgramMetrics {
    // [transport][0 denied, 1 allowed]
    std::array<std::array<std::atomic<std::uint64_t>, 2>, kMetricTransports> acquires{};
    std::atomic<std::int64_t> live_instances{0};

    void count_acquire(MetricTransport t, bool allowed) noexcept
    {
        acquires[static_cast<std::size_t>(t)][allowed ? 1 : 0].fetch_add(1, std::memory_order_relaxed);
    }
};

class Metrics {
public:
    struct NameHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    // Read-only after it is made: lookups need no lock.
    using Slots = std::unordered_map<std::string, ProgramMetrics*, NameHash, std::equal_to<>>;

    Metrics() = default;
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    // Slots for `names` (made when missing), as a table the caller keeps
    // with the policy snapshot it belongs to. Called when a catalog loads.
    [[nodiscard]] std::shared_ptr<const Slots> slots_for(const std::vector<std::string>& names);

    // The slot of `name` in `slots`, or the program="" slot.
    [[nodiscard]] ProgramMetrics& program(const Slots* slots, std::string_view name) noexcept;

    DurationHistogram acquire_duration;
    std::atomic<std::uint64_t> revoked_instances{0};   // cut live by a revocation
    std::atomic<std::uint64_t> uncut_instances{0};     // a revocation could not reach (no guard)
    std::atomic<std::uint64_t> audit_records_lost{0};  // a sink refused them (audit_log.h)
    std::atomic<std::uint64_t> audit_refusals_suppressed{0};  // past a uid's budget (refusal_record_throttle.h)

    // OpenMetrics text, ending in "# EOF". `catalog_states`: entries of the
    // current catalog per state name ("valid", "invalid", ...).
    [[nodiscard]] std::string render(const std::map<std::string, std::size_t>& catalog_states) const;

private:
    mutable std::mutex mutex_;  // guards the slot list, not the counters
    std::deque<std::pair<std::string, ProgramMetrics>> slots_;  // stable addresses
    std::unordered_map<std::string, ProgramMetrics*, NameHash, std::equal_to<>> by_name_;
    ProgramMetrics unnamed_;
};

}  // namespace bpfbroker::brokerd
