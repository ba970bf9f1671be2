// The core decides every request: Broker on a real signed demo catalog with
// a fake program source (no BPF, no root needed for the decisions). Checks
// the outcomes (hand-out, denial, polkit question), that the verdict call
// is re-decided and trusted only for its own caller and action, and that
// every decision is audited by the core.
#include "brokerd/broker.h"

#include "support/core_fixture.h"
#include "support/openmetrics_text.h"

#include <gtest/gtest.h>

#include <chrono>

#include <fcntl.h>

namespace bpfbroker::brokerd {

// The one way a test makes a verdict (PolkitVerdict's constructor is private).
struct PolkitVerdictForTesting {
    static PolkitVerdict make(bool allowed, std::string action, uid_t uid, std::string bus_name)
    {
        return PolkitVerdict(allowed, std::move(action), uid, std::move(bus_name), allowed ? "test says yes" : "test says no");
    }
};

namespace {

using BrokerCore = test_support::CoreFixture;

TEST_F(BrokerCore, approved_shared_program_is_handed_out_once_loaded_and_audited)
{
    approve("drop_small", false);
    for (int i = 0; i < 2; ++i) {
        auto o = broker_->acquire(socket_as(65534), AcquireRequest{"drop_small", {}});
        ASSERT_TRUE(o.ok()) << (o.denied() ? o.error().describe() : "asked polkit");
        EXPECT_TRUE(o.value().program.valid());
        EXPECT_EQ(o.value().instance, policy::InstanceMode::Shared);
        EXPECT_TRUE(o.value().links.empty());
    }
    EXPECT_EQ(source_->loads(), 1u) << "a shared program was loaded per acquire";
    auto lines = audit_lines();
    ASSERT_FALSE(lines.empty());
    EXPECT_NE(lines.back().find("action=acquire transport=socket program=drop_small uid=65534"), std::string::npos)
        << lines.back();
    EXPECT_NE(lines.back().find("decision=allow"), std::string::npos) << lines.back();
}

// handed_fd.h: every holder of a shared instance is handed the same open
// fd, not a duplicate per acquire, and a reply still waiting to send it
// keeps it open after a revocation drops the instance.
TEST_F(BrokerCore, shared_hand_outs_carry_one_fd_that_outlives_the_instance)
{
    approve("drop_small", false);
    auto first = broker_->acquire(socket_as(65534), AcquireRequest{"drop_small", {}});
    auto second = broker_->acquire(socket_as(1000), AcquireRequest{"drop_small", {}});
    ASSERT_TRUE(first.ok() && second.ok());
    const int fd = first.value().program.get();
    EXPECT_EQ(second.value().program.get(), fd) << "a duplicate per acquire";

    auto revoked = broker_->revoke(socket_as(0), RevokeRequest{"drop_small"});
    ASSERT_TRUE(revoked.ok()) << (revoked.denied() ? revoked.error().describe() : "asked polkit");
    EXPECT_NE(::fcntl(fd, F_GETFD), -1) << "the instance's drop closed an fd a reply still holds";

    // The holder's own copy, as D-Bus takes it, is another descriptor.
    UniqueFd own = first.value().program.take();
    ASSERT_TRUE(own.valid());
    EXPECT_NE(own.get(), fd);
    EXPECT_EQ(::fcntl(own.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

    // Approved again, the next acquire gets a fresh instance and fd.
    approve("drop_small", false);
    auto third = broker_->acquire(socket_as(65534), AcquireRequest{"drop_small", {}});
    ASSERT_TRUE(third.ok());
    EXPECT_EQ(source_->loads(), 2u);
    EXPECT_NE(third.value().program.get(), fd);
}

// sd-bus adopts an fd of the reply's own: a D-Bus hand-out of a shared
// instance carries its own CLOEXEC copy, made by the core (a failure to make
// it is then a refusal the audit records, not an error after an "allow").
TEST_F(BrokerCore, a_dbus_hand_out_of_a_shared_instance_owns_its_copy)
{
    approve("drop_small", false);
    auto socket = broker_->acquire(socket_as(65534), AcquireRequest{"drop_small", {}, false});
    auto first = broker_->acquire(dbus_as(65534), AcquireRequest{"drop_small", {}, false});
    auto second = broker_->acquire(dbus_as(65534), AcquireRequest{"drop_small", {}, false});
    ASSERT_TRUE(socket.ok() && first.ok() && second.ok());
    const int shared = socket.value().program.get();
    const int a = first.value().program.get(), b = second.value().program.get();
    EXPECT_NE(a, shared);
    EXPECT_NE(b, shared);
    EXPECT_NE(a, b);
    EXPECT_EQ(::fcntl(a, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    // Taking it is a move, not another duplicate.
    UniqueFd taken = first.value().program.take();
    EXPECT_EQ(taken.get(), a);
    EXPECT_EQ(source_->loads(), 1u);
}

TEST_F(BrokerCore, unapproved_program_is_denied_and_audited_without_loading)
{
    auto o = broker_->acquire(socket_as(65534), AcquireRequest{"udp_stats", {}});
    ASSERT_TRUE(o.denied());
    EXPECT_EQ(o.error().code, ErrorCode::PermissionDenied);
    EXPECT_EQ(source_->loads(), 0u);
    auto lines = audit_lines();
    ASSERT_FALSE(lines.empty());
    EXPECT_NE(lines.back().find("decision=deny code=PermissionDenied"), std::string::npos) << lines.back();
}

TEST_F(BrokerCore, parameters_a_program_does_not_take_are_invalid)
{
    approve("drop_small", false);
    auto o = broker_->acquire(socket_as(65534), AcquireRequest{"drop_small", {{"min_len", 5}}});
    ASSERT_TRUE(o.denied());
    EXPECT_EQ(o.error().code, ErrorCode::InvalidParameter);
    EXPECT_NE(o.error().message.find("min_len"), std::string::npos) << o.error().message;
}

// Each distinct chosen value of a shared program is a load kept until
// reload: one uid may have at most kMaxSharedInstancesPerUid of them
// loaded, so it cannot take every set (64) from everyone else; values
// already loaded stay open to all.
TEST_F(BrokerCore, one_uid_cannot_take_every_shared_value_set)
{
    approve("drop_small", false);
    auto with_value = [](std::uint64_t v) { return AcquireRequest{"drop_small", {{"min_payload_len", v}}}; };
    for (std::uint64_t v = 0; v < kMaxSharedInstancesPerUid; ++v)
        ASSERT_TRUE(broker_->acquire(socket_as(1000), with_value(v)).ok()) << v;
    auto more = broker_->acquire(socket_as(1000), with_value(100));
    ASSERT_TRUE(more.denied());
    EXPECT_EQ(more.error().code, ErrorCode::LimitExceeded);
    EXPECT_NE(more.error().message.find("uid 1000"), std::string::npos) << more.error().message;
    EXPECT_EQ(source_->loads(), kMaxSharedInstancesPerUid);

    EXPECT_TRUE(broker_->acquire(socket_as(1000), with_value(0)).ok()) << "a value it loaded is still its to share";
    EXPECT_TRUE(broker_->acquire(socket_as(1001), with_value(100)).ok()) << "another uid loads a value of its own";
    EXPECT_TRUE(broker_->acquire(socket_as(1000), with_value(100)).ok()) << "a value another uid loaded is open to all";

    // Eight uids' worth fills the manifest's sets; then nobody loads a new one.
    std::uint64_t v = 200;
    for (uid_t uid = 2000; uid < 2000 + kMaxSharedInstancesPerManifest / kMaxSharedInstancesPerUid; ++uid)
        for (std::size_t i = 0; i < kMaxSharedInstancesPerUid; ++i)
            (void)broker_->acquire(socket_as(uid), with_value(v++));
    EXPECT_EQ(source_->loads(), kMaxSharedInstancesPerManifest);
    auto full = broker_->acquire(socket_as(3000), with_value(v));
    ASSERT_TRUE(full.denied());
    EXPECT_NE(full.error().message.find("64 distinct parameter values"), std::string::npos) << full.error().message;
}

// A listing judges the whole catalog on the transport's thread: a uid may
// list kListingsPerSecond times a second (bursts as many); root is not held.
TEST_F(BrokerCore, listing_is_rate_limited_per_uid_but_for_root)
{
    // Listed on D-Bus until refused: within the burst and what refilled
    // meanwhile (not a timing assertion: the bound is taken from the clock).
    const auto start = std::chrono::steady_clock::now();
    unsigned listed = 0;
    while (listed < 1000 && broker_->list(dbus_as(1000)))
        ++listed;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GE(listed, Limits::kListingsPerSecond);
    EXPECT_LE(listed, Limits::kListingsPerSecond + 1 + static_cast<unsigned>(seconds * Limits::kListingsPerSecond));
    auto past = broker_->list(socket_as(1000));
    ASSERT_FALSE(past) << "a listing past the rate, on either transport";
    EXPECT_EQ(past.error().code, ErrorCode::LimitExceeded);
    EXPECT_NE(past.error().message.find("uid 1000"), std::string::npos) << past.error().message;
    EXPECT_TRUE(broker_->list(socket_as(1001))) << "another uid has its own rate";
    for (unsigned i = 0; i < 2 * Limits::kListingsPerSecond; ++i)
        ASSERT_TRUE(broker_->list(socket_as(0))) << i;
}

TEST_F(BrokerCore, polkit_grant_asks_then_hands_out_on_a_yes_for_this_caller)
{
    approve("drop_small", true);
    auto ctx = dbus_as(65534);
    auto first = broker_->acquire(ctx, AcquireRequest{"drop_small", {}});
    ASSERT_TRUE(first.needs_polkit());
    EXPECT_EQ(first.question().action, kPolkitActionAcquire);
    EXPECT_EQ(source_->loads(), 0u) << "loaded before polkit answered";

    auto yes = PolkitVerdictForTesting::make(true, kPolkitActionAcquire, 65534, ":1.42");
    auto second = broker_->acquire(ctx, AcquireRequest{"drop_small", {}}, &yes);
    ASSERT_TRUE(second.ok()) << (second.denied() ? second.error().describe() : "asked again");
    EXPECT_TRUE(second.value().program.valid());
}

TEST_F(BrokerCore, polkit_no_or_a_verdict_about_someone_else_is_a_denial)
{
    approve("drop_small", true);
    auto ctx = dbus_as(65534);
    AcquireRequest req{"drop_small", {}};
    auto no = PolkitVerdictForTesting::make(false, kPolkitActionAcquire, 65534, ":1.42");
    auto refused = broker_->acquire(ctx, req, &no);
    ASSERT_TRUE(refused.denied());
    EXPECT_EQ(refused.error().code, ErrorCode::PermissionDenied);
    EXPECT_NE(refused.error().message.find("test says no"), std::string::npos) << refused.error().message;

    auto other_uid = PolkitVerdictForTesting::make(true, kPolkitActionAcquire, 1000, ":1.42");
    auto other_name = PolkitVerdictForTesting::make(true, kPolkitActionAcquire, 65534, ":1.43");
    auto other_action = PolkitVerdictForTesting::make(true, kPolkitActionManage, 65534, ":1.42");
    for (const auto* v : {&other_uid, &other_name, &other_action})
        EXPECT_TRUE(broker_->acquire(ctx, req, v).denied()) << "a verdict about " << v->uid() << " " << v->bus_name()
                                                             << " " << v->action() << " was trusted";
    EXPECT_EQ(source_->loads(), 0u);
}

// Every decided acquire counts once, on its transport; polkit's question is
// not a decision, the call carrying the verdict is.
TEST_F(BrokerCore, each_decided_acquire_counts_once_and_a_polkit_question_not_at_all)
{
    using test_support::acquires_series;
    using test_support::metric_or_zero;
    approve("drop_small", true);
    auto ctx = dbus_as(65534);
    ASSERT_TRUE(broker_->acquire(ctx, AcquireRequest{"drop_small", {}}).needs_polkit());
    auto yes = PolkitVerdictForTesting::make(true, kPolkitActionAcquire, 65534, ":1.42");
    ASSERT_TRUE(broker_->acquire(ctx, AcquireRequest{"drop_small", {}}, &yes).ok());
    ASSERT_TRUE(broker_->acquire(socket_as(65534), AcquireRequest{"udp_stats", {}}).denied());
    ASSERT_TRUE(broker_->acquire(socket_as(65534), AcquireRequest{"../etc", {}}).denied());

    auto text = broker_->metrics_text();
    EXPECT_EQ(metric_or_zero(text, acquires_series("drop_small", "dbus", "allowed")), 1) << text;
    EXPECT_EQ(metric_or_zero(text, acquires_series("drop_small", "dbus", "denied")), 0) << text;
    EXPECT_EQ(metric_or_zero(text, acquires_series("udp_stats", "socket", "denied")), 1) << text;
    EXPECT_EQ(metric_or_zero(text, acquires_series("", "socket", "denied")), 1) << text;
    EXPECT_EQ(metric_or_zero(text, "bpfbroker_acquire_duration_seconds_count"), 1) << text;
    EXPECT_EQ(metric_or_zero(text, "bpfbroker_live_instances{program=\"drop_small\"}"), 1) << text;
}

TEST_F(BrokerCore, socket_never_gets_a_polkit_question)
{
    approve("drop_small", true);
    auto o = broker_->acquire(socket_as(65534), AcquireRequest{"drop_small", {}});
    ASSERT_TRUE(o.denied()) << "the socket, which cannot ask polkit, got a question or a hand-out";
    EXPECT_EQ(o.error().code, ErrorCode::PermissionDenied);
}

TEST_F(BrokerCore, admin_calls_are_decided_by_the_core_on_every_transport)
{
    ApproveRequest req{"udp_stats", {}, {}, true, false, {}};
    auto on_socket = broker_->approve(socket_as(65534), req);
    ASSERT_TRUE(on_socket.denied());
    EXPECT_EQ(on_socket.error().code, ErrorCode::PermissionDenied);

    auto ctx = dbus_as(65534);
    auto asked = broker_->approve(ctx, req);
    ASSERT_TRUE(asked.needs_polkit());
    EXPECT_EQ(asked.question().action, kPolkitActionManage);
    auto wrong_action = PolkitVerdictForTesting::make(true, kPolkitActionAcquire, 65534, ":1.42");
    EXPECT_TRUE(broker_->approve(ctx, req, &wrong_action).denied());
    auto yes = PolkitVerdictForTesting::make(true, kPolkitActionManage, 65534, ":1.42");
    auto approved = broker_->approve(ctx, req, &yes);
    ASSERT_TRUE(approved.ok()) << (approved.denied() ? approved.error().describe() : "asked again");
    EXPECT_EQ(approved.value().program, "udp_stats");

    std::size_t denials = 0;
    for (const auto& line : audit_lines())
        if (line.find("action=approve") != std::string::npos && line.find("uid=65534") != std::string::npos &&
            line.find("decision=deny") != std::string::npos)
            ++denials;
    EXPECT_EQ(denials, 2u) << "the socket refusal and the wrong verdict are each audited once";
}

TEST_F(BrokerCore, listing_follows_the_transport)
{
    approve("drop_small", true);
    auto find = [](const std::vector<ProgramListing>& rows) {
        for (const auto& r : rows)
            if (r.name == "drop_small")
                return r;
        return ProgramListing{};
    };
    auto on_socket = find(broker_->list(socket_as(65534)).value());
    EXPECT_FALSE(on_socket.allowed);
    EXPECT_TRUE(on_socket.needs_polkit);
    EXPECT_EQ(on_socket.code, ErrorCode::PermissionDenied);
    auto on_bus = find(broker_->list(dbus_as(65534)).value());
    EXPECT_TRUE(on_bus.allowed);
    EXPECT_TRUE(on_bus.needs_polkit);
}

}  // namespace
}  // namespace bpfbroker::brokerd
