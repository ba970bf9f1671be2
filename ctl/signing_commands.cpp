// keygen, sign, verify and check-manifest: the parts of bpfbrokerctl a packager uses, with
// no daemon involved.
#include "commands.h"

#include "policy/catalog.h"
#include "policy/manifest.h"
#include "policy/paths.h"
#include "policy/secure_file.h"
#include "policy/signature.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>

namespace bpfbroker::ctl {

namespace {

using policy::KeyType;

struct KeygenArgs {
    std::string type = "ed25519";
    int bits = 3072;
    std::string out;
    std::string pub_out;
    bool force = false;
};

struct SignArgs {
    std::string key;
    std::string manifest;
    std::string out;
    bool force = false;
};

struct VerifyArgs {
    std::string dir;
    std::vector<std::string> keys;
};

int run_keygen(const KeygenArgs& a, const GlobalOptions& o)
{
    KeyType type = a.type == "ecdsa" ? KeyType::EcdsaP256 : a.type == "rsa" ? KeyType::Rsa : KeyType::Ed25519;
    auto key = policy::PrivateKey::generate(type, a.bits);
    if (!key)
        return report_error(key.error());
    std::string why;
    if (!write_file(a.out, key->to_pem(), 0600, a.force, why))
        return report_error(why);
    std::string pub_path = a.pub_out.empty() ? a.out + ".pub" : a.pub_out;
    if (!write_file(pub_path, key->public_key_pem(), 0644, a.force, why))
        return report_error(why);
    auto pub = key->public_key();
    if (!pub)
        return report_error(pub.error());
    if (o.json)
        print_json({{"type", policy::key_type_name(type)},
                    {"key_id", pub->key_id()},
                    {"private_key", a.out},
                    {"public_key", pub_path}});
    else
        std::cout << "Wrote " << policy::key_type_name(type) << " key " << a.out << " (public half: " << pub_path
                  << ")\nkey id: " << pub->key_id() << '\n';
    return kExitOk;
}

int run_sign(const SignArgs& a, const GlobalOptions& o)
{
    std::string pem, manifest, why;
    if (!read_file(a.key, pem, why) || !read_file(a.manifest, manifest, why))
        return report_error(why);
    auto key = policy::PrivateKey::from_pem(pem);
    if (!key)
        return report_error(key.error());
    // Refuse to sign what the daemon would refuse to parse: catch mistakes here.
    if (auto m = policy::parse_manifest(manifest); !m)
        return report_error(m.error());
    auto sig = key->sign(manifest);
    if (!sig)
        return report_error(sig.error());
    std::string out = a.out.empty() ? a.manifest + ".sig" : a.out;
    if (!write_file(out, *sig, 0644, a.force, why))
        return report_error(why);
    auto pub = key->public_key();
    if (o.json)
        print_json({{"signature", out}, {"key_id", pub ? pub->key_id() : ""}, {"manifest_sha256", policy::sha256_hex(manifest)}});
    else
        std::cout << "Signed " << a.manifest << " -> " << out << " with key " << (pub ? pub->key_id() : "?") << '\n';
    return kExitOk;
}

// Keys from --key files, or else the root's trusted keyring.
Result<policy::KeyRing> keys_for_verify(const VerifyArgs& a, const GlobalOptions& o, const policy::FileTrust& trust)
{
    if (a.keys.empty()) {
        auto rootfd = policy::open_trusted_root(o.root, trust);
        if (!rootfd)
            return fail(std::move(rootfd).error());
        return policy::load_keyring(rootfd->get(), trust);
    }
    policy::KeyRing ring;
    for (const auto& path : a.keys) {
        std::string pem, why;
        if (!read_file(path, pem, why))
            return fail(ErrorCode::KeyInvalid, why);
        auto key = policy::PublicKey::from_pem(pem);
        if (!key) {
            auto err = std::move(key).error();
            err.message = path + ": " + err.message;
            return fail(std::move(err));
        }
        ring.keys.push_back({std::filesystem::path(path).filename(), policy::Origin::Admin, std::move(*key)});
    }
    return ring;
}

// The daemon stops at the first refusal; a packager wants every problem at
// once. Past the first, look again at what verification skipped: the
// manifest's own validity (even unsigned), the object's hash, the name.
// Diagnostics only: nothing read here is ever loaded.
std::vector<Error> further_reasons(int dirfd, const policy::CatalogEntry& entry, const policy::FileTrust& trust)
{
    std::vector<Error> out;
    if (entry.valid() || entry.manifest || entry.manifest_bytes.empty())
        return out;
    auto manifest = policy::parse_manifest(entry.manifest_bytes);
    if (!manifest) {
        if (manifest.error().message != entry.error.message)
            out.push_back(manifest.error());
        return out;
    }
    if (manifest->name != entry.name)
        out.push_back(make_error(ErrorCode::ManifestInvalid, "manifest names program \"" + manifest->name +
                                                                 "\" but lives in directory \"" + entry.name + "\""));
    auto object = policy::read_trusted_file(dirfd, manifest->object, policy::kMaxObjectBytes, trust);
    if (!object)
        out.push_back(object.error());
    else if (auto hash = policy::sha256_hex(*object); hash != manifest->object_sha256)
        out.push_back(make_error(ErrorCode::ObjectHashMismatch, manifest->object + " has SHA-256 " + hash +
                                                                    " but the manifest pins " + manifest->object_sha256));
    return out;
}

int run_verify(const VerifyArgs& a, const GlobalOptions& o)
{
    policy::FileTrust trust{o.trust_own_files ? ::geteuid() : 0};
    auto ring = keys_for_verify(a, o, trust);
    if (!ring)
        return report_error(ring.error());
    auto dirfd = policy::open_trusted_root(a.dir, trust);
    std::string name = std::filesystem::path(a.dir).lexically_normal().filename();
    if (name.empty())
        name = std::filesystem::path(a.dir).lexically_normal().parent_path().filename();
    policy::CatalogEntry entry;
    if (dirfd) {
        entry = policy::verify_program_dir(dirfd->get(), name, policy::Origin::Admin, *ring, trust);
    } else {
        entry.name = name;
        entry.error = dirfd.error();
    }
    std::vector<Error> reasons;
    if (!entry.valid())
        reasons.push_back(entry.error);
    if (dirfd)
        for (auto& e : further_reasons(dirfd->get(), entry, trust))
            reasons.push_back(std::move(e));
    const policy::TrustedKey* signer = nullptr;
    for (const auto& k : ring->keys)
        if (k.key.key_id() == entry.signer_key_id)
            signer = &k;
    if (o.json) {
        nlohmann::json j = {{"program", entry.name},
                            {"state", policy::entry_state_name(entry.state)},
                            {"ok", entry.valid()},
                            {"manifest_sha256", entry.manifest_sha256}};
        if (!entry.signer_key_id.empty())
            j["signer"] = {{"key_id", entry.signer_key_id}, {"file", signer ? signer->file_name : ""}};
        if (entry.manifest)
            j["object"] = {{"file", entry.manifest->object}, {"sha256", entry.manifest->object_sha256}},
            j["version"] = entry.manifest->version, j["cut_live"] = policy::can_be_cut_live(*entry.manifest);
        if (!entry.valid()) {
            j["reason"] = error_to_json(entry.error);
            nlohmann::json all = nlohmann::json::array();
            for (const auto& r : reasons)
                all.push_back(error_to_json(r));
            j["reasons"] = all;
        }
        print_json(j);
    } else if (entry.valid()) {
        std::cout << entry.name << ' ' << entry.manifest->version << ": ok\n"
                  << "  signer:   " << entry.signer_key_id << " (" << (signer ? signer->file_name : "?") << ")\n"
                  << "  object:   " << entry.manifest->object << " sha256 " << entry.manifest->object_sha256 << '\n'
                  << "  manifest: sha256 " << entry.manifest_sha256 << '\n'
                  << "  revocation: "
                  << (policy::can_be_cut_live(*entry.manifest)
                          ? "cuts live instances (guard " + entry.manifest->revocation_guard + ")"
                          : std::string("refuses new acquires only: no revocation guard, live instances run on"))
                  << '\n';
    } else {
        std::cout << entry.name << ": refused (" << policy::entry_state_name(entry.state) << ")\n";
        for (const auto& r : reasons)
            std::cout << "  " << r.describe() << '\n';
    }
    return entry.valid() ? kExitOk : kExitRefused;
}

// The daemon's own manifest parser on one file, for build systems (the
// packager's kit runs it before signing).
int run_check_manifest(const std::string& path, const GlobalOptions& o)
{
    std::string bytes, why;
    if (!read_file(path, bytes, why))
        return report_error(why);
    auto m = policy::parse_manifest(bytes);
    if (!m)
        return report_error(make_error(m.error().code, path + ": " + m.error().message));
    if (o.json)
        print_json({{"manifest", path}, {"name", m->name}, {"version", m->version}, {"valid", true}});
    else
        std::cout << path << ": valid manifest of " << m->name << ' ' << m->version << '\n';
    return kExitOk;
}

}  // namespace

void add_signing_commands(CLI::App& app, GlobalOptions& options, int& exit_code)
{
    auto keygen = std::make_shared<KeygenArgs>();
    auto* k = app.add_subcommand("keygen", "Generate a signing key pair (private key written 0600)");
    k->add_option("--type", keygen->type, "Key type")->check(CLI::IsMember({"ed25519", "ecdsa", "rsa"}));
    k->add_option("--bits", keygen->bits, "RSA modulus size")->check(CLI::Range(3072, 8192));
    k->add_option("--out,-o", keygen->out, "Private key file to create")->required();
    k->add_option("--pub-out", keygen->pub_out, "Public key file (default: OUT.pub)");
    k->add_flag("--force", keygen->force, "Replace existing files");
    k->callback([keygen, &options, &exit_code] { exit_code = run_keygen(*keygen, options); });

    auto sign = std::make_shared<SignArgs>();
    auto* s = app.add_subcommand("sign", "Sign a manifest.json (same format as the openssl tool)");
    s->add_option("--key,-k", sign->key, "Private key (PEM)")->required()->check(CLI::ExistingFile);
    s->add_option("manifest", sign->manifest, "manifest.json to sign")->required()->check(CLI::ExistingFile);
    s->add_option("--out,-o", sign->out, "Signature file (default: MANIFEST.sig)");
    s->add_flag("--force", sign->force, "Replace an existing signature");
    s->callback([sign, &options, &exit_code] { exit_code = run_sign(*sign, options); });

    auto verify = std::make_shared<VerifyArgs>();
    auto* v = app.add_subcommand("verify",
                                 "Verify a program directory as the daemon would: signer, object hash, every refusal reason");
    v->add_option("dir", verify->dir, "Program directory (manifest.json, manifest.json.sig, object)")
        ->required()
        ->check(CLI::ExistingDirectory);
    v->add_option("--key,-k", verify->keys, "Trusted public key (default: the keys.d of --root)")
        ->check(CLI::ExistingFile);
    v->callback([verify, &options, &exit_code] { exit_code = run_verify(*verify, options); });

    auto manifest = std::make_shared<std::string>();
    auto* cm = app.add_subcommand("check-manifest", "Check a manifest.json with the daemon's parser (no signature needed)");
    cm->add_option("manifest", *manifest, "manifest.json to check")->required()->check(CLI::ExistingFile);
    cm->callback([manifest, &options, &exit_code] { exit_code = run_check_manifest(*manifest, options); });
}

}  // namespace bpfbroker::ctl
