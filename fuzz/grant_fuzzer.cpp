// libFuzzer target for the grant parsers (policy/grants.h and
// policy/approvals_store.h). Each input is fed to both parse_allowlist and
// parse_approvals.
//
// Properties checked (a violation is reported with __builtin_trap()):
//  - every accepted grant satisfies the rules decide() relies on;
//  - allow-list grants survive grant_to_json -> parse_grant_json unchanged;
//  - approvals survive serialize_approvals -> parse_approvals unchanged, and
//    serializing the re-parsed value gives the same bytes again;
//  - the same holds after a revoke(), which is how the daemon rewrites the store.
#include "base/strict_json.h"
#include "policy/approvals_store.h"
#include "policy/grants.h"
#include "policy/manifest.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace bpfbroker;
using namespace bpfbroker::policy;

const std::string kSource = "fuzz/allowlist.json";
constexpr std::uint64_t kMaxId = 0xfffffffe;

void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

bool is_lower_hex64(std::string_view s)
{
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

bool is_principal_name(std::string_view s)
{
    return !s.empty() && s.size() <= 32 && s[0] != '-' && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '-' || c == '.';
    });
}

bool same_principals(const Principals& a, const Principals& b)
{
    return a.user_names == b.user_names && a.uids == b.uids && a.group_names == b.group_names &&
           a.gids == b.gids && a.anyone == b.anyone;
}

bool same_grant(const Grant& a, const Grant& b)
{
    return a.program == b.program && a.match == b.match && a.match_value == b.match_value &&
           same_principals(a.principals, b.principals) && a.polkit == b.polkit && a.source == b.source;
}

bool same_grants(const std::vector<Grant>& a, const std::vector<Grant>& b)
{
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), same_grant);
}

bool same_approvals(const Approvals& a, const Approvals& b)
{
    return same_grants(a.approvals, b.approvals) && a.revoked_programs == b.revoked_programs;
}

void check_grant(const Grant& g)
{
    check(is_valid_program_name(g.program));
    check(g.match == MatchKind::ManifestSha256 || g.match == MatchKind::Signer);
    check(is_lower_hex64(g.match_value));
    check(!g.principals.empty());
    check(g.principals.user_names.size() + g.principals.uids.size() <= kMaxPrincipals);
    check(g.principals.group_names.size() + g.principals.gids.size() <= kMaxPrincipals);
    for (const auto& n : g.principals.user_names)
        check(is_principal_name(n));
    for (const auto& n : g.principals.group_names)
        check(is_principal_name(n));
    // (uid_t)-1 and (gid_t)-1 mean "no change" to the kernel: never a principal.
    for (auto id : g.principals.uids)
        check(static_cast<std::uint64_t>(id) <= kMaxId);
    for (auto id : g.principals.gids)
        check(static_cast<std::uint64_t>(id) <= kMaxId);
}

void fuzz_allowlist(std::string_view bytes)
{
    auto grants = parse_allowlist(bytes, kSource);
    if (!grants) {
        check(grants.error().code == bpfbroker::ErrorCode::GrantInvalid);
        check(grants.error().message.rfind(kSource, 0) == 0);
        return;
    }
    check(bytes.size() <= kMaxGrantFileBytes);
    check(grants->size() <= kMaxGrantsPerFile);
    for (const auto& g : *grants) {
        check_grant(g);
        check(g.source == kSource);
    }

    // grant_to_json is what the approvals store and `bpfbrokerctl` write:
    // each grant must read back unchanged. (Per grant rather than through
    // parse_allowlist: the added default fields may push a re-serialized file
    // that was just under kMaxGrantFileBytes over it, which is not a bug.)
    for (const auto& g : *grants) {
        try {
            auto back = parse_grant_json(grant_to_json(g), "$", kSource);
            check(same_grant(g, back));
        } catch (const SchemaViolation&) {
            __builtin_trap();
        }
    }
}

void check_round_trip(const Approvals& a)
{
    const std::string text = serialize_approvals(a);
    auto again = parse_approvals(text);
    check(again.has_value());
    check(same_approvals(a, *again));
    // Stable bytes: rewriting an unchanged store does not change it.
    check(serialize_approvals(*again) == text);
}

void fuzz_approvals(std::string_view bytes)
{
    auto parsed = parse_approvals(bytes);
    if (!parsed) {
        check(parsed.error().code == bpfbroker::ErrorCode::GrantInvalid);
        return;
    }
    for (const auto& g : parsed->approvals)
        check_grant(g);
    for (const auto& p : parsed->revoked_programs)
        check(is_valid_program_name(p));
    check_round_trip(*parsed);

    // What `bpfbrokerctl revoke` does to the store, then the write/read cycle.
    if (!parsed->approvals.empty()) {
        Approvals changed = *parsed;
        const std::string program = changed.approvals.front().program;
        auto removed = changed.revoke(program);
        check(removed >= 1);
        check(std::none_of(changed.approvals.begin(), changed.approvals.end(),
                           [&](const Grant& g) { return g.program == program; }));
        check(std::count(changed.revoked_programs.begin(), changed.revoked_programs.end(), program) >= 1);
        check_round_trip(changed);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    fuzz_allowlist(bytes);
    fuzz_approvals(bytes);
    return 0;
}
