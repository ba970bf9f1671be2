// The fixture of a daemon with one io_uring_ops program approved for
// nobody, skipped where the kernel has no io_uring_bpf_ops. The ring itself
// (LoopRing) lives in tests/support/loop_ring.h, shared with bench/.
#pragma once

#include "daemon_fixture.h"
#include "support/loop_ring.h"

namespace bpfbroker::e2e {

using test_support::io_uring_bpf_ops_missing;
using test_support::kLoopRingFlags;
using test_support::LoopRing;

// A daemon with program() approved for nobody; skipped, with the reason,
// where the kernel has no io_uring_bpf_ops (before any daemon starts).
class RingProgramFixture : public DaemonFixture {
protected:
    [[nodiscard]] virtual const char* program() const = 0;
    void SetUp() override
    {
        if (auto missing = io_uring_bpf_ops_missing(); !missing.empty())
            GTEST_SKIP() << missing;
        DaemonFixture::SetUp();
        if (IsSkipped())
            return;
        ASSERT_TRUE(approve(program(), for_users({"nobody"})));
    }
};

}  // namespace bpfbroker::e2e
