// ring_echo, the shipped server program (issue 11), end to end in the VM:
// uid 65534 echoes 10,000 requests on its own connected socket inside ONE
// io_uring_enter, and the same echo loop in user space (liburing, no
// program) is measured beside it, per 10,000 requests on the serving
// thread: io_uring_enter calls (each one return to user space: the
// user-space wake-ups) and voluntary context switches (sleeps waiting for
// the peer, in the kernel either way). Skipped, with the reason, on a kernel without io_uring_bpf_ops.
#include "daemon_fixture.h"
#include "loop_ring.h"

#include "ring_echo/ring_echo.h"

#include <bpf/bpf.h>
#include <liburing.h>

#include <sys/resource.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <thread>

namespace bpfbroker::e2e {
namespace {

constexpr const char* kProgram = "ring_echo";
constexpr unsigned kRequests = 10000;
constexpr std::size_t kRequestBytes = 64;

class RingServerTest : public RingProgramFixture {
protected:
    const char* program() const override { return kProgram; }
};

long voluntary_switches()
{
    rusage u{};
    ::getrusage(RUSAGE_THREAD, &u);
    return u.ru_nvcsw;
}

// The peer: sends kRequests numbered requests one at a time and checks each
// reply is the request. Returns "" or what went wrong.
std::string run_peer(int fd)
{
    std::array<char, kRequestBytes> out{}, in{};
    for (unsigned i = 0; i < kRequests; ++i) {
        std::snprintf(out.data(), out.size(), "request %u", i);
        if (::send(fd, out.data(), out.size(), 0) != static_cast<ssize_t>(out.size()))
            return "send " + std::to_string(i) + ": " + errno_text(errno);
        std::size_t got = 0;
        while (got < in.size()) {
            const ssize_t n = ::recv(fd, in.data() + got, in.size() - got, 0);
            if (n <= 0)
                return "recv " + std::to_string(i) + ": " + (n == 0 ? std::string("closed") : errno_text(errno));
            got += static_cast<std::size_t>(n);
        }
        if (in != out)
            return "reply " + std::to_string(i) + " is not the request";
    }
    return "";
}

struct Figures {
    unsigned enters = 0;
    long switches = 0;  // voluntary context switches
};

// The same loop without a program: RECV, SEND, one io_uring_enter each.
Figures echo_in_user_space(int fd)
{
    io_uring ring{};
    require(io_uring_queue_init(8, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN) == 0,
            "io_uring_queue_init");
    std::array<char, 2048> buf{};
    Figures f;
    const long before = voluntary_switches();
    for (unsigned i = 0; i < kRequests; ++i) {
        int len = 0;
        for (bool sending : {false, true}) {
            io_uring_sqe* sqe = io_uring_get_sqe(&ring);
            if (sending)
                io_uring_prep_send(sqe, fd, buf.data(), static_cast<std::size_t>(len), 0);
            else
                io_uring_prep_recv(sqe, fd, buf.data(), buf.size(), 0);
            require(io_uring_submit_and_wait(&ring, 1) == 1, "io_uring_submit_and_wait");
            ++f.enters;
            io_uring_cqe* cqe = nullptr;
            require(io_uring_peek_cqe(&ring, &cqe) == 0 && cqe->res > 0, "a completion failed");
            len = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
        }
    }
    f.switches = voluntary_switches() - before;
    io_uring_queue_exit(&ring);
    return f;
}

TEST_F(RingServerTest, EchoesTenThousandRequestsInsideOneEnter)
{
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        auto client = Client::connect_socket(socket, 30s);
        require(bool(client), "connect");
        int pair[2];
        require(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
        UniqueFd served(pair[0]), peer(pair[1]);
        std::array<char, 2048> buf{};
        LoopRing ring(8);
        auto p = client->attach_ring(
            kProgram, ring.fd(), ring.params(),
            AcquireOptions{{{"sock_fd", served.get()},
                            {"buf_addr", reinterpret_cast<std::uintptr_t>(buf.data())},
                            {"buf_len", buf.size()},
                            {"total", kRequests}}});
        require(bool(p), "attach_ring: " + (p ? "" : p.error().describe()));

        std::string peer_error;
        std::thread peer_thread([&] { peer_error = run_peer(peer.get()); });
        Figures with;
        const long before = voluntary_switches();
        ring_echo_stats s{};
        const __u32 key = 0;
        do {
            require(ring.enter() == 0, "io_uring_enter failed");
            ++with.enters;
            require(bpf_map_lookup_elem(p->map("stats")->get(), &key, &s) == 0, "lookup stats");
        } while (s.echoed < kRequests && s.errors == 0 && with.enters < 100);
        with.switches = voluntary_switches() - before;
        peer_thread.join();
        require(peer_error.empty(), "the peer: " + peer_error);
        require(s.echoed == kRequests && s.bytes == kRequests * kRequestBytes && s.errors == 0,
                "echoed " + std::to_string(s.echoed) + ", " + std::to_string(s.bytes) + " bytes, " +
                    std::to_string(s.errors) + " errors");
        require(with.enters == 1, "the program needed " + std::to_string(with.enters) + " io_uring_enter calls");

        // The baseline, same peer, no program.
        std::thread baseline_peer([&] { peer_error = run_peer(peer.get()); });
        const Figures without = echo_in_user_space(served.get());
        baseline_peer.join();
        require(peer_error.empty(), "the baseline's peer: " + peer_error);
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
