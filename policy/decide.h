// The authorization decision: a pure function of the catalog entry, the
// grants, the caller's identity (taken from the transport, never from the
// request), the kernel's features and the caller's current usage.
#pragma once

#include "policy/catalog.h"
#include "policy/grants.h"

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

namespace bpfbroker::policy {

// Who is asking, as the transport established it (SO_PEERCRED, the bus's
// recorded credentials) and NSS resolved it.
struct Peer {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    pid_t pid = 0;
    std::vector<gid_t> gids;                // supplementary groups, including gid
    std::string user_name;                  // empty when uid has no name
    std::vector<std::string> group_names;   // names of gids that have one

    bool operator==(const Peer&) const = default;
};

struct Limits {
    unsigned max_instances_per_uid = 16;    // live per-client instances
};

struct Usage {
    unsigned live_instances = 0;            // this uid's live per-client instances
};

struct Decision {
    bool allowed = false;
    ErrorCode code = ErrorCode::PermissionDenied;  // when denied
    std::string reason;                            // for the caller and the audit log
    bool needs_polkit = false;                     // allowed only if polkit also agrees
    const Grant* grant = nullptr;                  // the grant that allowed it

    static Decision deny(ErrorCode code, std::string reason)
    {
        return Decision{false, code, std::move(reason), false, nullptr};
    }
};

bool principals_match(const Principals& who, const Peer& peer);

// `features` holds the names the kernel probe found (manifest.h kKnownFeatures).
Decision decide(const CatalogEntry& entry, const GrantSet& grants, const Peer& peer,
                const std::set<std::string, std::less<>>& features, const Usage& usage, const Limits& limits);

// Whether `peer` may administer (approve, revoke, reload): root may; anyone
// else only with polkit's agreement, so allowed + needs_polkit where polkit
// can be asked (`polkit_reachable`), and PermissionDenied where it cannot.
Decision decide_admin(const Peer& peer, bool polkit_reachable);

// Features a manifest requires that the kernel lacks (empty when supported).
std::vector<std::string> missing_features(const Manifest& manifest,
                                          const std::set<std::string, std::less<>>& features);

}  // namespace bpfbroker::policy
