// Reading samples out of OpenMetrics text; see openmetrics_text.h.
#include "support/openmetrics_text.h"

#include <cstdlib>

namespace bpfbroker::test_support {

std::optional<double> metric_sample(std::string_view text, std::string_view series)
{
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string_view::npos)
            end = text.size();
        auto line = text.substr(start, end - start);
        if (line.size() > series.size() && line.substr(0, series.size()) == series && line[series.size()] == ' ')
            return std::strtod(std::string(line.substr(series.size() + 1)).c_str(), nullptr);
        start = end + 1;
    }
    return std::nullopt;
}

double metric_or_zero(std::string_view text, std::string_view series)
{
    return metric_sample(text, series).value_or(0);
}

std::string acquires_series(std::string_view program, std::string_view transport, std::string_view decision)
{
    return "bpfbroker_acquires_total{program=\"" + std::string(program) + "\",transport=\"" + std::string(transport) +
           "\",decision=\"" + std::string(decision) + "\"}";
}

}  // namespace bpfbroker::test_support
