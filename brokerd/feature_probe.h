// What the running kernel can do, found by trying, never by reading version
// strings. The names are those manifests use in "requires"
// (policy::kKnownFeatures) plus the program types the broker loads
// ("prog_type:socket_filter", "prog_type:sk_reuseport").
//
// Every probe is quick (well under a second together) and leaves nothing
// behind: each fd it opens is closed before it returns, and any program it
// manages to load is closed at once.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::brokerd {

inline constexpr std::string_view kFeatureProgTypeSocketFilter = "prog_type:socket_filter";
inline constexpr std::string_view kFeatureProgTypeSkReuseport = "prog_type:sk_reuseport";

struct FeatureProbe {
    std::string name;
    bool available = false;
    std::string detail;  // how it was found, or why not
};

struct FeatureReport {
    std::vector<FeatureProbe> probes;  // program types first, then kKnownFeatures order

    // Names of the available features, for policy::decide.
    [[nodiscard]] std::set<std::string, std::less<>> available() const;
    // The probe of that name, or nullptr.
    [[nodiscard]] const FeatureProbe* find(std::string_view name) const;
    // { "<name>": { "available": bool, "detail": "..." }, ... } for every probe.
    [[nodiscard]] nlohmann::json to_json() const;
};

// Runs every probe. Meant for root (the daemon): without CAP_BPF and
// CAP_SYS_ADMIN the BPF probes report "not available" with the reason.
FeatureReport probe_kernel_features();

}  // namespace bpfbroker::brokerd
