// Vendor and admin layers of a policy directory; see layered_dir.h.
#include "policy/layered_dir.h"

#include "policy/paths.h"

#include <algorithm>
#include <cerrno>
#include <iterator>

namespace bpfbroker::policy {

std::string layer_path(Origin origin, std::string_view subdir)
{
    return std::string(origin == Origin::Vendor ? paths::kVendorDir : paths::kAdminDir) + "/" + std::string(subdir);
}

namespace {

// Drops the names past `max_entries` and says so. `unread` names were never
// read (beyond what each layer's listing keeps): they are past it too.
void refuse_past_cap(LayeredDir& out, std::string_view subdir, std::size_t max_entries, std::size_t unread,
                     std::vector<PolicyProblem>& problems)
{
    if (out.names.size() <= max_entries && unread == 0)
        return;
    const std::string why = "past the limit of " + std::to_string(max_entries) + " entries in " + std::string(subdir);
    auto first_past = std::next(out.names.begin(), static_cast<std::ptrdiff_t>(std::min(out.names.size(), max_entries)));
    std::size_t named = 0;
    for (auto it = first_past; it != out.names.end(); ++it, ++named) {
        if (named == kMaxNamedRefusals)
            break;
        problems.push_back({layer_path(it->second, subdir) + "/" + it->first,
                            make_error(ErrorCode::LimitExceeded, why)});
    }
    const std::size_t counted = static_cast<std::size_t>(std::distance(first_past, out.names.end())) - named + unread;
    if (counted > 0)
        problems.push_back({std::string(paths::kVendorDir) + "/" + std::string(subdir) + " and " +
                                std::string(paths::kAdminDir) + "/" + std::string(subdir),
                            make_error(ErrorCode::LimitExceeded,
                                       std::to_string(counted) + " more entries " + why)});
    out.names.erase(first_past, out.names.end());
}

}  // namespace

LayeredDir open_layered_dir(int rootfd, std::string_view subdir, std::size_t max_entries, const FileTrust& trust,
                            std::vector<PolicyProblem>& problems)
{
    LayeredDir out;
    // Each layer keeps a little more than the cap, so that the names just
    // past it can be named; how many more there were is counted.
    const std::size_t keep = max_entries + kMaxNamedRefusals;
    std::size_t unread = 0;
    std::optional<std::string> last_admin_name_read;
    for (Origin origin : {Origin::Vendor, Origin::Admin}) {
        auto rel = layer_path(origin, subdir);
        auto unusable = [&](Error err) {
            err.message = "the " + std::string(origin_name(origin)) + " layer " + rel +
                          " is refused, with every entry in it: " + err.message;
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
        auto listing = list_first_names(dir->get(), keep);
        if (!listing) {
            unusable(std::move(listing).error());
            continue;
        }
        unread += listing->total - listing->names.size();
        if (origin == Origin::Admin && listing->total > listing->names.size() && !listing->names.empty())
            last_admin_name_read = listing->names.back();
        for (const auto& n : listing->names) {
            if (origin == Origin::Admin && is_dev_null_mask(dir->get(), n)) {
                if (out.names.erase(n) > 0)
                    out.masked_vendor_names.push_back(n);
                continue;
            }
            out.names[n] = origin;
        }
        (origin == Origin::Vendor ? out.vendor : out.admin) = std::move(*dir);
    }
    // An admin name never read may be a mask: a vendor name after the last
    // admin name read cannot be known unmasked, so it is not used.
    if (last_admin_name_read)
        std::erase_if(out.names, [&](const auto& kv) {
            if (kv.second != Origin::Vendor || kv.first <= *last_admin_name_read)
                return false;
            ++unread;
            return true;
        });
    refuse_past_cap(out, subdir, max_entries, unread, problems);
    return out;
}

}  // namespace bpfbroker::policy
