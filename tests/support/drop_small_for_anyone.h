// The daemon (DaemonFixture) with drop_small, a shared socket filter,
// approved for anyone: how tests of the socket's behaviour under load and
// abuse begin, where who the caller is does not matter.
#pragma once

#include "daemon_fixture.h"

namespace bpfbroker::e2e {

class DropSmallForAnyoneFixture : public DaemonFixture {
protected:
    void SetUp() override
    {
        DaemonFixture::SetUp();
        if (IsSkipped() || HasFatalFailure())
            return;
        ASSERT_TRUE(approve("drop_small", for_anyone()));
    }
};

}  // namespace bpfbroker::e2e
