// The authorization decision; see decide.h.
#include "policy/decide.h"

#include <algorithm>

namespace bpfbroker::policy {

namespace {

template <typename T>
bool contains(const std::vector<T>& v, const T& x)
{
    return std::find(v.begin(), v.end(), x) != v.end();
}

std::string join(const std::vector<std::string>& items)
{
    std::string out;
    for (const auto& s : items)
        out += (out.empty() ? "" : ", ") + s;
    return out;
}

}  // namespace

bool principals_match(const Principals& who, const Peer& peer)
{
    if (who.anyone)
        return true;
    if (contains(who.uids, peer.uid))
        return true;
    if (!peer.user_name.empty() && contains(who.user_names, peer.user_name))
        return true;
    for (auto g : peer.gids)
        if (contains(who.gids, g))
            return true;
    if (contains(who.gids, peer.gid))
        return true;
    for (const auto& name : peer.group_names)
        if (contains(who.group_names, name))
            return true;
    return false;
}

std::vector<std::string> missing_features(const Manifest& manifest,
                                          const std::set<std::string, std::less<>>& features)
{
    std::vector<std::string> missing;
    for (const auto& f : manifest.requires_features)
        if (!features.contains(f))
            missing.push_back(f);
    return missing;
}

Decision decide_admin(const Peer& peer, bool polkit_reachable)
{
    if (peer.uid == 0)
        return Decision{true, ErrorCode::Internal, "root may administer", false, nullptr};
    if (!polkit_reachable)
        return Decision::deny(ErrorCode::PermissionDenied, "only root may administer bpfbroker without polkit");
    return Decision{true, ErrorCode::Internal, "allowed if polkit agrees (org.bpfbroker.manage)", true, nullptr};
}

Decision decide(const CatalogEntry& entry, const GrantSet& grants, const Peer& peer,
                const std::set<std::string, std::less<>>& features, const Usage& usage, const Limits& limits)
{
    if (!entry.valid() || !entry.manifest)
        return Decision::deny(entry.error.code == ErrorCode::Internal ? ErrorCode::ManifestInvalid : entry.error.code,
                              "program \"" + entry.name + "\" is not usable: " + entry.error.message);

    if (auto missing = missing_features(*entry.manifest, features); !missing.empty())
        return Decision::deny(ErrorCode::Unsupported,
                              "program \"" + entry.name + "\" requires kernel features this kernel lacks: " + join(missing));

    if (grants.is_revoked(entry.name))
        return Decision::deny(ErrorCode::PermissionDenied, "program \"" + entry.name + "\" was revoked by the administrator");

    // A system-scope program sees every process: whatever a grant says, it is
    // for root alone, so a grant to "anyone" cannot leak it by accident.
    if (entry.manifest->scope == Scope::System && peer.uid != 0)
        return Decision::deny(ErrorCode::PermissionDenied,
                              "program \"" + entry.name + "\" has scope system (it sees every process) and is "
                              "granted to root only, not to uid " + std::to_string(peer.uid));

    // Prefer a grant that needs no polkit round trip.
    const Grant* chosen = nullptr;
    bool some_grant_for_other_version = false;
    for (const auto& g : grants.grants) {
        if (g.program != entry.name)
            continue;
        if (!g.matches_entry(entry)) {
            some_grant_for_other_version = true;
            continue;
        }
        if (!principals_match(g.principals, peer))
            continue;
        if (!chosen || (chosen->polkit && !g.polkit))
            chosen = &g;
    }
    if (!chosen) {
        std::string who = "uid " + std::to_string(peer.uid);
        if (!peer.user_name.empty())
            who += " (" + peer.user_name + ")";
        return Decision::deny(ErrorCode::PermissionDenied,
                              some_grant_for_other_version
                                  ? "no grant matches this version of \"" + entry.name + "\" (manifest " +
                                        entry.manifest_sha256.substr(0, 16) +
                                        "...) for " + who + "; it changed since it was approved"
                                  : "no grant allows " + who + " to acquire \"" + entry.name + "\"");
    }

    if (entry.manifest->instance == InstanceMode::PerClient && usage.live_instances >= limits.max_instances_per_uid)
        return Decision::deny(ErrorCode::LimitExceeded,
                              "uid " + std::to_string(peer.uid) + " already holds " +
                                  std::to_string(usage.live_instances) + " live per-client instances (limit " +
                                  std::to_string(limits.max_instances_per_uid) + "); close some first");

    Decision d;
    d.allowed = true;
    d.code = ErrorCode::Internal;
    d.grant = chosen;
    d.needs_polkit = chosen->polkit;
    d.reason = "granted by " + chosen->source;
    return d;
}

}  // namespace bpfbroker::policy
