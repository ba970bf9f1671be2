// The echo loop that ring_echo (programs/ring_echo) serves inside one
// io_uring_enter, the same loop in user space with liburing, the peer that
// drives both, and what each costs the serving thread. Shared by the e2e
// test (tests/e2e/ring_server_test.cpp) and bench/ring_bench.
#pragma once

#include "loop_ring.h"

#include "ring_echo/ring_echo.h"

#include <cstddef>
#include <functional>
#include <string>

namespace bpfbroker::test_support {

inline constexpr std::size_t kEchoRequestBytes = 64;
// Big enough for any one receive of the peer's requests.
inline constexpr std::size_t kEchoBufferBytes = 2048;

// What serving `requests` cost the serving thread.
struct EchoFigures {
    unsigned enters = 0;    // io_uring_enter calls: each one return to user space
    unsigned syscalls = 0;  // every system call the loop itself made (enters, map reads)
    long switches = 0;      // voluntary context switches (RUSAGE_THREAD): sleeps
    double wall_ms = 0;     // from the first call to the last reply
    ring_echo_stats stats{};  // the program's own counts (zero without it)
};

// This thread's voluntary context switches so far.
long voluntary_switches();

// The peer: sends `requests` numbered requests of kEchoRequestBytes one at a
// time on `fd` and checks each reply is the request. "" or what went wrong.
std::string run_echo_peer(int fd, unsigned requests);

// RECV then SEND on `fd`, one io_uring_submit_and_wait each, `requests`
// times, on a DEFER_TASKRUN ring of its own; require()s every completion.
EchoFigures echo_in_user_space(int fd, unsigned requests);

// Enters `ring` (ring_echo attached, its `stats` map readable at
// `stats_map_fd`) until the program has echoed `requests` replies, failed,
// or 100 enters passed.
EchoFigures echo_with_program(const LoopRing& ring, int stats_map_fd, unsigned requests);

// Runs `serve` on this thread while run_echo_peer drives `peer_fd` on
// another; require()s that the peer saw every reply.
EchoFigures serve_with_peer(int peer_fd, unsigned requests, const std::function<EchoFigures()>& serve);

}  // namespace bpfbroker::test_support
