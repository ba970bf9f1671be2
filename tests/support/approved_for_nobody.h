// How the end-to-end tests of an unprivileged caller begin: a daemon (the
// DaemonFixture) with some programs approved for "nobody" (uid 65534), and
// for io_uring_ops programs the test skipped, with the kernel's reason,
// before any daemon starts where the kernel has no io_uring_bpf_ops.
#pragma once

#include "daemon_fixture.h"

#include <string>
#include <vector>

namespace bpfbroker::e2e {

class ApprovedForNobodyFixture : public DaemonFixture {
protected:
    void SetUp() override;

    // The programs approved for nobody before each test, in this order.
    [[nodiscard]] virtual std::vector<std::string> programs_for_nobody() const = 0;
    // Whether the programs need io_uring_bpf_ops (Linux 7.1).
    [[nodiscard]] virtual bool needs_io_uring_bpf_ops() const { return false; }
};

}  // namespace bpfbroker::e2e
