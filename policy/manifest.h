// The program manifest (manifest.json): what a package says about one BPF
// object. Parsing is strict: unknown fields, wrong types and unsafe values are
// ManifestInvalid errors that name the JSON path and the reason.
#pragma once

#include <bpfbroker/result.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::policy {

inline constexpr std::size_t kMaxManifestBytes = 64 * 1024;
// A client-attached program is its manifest's only one (one acquire hands
// out one program fd); broker-attached ones come in sets (one link each).
inline constexpr std::size_t kMaxProgramsPerManifest = 8;
inline constexpr std::size_t kMaxMapsPerManifest = 32;

inline constexpr std::size_t kMaxParametersPerManifest = 16;

// Client-attached types (the caller attaches the program fd to its own
// sockets) and broker-attached ones (the broker attaches, scoped to the
// caller, and hands back only the link).
// IoUringOps (Linux 7.1): the object defines one io_uring_bpf_ops value the
// broker registers on the caller's own ring (brokerd/ring_attach.h).
enum class ProgramType { SocketFilter, SkReuseport, Tracepoint, RawTracepoint, IoUringOps };
enum class ClientAccess { None, Read, Write };
enum class InstanceMode { Shared, PerClient };

std::string_view program_type_name(ProgramType t) noexcept;  // "socket_filter", ...
std::optional<ProgramType> program_type_from_name(std::string_view name) noexcept;
std::string_view client_access_name(ClientAccess a) noexcept;
std::string_view instance_mode_name(InstanceMode m) noexcept;
bool is_broker_attached(ProgramType t) noexcept;
// Broker-attached to a ring the caller names (AttachRing), not to an attach point.
bool is_ring_attached(ProgramType t) noexcept;

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
    // Tracepoint types only: "CATEGORY/NAME" for a tracepoint, "NAME" for a
    // raw tracepoint; empty for the others.
    std::string attach{};
};

// Values the broker writes into the object's .rodata before load.
// `bind`: from the kernel's word for the caller, never from the request.
// ring.* (io_uring_ops only): the layout of the caller's ring, which the
// request states and the broker checks against the kernel's view of it.
enum class ParameterBinding {
    CallerTgid,
    CallerUid,
    CallerCgroupId,
    RingCqHeadOff,
    RingCqTailOff,
    RingCqesOff,
    RingCqEntries,
    RingSqEntries,
    RingFlags,
};
bool is_ring_binding(ParameterBinding b) noexcept;
std::string_view parameter_binding_name(ParameterBinding b) noexcept;  // "caller.tgid", ...

// `choice`: the caller picks a value in [min, max]; absent means `default_value`.
enum class ChoiceType { U32, U64, Bool };
std::string_view choice_type_name(ChoiceType t) noexcept;  // "u32", "u64", "bool"
// Bytes the .rodata variable must have for this type (bool is a __u8 / _Bool).
std::size_t choice_type_size(ChoiceType t) noexcept;

struct ParameterChoice {
    ChoiceType type = ChoiceType::U32;
    std::uint64_t min = 0;
    std::uint64_t max = 0;
    std::uint64_t default_value = 0;
};

struct ParameterSpec {
    std::string name;  // the .rodata variable
    std::optional<ParameterBinding> bind;   // exactly one of bind and choice
    std::optional<ParameterChoice> choice;
};

// Who a broker-attached program may see: `Caller` needs a bind that scopes it
// to the caller; `System` (it sees every process) is granted to root only.
enum class Scope { Caller, System };

// The attach points manifests may name, per broker-attached type. An entry
// is an exact name or a prefix ending in '*'. The settings file may widen it.
struct AllowedAttachPoints {
    std::vector<std::string> tracepoint{"io_uring/*"};
    // Every kernel tracepoint named io_uring_* is in the io_uring category.
    std::vector<std::string> raw_tracepoint{"io_uring_*"};

    [[nodiscard]] bool allows(ProgramType type, std::string_view attach) const;
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
    std::vector<ParameterSpec> parameters;
    Scope scope = Scope::Caller;
    // A global the program checks and only the broker writes (.bss/.data);
    // empty when the manifest declares none. Required for broker-attached.
    std::string revocation_guard;
};

// Whether a revocation reaches live instances of this program: it declares
// a guard (which broker-attached programs must). `catalog`, `verify` and
// ListPrograms show it.
bool can_be_cut_live(const Manifest& m) noexcept;

// A name usable as a catalog entry, file name and D-Bus argument:
// [a-z0-9_-], 1..64 chars, starting with a letter or digit.
bool is_valid_program_name(std::string_view name) noexcept;

// `allowed` bounds the attach points of broker-attached programs.
Result<Manifest> parse_manifest(std::string_view bytes, const AllowedAttachPoints& allowed = {});

}  // namespace bpfbroker::policy
