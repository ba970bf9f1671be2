// Loading a verified catalog entry into the kernel, and making the fds a
// client receives.
//
// The object is loaded from bytes checked against the signed pin
// (CatalogEntry::read_object(), via bpf_object__open_mem), never opened by
// path by libbpf. Before anything reaches the kernel the object is checked against its
// manifest: the same programs (by function name) with the same types, and
// the same user maps. A loaded instance owns its kernel objects only through
// the CLOEXEC fds it holds; the libbpf object is closed before returning.
#pragma once

#include "brokerd/parameter_values.h"
#include "brokerd/revocation_guard.h"
#include "policy/catalog.h"
#include "policy/manifest.h"

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bpfbroker::brokerd {

// Size of each program's verifier log buffer. libbpf loads without a log
// first and, only when the kernel refuses, loads once more at log level 1
// into this buffer, so a successful load costs no logging.
inline constexpr std::size_t kVerifierLogBytes = 1024 * 1024;
// How much of a verifier log travels in Error::detail (its end: the
// verifier's complaint is the last thing it writes).
inline constexpr std::size_t kVerifierLogDetailBytes = 16 * 1024;

struct LoadedProgram {
    std::string name;  // the function name, as in the manifest
    policy::ProgramType type;
    UniqueFd fd;       // CLOEXEC
    std::uint32_t id = 0;
    std::string tag;   // hex of bpf_prog_info.tag (16 digits)
    std::string attach;  // the manifest's attach point (broker-attached types only)
};

struct LoadedMap {
    std::string name;  // as in the manifest
    policy::ClientAccess access;
    UniqueFd fd;       // CLOEXEC, read-write: the daemon's own handle
    std::uint32_t id = 0;
};

// Programs and maps in manifest order. Internal maps (.rodata/.bss/.data)
// are not listed: the programs keep them alive. `guard` is the daemon's
// own handle on the revocation guard when the manifest declares one (its
// fd is never handed out); `parameters` are the values frozen in .rodata.
struct LoadedInstance {
    std::vector<LoadedProgram> programs;
    std::vector<LoadedMap> maps;
    // io_uring_ops only: the struct_ops map (BPF_F_LINK) holding the object's
    // io_uring_bpf_ops value, still unregistered; never handed out (with it
    // the holder could register the program on any ring). ring_attach.h.
    std::optional<LoadedMap> struct_ops;
    std::optional<RevocationGuard> guard;
    ParameterValues parameters;
};

// Opens entry.read_object(), checks it against entry.manifest, writes
// `parameters` (resolve_parameters: one value per manifest parameter) into
// .rodata, which libbpf freezes when it creates the map, and loads it.
// ManifestInvalid: the entry has no manifest, or object and manifest
//   disagree (a program or map listed on one side only, a program type that
//   differs from the one libbpf derives from the ELF section, a map that asks
//   to be pinned, a parameter that is not a .rodata variable of its size
//   ($.parameters[i].name), a guard that is not a __u32 in .bss or .data
//   ($.revocation.guard), an io_uring_ops object without exactly one
//   struct_ops value or another object with one).
// io_uring_ops programs load sleepable (their kfunc bpf_io_uring_submit_sqes
// sleeps) and their struct_ops map with BPF_F_LINK: libbpf 1.1.2 knows
// neither "struct_ops.s" nor ".struct_ops.link" sections.
// Internal: `parameters` does not hold exactly the manifest's parameters.
// LoadFailed: libbpf cannot parse the object, or the kernel refused it.
//   sys_errno holds the kernel's errno; for a program the verifier rejected,
//   detail holds the end of the verifier log (kVerifierLogDetailBytes),
//   otherwise libbpf's own warnings.
Result<LoadedInstance> load_instance(const policy::CatalogEntry& entry, const ParameterValues& parameters = {});
// The same from `object`, the entry's object as read and checked already
// (CatalogEntry::read_object, or VerifiedObjects).
Result<LoadedInstance> load_instance(const policy::CatalogEntry& entry, std::string_view object,
                                     const ParameterValues& parameters);

// The fd a client receives for `map`:
//   Read  -> a new fd opened by map id with BPF_F_RDONLY: updates, deletes
//            and BPF_MAP_FREEZE through it fail with EPERM (opening by id
//            needs CAP_SYS_ADMIN: the daemon's root);
//   Write -> a CLOEXEC duplicate of the daemon's fd;
//   None  -> Internal error: such maps are never handed out.
// SystemError when the kernel refuses (errno attached).
Result<UniqueFd> client_map_fd(const LoadedMap& map);

// A CLOEXEC duplicate (F_DUPFD_CLOEXEC), or SystemError.
Result<UniqueFd> duplicate_for_client(const UniqueFd& fd);

}  // namespace bpfbroker::brokerd
