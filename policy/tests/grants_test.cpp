// Grants from allow-lists and approvals: matching by hash and signer,
// revocation masking, /etc masking /usr/lib, and strict parsing.
#include "policy/approvals_store.h"
#include "policy/decide.h"
#include "policy/grants.h"

#include "test_root.h"

#include <gtest/gtest.h>

#include <unistd.h>

using namespace bpfbroker;
using namespace bpfbroker::policy;
using namespace bpfbroker::policy::testing;

namespace {

class GrantsTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto k = PrivateKey::generate(KeyType::Ed25519);
        ASSERT_TRUE(k);
        key_.emplace(std::move(*k));
        install_key(root_, "usr/lib/bpfbroker", "vendor.pem", *key_);
        program_.install(root_, "usr/lib/bpfbroker", *key_);
    }

    Catalog scan()
    {
        auto c = scan_catalog(root_.path(), root_.trust());
        EXPECT_TRUE(c) << c.error().describe();
        return c ? std::move(*c) : Catalog{};
    }

    GrantSet grants(bool include_vendor = true)
    {
        auto rootfd = open_trusted_root(root_.path(), root_.trust());
        EXPECT_TRUE(rootfd);
        return load_grants(rootfd->get(), root_.trust(), include_vendor);
    }

    // Would uid 1000 (alice, in group netdev) be allowed "demo" right now?
    bool alice_allowed()
    {
        auto c = scan();
        const auto* e = c.find("demo");
        if (!e)
            return false;
        auto g = grants();
        Peer alice{1000, 1000, 4242, {1000, 110}, "alice", {"alice", "netdev"}};
        return decide(*e, g, alice, {}, {}, {}).allowed;
    }

    std::string grant_json(const std::string& match) const
    {
        return R"({"program":"demo","match":)" + match + R"(,"principals":{"users":["alice"]}})";
    }

    std::string hash_match() { return R"({"manifest_sha256":")" + scan().find("demo")->manifest_sha256 + "\"}"; }
    std::string signer_match() { return R"({"signer":")" + key_->public_key()->key_id() + "\"}"; }

    void upgrade()
    {
        program_.version = "1.1.0";
        program_.object_bytes += " v1.1";
        program_.install(root_, "usr/lib/bpfbroker", *key_);
    }

    TempRoot root_;
    std::optional<PrivateKey> key_;
    ProgramFixture program_;
};

}  // namespace

TEST_F(GrantsTest, a_grant_by_hash_stops_matching_after_an_upgrade)
{
    root_.write("usr/lib/bpfbroker/allowlist.d/demo.json", grant_json(hash_match()));
    EXPECT_TRUE(alice_allowed());
    upgrade();
    EXPECT_FALSE(alice_allowed());
    auto c = scan();
    auto d = decide(*c.find("demo"), grants(), Peer{1000, 1000, 1, {}, "alice", {}}, {}, {}, {});
    EXPECT_NE(d.reason.find("changed since it was approved"), std::string::npos) << d.reason;
}

TEST_F(GrantsTest, a_grant_by_signer_follows_upgrades_signed_by_that_key)
{
    root_.write("usr/lib/bpfbroker/allowlist.d/demo.json", grant_json(signer_match()));
    EXPECT_TRUE(alice_allowed());
    upgrade();
    EXPECT_TRUE(alice_allowed());
    auto other = PrivateKey::generate(KeyType::Ed25519);
    ASSERT_TRUE(other);
    install_key(root_, "etc/bpfbroker", "other.pem", *other);
    program_.install(root_, "usr/lib/bpfbroker", *other);
    EXPECT_FALSE(alice_allowed());
}

TEST_F(GrantsTest, a_revocation_masks_a_vendor_allowlist_grant_until_approved_again)
{
    root_.write("usr/lib/bpfbroker/allowlist.d/demo.json", grant_json(signer_match()));
    EXPECT_TRUE(alice_allowed());
    auto rootfd = open_trusted_root(root_.path(), root_.trust());
    ASSERT_TRUE(rootfd);
    auto updated = ApprovalsStore::update(rootfd->get(), root_.trust(), [](Approvals& a) -> Result<void> {
        a.revoke("demo");
        return {};
    });
    ASSERT_TRUE(updated) << updated.error().describe();
    EXPECT_FALSE(alice_allowed());

    auto hash = scan().find("demo")->manifest_sha256;
    updated = ApprovalsStore::update(rootfd->get(), root_.trust(), [&](Approvals& a) -> Result<void> {
        Grant g;
        g.program = "demo";
        g.match_value = hash;
        g.principals.uids = {1000};
        g.source = "approvals";
        a.approve(std::move(g));
        return {};
    });
    ASSERT_TRUE(updated);
    EXPECT_TRUE(updated->revoked_programs.empty());
    EXPECT_TRUE(alice_allowed());
}

TEST_F(GrantsTest, etc_allowlist_masks_usr_lib_by_file_name)
{
    root_.write("usr/lib/bpfbroker/allowlist.d/demo.json", grant_json(signer_match()));
    root_.write("etc/bpfbroker/allowlist.d/demo.json",
                R"({"program":"demo","match":)" + signer_match() + R"(,"principals":{"users":["bob"]}})");
    EXPECT_FALSE(alice_allowed());
    ::unlink(root_.at("etc/bpfbroker/allowlist.d/demo.json").c_str());
    EXPECT_TRUE(alice_allowed());
    ASSERT_EQ(::symlink("/dev/null", root_.at("etc/bpfbroker/allowlist.d/demo.json").c_str()), 0);
    EXPECT_FALSE(alice_allowed());
}

TEST_F(GrantsTest, an_unusable_admin_allowlist_dir_drops_vendor_grants_too)
{
    root_.write("usr/lib/bpfbroker/allowlist.d/demo.json", grant_json(signer_match()));
    ASSERT_EQ(::symlink("/dev/null", root_.at("etc/bpfbroker/allowlist.d/demo.json").c_str()), 0);
    EXPECT_FALSE(alice_allowed());
    ASSERT_EQ(::chmod(root_.at("etc/bpfbroker/allowlist.d").c_str(), 0777), 0);
    EXPECT_FALSE(alice_allowed()) << "the masked vendor grant came back";
    EXPECT_TRUE(grants().grants.empty());
}

TEST_F(GrantsTest, vendor_allowlists_can_be_switched_off)
{
    root_.write("usr/lib/bpfbroker/allowlist.d/demo.json", grant_json(signer_match()));
    EXPECT_EQ(grants(true).grants.size(), 1u);
    EXPECT_EQ(grants(false).grants.size(), 0u);
}

TEST_F(GrantsTest, malformed_allowlists_are_reported_and_grant_nothing)
{
    root_.write("etc/bpfbroker/allowlist.d/bad.json", R"({"program":"demo","match":{},"principals":{"anyone":true}})");
    root_.write("etc/bpfbroker/allowlist.d/open.json", grant_json(signer_match()), 0666);
    auto g = grants();
    EXPECT_TRUE(g.grants.empty());
    ASSERT_EQ(g.problems.size(), 2u);
    EXPECT_EQ(g.problems[0].error.code, ErrorCode::GrantInvalid);
    EXPECT_NE(g.problems[0].error.message.find("$.match: must hold exactly one"), std::string::npos)
        << g.problems[0].error.message;
    EXPECT_EQ(g.problems[1].error.code, ErrorCode::UnsafeFile);
}

TEST_F(GrantsTest, a_corrupt_approvals_store_fails_closed)
{
    root_.write("usr/lib/bpfbroker/allowlist.d/demo.json", grant_json(signer_match()));
    root_.write("var/lib/bpfbroker/approvals.json", "{ torn");
    auto g = grants();
    EXPECT_TRUE(g.grants.empty());
    ASSERT_EQ(g.problems.size(), 1u);
    EXPECT_FALSE(alice_allowed());
}

TEST(grant_parsing, refuses_bad_principals_and_matches)
{
    const char* bad[] = {
        R"({"program":"demo","match":{"signer":"abc"},"principals":{"anyone":true}})",
        R"({"program":"demo","match":{"manifest_sha256":"x"},"principals":{"anyone":true}})",
        R"({"program":"Demo!","match":{"signer":"0000000000000000000000000000000000000000000000000000000000000000"},"principals":{"anyone":true}})",
        R"({"program":"demo","match":{"signer":"0000000000000000000000000000000000000000000000000000000000000000"},"principals":{}})",
        R"({"program":"demo","match":{"signer":"0000000000000000000000000000000000000000000000000000000000000000"},"principals":{"users":[-1]}})",
        R"({"program":"demo","match":{"signer":"0000000000000000000000000000000000000000000000000000000000000000"},"principals":{"users":["a b"]}})",
        R"({"program":"demo","match":{"signer":"0000000000000000000000000000000000000000000000000000000000000000"},"principals":{"anyone":"yes"}})",
        R"({"program":"demo","match":{"signer":"0000000000000000000000000000000000000000000000000000000000000000"},"principals":{"anyone":true},"note":1})",
        R"([1])",
    };
    for (const char* text : bad) {
        auto g = parse_allowlist(text, "t.json");
        ASSERT_FALSE(g) << text;
        EXPECT_EQ(g.error().code, ErrorCode::GrantInvalid);
        EXPECT_EQ(g.error().message.rfind("t.json: $", 0), 0u) << g.error().message;
    }
    auto ok = parse_allowlist(
        R"([{"program":"demo","match":{"signer":"0000000000000000000000000000000000000000000000000000000000000000"},"principals":{"users":["alice",1001],"groups":["netdev",110]},"polkit":true}])",
        "t.json");
    ASSERT_TRUE(ok) << ok.error().describe();
    const auto& g = ok->at(0);
    EXPECT_EQ(g.principals.user_names, std::vector<std::string>{"alice"});
    EXPECT_EQ(g.principals.uids, std::vector<uid_t>{1001});
    EXPECT_EQ(g.principals.gids, std::vector<gid_t>{110});
    EXPECT_TRUE(g.polkit);
}

TEST(approvals, round_trip_through_the_file_format)
{
    Approvals a;
    Grant g;
    g.program = "demo";
    g.match_value = std::string(64, 'a');
    g.principals.user_names = {"alice"};
    a.approve(g);
    g.principals.user_names = {"bob"};
    g.principals.uids = {7};
    a.approve(g);
    a.revoke("other");
    ASSERT_EQ(a.approvals.size(), 1u);
    auto parsed = parse_approvals(serialize_approvals(a));
    ASSERT_TRUE(parsed) << parsed.error().describe();
    EXPECT_EQ(parsed->approvals.at(0).principals.user_names, (std::vector<std::string>{"alice", "bob"}));
    EXPECT_EQ(parsed->approvals.at(0).principals.uids, std::vector<uid_t>{7});
    EXPECT_EQ(parsed->revoked_programs, std::vector<std::string>{"other"});
}

TEST(approvals, update_refuses_a_store_it_could_not_read_back)
{
    TempRoot root;
    auto rootfd = open_trusted_root(root.path(), root.trust());
    ASSERT_TRUE(rootfd);
    // 1024 revocations is the most a store may hold; the next one is refused
    // and the store on disk stays readable.
    auto filled = ApprovalsStore::update(rootfd->get(), root.trust(), [](Approvals& a) -> Result<void> {
        for (int i = 0; i < 1024; ++i)
            a.revoke("p" + std::to_string(i));
        return {};
    });
    ASSERT_TRUE(filled) << filled.error().describe();
    auto over = ApprovalsStore::update(rootfd->get(), root.trust(), [](Approvals& a) -> Result<void> {
        a.revoke("one-too-many");
        return {};
    });
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().code, ErrorCode::LimitExceeded);
    auto reread = ApprovalsStore::read(rootfd->get(), root.trust());
    ASSERT_TRUE(reread) << reread.error().describe();
    EXPECT_EQ(reread->revoked_programs.size(), 1024u);
}
