// Strict parsing and validation of manifest.json; see manifest.h.
#include "policy/manifest.h"

#include "base/hex.h"
#include "base/strict_json.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace bpfbroker::policy {

namespace {

constexpr std::size_t kMaxNameLen = 64;
constexpr std::size_t kMaxVersionLen = 64;
constexpr std::size_t kMaxDescriptionLen = 1024;
constexpr std::size_t kMaxObjectNameLen = 128;
// BPF_OBJ_NAME_LEN - 1: the kernel truncates longer map names, which would
// make a manifest name something the object does not have.
constexpr std::size_t kMaxBpfSymbolLen = 15;
constexpr std::size_t kMaxBpfFunctionLen = 128;

bool is_identifier(std::string_view s, std::size_t max_len)
{
    if (s.empty() || s.size() > max_len)
        return false;
    if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_'))
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
}

bool is_object_file_name(std::string_view s)
{
    if (s.empty() || s.size() > kMaxObjectNameLen || s == "." || s == ".." || s[0] == '.')
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

bool is_version(std::string_view s)
{
    if (s.empty() || s.size() > kMaxVersionLen || !std::isalnum(static_cast<unsigned char>(s[0])))
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' ||
               c == '~' || c == '_';
    });
}

ProgramSpec parse_program(const nlohmann::json& v, const std::string& path)
{
    JsonObjectReader r(v, path);
    ProgramSpec spec;
    spec.name = r.required_string("name", kMaxBpfFunctionLen);
    if (!is_identifier(spec.name, kMaxBpfFunctionLen))
        r.violation("name", "not a C identifier");
    auto type = r.required_string("type", 32);
    auto parsed = program_type_from_name(type);
    if (!parsed)
        r.violation("type", "unknown program type \"" + type + "\" (known: socket_filter, sk_reuseport)");
    spec.type = *parsed;
    r.reject_unknown();
    return spec;
}

MapSpec parse_map(const nlohmann::json& v, const std::string& path)
{
    JsonObjectReader r(v, path);
    MapSpec spec;
    spec.name = r.required_string("name", kMaxBpfSymbolLen);
    if (!is_identifier(spec.name, kMaxBpfSymbolLen))
        r.violation("name", "not a C identifier of at most 15 characters");
    auto access = r.required_string("client_access", 16);
    if (access == "none")
        spec.client_access = ClientAccess::None;
    else if (access == "read")
        spec.client_access = ClientAccess::Read;
    else if (access == "write")
        spec.client_access = ClientAccess::Write;
    else
        r.violation("client_access", "must be none, read or write, not \"" + access + "\"");
    r.reject_unknown();
    return spec;
}

Manifest parse_manifest_document(const nlohmann::json& doc)
{
    JsonObjectReader r(doc, "$");
    Manifest m;
    m.schema = static_cast<int>(r.required_int("schema", 1, 1));
    m.name = r.required_string("name", kMaxNameLen);
    if (!is_valid_program_name(m.name))
        r.violation("name", "must be 1-64 of [a-z0-9_-], starting with a letter or digit");
    m.version = r.required_string("version", kMaxVersionLen);
    if (!is_version(m.version))
        r.violation("version", "must be 1-64 of [A-Za-z0-9.+~_-], starting with a letter or digit");
    m.description = r.optional_string("description", kMaxDescriptionLen, "");
    m.object = r.required_string("object", kMaxObjectNameLen);
    if (!is_object_file_name(m.object))
        r.violation("object", "must be a plain file name in the manifest's folder (no '/', no leading '.')");
    m.object_sha256 = r.required_string("object_sha256", 64);
    if (!is_sha256_hex(m.object_sha256))
        r.violation("object_sha256", "must be 64 lower-case hex digits");

    const auto& programs = json_as_array(r.required("programs"), r.path_of("programs"),
                                         kMaxProgramsPerManifest);
    // One acquire hands out one program fd (with its maps); an object with
    // several entry points would need a protocol that names them.
    if (programs.size() != 1)
        r.violation("programs", "must name exactly one program");
    m.programs.push_back(parse_program(programs[0], r.path_of("programs") + "[0]"));

    if (const auto* maps = r.optional("maps")) {
        json_as_array(*maps, r.path_of("maps"), kMaxMapsPerManifest);
        std::set<std::string> seen;
        for (std::size_t i = 0; i < maps->size(); ++i) {
            auto path = r.path_of("maps") + "[" + std::to_string(i) + "]";
            auto spec = parse_map((*maps)[i], path);
            if (!seen.insert(spec.name).second)
                throw SchemaViolation{path + ".name", "map \"" + spec.name + "\" listed twice"};
            m.maps.push_back(std::move(spec));
        }
    }

    auto instance = r.required_string("instance", 16);
    if (instance == "shared")
        m.instance = InstanceMode::Shared;
    else if (instance == "per-client")
        m.instance = InstanceMode::PerClient;
    else
        r.violation("instance", "must be shared or per-client, not \"" + instance + "\"");

    if (const auto* req = r.optional("requires")) {
        json_as_array(*req, r.path_of("requires"), std::size(kKnownFeatures));
        for (std::size_t i = 0; i < req->size(); ++i) {
            auto path = r.path_of("requires") + "[" + std::to_string(i) + "]";
            auto feature = json_as_string((*req)[i], path, 64);
            if (std::find(std::begin(kKnownFeatures), std::end(kKnownFeatures), feature) ==
                std::end(kKnownFeatures))
                throw SchemaViolation{path, "unknown feature \"" + feature + "\""};
            if (std::find(m.requires_features.begin(), m.requires_features.end(), feature) !=
                m.requires_features.end())
                throw SchemaViolation{path, "feature \"" + feature + "\" listed twice"};
            m.requires_features.push_back(std::move(feature));
        }
    }
    r.reject_unknown();

    // Callers of a shared instance all hold the same maps: one client's write
    // would be every client's input, so the combination is refused outright.
    if (m.instance == InstanceMode::Shared) {
        for (std::size_t i = 0; i < m.maps.size(); ++i)
            if (m.maps[i].client_access == ClientAccess::Write)
                throw SchemaViolation{"$.maps[" + std::to_string(i) + "].client_access",
                                      "a shared instance cannot grant write access to a map"};
    }
    return m;
}

}  // namespace

std::string_view program_type_name(ProgramType t) noexcept
{
    switch (t) {
    case ProgramType::SocketFilter: return "socket_filter";
    case ProgramType::SkReuseport: return "sk_reuseport";
    }
    return "unknown";
}

std::optional<ProgramType> program_type_from_name(std::string_view name) noexcept
{
    if (name == "socket_filter")
        return ProgramType::SocketFilter;
    if (name == "sk_reuseport")
        return ProgramType::SkReuseport;
    return std::nullopt;
}

std::string_view client_access_name(ClientAccess a) noexcept
{
    switch (a) {
    case ClientAccess::None: return "none";
    case ClientAccess::Read: return "read";
    case ClientAccess::Write: return "write";
    }
    return "none";
}

std::string_view instance_mode_name(InstanceMode m) noexcept
{
    return m == InstanceMode::Shared ? "shared" : "per-client";
}

bool is_valid_program_name(std::string_view name) noexcept
{
    if (name.empty() || name.size() > kMaxNameLen)
        return false;
    auto ok_first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!ok_first(name[0]))
        return false;
    return std::all_of(name.begin(), name.end(),
                       [&](char c) { return ok_first(c) || c == '_' || c == '-'; });
}

Result<Manifest> parse_manifest(std::string_view bytes)
{
    if (bytes.size() > kMaxManifestBytes)
        return fail(ErrorCode::ManifestInvalid,
                    "manifest is " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
                        std::to_string(kMaxManifestBytes));
    auto doc = parse_strict_json(bytes, ErrorCode::ManifestInvalid);
    if (!doc)
        return fail(std::move(doc).error());
    try {
        return parse_manifest_document(*doc);
    } catch (const SchemaViolation& v) {
        return fail(ErrorCode::ManifestInvalid, v.path + ": " + v.reason);
    }
}

}  // namespace bpfbroker::policy
