// Grants: who may acquire which program. They come from allow-list files
// (usr/lib/bpfbroker/allowlist.d/*.json from packages, etc/bpfbroker/
// allowlist.d/*.json by hand, the /etc file masking the vendor one of the same
// name) and from the approvals store the daemon writes (approvals_store.h).
//
// An allow-list file holds one grant object or an array of them:
//   { "program": "udp_stats",
//     "match": { "manifest_sha256": "<hex>" }   or   { "signer": "<key id>" },
//     "principals": { "users": ["alice", 1001], "groups": ["netdev"], "anyone": false },
//     "polkit": false }
#pragma once

#include "policy/catalog.h"
#include "policy/secure_file.h"

#include <bpfbroker/result.h>

#include <nlohmann/json_fwd.hpp>

#include <sys/types.h>

#include <string>
#include <vector>

namespace bpfbroker::policy {

inline constexpr std::size_t kMaxGrantFileBytes = 256 * 1024;
inline constexpr std::size_t kMaxGrantsPerFile = 1024;
inline constexpr std::size_t kMaxPrincipals = 1024;
inline constexpr std::size_t kMaxAllowlistFiles = 256;

enum class MatchKind { ManifestSha256, Signer };

struct Principals {
    std::vector<std::string> user_names;
    std::vector<uid_t> uids;
    std::vector<std::string> group_names;
    std::vector<gid_t> gids;
    bool anyone = false;

    [[nodiscard]] bool empty() const noexcept
    {
        return !anyone && user_names.empty() && uids.empty() && group_names.empty() && gids.empty();
    }
};

struct Grant {
    std::string program;
    MatchKind match = MatchKind::ManifestSha256;
    std::string match_value;  // manifest SHA-256 or signer key id, lower-case hex
    Principals principals;
    bool polkit = false;      // also ask polkit (org.bpfbroker.acquire)
    std::string source;       // where it came from, for audit lines

    // True when the grant is about this entry as it is now (hash or signer).
    [[nodiscard]] bool matches_entry(const CatalogEntry& entry) const;
};

struct GrantSet {
    std::vector<Grant> grants;
    std::vector<std::string> revoked_programs;  // masks every grant for these
    std::vector<PolicyProblem> problems;

    [[nodiscard]] bool is_revoked(std::string_view program) const;
};

// One grant object (JSON path prefix for errors).
Grant parse_grant_json(const nlohmann::json& value, const std::string& path, std::string source);
nlohmann::json grant_to_json(const Grant& grant);

// An allow-list file: one grant object or an array of them. GrantInvalid errors say where.
Result<std::vector<Grant>> parse_allowlist(std::string_view bytes, const std::string& source);

// Loads allow-lists and the approvals store below an opened root.
// include_vendor=false ignores usr/lib allow-lists (bpfbroker.json setting).
GrantSet load_grants(int rootfd, const FileTrust& trust, bool include_vendor);

}  // namespace bpfbroker::policy
