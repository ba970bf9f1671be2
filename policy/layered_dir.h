// The two layers of every policy directory: usr/lib/bpfbroker/SUBDIR from
// packages and etc/bpfbroker/SUBDIR from the administrator. An /etc entry
// masks the vendor entry of the same name; an /etc link to /dev/null masks
// it without replacing it.
//
// Fail closed: when the /etc layer exists but cannot be used (unsafe,
// unreadable), its masks cannot be honoured, so the vendor layer is dropped
// too rather than used unmasked. A refused layer is reported as a problem
// on the layer's own path, saying which check failed.
//
// Bounded, never all or nothing: at most `max_entries` names are used, the
// first in name order; the names past them are refused one by one (named as
// problems, up to kMaxNamedRefusals, then counted in one more problem).
#pragma once

#include "policy/catalog.h"
#include "policy/secure_file.h"

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::policy {

struct LayeredDir {
    std::optional<UniqueFd> vendor;
    std::optional<UniqueFd> admin;
    std::map<std::string, Origin> names;  // winner per name; masked names absent
    std::vector<std::string> masked_vendor_names;

    // The opened directory an entry of `origin` lives in.
    [[nodiscard]] int dir_of(Origin origin) const { return (origin == Origin::Vendor ? vendor : admin)->get(); }
};

// Names past the cap that are reported one by one; the rest are counted.
inline constexpr std::size_t kMaxNamedRefusals = 256;

LayeredDir open_layered_dir(int rootfd, std::string_view subdir, std::size_t max_entries, const FileTrust& trust,
                            std::vector<PolicyProblem>& problems);

// "usr/lib/bpfbroker/keys.d" for (Vendor, "keys.d").
std::string layer_path(Origin origin, std::string_view subdir);

}  // namespace bpfbroker::policy
