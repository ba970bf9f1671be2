// The catalog: every program the packages and the administrator installed,
// each read once from disk, verified against the trusted keys, and kept in
// memory in exactly the bytes that were verified, ready to load.
//
// Layout under the root (see paths.h):
//   usr/lib/bpfbroker/programs.d/NAME/{manifest.json,manifest.json.sig,OBJECT}
//   etc/bpfbroker/programs.d/NAME/...   masks the vendor NAME (a link to /dev/null removes it)
//   usr/lib/bpfbroker/keys.d/*.pem, etc/bpfbroker/keys.d/*.pem   (same masking by file name)
#pragma once

#include "policy/manifest.h"
#include "policy/secure_file.h"
#include "policy/signature.h"

#include <bpfbroker/result.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bpfbroker::policy {

inline constexpr std::size_t kMaxKeyFileBytes = 64 * 1024;
inline constexpr std::size_t kMaxSignatureBytes = 1024;
inline constexpr std::size_t kMaxObjectBytes = 16 * 1024 * 1024;
// Programs served at most; the names past it are refused one by one (see
// layered_dir.h). Each costs its verified bytes in memory (a few KiB for the
// shipped programs).
inline constexpr std::size_t kMaxCatalogEntries = 10000;
inline constexpr std::size_t kMaxKeys = 64;
// Verification of a catalog this large or larger runs on up to this many
// threads (the machines this serves have a few cores; policy is CPU-bound).
inline constexpr std::size_t kParallelVerifyFrom = 64;
inline constexpr unsigned kMaxVerifyThreads = 2;

enum class Origin { Vendor, Admin };
std::string_view origin_name(Origin o) noexcept;  // "vendor" / "admin"

struct TrustedKey {
    std::string file_name;  // e.g. "debian.pem"
    Origin origin;
    PublicKey key;
};

// A policy file that was refused or ignored, and why (for logs and `catalog`).
struct PolicyProblem {
    std::string path;  // relative to the root
    Error error;
};

struct KeyRing {
    std::vector<TrustedKey> keys;
    std::vector<TrustedKey> masked;  // vendor keys an /etc link to /dev/null revoked
    std::vector<PolicyProblem> problems;

    // The trusted key whose signature over `data` verifies, or nullptr.
    [[nodiscard]] const TrustedKey* find_signer(std::string_view data, std::string_view signature) const;
};

Result<KeyRing> load_keyring(int rootfd, const FileTrust& trust);

enum class EntryState { Valid, Invalid, UntrustedSigner, ObjectHashMismatch };
std::string_view entry_state_name(EntryState s) noexcept;  // "valid", "invalid", ...

struct CatalogEntry {
    std::string name;
    Origin origin = Origin::Vendor;
    EntryState state = EntryState::Invalid;
    Error error;  // why the entry is not valid; empty message when valid

    // Filled as far as verification got; manifest only once the signature held.
    std::string manifest_bytes;
    std::string manifest_sha256;
    std::string signer_key_id;
    std::optional<Manifest> manifest;
    // The verified object when an entry holds it in memory (entries made by
    // hand). scan_catalog does not keep it: the object is most of an entry's
    // size (a 1,000-program catalog held 10 MiB of them), so it is read again
    // from the opened layer directory at load and checked against the signed
    // pin then, on the very bytes that are loaded. (The daemon keeps the
    // objects of recent loads, bounded: brokerd/verified_objects.h.)
    std::string object_bytes;
    std::shared_ptr<const UniqueFd> layer_dir;  // the programs.d layer it came from
    FileTrust trust;

    [[nodiscard]] bool valid() const noexcept { return state == EntryState::Valid; }

    // The object's bytes, whose SHA-256 is the manifest's object_sha256:
    // object_bytes, or the file read again through layer_dir with the same
    // checks as the scan. ObjectHashMismatch when the file changed since.
    [[nodiscard]] Result<std::string> read_object() const;
};

struct Catalog {
    std::vector<CatalogEntry> entries;  // sorted by name
    KeyRing keys;
    std::vector<PolicyProblem> problems;

    [[nodiscard]] const CatalogEntry* find(std::string_view name) const;

    // Why a program `name` that find() does not have may be missing: the
    // problems of the programs.d layers that were refused and of the entry
    // itself if it was refused (past the cap), as "; PATH: MESSAGE" each, or
    // "" when no problem explains it.
    [[nodiscard]] std::string absence_reason(std::string_view name) const;
};

// Verifies one program directory (already opened and checked) against keys.
// `allowed` bounds the attach points of broker-attached manifests (the
// settings file may widen io_uring's).
CatalogEntry verify_program_dir(int progdirfd, std::string name, Origin origin, const KeyRing& keys,
                                const FileTrust& trust, const AllowedAttachPoints& allowed = {});

// Scans the whole catalog under the root. Fails only when the root itself
// cannot be used; bad entries are kept with their state and reason.
Result<Catalog> scan_catalog(const std::string& root, const FileTrust& trust,
                             const AllowedAttachPoints& allowed = {});

}  // namespace bpfbroker::policy
