// ring_echo benchmark (issue 11): per 10,000 echo requests, what the serving
// thread costs with the shipped io_uring_bpf_ops program ring_echo (loaded
// and attached by a private root bpfbrokerd for a uid-65534 client, as in
// production) against the same RECV/SEND loop in user space with liburing,
// measured in the same run: io_uring_enter calls (returns to user space),
// the loop's own system calls, voluntary context switches and wall time.
// Ends with one `ratio NAME VALUE` line per ratio. On a kernel without
// io_uring_bpf_ops it says so in one line and exits 0; run it in the VM:
//   scripts/vm-test.sh --kernel BZIMAGE -- build/bench/ring_bench
// Needs root (the daemon trusts only root's policy files). Not run by ctest.
#include "bench_cli.h"
#include "support/daemon_process.h"
#include "support/loop_ring.h"
#include "support/ring_echo_loop.h"
#include "support/scratch_root.h"
#include "support/unprivileged_child.h"

#include <bpfbroker/client.h>

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace {

using namespace std::chrono_literals;
namespace ts = bpfbroker::test_support;
using bpfbroker::bench_cli::die;

constexpr const char* kProgram = "ring_echo";
constexpr unsigned kRequests = 10000;

void print_row(const char* name, const ts::EchoFigures& f)
{
    std::printf("%-22s %10u %10u %12ld %10.1f\n", name, f.enters, f.syscalls, f.switches, f.wall_ms);
}

double ratio(double a, double b) { return b == 0 ? 0 : a / b; }

// Runs in a uid-65534 child: attaches ring_echo to its own ring, serves the
// peer with it and then without it, and prints the figures.
std::string measure_as_nobody(const std::string& socket)
{
    auto client = bpfbroker::Client::connect_socket(socket, 30s);
    ts::require(bool(client), "connect: " + (client ? "" : client.error().describe()));
    int pair[2];
    ts::require(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair");
    bpfbroker::UniqueFd served(pair[0]), peer(pair[1]);
    std::array<char, ts::kEchoBufferBytes> buf{};
    ts::LoopRing ring(8);
    auto p = client->attach_ring(kProgram, ring.fd(), ring.params(),
                                 bpfbroker::AcquireOptions{{{"sock_fd", served.get()},
                                                            {"buf_addr", reinterpret_cast<std::uintptr_t>(buf.data())},
                                                            {"buf_len", buf.size()},
                                                            {"total", kRequests}}});
    ts::require(bool(p), "attach_ring: " + (p ? "" : p.error().describe()));
    const int stats = p->map("stats")->get();
    const auto with =
        ts::serve_with_peer(peer.get(), kRequests, [&] { return ts::echo_with_program(ring, stats, kRequests); });
    ts::require(with.stats.echoed == kRequests && with.stats.errors == 0,
                "ring_echo echoed " + std::to_string(with.stats.echoed) + " with " +
                    std::to_string(with.stats.errors) + " errors");
    const auto without =
        ts::serve_with_peer(peer.get(), kRequests, [&] { return ts::echo_in_user_space(served.get(), kRequests); });

    std::printf("per %u echo requests of %zu bytes (Unix stream socket pair, peer on another thread),\n"
                "counted on the serving thread:\n",
                kRequests, ts::kEchoRequestBytes);
    std::printf("%-22s %10s %10s %12s %10s\n", "loop", "enters", "syscalls", "vol.switches", "wall ms");
    print_row("ring_echo (in kernel)", with);
    print_row("user space, liburing", without);
    std::printf("ring_echo loop steps: %llu\n", static_cast<unsigned long long>(with.stats.steps));
    std::printf("ratio ring_echo_enters/user_loop_enters %.6f\n", ratio(with.enters, without.enters));
    std::printf("ratio ring_echo_syscalls/user_loop_syscalls %.6f\n", ratio(with.syscalls, without.syscalls));
    std::printf("ratio ring_echo_switches/user_loop_switches %.4f\n",
                ratio(static_cast<double>(with.switches), static_cast<double>(without.switches)));
    std::printf("ratio ring_echo_wall/user_loop_wall %.4f\n", ratio(with.wall_ms, without.wall_ms));
    std::fflush(stdout);
    return "";
}

}  // namespace

constexpr std::string_view kUsage =
    "usage: ring_bench   (as root, on Linux 7.1+ with io_uring_bpf_ops; elsewhere it says so and exits 0)\n"
    "ring_echo against the same echo loop in user space, per 10,000 requests: io_uring_enter calls,\n"
    "the loop's syscalls, voluntary context switches, wall time; ends with `ratio NAME VALUE` lines.\n";

int main(int argc, char** argv)
{
    bpfbroker::bench_cli::start("ring_bench", argc, argv, kUsage);
    if (argc > 1)
        bpfbroker::bench_cli::usage_error("no arguments expected", kUsage);
    if (auto missing = ts::io_uring_bpf_ops_missing(); !missing.empty()) {
        std::cout << "ring_bench: not measured: " << missing << '\n';
        return 0;
    }
    if (::geteuid() != 0)
        die("needs root: the daemon trusts only root's policy files");
    ts::ScratchRoot scratch;
    if (auto why = scratch.create("bpfbroker-ring-bench"); !why.empty())
        die(why);
    if (auto why = scratch.make_demo_root(); !why.empty())
        die(why);
    const std::string socket = scratch.root() + "/run/bpfbroker/org.bpfbroker.Broker";
    ts::DaemonProcess daemon;
    ts::DaemonOptions o;
    o.root = scratch.root();
    o.audit_log = scratch.path("audit.log");
    o.log_file = scratch.path("bpfbrokerd.log");
    o.extra_args = {"--no-dbus"};
    daemon.start(std::move(o));
    if (auto why = daemon.wait_ready([&] { return bool(bpfbroker::Client::connect_socket(socket, 1s)); }, 60s);
        !why.empty())
        die("bpfbrokerd: " + why);

    int status = 0;
    {
        auto admin = bpfbroker::Client::connect_socket(socket, 10s);
        bpfbroker::ApproveOptions nobody;
        nobody.users = {"nobody"};
        if (!admin)
            die("connect as root: " + admin.error().describe());
        if (auto approved = admin->approve(kProgram, nobody); !approved)
            die("approve: " + approved.error().describe());
        const auto r = ts::run_as_nobody([&] { return measure_as_nobody(socket); }, 300s);
        if (!r.ok()) {
            std::cerr << "ring_bench: " << r.describe() << '\n';
            status = 1;
        }
    }
    daemon.expect_clean_stop(30s);
    if (auto why = scratch.remove(); !why.empty())
        std::cerr << "ring_bench: " << why << '\n';
    return status;
}
