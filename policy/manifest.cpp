// Strict parsing and validation of manifest.json; see manifest.h.
#include "policy/manifest.h"

#include "base/hex.h"
#include "base/strict_json.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
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
// Tracepoint category and event names are short C identifiers in the kernel.
constexpr std::size_t kMaxTracepointWordLen = 64;

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

// "CATEGORY/NAME" for a tracepoint, "NAME" for a raw tracepoint: the
// kernel's own spelling, so nothing (no '.', no second '/') reaches a path.
bool is_attach_point_syntax(ProgramType type, std::string_view s)
{
    auto is_word = [](std::string_view w) {
        return !w.empty() && w.size() <= kMaxTracepointWordLen && std::all_of(w.begin(), w.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
        });
    };
    if (type == ProgramType::RawTracepoint)
        return is_word(s);
    auto slash = s.find('/');
    return slash != std::string_view::npos && is_word(s.substr(0, slash)) && is_word(s.substr(slash + 1));
}

std::string joined(const std::vector<std::string>& items)
{
    std::string out;
    for (const auto& s : items)
        out += (out.empty() ? "" : ", ") + s;
    return out.empty() ? "none" : out;
}

ProgramSpec parse_program(const nlohmann::json& v, const std::string& path, const AllowedAttachPoints& allowed)
{
    JsonObjectReader r(v, path);
    ProgramSpec spec;
    spec.name = r.required_string("name", kMaxBpfFunctionLen);
    if (!is_identifier(spec.name, kMaxBpfFunctionLen))
        r.violation("name", "not a C identifier");
    auto type = r.required_string("type", 32);
    auto parsed = program_type_from_name(type);
    if (!parsed)
        r.violation("type", "unknown program type \"" + type +
                                "\" (known: socket_filter, sk_reuseport, tracepoint, raw_tracepoint, "
                                "io_uring_ops)");
    spec.type = *parsed;
    if (is_ring_attached(spec.type)) {
        if (r.has("attach"))
            r.violation("attach", "an io_uring_ops program attaches to the ring the caller names, not to an "
                                  "attach point");
    } else if (is_broker_attached(spec.type)) {
        spec.attach = r.required_string("attach", 2 * kMaxTracepointWordLen + 1);
        if (!is_attach_point_syntax(spec.type, spec.attach))
            r.violation("attach", spec.type == ProgramType::Tracepoint
                                      ? "must be CATEGORY/NAME of [A-Za-z0-9_]"
                                      : "must be a raw tracepoint NAME of [A-Za-z0-9_]");
        if (!allowed.allows(spec.type, spec.attach)) {
            const auto& list = spec.type == ProgramType::Tracepoint ? allowed.tracepoint : allowed.raw_tracepoint;
            r.violation("attach", "attach point \"" + spec.attach + "\" is not allowed for " + type +
                                      " (allowed: " + joined(list) + "; the settings file can widen the list)");
        }
    } else if (r.has("attach")) {
        r.violation("attach", "only broker-attached types (tracepoint, raw_tracepoint) name an attach point; "
                              "the client attaches " + type + " programs itself");
    }
    r.reject_unknown();
    return spec;
}

std::uint64_t json_as_u64(const nlohmann::json& v, const std::string& path, std::uint64_t max)
{
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() > max)
        throw SchemaViolation{path, "must be an integer between 0 and " + std::to_string(max)};
    return v.get<std::uint64_t>();
}

ParameterChoice parse_choice(const nlohmann::json& v, const std::string& path)
{
    JsonObjectReader r(v, path);
    ParameterChoice choice;
    auto type = r.required_string("type", 8);
    if (type == "bool") {
        // min/max would only restate 0..1; a bool default is true or false.
        choice.type = ChoiceType::Bool;
        const auto& d = r.required("default");
        if (!d.is_boolean())
            r.violation("default", "a bool choice needs true or false");
        choice.min = 0;
        choice.max = 1;
        choice.default_value = d.get<bool>() ? 1 : 0;
        r.reject_unknown();
        return choice;
    }
    std::uint64_t limit = 0;
    if (type == "u32") {
        choice.type = ChoiceType::U32;
        limit = UINT32_MAX;
    } else if (type == "u64") {
        choice.type = ChoiceType::U64;
        limit = UINT64_MAX;
    } else {
        r.violation("type", "must be u32, u64 or bool, not \"" + type + "\"");
    }
    choice.min = json_as_u64(r.required("min"), r.path_of("min"), limit);
    choice.max = json_as_u64(r.required("max"), r.path_of("max"), limit);
    choice.default_value = json_as_u64(r.required("default"), r.path_of("default"), limit);
    r.reject_unknown();
    if (choice.min > choice.max)
        r.violation("max", "is below min (" + std::to_string(choice.min) + ")");
    if (choice.default_value < choice.min || choice.default_value > choice.max)
        r.violation("default", "lies outside [" + std::to_string(choice.min) + ", " + std::to_string(choice.max) +
                                   "]");
    return choice;
}

std::optional<ParameterBinding> parameter_binding_from_name(std::string_view name)
{
    for (auto b : {ParameterBinding::CallerTgid, ParameterBinding::CallerUid, ParameterBinding::CallerCgroupId,
                   ParameterBinding::RingCqHeadOff, ParameterBinding::RingCqTailOff, ParameterBinding::RingCqesOff,
                   ParameterBinding::RingCqEntries, ParameterBinding::RingSqEntries, ParameterBinding::RingFlags})
        if (parameter_binding_name(b) == name)
            return b;
    return std::nullopt;
}

ParameterSpec parse_parameter(const nlohmann::json& v, const std::string& path)
{
    JsonObjectReader r(v, path);
    ParameterSpec spec;
    spec.name = r.required_string("name", kMaxBpfFunctionLen);
    if (!is_identifier(spec.name, kMaxBpfFunctionLen))
        r.violation("name", "not a C identifier");
    if (r.has("bind") == r.has("choice"))
        r.violation("name", "a parameter has exactly one of bind and choice");
    if (r.has("bind")) {
        auto bind = r.required_string("bind", 32);
        spec.bind = parameter_binding_from_name(bind);
        if (!spec.bind)
            r.violation("bind", "must be caller.tgid, caller.uid or caller.cgroup_id (or, for io_uring_ops, "
                                "ring.cq_head_off, ring.cq_tail_off, ring.cqes_off, ring.cq_entries, "
                                "ring.sq_entries, ring.flags), not \"" + bind + "\"");
    } else {
        spec.choice = parse_choice(r.required("choice"), r.path_of("choice"));
    }
    r.reject_unknown();
    return spec;
}

std::string parse_revocation(const nlohmann::json& v, const std::string& path)
{
    JsonObjectReader r(v, path);
    auto guard = r.required_string("guard", kMaxBpfFunctionLen);
    if (!is_identifier(guard, kMaxBpfFunctionLen))
        r.violation("guard", "not a C identifier");
    r.reject_unknown();
    return guard;
}

// io_uring_ops: one loop_step program, per ring (a registered value serves
// one ring), on kernels that have the struct_ops type. ring.* binds belong
// to these programs only: elsewhere there is no ring to check them against.
void check_ring_rules(const Manifest& m)
{
    const bool ring_attached = is_ring_attached(m.programs.front().type);
    for (std::size_t i = 0; i < m.parameters.size(); ++i)
        if (m.parameters[i].bind && is_ring_binding(*m.parameters[i].bind) && !ring_attached)
            throw SchemaViolation{"$.parameters[" + std::to_string(i) + "].bind",
                                  "ring.* binds are for io_uring_ops programs only"};
    if (!ring_attached)
        return;
    if (m.programs.size() != 1)
        throw SchemaViolation{"$.programs", "an io_uring_ops object implements one callback, loop_step: list "
                                            "exactly one program"};
    if (m.instance != InstanceMode::PerClient)
        throw SchemaViolation{"$.instance", "an io_uring_ops program is loaded per ring: it must be per-client"};
    if (m.scope == Scope::System)
        throw SchemaViolation{"$.scope", "an io_uring_ops program runs in its caller's own ring only"};
    // The loop runs in the ring's submitter task, which the broker cannot
    // check is the caller: the program must know the caller to stop elsewhere.
    if (std::none_of(m.parameters.begin(), m.parameters.end(),
                     [](const ParameterSpec& p) { return p.bind == ParameterBinding::CallerTgid; }))
        throw SchemaViolation{"$.parameters", "an io_uring_ops program must bind caller.tgid and run only in "
                                              "that process (the broker cannot see whose ring it is)"};
    if (std::find(m.requires_features.begin(), m.requires_features.end(), "io_uring_bpf_ops") ==
        m.requires_features.end())
        throw SchemaViolation{"$.requires", "an io_uring_ops program must require \"io_uring_bpf_ops\""};
}

// The rules that tie fields together, checked once all of them are read.
void check_broker_attach_rules(const Manifest& m)
{
    check_ring_rules(m);
    const bool broker_attached = is_broker_attached(m.programs.front().type);
    if (!broker_attached) {
        if (m.scope == Scope::System)
            throw SchemaViolation{"$.scope", "only broker-attached programs have a scope; a client-attached "
                                             "program sees what the caller attaches it to"};
        return;
    }
    // These links cannot be detached while the caller holds their only fd:
    // the guard is the broker's one way to stop the program.
    if (m.revocation_guard.empty())
        throw SchemaViolation{"$.revocation", "a broker-attached program must declare revocation.guard"};
    const bool caller_bound = std::any_of(m.parameters.begin(), m.parameters.end(),
                                          [](const ParameterSpec& p) { return p.bind.has_value(); });
    if (m.scope == Scope::Caller && !caller_bound)
        throw SchemaViolation{"$.parameters", "a broker-attached program must bind a parameter to the caller "
                                              "(caller.tgid, caller.uid or caller.cgroup_id) or say "
                                              "\"scope\": \"system\" (granted to root only)"};
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

Manifest parse_manifest_document(const nlohmann::json& doc, const AllowedAttachPoints& allowed)
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
    if (programs.empty())
        r.violation("programs", "must name at least one program");
    for (std::size_t i = 0; i < programs.size(); ++i) {
        auto path = r.path_of("programs") + "[" + std::to_string(i) + "]";
        auto spec = parse_program(programs[i], path, allowed);
        // One acquire hands out one program fd (with its maps); several
        // client-attached entry points would need a protocol that names them.
        if (programs.size() > 1 && !is_broker_attached(spec.type))
            throw SchemaViolation{path + ".type", "a client-attached program must be the manifest's only program"};
        for (const auto& earlier : m.programs)
            if (earlier.name == spec.name)
                throw SchemaViolation{path + ".name", "program \"" + spec.name + "\" listed twice"};
        m.programs.push_back(std::move(spec));
    }

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

    if (const auto* params = r.optional("parameters")) {
        json_as_array(*params, r.path_of("parameters"), kMaxParametersPerManifest);
        for (std::size_t i = 0; i < params->size(); ++i) {
            auto path = r.path_of("parameters") + "[" + std::to_string(i) + "]";
            auto spec = parse_parameter((*params)[i], path);
            for (const auto& earlier : m.parameters)
                if (earlier.name == spec.name)
                    throw SchemaViolation{path + ".name", "parameter \"" + spec.name + "\" listed twice"};
            m.parameters.push_back(std::move(spec));
        }
    }

    auto scope = r.optional_string("scope", 16, "caller");
    if (scope == "system")
        m.scope = Scope::System;
    else if (scope != "caller")
        r.violation("scope", "must be caller or system, not \"" + scope + "\"");

    if (const auto* revocation = r.optional("revocation")) {
        m.revocation_guard = parse_revocation(*revocation, r.path_of("revocation"));
        // Parameters live in .rodata, the guard in .bss/.data: one name cannot be both.
        for (const auto& p : m.parameters)
            if (p.name == m.revocation_guard)
                throw SchemaViolation{r.path_of("revocation") + ".guard",
                                      "\"" + p.name + "\" is also a parameter"};
    }
    r.reject_unknown();

    check_broker_attach_rules(m);

    // Callers of a shared instance all hold the same maps: one client's write
    // would be every client's input, so the combination is refused outright.
    if (m.instance == InstanceMode::Shared) {
        for (std::size_t i = 0; i < m.maps.size(); ++i)
            if (m.maps[i].client_access == ClientAccess::Write)
                throw SchemaViolation{"$.maps[" + std::to_string(i) + "].client_access",
                                      "a shared instance cannot grant write access to a map"};
        // Shared means one instance for every caller; a value bound to one
        // caller would instead make one per caller, kept by the daemon past
        // the caller's exit (no guard set then) and filling the shared slots.
        for (std::size_t i = 0; i < m.parameters.size(); ++i)
            if (m.parameters[i].bind)
                throw SchemaViolation{"$.parameters[" + std::to_string(i) + "].bind",
                                      "a shared instance serves every caller, so it cannot be bound to one; "
                                      "use \"instance\": \"per-client\""};
    }
    return m;
}

}  // namespace

std::string_view program_type_name(ProgramType t) noexcept
{
    switch (t) {
    case ProgramType::SocketFilter: return "socket_filter";
    case ProgramType::SkReuseport: return "sk_reuseport";
    case ProgramType::Tracepoint: return "tracepoint";
    case ProgramType::RawTracepoint: return "raw_tracepoint";
    case ProgramType::IoUringOps: return "io_uring_ops";
    }
    return "unknown";
}

std::optional<ProgramType> program_type_from_name(std::string_view name) noexcept
{
    for (auto t : {ProgramType::SocketFilter, ProgramType::SkReuseport, ProgramType::Tracepoint,
                   ProgramType::RawTracepoint, ProgramType::IoUringOps})
        if (program_type_name(t) == name)
            return t;
    return std::nullopt;
}

bool can_be_cut_live(const Manifest& m) noexcept
{
    return !m.revocation_guard.empty();
}

bool is_broker_attached(ProgramType t) noexcept
{
    return t == ProgramType::Tracepoint || t == ProgramType::RawTracepoint || t == ProgramType::IoUringOps;
}

bool is_ring_attached(ProgramType t) noexcept
{
    return t == ProgramType::IoUringOps;
}

bool is_ring_binding(ParameterBinding b) noexcept
{
    return b != ParameterBinding::CallerTgid && b != ParameterBinding::CallerUid &&
           b != ParameterBinding::CallerCgroupId;
}

std::string_view parameter_binding_name(ParameterBinding b) noexcept
{
    switch (b) {
    case ParameterBinding::CallerTgid: return "caller.tgid";
    case ParameterBinding::CallerUid: return "caller.uid";
    case ParameterBinding::CallerCgroupId: return "caller.cgroup_id";
    case ParameterBinding::RingCqHeadOff: return "ring.cq_head_off";
    case ParameterBinding::RingCqTailOff: return "ring.cq_tail_off";
    case ParameterBinding::RingCqesOff: return "ring.cqes_off";
    case ParameterBinding::RingCqEntries: return "ring.cq_entries";
    case ParameterBinding::RingSqEntries: return "ring.sq_entries";
    case ParameterBinding::RingFlags: return "ring.flags";
    }
    return "unknown";
}

std::string_view choice_type_name(ChoiceType t) noexcept
{
    switch (t) {
    case ChoiceType::U32: return "u32";
    case ChoiceType::U64: return "u64";
    case ChoiceType::Bool: return "bool";
    }
    return "unknown";
}

std::size_t choice_type_size(ChoiceType t) noexcept
{
    switch (t) {
    case ChoiceType::U32: return 4;
    case ChoiceType::U64: return 8;
    case ChoiceType::Bool: return 1;
    }
    return 0;
}

bool AllowedAttachPoints::allows(ProgramType type, std::string_view attach) const
{
    if (!is_broker_attached(type) || is_ring_attached(type))
        return false;
    const auto& list = type == ProgramType::Tracepoint ? tracepoint : raw_tracepoint;
    return std::any_of(list.begin(), list.end(), [&](const std::string& pattern) {
        if (!pattern.empty() && pattern.back() == '*')
            return attach.starts_with(std::string_view(pattern).substr(0, pattern.size() - 1));
        return attach == pattern;
    });
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

Result<Manifest> parse_manifest(std::string_view bytes, const AllowedAttachPoints& allowed)
{
    if (bytes.size() > kMaxManifestBytes)
        return fail(ErrorCode::ManifestInvalid,
                    "manifest is " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
                        std::to_string(kMaxManifestBytes));
    auto doc = parse_strict_json(bytes, ErrorCode::ManifestInvalid);
    if (!doc)
        return fail(std::move(doc).error());
    try {
        return parse_manifest_document(*doc, allowed);
    } catch (const SchemaViolation& v) {
        return fail(ErrorCode::ManifestInvalid, v.path + ": " + v.reason);
    }
}

}  // namespace bpfbroker::policy
