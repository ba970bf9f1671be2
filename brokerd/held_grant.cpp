// Judging a held instance against the current policy; see held_grant.h.
#include "brokerd/held_grant.h"

#include <algorithm>
#include <limits>

namespace bpfbroker::brokerd {

namespace {

bool key_trusted(const policy::KeyRing& keys, const std::string& key_id)
{
    return std::any_of(keys.keys.begin(), keys.keys.end(),
                       [&](const policy::TrustedKey& k) { return k.key.key_id() == key_id; });
}

}  // namespace

std::optional<std::string> grant_gone(const HeldGrant& held, const policy::Catalog& catalog,
                                      const policy::GrantSet& grants,
                                      const std::set<std::string, std::less<>>& features)
{
    const auto* entry = catalog.find(held.program);
    if (!entry)
        return "\"" + held.program + "\" is no longer in the catalog";
    if (entry->manifest_sha256 == held.manifest_sha256) {
        const policy::Limits unlimited{std::numeric_limits<unsigned>::max()};
        auto d = policy::decide(*entry, grants, held.peer, features, policy::Usage{0}, unlimited);
        if (d.allowed)
            return std::nullopt;  // a grant that needs polkit was agreed to at the acquire
        return d.reason;
    }
    // The catalog holds another version now.
    if (grants.is_revoked(held.program))
        return "program \"" + held.program + "\" was revoked by the administrator";
    if (!key_trusted(catalog.keys, held.signer_key_id))
        return "the key " + held.signer_key_id.substr(0, 16) + "... that signed the running version is no longer trusted";
    const bool by_signer = std::any_of(grants.grants.begin(), grants.grants.end(), [&](const policy::Grant& g) {
        return g.program == held.program && g.match == policy::MatchKind::Signer &&
               g.match_value == held.signer_key_id && policy::principals_match(g.principals, held.peer);
    });
    if (by_signer)
        return std::nullopt;
    return "\"" + held.program + "\" was replaced by manifest " + entry->manifest_sha256.substr(0, 16) +
           "...; no grant by signer covers the running version " + held.manifest_sha256.substr(0, 16) + "...";
}

bool holds_as(const HeldGrant& held, const policy::CatalogEntry& entry, const policy::Peer& peer)
{
    return held.peer == peer && held.manifest_sha256 == entry.manifest_sha256 &&
           held.signer_key_id == entry.signer_key_id && held.program == entry.name;
}

}  // namespace bpfbroker::brokerd
