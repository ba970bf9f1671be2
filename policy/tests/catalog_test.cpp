// Catalog scanning on real files: signatures from the openssl tool, tampering,
// unsafe files and masking. Every refusal must carry its own reason.
#include "policy/catalog.h"

#include "test_root.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

using namespace bpfbroker;
using namespace bpfbroker::policy;
using namespace bpfbroker::policy::testing;

namespace {

constexpr std::string_view kVendor = "usr/lib/bpfbroker";
constexpr std::string_view kAdmin = "etc/bpfbroker";

class CatalogTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto k = PrivateKey::generate(KeyType::Ed25519);
        ASSERT_TRUE(k) << k.error().describe();
        key_.emplace(std::move(*k));
        install_key(root_, kVendor, "vendor.pem", *key_);
        program_.install(root_, kVendor, *key_);
    }

    Catalog scan()
    {
        auto c = scan_catalog(root_.path(), root_.trust());
        EXPECT_TRUE(c) << c.error().describe();
        return c ? std::move(*c) : Catalog{};
    }

    const CatalogEntry& only_entry(const Catalog& c)
    {
        EXPECT_EQ(c.entries.size(), 1u);
        static CatalogEntry none;
        return c.entries.empty() ? none : c.entries.front();
    }

    std::string dir() const { return std::string(kVendor) + "/programs.d/demo/"; }

    void flip_byte(const std::string& rel, std::size_t index)
    {
        auto bytes = root_.read(rel);
        ASSERT_LT(index, bytes.size());
        bytes[index] = static_cast<char>(bytes[index] ^ 0x01);
        root_.write(rel, bytes);
    }

    TempRoot root_;
    std::optional<PrivateKey> key_;
    ProgramFixture program_;
};

}  // namespace

TEST_F(CatalogTest, a_signed_program_is_valid_and_reads_back_the_verified_bytes)
{
    auto c = scan();
    const auto& e = only_entry(c);
    ASSERT_TRUE(e.valid()) << e.error.describe();
    EXPECT_EQ(e.signer_key_id, key_->public_key()->key_id());
    EXPECT_TRUE(e.object_bytes.empty()) << "objects are not held in memory";
    auto object = e.read_object();
    ASSERT_TRUE(object) << object.error().describe();
    EXPECT_EQ(*object, program_.object_bytes);
    EXPECT_EQ(e.manifest_sha256, sha256_hex(program_.manifest_json()));
    EXPECT_EQ(e.origin, Origin::Vendor);
}

TEST_F(CatalogTest, a_manifest_signed_only_with_the_openssl_tool_is_valid)
{
    for (const char* genpkey : {"-algorithm ed25519", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"}) {
        bool ed = std::string_view(genpkey).find("ed25519") != std::string_view::npos;
        std::string keyfile = root_.at("cli-key.pem");
        ASSERT_EQ(run("openssl genpkey " + std::string(genpkey) + " -out " + keyfile), 0);
        ASSERT_EQ(run("openssl pkey -in " + keyfile + " -pubout -out " + root_.at("etc/bpfbroker/keys.d/cli.pem")), 0);
        ::unlink(root_.at(dir() + "manifest.json.sig").c_str());
        std::string manifest = root_.at(dir() + "manifest.json");
        std::string sig = root_.at(dir() + "manifest.json.sig");
        std::string sign = ed ? "openssl pkeyutl -sign -rawin -inkey " + keyfile + " -in " + manifest + " -out " + sig
                              : "openssl dgst -sha256 -sign " + keyfile + " -out " + sig + " " + manifest;
        ASSERT_EQ(run(sign), 0);
        ::chmod(sig.c_str(), 0644);
        ::chmod(root_.at("etc/bpfbroker/keys.d/cli.pem").c_str(), 0644);
        ::unlink(keyfile.c_str());

        auto c = scan();
        const auto& e = only_entry(c);
        ASSERT_TRUE(e.valid()) << genpkey << ": " << e.error.describe();
        ASSERT_EQ(c.keys.keys.size(), 2u);
        EXPECT_NE(e.signer_key_id, key_->public_key()->key_id());
    }
}

TEST_F(CatalogTest, one_flipped_byte_is_refused_with_the_matching_reason)
{
    flip_byte(dir() + "manifest.json", 20);
    auto e = only_entry(scan());
    EXPECT_EQ(e.state, EntryState::UntrustedSigner);
    EXPECT_EQ(e.error.code, ErrorCode::UntrustedSigner);
    EXPECT_NE(e.error.message.find("does not verify"), std::string::npos);
    EXPECT_TRUE(e.object_bytes.empty());

    program_.install(root_, kVendor, *key_);
    flip_byte(dir() + "manifest.json.sig", 5);
    e = only_entry(scan());
    EXPECT_EQ(e.state, EntryState::UntrustedSigner);

    program_.install(root_, kVendor, *key_);
    flip_byte(dir() + "demo.bpf.o", 3);
    e = only_entry(scan());
    EXPECT_EQ(e.state, EntryState::ObjectHashMismatch);
    EXPECT_EQ(e.error.code, ErrorCode::ObjectHashMismatch);
    EXPECT_TRUE(e.object_bytes.empty());

    program_.install(root_, kVendor, *key_);
    auto sig = root_.read(dir() + "manifest.json.sig");
    root_.write(dir() + "manifest.json.sig", sig.substr(0, sig.size() - 1));
    EXPECT_EQ(only_entry(scan()).state, EntryState::UntrustedSigner);
}

TEST_F(CatalogTest, an_untrusted_or_masked_key_is_refused)
{
    auto other = PrivateKey::generate(KeyType::Ed25519);
    ASSERT_TRUE(other);
    program_.install(root_, kVendor, *other);
    auto e = only_entry(scan());
    EXPECT_EQ(e.state, EntryState::UntrustedSigner);

    program_.install(root_, kVendor, *key_);
    ASSERT_EQ(::symlink("/dev/null", root_.at("etc/bpfbroker/keys.d/vendor.pem").c_str()), 0);
    auto c = scan();
    e = only_entry(c);
    EXPECT_EQ(e.state, EntryState::UntrustedSigner);
    EXPECT_NE(e.error.message.find("masked"), std::string::npos) << e.error.message;
    EXPECT_TRUE(c.keys.keys.empty());
}

TEST_F(CatalogTest, unusable_key_files_are_reported_and_skipped)
{
    root_.write("usr/lib/bpfbroker/keys.d/garbage.pem", "not a key");
    auto c = scan();
    EXPECT_TRUE(only_entry(c).valid());
    ASSERT_EQ(c.keys.problems.size(), 1u);
    EXPECT_EQ(c.keys.problems[0].error.code, ErrorCode::KeyInvalid);
}

TEST_F(CatalogTest, symlinks_are_refused)
{
    auto manifest = root_.at(dir() + "manifest.json");
    ASSERT_EQ(::rename(manifest.c_str(), root_.at("elsewhere.json").c_str()), 0);
    ASSERT_EQ(::symlink(root_.at("elsewhere.json").c_str(), manifest.c_str()), 0);
    auto e = only_entry(scan());
    EXPECT_EQ(e.error.code, ErrorCode::UnsafeFile);
    EXPECT_NE(e.error.message.find("symbolic link"), std::string::npos);

    program_.install(root_, kVendor, *key_);
    auto object = root_.at(dir() + "demo.bpf.o");
    ASSERT_EQ(::rename(object.c_str(), root_.at("elsewhere.o").c_str()), 0);
    ASSERT_EQ(::symlink(root_.at("elsewhere.o").c_str(), object.c_str()), 0);
    e = only_entry(scan());
    EXPECT_EQ(e.error.code, ErrorCode::UnsafeFile);
    EXPECT_TRUE(e.object_bytes.empty());
}

TEST_F(CatalogTest, a_symlinked_program_directory_is_refused)
{
    root_.mkdirs("real/demo");
    ASSERT_EQ(::symlink(root_.at("real/demo").c_str(), root_.at("etc/bpfbroker/programs.d/demo").c_str()), 0);
    auto e = only_entry(scan());
    EXPECT_EQ(e.origin, Origin::Admin);
    EXPECT_EQ(e.error.code, ErrorCode::UnsafeFile);
}

TEST_F(CatalogTest, group_writable_or_foreign_owned_files_are_refused)
{
    ASSERT_EQ(::chmod(root_.at(dir()).c_str(), 0775), 0);
    auto e = only_entry(scan());
    EXPECT_EQ(e.error.code, ErrorCode::UnsafeFile);
    EXPECT_NE(e.error.message.find("writable by group or others"), std::string::npos);
    ASSERT_EQ(::chmod(root_.at(dir()).c_str(), 0755), 0);

    ASSERT_EQ(::chmod(root_.at(dir() + "manifest.json").c_str(), 0646), 0);
    EXPECT_EQ(only_entry(scan()).error.code, ErrorCode::UnsafeFile);
    ASSERT_EQ(::chmod(root_.at(dir() + "manifest.json").c_str(), 0644), 0);

    if (::geteuid() != 0)
        GTEST_SKIP() << "chown to another user needs root";
    ASSERT_EQ(::chown(root_.at(dir() + "demo.bpf.o").c_str(), 65534, 65534), 0);
    e = only_entry(scan());
    EXPECT_EQ(e.error.code, ErrorCode::UnsafeFile);
    EXPECT_NE(e.error.message.find("owned by uid 65534"), std::string::npos);
}

TEST_F(CatalogTest, an_unsafe_policy_directory_is_reported)
{
    ASSERT_EQ(::chmod(root_.at("usr/lib/bpfbroker/programs.d").c_str(), 0777), 0);
    auto c = scan();
    EXPECT_TRUE(c.entries.empty());
    ASSERT_EQ(c.problems.size(), 1u);
    EXPECT_EQ(c.problems[0].error.code, ErrorCode::UnsafeFile);
}

TEST_F(CatalogTest, etc_masks_usr_lib_by_name)
{
    ProgramFixture admin_copy = program_;
    admin_copy.version = "2.0.0-local";
    admin_copy.install(root_, kAdmin, *key_);
    auto e = only_entry(scan());
    ASSERT_TRUE(e.valid()) << e.error.describe();
    EXPECT_EQ(e.origin, Origin::Admin);
    EXPECT_EQ(e.manifest->version, "2.0.0-local");

    std::filesystem::remove_all(root_.at("etc/bpfbroker/programs.d/demo"));
    ASSERT_EQ(::symlink("/dev/null", root_.at("etc/bpfbroker/programs.d/demo").c_str()), 0);
    EXPECT_TRUE(scan().entries.empty());
}

TEST_F(CatalogTest, a_manifest_naming_another_program_is_refused)
{
    ProgramFixture renamed = program_;
    renamed.name = "other";
    auto manifest = renamed.manifest_json();
    root_.write(dir() + "manifest.json", manifest);
    root_.write(dir() + "manifest.json.sig", *key_->sign(manifest));
    auto e = only_entry(scan());
    EXPECT_EQ(e.error.code, ErrorCode::ManifestInvalid);
    EXPECT_NE(e.error.message.find("lives in directory"), std::string::npos);
}

TEST_F(CatalogTest, an_unusable_admin_layer_drops_the_vendor_layer_instead_of_unmasking_it)
{
    // The administrator revoked the vendor key with a /dev/null mask...
    ASSERT_EQ(::symlink("/dev/null", root_.at("etc/bpfbroker/keys.d/vendor.pem").c_str()), 0);
    EXPECT_EQ(only_entry(scan()).state, EntryState::UntrustedSigner);
    // ...then etc/bpfbroker/keys.d became unsafe. Its mask can no longer be
    // trusted, but neither may the vendor key come back.
    ASSERT_EQ(::chmod(root_.at("etc/bpfbroker/keys.d").c_str(), 0775), 0);
    auto c = scan();
    EXPECT_TRUE(c.keys.keys.empty());
    EXPECT_EQ(only_entry(c).state, EntryState::UntrustedSigner);
    ASSERT_FALSE(c.keys.problems.empty());
    EXPECT_NE(c.keys.problems.back().error.message.find("ignored too"), std::string::npos);

    // Same for programs.d: a masked vendor program stays gone.
    ASSERT_EQ(::chmod(root_.at("etc/bpfbroker/keys.d").c_str(), 0755), 0);
    ASSERT_EQ(::symlink("/dev/null", root_.at("etc/bpfbroker/programs.d/demo").c_str()), 0);
    ASSERT_EQ(::chmod(root_.at("etc/bpfbroker/programs.d").c_str(), 0777), 0);
    EXPECT_TRUE(scan().entries.empty());
}

// Issue 7: a world-writable vendor programs.d made every program
// ProgramNotFound with no reason anywhere. The refusal must say that the
// layer was refused and which check failed, and a missing program's reason
// must carry it.
TEST_F(CatalogTest, a_refused_layer_says_which_check_failed_and_explains_missing_programs)
{
    ASSERT_EQ(::chmod(root_.at("usr/lib/bpfbroker/programs.d").c_str(), 0777), 0);
    auto c = scan();
    ASSERT_EQ(c.problems.size(), 1u);
    const auto& message = c.problems[0].error.message;
    EXPECT_EQ(c.problems[0].path, "usr/lib/bpfbroker/programs.d");
    EXPECT_NE(message.find("vendor layer usr/lib/bpfbroker/programs.d is refused"), std::string::npos) << message;
    EXPECT_NE(message.find("writable by group or others (mode 0777)"), std::string::npos) << message;

    EXPECT_EQ(c.find("demo"), nullptr);
    const auto why = c.absence_reason("demo");
    EXPECT_NE(why.find("is refused"), std::string::npos) << why;
    EXPECT_NE(why.find("writable by group or others"), std::string::npos) << why;

    ASSERT_EQ(::chmod(root_.at("usr/lib/bpfbroker/programs.d").c_str(), 0755), 0);
    EXPECT_EQ(scan().absence_reason("other"), "") << "nothing explains a name that was never there";
}

// The object is read again at load: a file changed since the scan is
// refused there, never loaded, and the layer is reached through the
// directory fd the scan opened, with the same ownership and mode checks.
TEST_F(CatalogTest, an_object_changed_after_the_scan_is_refused_at_load)
{
    auto c = scan();
    const auto& e = only_entry(c);
    ASSERT_TRUE(e.valid()) << e.error.describe();
    flip_byte(dir() + "demo.bpf.o", 0);
    auto object = e.read_object();
    ASSERT_FALSE(object);
    EXPECT_EQ(object.error().code, ErrorCode::ObjectHashMismatch);
    EXPECT_NE(object.error().message.find("changed since the catalog was read"), std::string::npos)
        << object.error().message;

    flip_byte(dir() + "demo.bpf.o", 0);
    ASSERT_TRUE(e.read_object());
    ASSERT_EQ(::chmod(root_.at(dir() + "demo.bpf.o").c_str(), 0666), 0);
    object = e.read_object();
    ASSERT_FALSE(object);
    EXPECT_EQ(object.error().code, ErrorCode::UnsafeFile);
}

// Catalogs from kParallelVerifyFrom entries up are verified on several
// threads: each entry must still get its own verdict, in name order.
TEST_F(CatalogTest, a_large_catalog_verified_on_several_threads_keeps_every_verdict_in_order)
{
    constexpr int kPrograms = static_cast<int>(kParallelVerifyFrom) + 36;
    for (int i = 0; i < kPrograms; ++i) {
        ProgramFixture p = program_;
        p.name = "p" + std::to_string(100 + i);
        p.install(root_, kVendor, *key_);
        if (i % 10 == 3)
            root_.write(std::string(kVendor) + "/programs.d/" + p.name + "/manifest.json.sig", "tampered");
    }
    auto c = scan();
    ASSERT_EQ(c.entries.size(), static_cast<std::size_t>(kPrograms) + 1);
    for (int i = 0; i < kPrograms; ++i) {
        const auto& e = c.entries[static_cast<std::size_t>(i) + 1];  // after "demo"
        EXPECT_EQ(e.name, "p" + std::to_string(100 + i));
        EXPECT_EQ(e.valid(), i % 10 != 3) << e.name << ": " << e.error.describe();
        if (i % 10 == 3) {
            EXPECT_EQ(e.state, EntryState::UntrustedSigner) << e.name;
        }
    }
    EXPECT_EQ(c.entries.front().name, "demo");
    EXPECT_NE(c.find("p150"), nullptr);
}
