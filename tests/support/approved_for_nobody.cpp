// A daemon with programs approved for nobody; see approved_for_nobody.h.
#include "approved_for_nobody.h"

#include "loop_ring.h"

namespace bpfbroker::e2e {

void ApprovedForNobodyFixture::SetUp()
{
    if (needs_io_uring_bpf_ops())
        if (auto missing = test_support::io_uring_bpf_ops_missing(); !missing.empty())
            GTEST_SKIP() << missing;
    DaemonFixture::SetUp();
    if (IsSkipped() || HasFatalFailure())
        return;
    for (const auto& program : programs_for_nobody())
        ASSERT_TRUE(approve(program, for_users({"nobody"})));
}

}  // namespace bpfbroker::e2e
