// decide() over a matrix of callers and entry states. Pure: no files needed.
#include "policy/decide.h"

#include <gtest/gtest.h>

using namespace bpfbroker;
using namespace bpfbroker::policy;

namespace {

CatalogEntry valid_entry(InstanceMode mode = InstanceMode::PerClient, std::vector<std::string> requires_ = {})
{
    CatalogEntry e;
    e.name = "demo";
    e.state = EntryState::Valid;
    e.manifest_sha256 = std::string(64, 'a');
    e.signer_key_id = std::string(64, 'b');
    Manifest m;
    m.name = "demo";
    m.instance = mode;
    m.requires_features = std::move(requires_);
    e.manifest = m;
    return e;
}

Grant grant(Principals who, bool polkit = false, MatchKind kind = MatchKind::ManifestSha256)
{
    Grant g;
    g.program = "demo";
    g.match = kind;
    g.match_value = std::string(64, kind == MatchKind::ManifestSha256 ? 'a' : 'b');
    g.principals = std::move(who);
    g.polkit = polkit;
    g.source = "test";
    return g;
}

const Peer alice{1000, 1000, 11, {1000, 110}, "alice", {"alice", "netdev"}};
const Peer bob{1001, 1001, 12, {1001}, "bob", {"bob"}};
const Peer nobody{65534, 65534, 13, {65534}, "nobody", {"nogroup"}};
const std::set<std::string, std::less<>> kAllFeatures{"uring_cmd_setsockopt"};

Principals users(std::vector<std::string> names) { Principals p; p.user_names = std::move(names); return p; }
Principals uids(std::vector<uid_t> ids) { Principals p; p.uids = std::move(ids); return p; }
Principals groups(std::vector<std::string> names) { Principals p; p.group_names = std::move(names); return p; }
Principals gids(std::vector<gid_t> ids) { Principals p; p.gids = std::move(ids); return p; }
Principals anyone() { Principals p; p.anyone = true; return p; }

}  // namespace

TEST(decide, principal_matrix)
{
    struct Row {
        const char* what;
        Principals who;
        bool alice, bob, nobody;
    };
    const Row rows[] = {
        {"user name", users({"alice"}), true, false, false},
        {"uid", uids({1001}), false, true, false},
        {"group name", groups({"netdev"}), true, false, false},
        {"gid", gids({65534}), false, false, true},
        {"supplementary gid", gids({110}), true, false, false},
        {"anyone", anyone(), true, true, true},
        {"someone else", users({"carol"}), false, false, false},
    };
    for (const auto& row : rows) {
        GrantSet set;
        set.grants.push_back(grant(row.who));
        auto entry = valid_entry();
        EXPECT_EQ(decide(entry, set, alice, kAllFeatures, {}, {}).allowed, row.alice) << row.what;
        EXPECT_EQ(decide(entry, set, bob, kAllFeatures, {}, {}).allowed, row.bob) << row.what;
        auto d = decide(entry, set, nobody, kAllFeatures, {}, {});
        EXPECT_EQ(d.allowed, row.nobody) << row.what;
        if (!d.allowed) {
            EXPECT_EQ(d.code, ErrorCode::PermissionDenied);
            EXPECT_NE(d.reason.find("uid 65534 (nobody)"), std::string::npos) << d.reason;
        }
    }
}

TEST(decide, entry_states_and_revocation_deny_with_named_codes)
{
    GrantSet set;
    set.grants.push_back(grant(anyone()));

    struct Row {
        const char* what;
        EntryState state;
        ErrorCode code;
    };
    const Row rows[] = {
        {"invalid", EntryState::Invalid, ErrorCode::ManifestInvalid},
        {"untrusted", EntryState::UntrustedSigner, ErrorCode::UntrustedSigner},
        {"tampered object", EntryState::ObjectHashMismatch, ErrorCode::ObjectHashMismatch},
    };
    for (const auto& row : rows) {
        auto e = valid_entry();
        e.state = row.state;
        e.error = make_error(row.code, row.what);
        auto d = decide(e, set, alice, kAllFeatures, {}, {});
        EXPECT_FALSE(d.allowed) << row.what;
        EXPECT_EQ(d.code, row.code) << row.what;
        EXPECT_NE(d.reason.find(row.what), std::string::npos) << d.reason;
    }

    auto unsupported = valid_entry(InstanceMode::PerClient, {"uring_cmd_setsockopt", "io_uring_bpf_ops"});
    auto d = decide(unsupported, set, alice, kAllFeatures, {}, {});
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.code, ErrorCode::Unsupported);
    EXPECT_NE(d.reason.find("io_uring_bpf_ops"), std::string::npos);
    EXPECT_EQ(d.reason.find("uring_cmd_setsockopt"), std::string::npos) << "only the missing feature is named";

    set.revoked_programs.push_back("demo");
    d = decide(valid_entry(), set, alice, kAllFeatures, {}, {});
    EXPECT_FALSE(d.allowed);
    EXPECT_NE(d.reason.find("revoked"), std::string::npos);
}

TEST(decide, grants_must_match_the_entry_version_or_signer)
{
    GrantSet set;
    auto g = grant(anyone());
    g.match_value = std::string(64, 'f');
    set.grants.push_back(g);
    EXPECT_FALSE(decide(valid_entry(), set, alice, kAllFeatures, {}, {}).allowed);
    set.grants.push_back(grant(anyone(), false, MatchKind::Signer));
    EXPECT_TRUE(decide(valid_entry(), set, alice, kAllFeatures, {}, {}).allowed);
    auto other = grant(anyone());
    other.program = "other";
    GrantSet only_other;
    only_other.grants.push_back(other);
    EXPECT_FALSE(decide(valid_entry(), only_other, alice, kAllFeatures, {}, {}).allowed);
}

TEST(decide, polkit_is_asked_only_when_no_plain_grant_matches)
{
    GrantSet set;
    set.grants.push_back(grant(anyone(), true));
    auto d = decide(valid_entry(), set, bob, kAllFeatures, {}, {});
    EXPECT_TRUE(d.allowed);
    EXPECT_TRUE(d.needs_polkit);
    set.grants.push_back(grant(users({"bob"})));
    d = decide(valid_entry(), set, bob, kAllFeatures, {}, {});
    EXPECT_TRUE(d.allowed);
    EXPECT_FALSE(d.needs_polkit);
}

TEST(decide, the_instance_limit_applies_to_per_client_programs_only)
{
    GrantSet set;
    set.grants.push_back(grant(anyone()));
    Limits limits{2};
    EXPECT_TRUE(decide(valid_entry(), set, alice, kAllFeatures, Usage{1}, limits).allowed);
    auto d = decide(valid_entry(), set, alice, kAllFeatures, Usage{2}, limits);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.code, ErrorCode::LimitExceeded);
    EXPECT_TRUE(decide(valid_entry(InstanceMode::Shared), set, alice, kAllFeatures, Usage{2}, limits).allowed);
}

TEST(decide, a_system_scope_program_is_for_root_only_whatever_the_grant_says)
{
    GrantSet set;
    set.grants.push_back(grant(anyone()));
    CatalogEntry entry = valid_entry();
    entry.manifest->programs.push_back({"on_complete", ProgramType::RawTracepoint, "io_uring_complete"});
    entry.manifest->scope = Scope::System;
    const Peer root{0, 0, 14, {0}, "root", {"root"}};

    auto d = decide(entry, set, alice, kAllFeatures, {}, {});
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.code, ErrorCode::PermissionDenied);
    EXPECT_NE(d.reason.find("scope system"), std::string::npos) << d.reason;
    EXPECT_TRUE(decide(entry, set, root, kAllFeatures, {}, {}).allowed);

    entry.manifest->scope = Scope::Caller;
    EXPECT_TRUE(decide(entry, set, alice, kAllFeatures, {}, {}).allowed);
}
