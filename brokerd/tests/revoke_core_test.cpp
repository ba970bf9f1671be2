// The core's revocation of live instances, without BPF: the fake source
// loads no guard, so every instance is judged and reported "not cut", once,
// per uid whose grant is gone, with an audit record each and the metric.
// The cutting itself runs on the kernel in tests/e2e/revocation_test.cpp.
#include "support/core_fixture.h"

#include <chrono>
#include <thread>

namespace bpfbroker::brokerd {
namespace {

class RevokeCore : public test_support::CoreFixture {
protected:
    // Runs `acquire` with a revoke of `program` made on another thread
    // during its (fake) shared load: the load holds shared_mutex_, which the
    // revoke's holder walk waits for, so the revoke gets as far as
    // publishing its policy before the load returns. The revoke's outcome.
    template <typename Acquire>
    Outcome<RevokeSummary> revoke_published_during_load(const std::string& program, Acquire acquire)
    {
        const auto before = broker_->snapshot();
        Outcome<RevokeSummary> revoked = Error{};
        std::thread admin;
        source_->while_loading = [&] {
            admin = std::thread([&] { revoked = broker_->revoke(socket_as(0), RevokeRequest{program}); });
            for (int i = 0; i < 10000 && broker_->snapshot() == before; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
        };
        acquire();
        source_->while_loading = nullptr;
        admin.join();
        EXPECT_NE(broker_->snapshot(), before) << "the revoke never published its policy";
        return revoked;
    }
};
using test_support::count_lines_containing;

TEST_F(RevokeCore, revoke_reports_each_unguarded_instance_once_and_audits_it)
{
    approve("udp_stats", false);
    for (uid_t uid : {65534u, 1000u}) {
        auto o = broker_->acquire(socket_as(uid), AcquireRequest{"udp_stats", {}});
        ASSERT_TRUE(o.ok()) << (o.denied() ? o.error().describe() : "asked polkit");
    }
    EXPECT_EQ(broker_->live_instances().size(), 2u) << "client-attached per-client instances are registered";

    auto revoked = broker_->revoke(socket_as(0), RevokeRequest{"udp_stats"});
    ASSERT_TRUE(revoked.ok()) << (revoked.denied() ? revoked.error().describe() : "asked polkit");
    EXPECT_EQ(revoked.value().instances.cut, 0u);
    EXPECT_EQ(revoked.value().instances.uncut, 2u);
    EXPECT_EQ(broker_->live_instances().size(), 0u);
    EXPECT_EQ(broker_->metrics().uncut_instances.load(), 2u);

    const auto lines = audit_lines();
    for (const char* uid : {"uid=65534", "uid=1000"})
        EXPECT_EQ(count_lines_containing(lines, {"action=cut", "program=udp_stats", uid, "decision=deny", "code=Unsupported",
                                      "not cut (the manifest declares no revocation guard)", "revoked"}),
                  1u)
            << uid;
    EXPECT_EQ(count_lines_containing(lines, {"action=revoke", "live instances cut 0, not cut 2"}), 1u);

    auto again = broker_->revoke(socket_as(0), RevokeRequest{"udp_stats"});
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again.value().instances.uncut, 0u) << "an instance is reported once";
}

TEST_F(RevokeCore, a_policy_change_that_keeps_a_grant_keeps_the_instance)
{
    approve("udp_stats", false);
    auto o = broker_->acquire(socket_as(65534), AcquireRequest{"udp_stats", {}});
    ASSERT_TRUE(o.ok());
    auto other = broker_->revoke(socket_as(0), RevokeRequest{"src_allow"});
    ASSERT_TRUE(other.ok());
    EXPECT_EQ(other.value().instances.uncut + other.value().instances.cut, 0u);
    auto reloaded = broker_->reload(socket_as(0));
    ASSERT_TRUE(reloaded.ok());
    EXPECT_EQ(reloaded.value().instances.uncut, 0u);
    EXPECT_EQ(broker_->live_instances().size(), 1u);
}

TEST_F(RevokeCore, a_shared_instance_is_dropped_on_revoke_and_loaded_fresh_after_approval)
{
    approve("drop_small", false);
    ASSERT_TRUE(broker_->acquire(socket_as(65534), AcquireRequest{"drop_small", {}}).ok());
    EXPECT_EQ(source_->loads(), 1u);
    auto revoked = broker_->revoke(socket_as(0), RevokeRequest{"drop_small"});
    ASSERT_TRUE(revoked.ok());
    EXPECT_EQ(revoked.value().instances.uncut, 1u) << "one shared instance, no guard in the fake";
    EXPECT_EQ(count_lines_containing(audit_lines(), {"action=cut", "program=drop_small", "uid=65534", "shared instance"}), 1u);

    approve("drop_small", false);
    ASSERT_TRUE(broker_->acquire(socket_as(65534), AcquireRequest{"drop_small", {}}).ok());
    EXPECT_EQ(source_->loads(), 2u) << "the cut instance was handed out again";
}

// A revoke made while an acquire is in the kernel's verifier (on another
// thread, as the socket's admin call and a D-Bus acquire run) finds
// nothing registered to cut; the acquire, registered after, must see the
// newer policy and refuse instead of handing out what the revoke ended.
TEST_F(RevokeCore, a_revoke_while_a_per_client_instance_loads_refuses_it)
{
    approve("udp_stats", false);
    Outcome<RevokeSummary> revoked = Error{};
    source_->while_loading = [&] {
        std::thread admin([&] { revoked = broker_->revoke(socket_as(0), RevokeRequest{"udp_stats"}); });
        admin.join();  // the per-client load holds no lock the revoke needs
    };
    auto o = broker_->acquire(socket_as(65534), AcquireRequest{"udp_stats", {}});
    source_->while_loading = nullptr;
    ASSERT_TRUE(revoked.ok()) << (revoked.denied() ? revoked.error().describe() : "asked polkit");
    EXPECT_EQ(revoked.value().instances.cut + revoked.value().instances.uncut, 0u) << "the revoke found it registered";
    ASSERT_TRUE(o.denied()) << "an acquire decided before a revoke was handed out after it";
    EXPECT_EQ(o.error().code, ErrorCode::PermissionDenied);
    EXPECT_NE(o.error().message.find("policy changed while"), std::string::npos) << o.error().message;
    EXPECT_EQ(broker_->live_instances().size(), 0u) << "the refused instance stayed registered";
    const auto lines = audit_lines();
    EXPECT_EQ(count_lines_containing(lines, {"action=acquire", "program=udp_stats", "uid=65534", "decision=allow"}), 0u);
    EXPECT_EQ(count_lines_containing(lines, {"action=acquire", "program=udp_stats", "uid=65534", "decision=deny", "policy changed"}), 1u);

    approve("udp_stats", false);
    EXPECT_TRUE(broker_->acquire(socket_as(65534), AcquireRequest{"udp_stats", {}}).ok()) << "approved again, a new acquire was refused";
}

// The shared load holds shared_mutex_, which the revoke's holder walk
// waits for: here the revoke gets as far as publishing its policy during
// the load, and the acquire must judge the new holder on it.
TEST_F(RevokeCore, a_revoke_published_while_a_shared_instance_loads_refuses_the_new_holder)
{
    approve("drop_small", false);
    Outcome<Handout> o = Error{};
    auto revoked = revoke_published_during_load(
        "drop_small", [&] { o = broker_->acquire(socket_as(65534), AcquireRequest{"drop_small", {}}); });
    ASSERT_TRUE(revoked.ok()) << (revoked.denied() ? revoked.error().describe() : "asked polkit");
    ASSERT_TRUE(o.denied()) << "a holder decided before a revoke was registered after its policy";
    EXPECT_EQ(o.error().code, ErrorCode::PermissionDenied);
    EXPECT_EQ(count_lines_containing(audit_lines(), {"action=acquire", "program=drop_small", "uid=65534", "decision=allow"}), 0u);
}

// The refused holder's instance stays loaded with nobody holding it: it
// does not count against the uid that asked for it.
TEST_F(RevokeCore, a_shared_load_whose_hand_out_was_refused_is_not_charged_to_its_caller)
{
    approve("drop_small", false);
    auto with_value = [](std::uint64_t v) { return AcquireRequest{"drop_small", {{"min_payload_len", v}}}; };
    for (std::uint64_t v = 0; v + 1 < kMaxSharedInstancesPerUid; ++v)
        ASSERT_TRUE(broker_->acquire(socket_as(1000), with_value(v)).ok()) << v;
    Outcome<Handout> refused = Error{};
    (void)revoke_published_during_load("drop_small",
                                       [&] { refused = broker_->acquire(socket_as(1000), with_value(100)); });
    ASSERT_TRUE(refused.denied());
    approve("drop_small", false);
    // The revoke cut the seven held ones; the refused one stayed, held by nobody.
    for (std::uint64_t v = 200; v + 1 < 200 + kMaxSharedInstancesPerUid; ++v)
        ASSERT_TRUE(broker_->acquire(socket_as(1000), with_value(v)).ok()) << v;
    auto last = broker_->acquire(socket_as(1000), with_value(300));
    EXPECT_TRUE(last.ok()) << (last.denied() ? last.error().describe() : "asked polkit");
    auto past = broker_->acquire(socket_as(1000), with_value(301));
    EXPECT_TRUE(past.denied()) << "the quota no longer holds";
}

TEST_F(RevokeCore, listing_says_whether_a_program_can_be_cut_live)
{
    auto listed = broker_->list(socket_as(65534));
    ASSERT_TRUE(listed) << listed.error().describe();
    for (const auto& l : *listed) {
        if (l.state == policy::EntryState::Valid) {
            EXPECT_TRUE(l.cut_live) << l.name << ": every shipped program declares a guard";
        }
    }
}

}  // namespace
}  // namespace bpfbroker::brokerd
