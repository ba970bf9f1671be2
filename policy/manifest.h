// The program manifest (manifest.json): what a package says about one BPF
// object. Parsing is strict: unknown fields, wrong types and unsafe values are
// ManifestInvalid errors that name the JSON path and the reason.
#pragma once

#include <bpfbroker/result.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::policy {

inline constexpr std::size_t kMaxManifestBytes = 64 * 1024;
inline constexpr std::size_t kMaxProgramsPerManifest = 1;
inline constexpr std::size_t kMaxMapsPerManifest = 32;

enum class ProgramType { SocketFilter, SkReuseport };
enum class ClientAccess { None, Read, Write };
enum class InstanceMode { Shared, PerClient };

std::string_view program_type_name(ProgramType t) noexcept;  // "socket_filter", ...
std::optional<ProgramType> program_type_from_name(std::string_view name) noexcept;
std::string_view client_access_name(ClientAccess a) noexcept;
std::string_view instance_mode_name(InstanceMode m) noexcept;

// Kernel features a manifest may require; the daemon's probe reports the same names.
inline constexpr std::string_view kKnownFeatures[] = {
    "uring_cmd_setsockopt",
    "io_uring_bpf_ops",
    "bpf_token",
    "signed_prog_load",
};

struct ProgramSpec {
    std::string name;  // the BPF function name in the object
    ProgramType type;
};

struct MapSpec {
    std::string name;  // the BPF map name in the object
    ClientAccess client_access;
};

struct Manifest {
    int schema = 1;
    std::string name;
    std::string version;
    std::string description;
    std::string object;         // file name beside manifest.json
    std::string object_sha256;  // lower-case hex
    std::vector<ProgramSpec> programs;
    std::vector<MapSpec> maps;
    InstanceMode instance = InstanceMode::PerClient;
    std::vector<std::string> requires_features;
};

// A name usable as a catalog entry, file name and D-Bus argument:
// [a-z0-9_-], 1..64 chars, starting with a letter or digit.
bool is_valid_program_name(std::string_view name) noexcept;

Result<Manifest> parse_manifest(std::string_view bytes);

}  // namespace bpfbroker::policy
