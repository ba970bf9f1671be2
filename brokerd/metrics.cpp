// The daemon's metrics; see metrics.h.
#include "brokerd/metrics.h"

#include <cstdio>

namespace bpfbroker::brokerd {

namespace {

constexpr std::array<const char*, kMetricTransports> kTransportNames = {"socket", "dbus"};

// OpenMetrics label values escape backslash, double quote and newline.
std::string label_value(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '\\' || c == '"')
            out += '\\', out += c;
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string number(double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

}  // namespace

void DurationHistogram::observe(std::chrono::nanoseconds d) noexcept
{
    auto ns = d.count() < 0 ? 0 : static_cast<std::uint64_t>(d.count());
    double seconds = static_cast<double>(ns) / 1e9;
    std::size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i])
        ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
}

DurationHistogram::Reading DurationHistogram::read() const noexcept
{
    Reading r;
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
        running += counts_[i].load(std::memory_order_relaxed);
        r.cumulative[i] = running;
    }
    r.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return r;
}

std::shared_ptr<const Metrics::Slots> Metrics::slots_for(const std::vector<std::string>& names)
{
    auto table = std::make_shared<Slots>();
    std::lock_guard lock(mutex_);
    for (const auto& name : names) {
        auto it = by_name_.find(name);
        if (it == by_name_.end()) {
            if (slots_.size() >= kMaxProgramSlots)
                continue;  // counted under program=""
            auto& slot = slots_.emplace_back(std::piecewise_construct, std::forward_as_tuple(name),
                                             std::forward_as_tuple());
            it = by_name_.emplace(name, &slot.second).first;
        }
        table->emplace(name, it->second);
    }
    return table;
}

ProgramMetrics& Metrics::program(const Slots* slots, std::string_view name) noexcept
{
    if (slots)
        if (auto it = slots->find(name); it != slots->end())
            return *it->second;
    return unnamed_;
}

std::string Metrics::render(const std::map<std::string, std::size_t>& catalog_states) const
{
    std::string out;
    std::lock_guard lock(mutex_);
    auto each_program = [&](auto&& fn) {
        for (const auto& [name, slot] : slots_)
            fn(std::string_view(name), slot);
        fn(std::string_view(), unnamed_);
    };

    out += "# TYPE bpfbroker_acquires counter\n";
    out += "# HELP bpfbroker_acquires Acquire requests by program, transport and decision.\n";
    each_program([&](std::string_view name, const ProgramMetrics& m) {
        for (std::size_t t = 0; t < kMetricTransports; ++t)
            for (int allowed = 0; allowed < 2; ++allowed) {
                auto n = m.acquires[t][static_cast<std::size_t>(allowed)].load(std::memory_order_relaxed);
                if (n == 0)
                    continue;
                out += "bpfbroker_acquires_total{program=\"" + label_value(name) + "\",transport=\"" +
                       kTransportNames[t] + "\",decision=\"" + (allowed ? "allowed" : "denied") + "\"} " +
                       std::to_string(n) + "\n";
            }
    });

    out += "# TYPE bpfbroker_live_instances gauge\n";
    out += "# HELP bpfbroker_live_instances Instances handed out that the kernel still holds.\n";
    each_program([&](std::string_view name, const ProgramMetrics& m) {
        auto n = m.live_instances.load(std::memory_order_relaxed);
        if (name.empty() && n == 0)
            return;
        out += "bpfbroker_live_instances{program=\"" + label_value(name) + "\"} " + std::to_string(n) + "\n";
    });

    auto h = acquire_duration.read();
    out += "# TYPE bpfbroker_acquire_duration_seconds histogram\n";
    out += "# HELP bpfbroker_acquire_duration_seconds Time from a decided acquire to its hand-out.\n";
    for (std::size_t i = 0; i < DurationHistogram::kBounds.size(); ++i)
        out += "bpfbroker_acquire_duration_seconds_bucket{le=\"" + number(DurationHistogram::kBounds[i]) + "\"} " +
               std::to_string(h.cumulative[i]) + "\n";
    out += "bpfbroker_acquire_duration_seconds_bucket{le=\"+Inf\"} " + std::to_string(h.cumulative.back()) + "\n";
    out += "bpfbroker_acquire_duration_seconds_sum " + number(h.sum_seconds) + "\n";
    out += "bpfbroker_acquire_duration_seconds_count " + std::to_string(h.cumulative.back()) + "\n";

    out += "# TYPE bpfbroker_catalog_programs gauge\n";
    out += "# HELP bpfbroker_catalog_programs Catalog entries by state.\n";
    for (const auto& [state, n] : catalog_states)
        out += "bpfbroker_catalog_programs{state=\"" + label_value(state) + "\"} " + std::to_string(n) + "\n";

    out += "# TYPE bpfbroker_revoked_instances counter\n";
    out += "# HELP bpfbroker_revoked_instances Live instances a revocation cut.\n";
    out += "bpfbroker_revoked_instances_total " + std::to_string(revoked_instances.load(std::memory_order_relaxed)) + "\n";
    out += "# TYPE bpfbroker_uncut_instances counter\n";
    out += "# HELP bpfbroker_uncut_instances Live instances a revocation could not reach (no guard).\n";
    out += "bpfbroker_uncut_instances_total " + std::to_string(uncut_instances.load(std::memory_order_relaxed)) + "\n";
    out += "# TYPE bpfbroker_audit_records_lost counter\n";
    out += "# HELP bpfbroker_audit_records_lost Audit records a sink refused (no hand-out goes with one).\n";
    out += "bpfbroker_audit_records_lost_total " + std::to_string(audit_records_lost.load(std::memory_order_relaxed)) +
           "\n";
    out += "# TYPE bpfbroker_audit_refusals_suppressed counter\n";
    out += "# HELP bpfbroker_audit_refusals_suppressed Refusals past a uid's budget of refusal records: counted, not "
           "recorded one by one.\n";
    out += "bpfbroker_audit_refusals_suppressed_total " +
           std::to_string(audit_refusals_suppressed.load(std::memory_order_relaxed)) + "\n";
    out += "# EOF\n";
    return out;
}

}  // namespace bpfbroker::brokerd
