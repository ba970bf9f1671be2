// libFuzzer target for parse_manifest (policy/manifest.h).
//
// parse_manifest must never crash, leak, or trip a sanitizer on any input,
// and every manifest it accepts must satisfy the rules the rest of the
// daemon relies on without re-checking. A broken rule is reported with
// __builtin_trap() so libFuzzer records the input as a crash.
#include "policy/manifest.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <set>
#include <string>
#include <string_view>

namespace {

using namespace bpfbroker::policy;

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

bool is_c_identifier(std::string_view s, std::size_t max_len)
{
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    auto alnum = [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); };
    return !s.empty() && s.size() <= max_len && alpha(s[0]) && std::all_of(s.begin(), s.end(), alnum);
}

bool has_control_char(std::string_view s)
{
    return std::any_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

void check_manifest(const Manifest& m)
{
    check(m.schema == 1);

    // Name: usable as a catalog key, file name and D-Bus argument.
    check(is_valid_program_name(m.name));
    check(!m.name.empty() && m.name.size() <= 64);
    check(m.name.find('/') == std::string::npos && m.name != "." && m.name != "..");

    check(!m.version.empty() && m.version.size() <= 64 && !has_control_char(m.version));
    check(m.description.size() <= 1024 && !has_control_char(m.description));

    // Object: a plain file name beside manifest.json, never a path.
    check(!m.object.empty() && m.object.size() <= 128);
    check(m.object.find('/') == std::string::npos);
    check(m.object.find('\0') == std::string::npos);
    check(m.object[0] != '.');

    check(is_lower_hex64(m.object_sha256));

    // One client-attached program, or 1..8 broker-attached ones, each with a
    // known type and a C identifier name.
    check(!m.programs.empty() && m.programs.size() <= kMaxProgramsPerManifest);
    if (m.programs.size() > 1)
        for (const auto& p : m.programs)
            check(is_broker_attached(p.type));
    for (const auto& p : m.programs) {
        check(is_c_identifier(p.name, 128));
        check(program_type_from_name(program_type_name(p.type)) == p.type);
        // Broker-attached: an allowed attach point, a guard, and caller scope
        // unless the manifest says system.
        check((is_broker_attached(p.type) && !is_ring_attached(p.type)) == !p.attach.empty());
        if (is_broker_attached(p.type) && !is_ring_attached(p.type)) {
            check(AllowedAttachPoints{}.allows(p.type, p.attach));
            check(!m.revocation_guard.empty());
            check(m.scope == Scope::System ||
                  std::any_of(m.parameters.begin(), m.parameters.end(), [](const auto& q) { return q.bind.has_value(); }));
        }
    }

    // Maps: at most 32, unique names the kernel will not truncate.
    check(m.maps.size() <= kMaxMapsPerManifest);
    std::set<std::string> map_names;
    for (const auto& map : m.maps) {
        check(is_c_identifier(map.name, 15));
        check(map_names.insert(map.name).second);
        check(map.client_access == ClientAccess::None || map.client_access == ClientAccess::Read ||
              map.client_access == ClientAccess::Write);
    }

    // A shared instance never lets one client write what others read.
    check(m.instance == InstanceMode::Shared || m.instance == InstanceMode::PerClient);
    if (m.instance == InstanceMode::Shared)
        for (const auto& map : m.maps)
            check(map.client_access != ClientAccess::Write);

    // Parameters: unique names, exactly one of bind and choice, defaults in bounds.
    check(m.parameters.size() <= kMaxParametersPerManifest);
    std::set<std::string> parameter_names;
    for (const auto& q : m.parameters) {
        check(is_c_identifier(q.name, 128));
        check(parameter_names.insert(q.name).second);
        check(q.bind.has_value() != q.choice.has_value());
        if (q.choice)
            check(q.choice->min <= q.choice->default_value && q.choice->default_value <= q.choice->max);
    }

    // Required features: known names, each once.
    check(m.requires_features.size() <= std::size(kKnownFeatures));
    std::set<std::string> features;
    for (const auto& f : m.requires_features) {
        check(std::find(std::begin(kKnownFeatures), std::end(kKnownFeatures), f) != std::end(kKnownFeatures));
        check(features.insert(f).second);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    auto parsed = parse_manifest(bytes);
    if (parsed) {
        check(size <= kMaxManifestBytes);
        check_manifest(*parsed);
    } else {
        // Refusals are ManifestInvalid errors with a message a person can act on.
        check(parsed.error().code == bpfbroker::ErrorCode::ManifestInvalid);
        check(!parsed.error().message.empty());
    }
    return 0;
}
