// Vendor and admin layers of a policy directory; see layered_dir.h.
#include "policy/layered_dir.h"

#include "policy/paths.h"

#include <cerrno>

namespace bpfbroker::policy {

std::string layer_path(Origin origin, std::string_view subdir)
{
    return std::string(origin == Origin::Vendor ? paths::kVendorDir : paths::kAdminDir) + "/" + std::string(subdir);
}

LayeredDir open_layered_dir(int rootfd, std::string_view subdir, std::size_t max_entries, const FileTrust& trust,
                            std::vector<PolicyProblem>& problems)
{
    LayeredDir out;
    for (Origin origin : {Origin::Vendor, Origin::Admin}) {
        auto rel = layer_path(origin, subdir);
        auto unusable = [&](Error err) {
            if (origin == Origin::Admin) {
                err.message += "; the vendor " + std::string(subdir) + " is ignored too, since the administrator's masks cannot be read";
                out.names.clear();
                out.masked_vendor_names.clear();
            }
            problems.push_back({rel, std::move(err)});
        };
        auto dir = open_trusted_dir(rootfd, rel, trust);
        if (!dir) {
            if (!(dir.error().code == ErrorCode::SystemError && dir.error().sys_errno == ENOENT))
                unusable(std::move(dir).error());
            continue;
        }
        auto names = list_directory(dir->get(), max_entries);
        if (!names) {
            unusable(std::move(names).error());
            continue;
        }
        for (const auto& n : *names) {
            if (origin == Origin::Admin && is_dev_null_mask(dir->get(), n)) {
                if (out.names.erase(n) > 0)
                    out.masked_vendor_names.push_back(n);
                continue;
            }
            out.names[n] = origin;
        }
        (origin == Origin::Vendor ? out.vendor : out.admin) = std::move(*dir);
    }
    return out;
}

}  // namespace bpfbroker::policy
