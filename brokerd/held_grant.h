// Whether what a caller holds is still granted: the question a revocation
// asks of every live instance after the policy changed (revoke, a removed
// approval, a masked signer key, an upgrade past a hash grant, a program
// removed from the catalog). A pure function of the policy and what was
// recorded at the acquire, so one place answers it for every kind of
// instance.
#pragma once

#include "policy/catalog.h"
#include "policy/decide.h"
#include "policy/grants.h"

#include <optional>
#include <set>
#include <string>

namespace bpfbroker::brokerd {

// What the broker records of an acquire to judge it again later.
struct HeldGrant {
    std::string program;          // catalog name
    policy::Peer peer;            // the caller as the kernel or the bus vouched for it
    std::string manifest_sha256;  // of the version that was loaded
    std::string signer_key_id;    // the key that signed that version
};

// Whether `held` already records `peer` holding `entry`'s version (a repeat
// acquire then leaves it as it is).
bool holds_as(const HeldGrant& held, const policy::CatalogEntry& entry, const policy::Peer& peer);

// Why `held` is no longer granted under this policy, or nullopt while it
// still is. The same version still in the catalog is judged by decide()
// (limits aside: a held instance is within them by construction). Another
// version in its place keeps the held one only through a grant by signer
// that covers it, with that key still trusted: a grant by hash names one
// version, and an upgrade ends it.
std::optional<std::string> grant_gone(const HeldGrant& held, const policy::Catalog& catalog,
                                      const policy::GrantSet& grants,
                                      const std::set<std::string, std::less<>>& features);

}  // namespace bpfbroker::brokerd
