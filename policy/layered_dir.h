// The two layers of every policy directory: usr/lib/bpfbroker/SUBDIR from
// packages and etc/bpfbroker/SUBDIR from the administrator. An /etc entry
// masks the vendor entry of the same name; an /etc link to /dev/null masks
// it without replacing it.
//
// Fail closed: when the /etc layer exists but cannot be used (unsafe,
// unreadable, too large), its masks cannot be honoured, so the vendor layer
// is dropped too rather than used unmasked.
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

LayeredDir open_layered_dir(int rootfd, std::string_view subdir, std::size_t max_entries, const FileTrust& trust,
                            std::vector<PolicyProblem>& problems);

// "usr/lib/bpfbroker/keys.d" for (Vendor, "keys.d").
std::string layer_path(Origin origin, std::string_view subdir);

}  // namespace bpfbroker::policy
