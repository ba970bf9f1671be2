// Catalog scan and verification; see catalog.h.
#include "policy/catalog.h"

#include "policy/layered_dir.h"
#include "policy/paths.h"

#include <algorithm>
#include <cerrno>
#include <map>
#include <system_error>
#include <thread>
#include <vector>

namespace bpfbroker::policy {

std::string_view origin_name(Origin o) noexcept
{
    return o == Origin::Vendor ? "vendor" : "admin";
}

std::string_view entry_state_name(EntryState s) noexcept
{
    switch (s) {
    case EntryState::Valid: return "valid";
    case EntryState::Invalid: return "invalid";
    case EntryState::UntrustedSigner: return "untrusted-signer";
    case EntryState::ObjectHashMismatch: return "object-hash-mismatch";
    }
    return "invalid";
}

const TrustedKey* KeyRing::find_signer(std::string_view data, std::string_view signature) const
{
    for (const auto& k : keys)
        if (k.key.verify(data, signature))
            return &k;
    return nullptr;
}

Result<KeyRing> load_keyring(int rootfd, const FileTrust& trust)
{
    KeyRing ring;
    auto dirs = open_layered_dir(rootfd, paths::kKeysSubdir, kMaxKeys, trust, ring.problems);
    auto load_one = [&](int dirfd, const std::string& name, Origin origin) -> Result<TrustedKey> {
        auto pem = read_trusted_file(dirfd, name, kMaxKeyFileBytes, trust);
        if (!pem)
            return fail(std::move(pem).error());
        auto key = PublicKey::from_pem(*pem);
        if (!key)
            return fail(std::move(key).error());
        return TrustedKey{name, origin, std::move(*key)};
    };
    for (const auto& [name, origin] : dirs.names) {
        auto rel = layer_path(origin, paths::kKeysSubdir) + "/" + name;
        if (name.size() < 5 || name.substr(name.size() - 4) != ".pem") {
            ring.problems.push_back({rel, make_error(ErrorCode::KeyInvalid, "not a .pem file, ignoring")});
            continue;
        }
        auto key = load_one(dirs.dir_of(origin), name, origin);
        if (!key) {
            ring.problems.push_back({rel, std::move(key).error()});
            continue;
        }
        ring.keys.push_back(std::move(*key));
    }
    // Remember masked vendor keys only to explain refusals ("signed by a revoked key").
    for (const auto& name : dirs.masked_vendor_names) {
        if (!dirs.vendor)
            continue;
        auto key = load_one(dirs.vendor->get(), name, Origin::Vendor);
        if (key)
            ring.masked.push_back(std::move(*key));
    }
    return ring;
}

namespace {

// The object a manifest names, read from its program directory, if its
// SHA-256 is the one the signed manifest pins.
Result<std::string> read_pinned_object(int progdirfd, const Manifest& manifest, const FileTrust& trust)
{
    auto object = read_trusted_file(progdirfd, manifest.object, kMaxObjectBytes, trust);
    if (!object)
        return fail(std::move(object).error());
    auto object_sha256 = sha256_hex(*object);
    if (object_sha256 != manifest.object_sha256)
        return fail(ErrorCode::ObjectHashMismatch, manifest.object + " has SHA-256 " + object_sha256 +
                                                       " but the signed manifest pins " + manifest.object_sha256);
    return object;
}

// Runs work(0..count-1) on up to kMaxVerifyThreads threads, this one
// included: verification is CPU-bound (a signature, a parse and a hash per
// entry) and independent per entry. Small catalogs stay on one thread, and
// when a thread cannot be started the work simply stays here.
template <typename Work>
void for_each_on_cores(std::size_t count, const Work& work)
{
    unsigned threads = count < kParallelVerifyFrom ? 1u : std::clamp(std::thread::hardware_concurrency(), 1u, kMaxVerifyThreads);
    auto share = [&](unsigned first, unsigned stride) {
        for (std::size_t i = first; i < count; i += stride)
            work(i);
    };
    std::vector<std::thread> helpers;
    unsigned started = 1;
    for (; started < threads; ++started) {
        try {
            helpers.emplace_back(share, started, threads);
        } catch (const std::system_error&) {
            break;
        }
    }
    share(0, threads);
    for (auto& h : helpers)
        h.join();
    // Shares of threads that never started.
    for (unsigned missing = started; missing < threads; ++missing)
        share(missing, threads);
}

}  // namespace

CatalogEntry verify_program_dir(int progdirfd, std::string name, Origin origin, const KeyRing& keys,
                                const FileTrust& trust, const AllowedAttachPoints& allowed)
{
    CatalogEntry e;
    e.name = std::move(name);
    e.origin = origin;
    auto refuse = [&e](EntryState state, Error err) {
        e.state = state;
        e.error = std::move(err);
        return std::move(e);
    };

    auto manifest_bytes = read_trusted_file(progdirfd, paths::kManifestFile, kMaxManifestBytes, trust);
    if (!manifest_bytes)
        return refuse(EntryState::Invalid, std::move(manifest_bytes).error());
    e.manifest_bytes = std::move(*manifest_bytes);
    e.manifest_sha256 = sha256_hex(e.manifest_bytes);

    auto signature = read_trusted_file(progdirfd, paths::kSignatureFile, kMaxSignatureBytes, trust);
    if (!signature)
        return refuse(EntryState::Invalid, std::move(signature).error());

    // Verify before parsing: the parser only ever sees bytes a trusted key signed.
    const TrustedKey* signer = keys.find_signer(e.manifest_bytes, *signature);
    if (!signer) {
        for (const auto& k : keys.masked)
            if (k.key.verify(e.manifest_bytes, *signature))
                return refuse(EntryState::UntrustedSigner,
                              make_error(ErrorCode::UntrustedSigner,
                                         "signed by key " + k.key.key_id() + " (" + k.file_name +
                                             "), which the administrator masked"));
        return refuse(EntryState::UntrustedSigner,
                      make_error(ErrorCode::UntrustedSigner,
                                 "manifest.json.sig does not verify with any of the " +
                                     std::to_string(keys.keys.size()) +
                                     " trusted keys: the manifest or signature was altered, or the signer is not trusted"));
    }
    e.signer_key_id = signer->key.key_id();

    auto manifest = parse_manifest(e.manifest_bytes, allowed);
    if (!manifest)
        return refuse(EntryState::Invalid, std::move(manifest).error());
    if (manifest->name != e.name)
        return refuse(EntryState::Invalid,
                      make_error(ErrorCode::ManifestInvalid, "manifest names program \"" + manifest->name +
                                                                 "\" but lives in directory \"" + e.name + "\""));
    e.manifest = std::move(*manifest);

    auto object = read_pinned_object(progdirfd, *e.manifest, trust);
    if (!object)
        return refuse(object.error().code == ErrorCode::ObjectHashMismatch ? EntryState::ObjectHashMismatch
                                                                           : EntryState::Invalid,
                      std::move(object).error());
    e.trust = trust;
    e.state = EntryState::Valid;
    return e;
}

Result<std::string> CatalogEntry::read_object() const
{
    if (!object_bytes.empty())
        return object_bytes;
    if (!manifest || !layer_dir)
        return fail(ErrorCode::ManifestInvalid, "catalog entry \"" + name + "\" has no verified object");
    auto progdir = open_trusted_dir(layer_dir->get(), name, trust);
    if (!progdir)
        return fail(std::move(progdir).error());
    auto object = read_pinned_object(progdir->get(), *manifest, trust);
    if (!object && object.error().code == ErrorCode::ObjectHashMismatch) {
        Error changed = std::move(object).error();
        changed.message += "; it changed since the catalog was read";
        return fail(std::move(changed));
    }
    return object;
}

const CatalogEntry* Catalog::find(std::string_view name) const
{
    auto it = std::lower_bound(entries.begin(), entries.end(), name,
                               [](const CatalogEntry& e, std::string_view n) { return e.name < n; });
    return it != entries.end() && it->name == name ? &*it : nullptr;
}

std::string Catalog::absence_reason(std::string_view name) const
{
    std::string out;
    for (Origin origin : {Origin::Vendor, Origin::Admin}) {
        const auto layer = layer_path(origin, paths::kProgramsSubdir);
        const auto entry = layer + "/" + std::string(name);
        for (const auto& p : problems)
            if (p.path == layer || p.path == entry)
                out += "; " + p.path + ": " + p.error.message;
    }
    return out;
}

Result<Catalog> scan_catalog(const std::string& root, const FileTrust& trust, const AllowedAttachPoints& allowed)
{
    auto rootfd = open_trusted_root(root, trust);
    if (!rootfd)
        return fail(std::move(rootfd).error());
    Catalog catalog;
    auto keys = load_keyring(rootfd->get(), trust);
    if (!keys)
        return fail(std::move(keys).error());
    catalog.keys = std::move(*keys);

    auto dirs = open_layered_dir(rootfd->get(), paths::kProgramsSubdir, kMaxCatalogEntries, trust, catalog.problems);
    // Shared by the entries, which read their objects through them at load.
    std::shared_ptr<const UniqueFd> layer_dirs[2];
    for (Origin origin : {Origin::Vendor, Origin::Admin})
        if (auto& dir = origin == Origin::Vendor ? dirs.vendor : dirs.admin)
            layer_dirs[origin == Origin::Vendor ? 0 : 1] = std::make_shared<const UniqueFd>(std::move(*dir));
    auto verify_named = [&](const std::string& name, Origin origin) {
        const auto& layer_dir = layer_dirs[origin == Origin::Vendor ? 0 : 1];
        CatalogEntry entry;
        if (!is_valid_program_name(name)) {
            entry.name = name;
            entry.origin = origin;
            entry.error = make_error(ErrorCode::ManifestInvalid, "directory name is not a valid program name");
        } else if (auto progdir = open_trusted_dir(layer_dir->get(), name, trust); progdir) {
            entry = verify_program_dir(progdir->get(), name, origin, catalog.keys, trust, allowed);
            entry.layer_dir = layer_dir;
        } else {
            entry.name = name;
            entry.origin = origin;
            entry.error = std::move(progdir).error();
        }
        return entry;
    };
    const std::vector<std::pair<std::string, Origin>> names(dirs.names.begin(), dirs.names.end());
    catalog.entries.resize(names.size());
    for_each_on_cores(names.size(), [&](std::size_t i) { catalog.entries[i] = verify_named(names[i].first, names[i].second); });
    // std::map iteration already gave name order; find() relies on it.
    return catalog;
}

}  // namespace bpfbroker::policy
