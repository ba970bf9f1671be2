// acquire_bench: what handing a program out costs, against floors measured
// in the same run.
//   floor  - a bare request/reply carrying one fd over a socketpair
//   warm   - AcquireProgram of a shared program (already loaded) over the socket
//   cold   - AcquireProgram of a per-client program (a fresh load each time)
//   direct - bpf_object__open_mem + load of that same object, as root
// Prints median and p99 of each, the ratios warm/floor and cold/direct, and
// acquires per second with 1, 4 and 16 concurrent clients.
// Run as root: it starts its own bpfbrokerd on a scratch root.
#include <bpfbroker/client.h>

#include "wire/fd_passing.h"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <span>
#include <vector>

using namespace bpfbroker;
using Clock = std::chrono::steady_clock;

namespace {

struct Stats {
    double median_us = 0;
    double p99_us = 0;
};

Stats measure(int iterations, const std::function<void()>& op)
{
    for (int i = 0; i < iterations / 10 + 1; ++i)
        op();  // warm-up
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(iterations));
    for (int i = 0; i < iterations; ++i) {
        auto t0 = Clock::now();
        op();
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::sort(us.begin(), us.end());
    return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

[[noreturn]] void die(const std::string& what)
{
    std::fprintf(stderr, "acquire_bench: %s\n", what.c_str());
    std::exit(1);
}

template <typename T>
T must(Result<T> r, const char* what)
{
    if (!r)
        die(std::string(what) + ": " + r.error().describe());
    return std::move(*r);
}

// A scratch root with the in-tree programs, a settings file that lifts the
// per-uid limits (the benchmark is one uid), and a running daemon.
class Daemon {
public:
    Daemon()
    {
        char tmpl[] = "/tmp/bpfbroker-bench-XXXXXX";
        if (!::mkdtemp(tmpl))
            die("mkdtemp");
        root_ = tmpl;
        ::chmod(root_.c_str(), 0755);
        std::string cmd = std::string(BPFBROKER_SOURCE_DIR) + "/scripts/make-demo-root.sh " + root_ + " " + BPFBROKER_BUILD_DIR;
        if (std::system(cmd.c_str()) != 0)
            die("make-demo-root.sh failed");
        std::ofstream(root_ + "/etc/bpfbroker/bpfbroker.json")
            << R"({"limits":{"max_instances_per_uid":4096,"max_connections_per_uid":64,"max_requests_per_second":1000000}})";
        std::ofstream(root_ + "/etc/bpfbroker/allowlist.d/bench.json")
            << R"([{"program":"drop_small","match":{"signer":")" << dev_key_id()
            << R"("},"principals":{"users":[0]}},{"program":"udp_stats","match":{"signer":")" << dev_key_id()
            << R"("},"principals":{"users":[0]}}])";
        pid_ = ::fork();
        if (pid_ == 0) {
            int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
            ::dup2(null, 2);
            ::execl(BPFBROKERD_PATH, BPFBROKERD_PATH, "--root", root_.c_str(), "--foreground", "--no-dbus", nullptr);
            _exit(127);
        }
        for (int i = 0; i < 200; ++i) {
            if (Client::connect_socket(socket()))
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        die("bpfbrokerd did not start");
    }
    ~Daemon()
    {
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        std::filesystem::remove_all(root_);
    }
    std::string socket() const { return root_ + "/run/bpfbroker/org.bpfbroker.Broker"; }
    pid_t pid() const { return pid_; }
    std::string object_path() const { return std::string(BPFBROKER_BUILD_DIR) + "/programs/udp_stats/udp_stats.bpf.o"; }

private:
    static std::string dev_key_id()
    {
        std::string cmd = std::string("openssl pkey -pubin -in ") + BPFBROKER_BUILD_DIR +
                          "/dev-keys/dev-signing-key.pub.pem -outform DER | sha256sum";
        FILE* p = ::popen(cmd.c_str(), "r");
        char buf[65] = {};
        if (!p || std::fread(buf, 1, 64, p) != 64)
            die("cannot compute the dev key id");
        ::pclose(p);
        return buf;
    }
    std::string root_;
    pid_t pid_ = -1;
};

// The floor: one request, one reply carrying one fd, over a socketpair to
// another process (as the daemon is), with no parsing and no policy.
Stats floor_round_trip(int iterations)
{
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        die("socketpair");
    UniqueFd client(sv[0]), server(sv[1]);
    pid_t responder = ::fork();
    if (responder == 0) {
        client.reset();
        UniqueFd payload(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        std::string reply = R"({"parameters":{"program":0}})";
        reply.push_back('\0');
        char buf[256];
        for (;;) {
            auto r = recv_with_fds(server.get(), buf, 0);
            if (!r || r->bytes == 0)
                _exit(0);
            int fd = payload.get();
            (void)send_all_with_fds(server.get(), reply, std::span<const int>(&fd, 1));
        }
    }
    server.reset();
    std::string request = R"({"method":"org.bpfbroker.Broker.AcquireProgram","parameters":{"name":"drop_small"}})";
    request.push_back('\0');
    auto stats = measure(iterations, [&] {
        (void)send_all_with_fds(client.get(), request, {});
        char buf[256];
        auto r = recv_with_fds(client.get(), buf, 4);
        if (!r || r->fds.size() != 1)
            die("floor reply lost its fd");
    });
    client.reset();
    ::waitpid(responder, nullptr, 0);
    return stats;
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Latencies are measured with the benchmark, the daemon and the floor's
// responder on one CPU: on a small VM, waking an idle vCPU costs tens of
// microseconds and varies run to run, which would drown what we measure.
// Throughput runs unpinned.
void set_cpus(pid_t pid, bool only_first)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    long n = only_first ? 1 : ::sysconf(_SC_NPROCESSORS_ONLN);
    for (long i = 0; i < n; ++i)
        CPU_SET(static_cast<int>(i), &set);
    if (::sched_setaffinity(pid, sizeof set, &set) != 0)
        die("sched_setaffinity");
}

int silent_print(enum libbpf_print_level, const char*, va_list)
{
    return 0;
}

Stats direct_load(const std::string& object, int iterations)
{
    return measure(iterations, [&] {
        LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "udp_stats");
        bpf_object* obj = bpf_object__open_mem(object.data(), object.size(), &opts);
        if (!obj || bpf_object__load(obj) != 0)
            die("direct load failed");
        bpf_object__close(obj);
    });
}

double acquires_per_second(const std::string& socket, int clients, std::chrono::milliseconds duration)
{
    std::atomic<long> total{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < clients; ++i)
        threads.emplace_back([&] {
            auto c = must(Client::connect_socket(socket), "connect");
            long n = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                must(c.acquire("drop_small"), "acquire");
                ++n;
            }
            total += n;
        });
    std::this_thread::sleep_for(duration);
    stop = true;
    for (auto& t : threads)
        t.join();
    return static_cast<double>(total.load()) / std::chrono::duration<double>(duration).count();
}

}  // namespace

int main(int argc, char** argv)
{
    if (::geteuid() != 0)
        die("run as root: it starts bpfbrokerd and loads programs");
    int iterations = argc > 1 ? std::atoi(argv[1]) : 2000;
    libbpf_set_print(silent_print);
    Daemon daemon;
    auto client = must(Client::connect_socket(daemon.socket()), "connect");

    set_cpus(0, true);
    set_cpus(daemon.pid(), true);
    auto warm = measure(iterations, [&] { must(client.acquire("drop_small"), "warm acquire"); });
    auto floor = floor_round_trip(iterations);
    int cold_iterations = std::max(50, iterations / 10);
    auto cold = measure(cold_iterations, [&] { must(client.acquire("udp_stats"), "cold acquire"); });
    auto direct = direct_load(read_file(daemon.object_path()), cold_iterations);

    set_cpus(0, false);
    set_cpus(daemon.pid(), false);

    std::printf("latencies with client and daemon on one CPU\n");
    std::printf("%-44s %12s %12s\n", "operation", "median us", "p99 us");
    auto row = [](const char* name, const Stats& s) { std::printf("%-44s %12.1f %12.1f\n", name, s.median_us, s.p99_us); };
    row("floor: SCM_RIGHTS round trip, one fd", floor);
    row("warm: AcquireProgram, shared (drop_small)", warm);
    row("cold: AcquireProgram, per-client (udp_stats)", cold);
    row("direct: bpf_object__load (udp_stats)", direct);
    std::printf("ratio warm/floor (median): %.2f\n", warm.median_us / floor.median_us);
    std::printf("ratio cold/direct (median): %.2f\n", cold.median_us / direct.median_us);
    for (int clients : {1, 4, 16})
        std::printf("acquires/s, shared, %2d concurrent clients: %.0f\n", clients,
                    acquires_per_second(daemon.socket(), clients, std::chrono::milliseconds(1500)));
    return 0;
}
