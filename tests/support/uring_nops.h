// NOPs through an io_uring: the simplest requests whose count a test can
// predict exactly (uring_stats counts them per opcode).
#pragma once

#include "unprivileged_child.h"

#include <liburing.h>

namespace bpfbroker::test_support {

// Submits and reaps `count` NOPs on `ring`, in batches of at most 32; fails
// (require(), a ChildFailure) when the ring refuses or a NOP fails.
void run_nops(io_uring& ring, unsigned count);

// Another uid-65534 process that submits NOPs on a ring of its own until
// the test tells it anything (tell_child), then reports "flooded": the
// noise a count of one process's requests must leave out.
ChildProcess start_nop_flooder();

}  // namespace bpfbroker::test_support
