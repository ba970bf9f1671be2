// grant_gone(): the judgement a revocation makes of each live instance, over
// the four causes (revoke, a removed approval, a masked signer key, an
// upgrade past a hash grant) and the cases that must keep an instance.
// Pure: a hand-made catalog and grants, a generated key.
#include "brokerd/held_grant.h"

#include "policy/signature.h"

#include <gtest/gtest.h>

namespace bpfbroker::brokerd {
namespace {

using policy::Catalog;
using policy::CatalogEntry;
using policy::Grant;
using policy::GrantSet;
using policy::MatchKind;

const policy::Peer kAlice{1000, 1000, 11, {1000, 110}, "alice", {"alice", "netdev"}};
const policy::Peer kBob{1001, 1001, 12, {1001}, "bob", {"bob"}};
const std::set<std::string, std::less<>> kNoFeatures;
const std::string kOldHash(64, 'a');
const std::string kNewHash(64, 'c');

class HeldGrantTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        auto key = policy::PrivateKey::generate(policy::KeyType::Ed25519);
        ASSERT_TRUE(key) << key.error().describe();
        auto pub = key->public_key();
        ASSERT_TRUE(pub) << pub.error().describe();
        signer_ = pub->key_id();
        catalog_.keys.keys.push_back(policy::TrustedKey{"vendor.pem", policy::Origin::Vendor, std::move(*pub)});
        catalog_.entries.push_back(entry(kOldHash));
    }

    CatalogEntry entry(const std::string& hash) const
    {
        CatalogEntry e;
        e.name = "demo";
        e.state = policy::EntryState::Valid;
        e.manifest_sha256 = hash;
        e.signer_key_id = signer_;
        policy::Manifest m;
        m.name = "demo";
        m.instance = policy::InstanceMode::PerClient;
        e.manifest = m;
        return e;
    }
    Grant grant(MatchKind kind, std::vector<std::string> users) const
    {
        Grant g;
        g.program = "demo";
        g.match = kind;
        g.match_value = kind == MatchKind::Signer ? signer_ : kOldHash;
        g.principals.user_names = std::move(users);
        g.source = "test";
        return g;
    }
    HeldGrant held_by(const policy::Peer& peer) const { return HeldGrant{"demo", peer, kOldHash, signer_}; }
    std::optional<std::string> gone(const policy::Peer& peer) const
    {
        return grant_gone(held_by(peer), catalog_, grants_, kNoFeatures);
    }

    std::string signer_;
    Catalog catalog_;
    GrantSet grants_;
};

TEST_F(HeldGrantTest, an_instance_under_its_grant_is_kept)
{
    grants_.grants.push_back(grant(MatchKind::ManifestSha256, {"alice"}));
    EXPECT_EQ(gone(kAlice), std::nullopt);
}

TEST_F(HeldGrantTest, a_removed_approval_ends_only_the_uids_it_covered)
{
    grants_.grants.push_back(grant(MatchKind::ManifestSha256, {"bob"}));  // alice's was removed
    auto why = gone(kAlice);
    ASSERT_TRUE(why);
    EXPECT_NE(why->find("no grant allows uid 1000"), std::string::npos) << *why;
    EXPECT_EQ(gone(kBob), std::nullopt) << "bob's grant is still there";
}

TEST_F(HeldGrantTest, a_revoked_program_ends_every_instance)
{
    grants_.grants.push_back(grant(MatchKind::ManifestSha256, {"alice", "bob"}));
    grants_.revoked_programs.push_back("demo");
    ASSERT_TRUE(gone(kAlice));
    EXPECT_NE(gone(kBob)->find("revoked"), std::string::npos) << *gone(kBob);
}

TEST_F(HeldGrantTest, a_masked_signer_key_ends_it_though_the_grant_is_by_signer)
{
    grants_.grants.push_back(grant(MatchKind::Signer, {"alice"}));
    // What the scan makes of an entry whose key an /etc link to /dev/null masked.
    catalog_.keys.masked.push_back(std::move(catalog_.keys.keys.front()));
    catalog_.keys.keys.clear();
    catalog_.entries.front().state = policy::EntryState::UntrustedSigner;
    catalog_.entries.front().error = make_error(ErrorCode::UntrustedSigner, "signed by no trusted key");
    EXPECT_TRUE(gone(kAlice));
}

TEST_F(HeldGrantTest, an_upgrade_ends_a_hash_grant_but_not_a_grant_by_signer)
{
    catalog_.entries = {entry(kNewHash)};
    grants_.grants = {grant(MatchKind::ManifestSha256, {"alice"})};
    auto why = gone(kAlice);
    ASSERT_TRUE(why) << "a grant by hash names one version";
    EXPECT_NE(why->find("replaced by manifest"), std::string::npos) << *why;

    grants_.grants = {grant(MatchKind::Signer, {"alice"})};
    EXPECT_EQ(gone(kAlice), std::nullopt) << "a grant by signer follows upgrades";
    EXPECT_TRUE(gone(kBob)) << "the signer grant is alice's, not bob's";

    catalog_.keys.keys.clear();  // ... unless that key is no longer trusted
    ASSERT_TRUE(gone(kAlice));
    EXPECT_NE(gone(kAlice)->find("no longer trusted"), std::string::npos);
}

TEST_F(HeldGrantTest, a_program_gone_from_the_catalog_ends_it)
{
    grants_.grants.push_back(grant(MatchKind::Signer, {"alice"}));
    catalog_.entries.clear();
    auto why = gone(kAlice);
    ASSERT_TRUE(why);
    EXPECT_NE(why->find("no longer in the catalog"), std::string::npos) << *why;
}

}  // namespace
}  // namespace bpfbroker::brokerd
