// Reading samples out of the daemon's OpenMetrics text in tests: the value
// of one sample line, named exactly as it is written (name and labels).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bpfbroker::test_support {

// The value of the sample `series` (e.g. `bpfbroker_live_instances{program="x"}`)
// in `text`, or nullopt when no line starts with it.
std::optional<double> metric_sample(std::string_view text, std::string_view series);

// The sample, or 0 when it is absent (counters at zero are not written).
double metric_or_zero(std::string_view text, std::string_view series);

// `bpfbroker_acquires_total{program="P",transport="T",decision="D"}`.
std::string acquires_series(std::string_view program, std::string_view transport, std::string_view decision);

}  // namespace bpfbroker::test_support
