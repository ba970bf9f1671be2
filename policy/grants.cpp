// Grant parsing and loading; see grants.h.
#include "policy/grants.h"

#include "policy/approvals_store.h"
#include "policy/layered_dir.h"
#include "policy/paths.h"
#include "base/hex.h"
#include "base/strict_json.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <map>

namespace bpfbroker::policy {

namespace {

constexpr std::int64_t kMaxId = 0xfffffffe;  // (uid_t)-1 means "no change" in syscalls

bool is_principal_name(std::string_view s)
{
    // POSIX portable user names plus what Debian's adduser accepts.
    if (s.empty() || s.size() > 32 || s[0] == '-')
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

template <typename Id>
void parse_principal_list(const nlohmann::json& list, const std::string& path, std::vector<std::string>& names,
                          std::vector<Id>& ids)
{
    json_as_array(list, path, kMaxPrincipals);
    for (std::size_t i = 0; i < list.size(); ++i) {
        auto item_path = path + "[" + std::to_string(i) + "]";
        const auto& item = list[i];
        if (item.is_number_integer()) {
            ids.push_back(static_cast<Id>(json_as_int(item, item_path, 0, kMaxId)));
        } else {
            auto name = json_as_string(item, item_path, 32);
            if (!is_principal_name(name))
                throw SchemaViolation{item_path, "not a valid user or group name"};
            names.push_back(std::move(name));
        }
    }
}

}  // namespace

bool Grant::matches_entry(const CatalogEntry& entry) const
{
    if (entry.name != program || !entry.valid())
        return false;
    if (match == MatchKind::ManifestSha256)
        return entry.manifest_sha256 == match_value;
    return entry.signer_key_id == match_value;
}

bool GrantSet::is_revoked(std::string_view program) const
{
    return std::find(revoked_programs.begin(), revoked_programs.end(), program) != revoked_programs.end();
}

Grant parse_grant_json(const nlohmann::json& value, const std::string& path, std::string source)
{
    JsonObjectReader r(value, path);
    Grant g;
    g.source = std::move(source);
    g.program = r.required_string("program", 64);
    if (!is_valid_program_name(g.program))
        r.violation("program", "not a valid program name");

    JsonObjectReader match(r.required("match"), r.path_of("match"));
    if (match.has("manifest_sha256") == match.has("signer"))
        match.violation("", "must hold exactly one of manifest_sha256 or signer");
    if (match.has("manifest_sha256")) {
        g.match = MatchKind::ManifestSha256;
        g.match_value = match.required_string("manifest_sha256", 64);
        if (!is_sha256_hex(g.match_value))
            match.violation("manifest_sha256", "must be 64 lower-case hex digits");
    } else {
        g.match = MatchKind::Signer;
        g.match_value = match.required_string("signer", 64);
        if (!is_sha256_hex(g.match_value))
            match.violation("signer", "must be a key id: 64 lower-case hex digits");
    }
    match.reject_unknown();

    JsonObjectReader who(r.required("principals"), r.path_of("principals"));
    if (const auto* users = who.optional("users"))
        parse_principal_list(*users, who.path_of("users"), g.principals.user_names, g.principals.uids);
    if (const auto* groups = who.optional("groups"))
        parse_principal_list(*groups, who.path_of("groups"), g.principals.group_names, g.principals.gids);
    g.principals.anyone = who.optional_bool("anyone", false);
    who.reject_unknown();
    if (g.principals.empty())
        who.violation("", "names nobody: give users, groups or \"anyone\": true");

    g.polkit = r.optional_bool("polkit", false);
    r.reject_unknown();
    return g;
}

nlohmann::json grant_to_json(const Grant& g)
{
    nlohmann::json users = nlohmann::json::array();
    for (const auto& n : g.principals.user_names)
        users.push_back(n);
    for (auto id : g.principals.uids)
        users.push_back(id);
    nlohmann::json groups = nlohmann::json::array();
    for (const auto& n : g.principals.group_names)
        groups.push_back(n);
    for (auto id : g.principals.gids)
        groups.push_back(id);
    nlohmann::json match = nlohmann::json::object();
    match[g.match == MatchKind::ManifestSha256 ? "manifest_sha256" : "signer"] = g.match_value;
    return {{"program", g.program},
            {"match", match},
            {"principals", {{"users", users}, {"groups", groups}, {"anyone", g.principals.anyone}}},
            {"polkit", g.polkit}};
}

Result<std::vector<Grant>> parse_allowlist(std::string_view bytes, const std::string& source)
{
    if (bytes.size() > kMaxGrantFileBytes)
        return fail(ErrorCode::GrantInvalid, source + ": larger than " + std::to_string(kMaxGrantFileBytes) + " bytes");
    auto doc = parse_strict_json(bytes, ErrorCode::GrantInvalid);
    if (!doc) {
        auto err = std::move(doc).error();
        err.message = source + ": " + err.message;
        return fail(std::move(err));
    }
    std::vector<Grant> grants;
    try {
        if (doc->is_array()) {
            json_as_array(*doc, "$", kMaxGrantsPerFile);
            for (std::size_t i = 0; i < doc->size(); ++i)
                grants.push_back(parse_grant_json((*doc)[i], "$[" + std::to_string(i) + "]", source));
        } else {
            grants.push_back(parse_grant_json(*doc, "$", source));
        }
    } catch (const SchemaViolation& v) {
        return fail(ErrorCode::GrantInvalid, source + ": " + v.path + ": " + v.reason);
    }
    return grants;
}

GrantSet load_grants(int rootfd, const FileTrust& trust, bool include_vendor)
{
    GrantSet set;
    // Layered like programs.d and keys.d: an /etc file masks the vendor file of that name.
    auto dirs = open_layered_dir(rootfd, paths::kAllowlistSubdir, kMaxAllowlistFiles, trust, set.problems);
    for (const auto& [name, origin] : dirs.names) {
        if (name.size() < 6 || name.substr(name.size() - 5) != ".json")
            continue;
        if (origin == Origin::Vendor && !include_vendor)
            continue;
        auto source = layer_path(origin, paths::kAllowlistSubdir) + "/" + name;
        auto bytes = read_trusted_file(dirs.dir_of(origin), name, kMaxGrantFileBytes, trust);
        if (!bytes) {
            set.problems.push_back({source, std::move(bytes).error()});
            continue;
        }
        auto grants = parse_allowlist(*bytes, source);
        if (!grants) {
            set.problems.push_back({source, std::move(grants).error()});
            continue;
        }
        for (auto& g : *grants)
            set.grants.push_back(std::move(g));
    }

    auto approvals = ApprovalsStore::read(rootfd, trust);
    if (!approvals) {
        // Fail closed: the store holds revocations that mask allow-list
        // grants, so when it cannot be read no grant at all is honoured.
        set.grants.clear();
        set.problems.push_back({std::string(paths::kStateDir) + "/" + std::string(paths::kApprovalsFile),
                                std::move(approvals).error()});
        return set;
    }
    for (auto& g : approvals->approvals)
        set.grants.push_back(std::move(g));
    set.revoked_programs = std::move(approvals->revoked_programs);
    return set;
}

}  // namespace bpfbroker::policy
