// The core's broker-attached path without the kernel (the fake program
// source): which transport may bind which caller values, and that every
// refusal comes before anything is loaded. The attach itself and the guard
// at the caller's exit are tested on the kernel in tests/e2e.
#include "brokerd/broker.h"

#include "support/core_fixture.h"

#include <gtest/gtest.h>

#include <sys/syscall.h>
#include <unistd.h>

namespace bpfbroker::brokerd {
namespace {

using BrokerAttachedCore = test_support::CoreFixture;

constexpr const char* kUringStats = "uring_stats";  // binds target_tgid to caller.tgid

// A socket caller whose pidfd is this test process.
struct OwnProcessCaller {
    UniqueFd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0))};
    RequestContext context(RequestContext ctx) const
    {
        ctx.peer.pid = ::getpid();
        ctx.caller_pidfd = pidfd.get();
        return ctx;
    }
};

TEST_F(BrokerAttachedCore, plain_dbus_acquire_is_refused_naming_the_method_with_links)
{
    approve(kUringStats, false);
    AcquireRequest request{kUringStats, {}, false};
    auto o = broker_->acquire(dbus_as(65534), request);
    ASSERT_TRUE(o.denied());
    EXPECT_EQ(o.error().code, ErrorCode::InvalidParameter);
    EXPECT_NE(o.error().message.find("AcquireProgramWithOptions"), std::string::npos) << o.error().message;
    EXPECT_EQ(source_->loads(), 0u);
}

TEST_F(BrokerAttachedCore, a_tgid_binding_is_refused_on_dbus_saying_to_use_the_socket)
{
    approve(kUringStats, false);
    auto o = broker_->acquire(dbus_as(65534), AcquireRequest{kUringStats, {}});
    ASSERT_TRUE(o.denied());
    EXPECT_EQ(o.error().code, ErrorCode::Unsupported);
    EXPECT_NE(o.error().message.find("socket"), std::string::npos) << o.error().message;
    EXPECT_EQ(source_->loads(), 0u);
}

TEST_F(BrokerAttachedCore, a_socket_connection_without_a_pidfd_cannot_bind_the_tgid)
{
    approve(kUringStats, false);
    auto o = broker_->acquire(socket_as(65534), AcquireRequest{kUringStats, {}});
    ASSERT_TRUE(o.denied());
    EXPECT_EQ(o.error().code, ErrorCode::Unsupported);
    EXPECT_NE(o.error().message.find("SO_PEERPIDFD"), std::string::npos) << o.error().message;
    EXPECT_EQ(source_->loads(), 0u);
}

TEST_F(BrokerAttachedCore, a_request_setting_the_bound_tgid_is_invalid_before_loading)
{
    approve(kUringStats, false);
    OwnProcessCaller caller;
    ASSERT_TRUE(caller.pidfd.valid()) << "pidfd_open";
    auto o = broker_->acquire(caller.context(socket_as(65534)), AcquireRequest{kUringStats, {{"target_tgid", 1}}});
    ASSERT_TRUE(o.denied());
    EXPECT_EQ(o.error().code, ErrorCode::InvalidParameter);
    EXPECT_NE(o.error().message.find("target_tgid"), std::string::npos) << o.error().message;
    EXPECT_EQ(source_->loads(), 0u);
}

// The fake loads without a guard (and attaches nothing): every acquire
// fails after the load, and must give its per-uid slot back.
TEST_F(BrokerAttachedCore, a_hand_out_failing_after_the_load_is_denied_audited_and_frees_the_slot)
{
    approve(kUringStats, false);
    OwnProcessCaller caller;
    ASSERT_TRUE(caller.pidfd.valid()) << "pidfd_open";
    for (int i = 0; i < 20; ++i) {  // past the default limit of 16 if slots leaked
        auto o = broker_->acquire(caller.context(socket_as(65534)), AcquireRequest{kUringStats, {}});
        ASSERT_TRUE(o.denied());
        ASSERT_NE(o.error().code, ErrorCode::LimitExceeded) << "a failed hand-out kept its slot (acquire " << i << ")";
    }
    EXPECT_EQ(source_->loads(), 20u);
    EXPECT_EQ(broker_->live_instances().size(), 0u);
    auto lines = audit_lines();
    ASSERT_FALSE(lines.empty());
    EXPECT_NE(lines.back().find("program=uring_stats"), std::string::npos) << lines.back();
    EXPECT_NE(lines.back().find("decision=deny"), std::string::npos) << lines.back();
}

}  // namespace
}  // namespace bpfbroker::brokerd
