// Catalog scale benchmark: the real bpfbrokerd on a scratch root holding N
// signed programs (copies of the shipped udp_stats under new names, signed
// with the build's development key), for N = 256, 1000 and 10000. Measures
// start to socket ready, idle RSS, one reload over the socket, and RSS after
// 20 reloads (10000: start and RSS only, to stay under a minute), and ends
// with one `ratio NAME VALUE` line per figure. Needs root (policy files must
// be root's). Not run by ctest: benchmarks never gate.
#include "bench_cli.h"
#include "support/daemon_process.h"
#include "support/scratch_root.h"

#include "policy/signature.h"

#include <bpfbroker/client.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using bpfbroker::test_support::DaemonOptions;
using bpfbroker::test_support::DaemonProcess;
using bpfbroker::test_support::ScratchRoot;
using Clock = std::chrono::steady_clock;
using bpfbroker::bench_cli::die;

std::string read_whole(const std::filesystem::path& p)
{
    std::ifstream in(p, std::ios::binary);
    if (!in)
        die("cannot read " + p.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_whole(const std::filesystem::path& p, const std::string& bytes)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    if (!(out << bytes))
        die("cannot write " + p.string());
}

// The template every generated program copies.
struct ShippedProgram {
    std::string name = "udp_stats";
    std::string manifest;
    std::string object_file;
    std::string object;
};

// Lays out `count` more programs named bench_NNNNN in the vendor programs.d.
void add_programs(const std::string& root, const ShippedProgram& shipped, const bpfbroker::policy::PrivateKey& key,
                  int count)
{
    const std::filesystem::path programs = root + "/usr/lib/bpfbroker/programs.d";
    const std::string from = "\"name\": \"" + shipped.name + "\"";
    for (int i = 0; i < count; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "bench_%05d", i);
        std::string manifest = shipped.manifest;
        auto at = manifest.find(from);
        if (at == std::string::npos)
            die("the shipped manifest has no " + from);
        manifest.replace(at, from.size(), std::string("\"name\": \"") + name + "\"");
        auto signature = key.sign(manifest);
        if (!signature)
            die("signing: " + signature.error().describe());
        const auto dir = programs / name;
        std::filesystem::create_directory(dir);
        ::chmod(dir.c_str(), 0755);
        write_whole(dir / "manifest.json", manifest);
        write_whole(dir / "manifest.json.sig", *signature);
        write_whole(dir / shipped.object_file, shipped.object);
    }
}

bool socket_accepts(const std::string& path)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

double rss_mib(pid_t pid)
{
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmRSS:", 0) == 0)
            return std::stod(line.substr(6)) / 1024.0;
    die("no VmRSS for pid " + std::to_string(pid));
}

double ms_since(Clock::time_point t)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

struct Figures {
    double start_ms = 0, rss_mib = 0, reload_ms = 0, rss_after_reloads_mib = 0;
};

Figures measure(int count, const ShippedProgram& shipped, const bpfbroker::policy::PrivateKey& key, int reloads)
{
    ScratchRoot scratch;
    // On tmpfs: creating and removing 40,000 files on this machine's ext4
    // took minutes (inode allocation), which measures the disk, not us.
    if (auto why = scratch.create("bpfbroker-catalog-bench", "/dev/shm"); !why.empty())
        die(why);
    bpfbroker::bench_cli::UndoOnDie undo([&scratch] { (void)scratch.remove(); });
    if (auto why = scratch.make_demo_root(); !why.empty())
        die(why);
    const auto generating = Clock::now();
    add_programs(scratch.root(), shipped, key, count);
    std::cout << count << " programs: generated and signed in " << ms_since(generating) << " ms" << std::endl;
    const std::string socket_path = scratch.root() + "/run/bpfbroker/org.bpfbroker.Broker";

    DaemonProcess daemon;
    DaemonOptions o;
    o.root = scratch.root();
    o.audit_log = scratch.path("audit.log");
    o.log_file = scratch.path("bpfbrokerd.log");
    o.extra_args = {"--no-dbus"};
    Figures f;
    const auto started = Clock::now();
    daemon.start(std::move(o));
    while (!socket_accepts(socket_path)) {
        if (!daemon.running())
            die("bpfbrokerd exited:\n" + daemon.log());
        if (Clock::now() - started > 60s)
            die("bpfbrokerd not ready after 60 s");
        std::this_thread::sleep_for(1ms);
    }
    f.start_ms = ms_since(started);
    std::this_thread::sleep_for(200ms);  // idle
    f.rss_mib = rss_mib(daemon.pid());

    if (reloads > 0) {
        auto client = bpfbroker::Client::connect_socket(socket_path, 10s);
        if (!client)
            die("connect: " + client.error().describe());
        for (int i = 0; i < reloads; ++i) {
            const auto t = Clock::now();
            if (auto r = client->reload(); !r)
                die("reload: " + r.error().describe());
            if (i == 0)
                f.reload_ms = ms_since(t);
        }
        std::this_thread::sleep_for(200ms);
        f.rss_after_reloads_mib = rss_mib(daemon.pid());
    }
    const auto stopping = Clock::now();
    daemon.expect_clean_stop(30s);
    if (daemon.status() != 0)
        std::cerr << "catalog_bench: bpfbrokerd did not stop cleanly\n";
    std::cout << count << " programs: stopped in " << ms_since(stopping) << " ms" << std::endl;
    const auto removing = Clock::now();
    if (auto why = scratch.remove(); !why.empty())
        die(why);
    std::cout << count << " programs: scratch root removed in " << ms_since(removing) << " ms" << std::endl;
    return f;
}

}  // namespace

constexpr std::string_view kUsage =
    "usage: catalog_bench [N...]   (as root; default: 256 and 1000 with 20 reloads, 10000 with 1)\n"
    "Starts bpfbrokerd on catalogs of N signed programs: start to socket ready, idle RSS, reload,\n"
    "RSS after the reloads; ends with one `ratio NAME VALUE` line per figure.\n";

int main(int argc, char** argv)
{
    bpfbroker::bench_cli::start("catalog_bench", argc, argv, kUsage);
    if (::geteuid() != 0)
        die("needs root: the daemon trusts only root's policy files");
    const std::filesystem::path build = BPFBROKER_BUILD_DIR;
    ShippedProgram shipped;
    const auto dir = build / "programs" / shipped.name;
    shipped.manifest = read_whole(dir / "manifest.json");
    shipped.object_file = shipped.name + ".bpf.o";
    shipped.object = read_whole(dir / shipped.object_file);
    auto key = bpfbroker::policy::PrivateKey::from_pem(read_whole(build / "dev-keys/dev-signing-key.pem"));
    if (!key)
        die("development key: " + key.error().describe());

    struct Run {
        int count;
        int reloads;
    };
    std::vector<Run> runs{{256, 20}, {1000, 20}, {10000, 1}};
    if (argc > 1) {  // catalog_bench N...: only these sizes (for profiling one)
        runs.clear();
        for (int i = 1; i < argc; ++i)
            runs.push_back({bpfbroker::bench_cli::positive_count(argv[i], kUsage), 1});
    }
    std::vector<std::pair<int, Figures>> results;
    for (Run run : runs) {
        auto f = measure(run.count, shipped, *key, run.reloads);
        std::cout << run.count << " programs: start to socket ready " << f.start_ms << " ms, idle RSS " << f.rss_mib
                  << " MiB, reload " << f.reload_ms << " ms, RSS after " << run.reloads << " reloads "
                  << f.rss_after_reloads_mib << " MiB" << std::endl;
        results.emplace_back(run.count, f);
    }
    for (const auto& [count, f] : results) {
        const std::string n = "catalog" + std::to_string(count);
        std::cout << "ratio " << n << "_start_ms " << f.start_ms << '\n'
                  << "ratio " << n << "_rss_mib " << f.rss_mib << '\n'
                  << "ratio " << n << "_reload_ms " << f.reload_ms << '\n'
                  << "ratio " << n << "_rss_after_reloads_mib " << f.rss_after_reloads_mib << '\n';
    }
    return 0;
}
