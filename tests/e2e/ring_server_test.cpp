// ring_echo, the shipped server program (issue 11), end to end in the VM:
// uid 65534 echoes 10,000 requests on its own connected socket inside ONE
// io_uring_enter, and the same echo loop in user space (liburing, no
// program) is measured beside it, per 10,000 requests on the serving
// thread: io_uring_enter calls (each one return to user space: the
// user-space wake-ups) and voluntary context switches (sleeps waiting for
// the peer, in the kernel either way). Skipped, with the reason, on a kernel without io_uring_bpf_ops.
// The loops and the peer are tests/support/ring_echo_loop, shared with
// bench/ring_bench.
#include "support/approved_for_nobody.h"
#include "support/loop_ring.h"
#include "support/ring_echo_loop.h"

#include <sys/socket.h>

#include <array>

namespace bpfbroker::e2e {
namespace {

using test_support::EchoFigures;
using test_support::kEchoBufferBytes;
using test_support::kEchoRequestBytes;
using test_support::LoopRing;
using test_support::serve_with_peer;

constexpr const char* kProgram = "ring_echo";
constexpr unsigned kRequests = 10000;

class RingServerTest : public ApprovedForNobodyFixture {
protected:
    std::vector<std::string> programs_for_nobody() const override { return {kProgram}; }
    bool needs_io_uring_bpf_ops() const override { return true; }
};

TEST_F(RingServerTest, EchoesTenThousandRequestsInsideOneEnter)
{
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        auto client = Client::connect_socket(socket, 30s);
        require(bool(client), "connect");
        int pair[2];
        require(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
        UniqueFd served(pair[0]), peer(pair[1]);
        std::array<char, kEchoBufferBytes> buf{};
        LoopRing ring(8);
        auto p = client->attach_ring(
            kProgram, ring.fd(), ring.params(),
            AcquireOptions{{{"sock_fd", served.get()},
                            {"buf_addr", reinterpret_cast<std::uintptr_t>(buf.data())},
                            {"buf_len", buf.size()},
                            {"total", kRequests}}});
        require(bool(p), "attach_ring: " + (p ? "" : p.error().describe()));

        const int stats = p->map("stats")->get();
        const EchoFigures with = serve_with_peer(
            peer.get(), kRequests, [&] { return test_support::echo_with_program(ring, stats, kRequests); });
        const ring_echo_stats& s = with.stats;
        require(s.echoed == kRequests && s.bytes == kRequests * kEchoRequestBytes && s.errors == 0,
                "echoed " + std::to_string(s.echoed) + ", " + std::to_string(s.bytes) + " bytes, " +
                    std::to_string(s.errors) + " errors");
        require(with.enters == 1, "the program needed " + std::to_string(with.enters) + " io_uring_enter calls");

        // The baseline, same peer, no program.
        const EchoFigures without = serve_with_peer(
            peer.get(), kRequests, [&] { return test_support::echo_in_user_space(served.get(), kRequests); });
        return "per " + std::to_string(kRequests) + " requests: with ring_echo " + std::to_string(with.enters) +
               " io_uring_enter (returns to user space), " + std::to_string(with.switches) +
               " voluntary context switches, " + std::to_string(s.steps) + " loop steps; in user space " +
               std::to_string(without.enters) + " io_uring_enter, " + std::to_string(without.switches) +
               " voluntary context switches";
    }, 300s);
    ASSERT_TRUE(r.ok()) << r.describe();
    std::cout << "ring_echo figures: " << r.report << "\n";
}

}  // namespace
}  // namespace bpfbroker::e2e
