// The core's io_uring_ops decisions (no BPF, no ring needed): an io_uring_ops
// program is only ever attached to a ring the request names, AttachRing
// only takes io_uring_ops programs, and a ring request without the caller's
// pidfd (D-Bus) is refused; each before anything is loaded.
#include "support/core_fixture.h"

#include <gtest/gtest.h>

namespace bpfbroker::brokerd {
namespace {

class BrokerRingCore : public test_support::CoreFixture {
protected:
    FeatureReport features() const override
    {
        FeatureReport r;
        r.probes.push_back({"io_uring_bpf_ops", true, "assumed by the test"});
        return r;
    }
    void SetUp() override
    {
        CoreFixture::SetUp();
        if (IsSkipped())
            return;
        approve("ring_nops", false);
        approve("udp_stats", false);
    }
    static RingRequest some_ring() { return RingRequest{3, RingLayout{}}; }
};

void expect_refused(const Outcome<Handout>& o, ErrorCode code, const std::string& needle)
{
    ASSERT_TRUE(o.denied());
    EXPECT_EQ(o.error().code, code) << o.error().describe();
    EXPECT_NE(o.error().message.find(needle), std::string::npos) << o.error().message;
}

TEST_F(BrokerRingCore, an_io_uring_ops_program_needs_the_ring_its_request_names)
{
    AcquireRequest plain{"ring_nops", {}};
    expect_refused(broker_->acquire(socket_as(1000), plain), ErrorCode::InvalidParameter, "AttachRing");
    plain.links_accepted = false;  // D-Bus AcquireProgram
    expect_refused(broker_->acquire(dbus_as(1000), plain), ErrorCode::InvalidParameter, "AttachRing");
    EXPECT_EQ(source_->loads(), 0u);
}

TEST_F(BrokerRingCore, attach_ring_takes_io_uring_ops_programs_only)
{
    AcquireRequest request{"udp_stats", {}};
    request.ring = some_ring();
    expect_refused(broker_->acquire(socket_as(1000), request), ErrorCode::InvalidParameter,
                   "not an io_uring_ops program");
    EXPECT_EQ(source_->loads(), 0u);
}

TEST_F(BrokerRingCore, a_ring_without_the_callers_pidfd_is_refused)
{
    AcquireRequest request{"ring_nops", {}};
    request.ring = some_ring();
    expect_refused(broker_->acquire(dbus_as(1000), request), ErrorCode::Unsupported, "pidfd");
    // The socket without the connection's pidfd: the same refusal.
    expect_refused(broker_->acquire(socket_as(1000), request), ErrorCode::Unsupported, "pidfd");
    EXPECT_EQ(source_->loads(), 0u);
}

}  // namespace
}  // namespace bpfbroker::brokerd
