// The echo loops and their peer; see ring_echo_loop.h.
#include "ring_echo_loop.h"

#include "io.h"

#include <bpf/bpf.h>
#include <liburing.h>

#include <sys/resource.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <thread>

namespace bpfbroker::test_support {

namespace {

double ms_since(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

long voluntary_switches()
{
    rusage u{};
    ::getrusage(RUSAGE_THREAD, &u);
    return u.ru_nvcsw;
}

std::string run_echo_peer(int fd, unsigned requests)
{
    std::array<char, kEchoRequestBytes> out{}, in{};
    for (unsigned i = 0; i < requests; ++i) {
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

EchoFigures echo_in_user_space(int fd, unsigned requests)
{
    io_uring ring{};
    require(io_uring_queue_init(8, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN) == 0,
            "io_uring_queue_init");
    std::array<char, kEchoBufferBytes> buf{};
    EchoFigures f;
    const long before = voluntary_switches();
    const auto start = std::chrono::steady_clock::now();
    for (unsigned i = 0; i < requests; ++i) {
        int len = 0;
        for (bool sending : {false, true}) {
            io_uring_sqe* sqe = io_uring_get_sqe(&ring);
            if (sending)
                io_uring_prep_send(sqe, fd, buf.data(), static_cast<std::size_t>(len), 0);
            else
                io_uring_prep_recv(sqe, fd, buf.data(), buf.size(), 0);
            require(io_uring_submit_and_wait(&ring, 1) == 1, "io_uring_submit_and_wait");
            ++f.enters;
            // Reaping is a read of the shared CQ ring: no system call.
            io_uring_cqe* cqe = nullptr;
            require(io_uring_peek_cqe(&ring, &cqe) == 0 && cqe->res > 0, "a completion failed");
            len = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
        }
    }
    f.wall_ms = ms_since(start);
    f.switches = voluntary_switches() - before;
    f.syscalls = f.enters;
    io_uring_queue_exit(&ring);
    return f;
}

EchoFigures echo_with_program(const LoopRing& ring, int stats_map_fd, unsigned requests)
{
    EchoFigures f;
    const __u32 key = 0;
    const long before = voluntary_switches();
    const auto start = std::chrono::steady_clock::now();
    do {
        require(ring.enter() == 0, "io_uring_enter failed");
        ++f.enters;
        require(bpf_map_lookup_elem(stats_map_fd, &key, &f.stats) == 0, "lookup stats");
        ++f.syscalls;
    } while (f.stats.echoed < requests && f.stats.errors == 0 && f.enters < 100);
    f.wall_ms = ms_since(start);
    f.switches = voluntary_switches() - before;
    f.syscalls += f.enters;
    return f;
}

EchoFigures serve_with_peer(int peer_fd, unsigned requests, const std::function<EchoFigures()>& serve)
{
    std::string peer_error;
    std::thread peer([&] { peer_error = run_echo_peer(peer_fd, requests); });
    EchoFigures f;
    try {
        f = serve();
    } catch (...) {
        ::shutdown(peer_fd, SHUT_RDWR);  // the peer must not wait for replies that never come
        peer.join();
        throw;
    }
    peer.join();
    require(peer_error.empty(), "the peer: " + peer_error);
    return f;
}

}  // namespace bpfbroker::test_support
