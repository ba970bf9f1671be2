// acquire_bench: what handing a program out costs, each figure against a
// floor measured in the same run, so ratios compare across machines.
//   floor        - a bare server in another process answering each request
//                  with the daemon's own reply bytes (same size) and one fd
//   warm_socket  - AcquireProgram of a shared program (already loaded), the
//                  client speaking raw Varlink
//   warm_socket_poll - the same, the client waiting for the reply in poll
//                  (as Client does), against floor_poll: the floor waited
//                  on the same way
//   warm_client  - warm_socket through Client::acquire (which waits in poll)
//   cold         - Client::acquire of a per-client program (a fresh load)
//   direct_load  - bpf_object__open_mem + load of that same object, as root
//   cold_raw     - cold, the client speaking raw Varlink (waiting in poll),
//                  against load_floor: a bare server in another process
//                  loading the object itself for each request and replying
//                  the daemon's own bytes with the same two fds
//   dbus_floor   - a bare sdbus-c++ method returning one fd, on a private bus
//   dbus_floor_shaped - a bare method of AcquireProgram's signature replying
//                  the daemon's own info a{sv} and one fd, read as Client
//                  reads it: what the reply's shape costs, without deciding
//   dbus_warm    - Client::acquire over D-Bus on that same bus
//   tputN        - acquires/s with N concurrent raw Varlink clients, against
//                  floor_tputN: the same clients against the floor server
//   codec_fast   - the client's AcquireProgram codec (encode the call, decode
//                  the daemon's reply), against codec_general (nlohmann)
// Latencies run with everything on one CPU, throughput unpinned; each
// figure is measured in slices alternating with the others' (see
// measure_interleaved), so a figure and its floor see the same machine. Beside
// each latency is the CPU its servers spent per call (cpu_* ratios): the
// daemon, or the floor server, plus the bus daemon for D-Bus; for
// direct_load, the benchmark's thread that loads. The last lines are one
// `ratio NAME VALUE` per ratio.
// Run as root: it starts a dbus-daemon and its own bpfbrokerd on a scratch root.
#include <bpfbroker/client.h>

#include "bench_cli.h"
#include "dbus_program_info.h"
#include "wire/acquire_codec.h"
#include "wire/fd_passing.h"

#include <bpf/libbpf.h>
#include <sdbus-c++/sdbus-c++.h>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

using namespace bpfbroker;
using bpfbroker::bench_cli::die;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kFloorBusName = "org.bpfbroker.BenchFloor";
constexpr const char* kFloorPath = "/org/bpfbroker/BenchFloor";
constexpr const char* kFloorInterface = "org.bpfbroker.BenchFloor";
constexpr const char* kShapedFloorBusName = "org.bpfbroker.BenchShapedFloor";
const std::string kRequest =
    std::string(R"({"method":"org.bpfbroker.Broker.AcquireProgram","parameters":{"name":"drop_small"}})") + '\0';
const std::string kColdRequest =
    std::string(R"({"method":"org.bpfbroker.Broker.AcquireProgram","parameters":{"name":"udp_stats"}})") + '\0';

struct Stats {
    double median_us = 0;
    double p99_us = 0;
    double server_cpu_us = 0;  // CPU the serving processes spent per call
};

// The calling thread alone, for cpu_ns: direct_load's loads run on it, and
// the benchmark's other threads (its bus connections) must not count.
constexpr pid_t kThisThread = -1;

// Nanoseconds the threads of `pid` (0: this process; kThisThread: the
// calling thread) have run, from schedstat. A server's CPU per call is what
// its code costs; on a small VM the scheduler's wake-up latency blurs
// wall-clock figures far more.
std::uint64_t cpu_ns(pid_t pid)
{
    if (pid == kThisThread) {
        std::ifstream in("/proc/thread-self/schedstat");
        std::uint64_t ran = 0;
        if (!(in >> ran))
            die("cannot read /proc/thread-self/schedstat");
        return ran;
    }
    std::string dir = pid == 0 ? "/proc/self/task" : "/proc/" + std::to_string(pid) + "/task";
    std::uint64_t total = 0;
    for (const auto& task : std::filesystem::directory_iterator(dir)) {
        std::ifstream in(task.path() / "schedstat");
        std::uint64_t ran = 0;
        if (in >> ran)
            total += ran;
    }
    return total;
}

std::uint64_t cpu_ns(const std::vector<pid_t>& pids)
{
    std::uint64_t total = 0;
    for (pid_t pid : pids)
        total += cpu_ns(pid);
    return total;
}

// One latency figure: its call, who serves it, how many calls it makes,
// and what those calls measured.
struct Series {
    std::vector<pid_t> servers;
    int iterations = 0;
    std::function<void()> op;
    std::vector<double> us{};
    std::uint64_t server_cpu_ns = 0;

    [[nodiscard]] Stats stats() const
    {
        std::vector<double> sorted = us;
        std::sort(sorted.begin(), sorted.end());
        return {sorted[sorted.size() / 2], sorted[std::min(sorted.size() - 1, sorted.size() * 99 / 100)],
                static_cast<double>(server_cpu_ns) / 1000.0 / static_cast<double>(sorted.size())};
    }
};

// Runs the calls of every series in `kTurns` turns, each turn a slice of
// every series in a rotating order. On a shared host the machine's speed
// drifts over seconds (another guest, steal); measured one after another,
// a figure and its floor would each take whatever the machine gave then,
// and their ratio swings by half. Interleaved, a slow stretch lands on all.
constexpr int kTurns = 20;

void measure_interleaved(const std::vector<Series*>& series)
{
    for (Series* s : series)
        for (int i = 0; i < s->iterations / 10 + 1; ++i)
            s->op();  // warm-up
    for (int turn = 0; turn < kTurns; ++turn) {
        for (std::size_t k = 0; k < series.size(); ++k) {
            Series& s = *series[(k + static_cast<std::size_t>(turn)) % series.size()];
            const int calls = s.iterations / kTurns + (turn < s.iterations % kTurns ? 1 : 0);
            const std::uint64_t cpu_before = cpu_ns(s.servers);
            for (int i = 0; i < calls; ++i) {
                auto t0 = Clock::now();
                s.op();
                s.us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
            }
            s.server_cpu_ns += cpu_ns(s.servers) - cpu_before;
        }
    }
}

template <typename T>
T must(Result<T> r, const char* what)
{
    if (!r)
        die(std::string(what) + ": " + r.error().describe());
    return std::move(*r);
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Forks a child that runs `body`, dies with the benchmark, and keeps quiet.
pid_t spawn(const std::function<void()>& body)
{
    pid_t pid = ::fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        ::dup2(null, 2);
        body();
        _exit(0);
    }
    return pid;
}

void stop(pid_t pid)
{
    ::kill(pid, SIGTERM);
    ::waitpid(pid, nullptr, 0);
}

UniqueFd connect_unix(const std::string& path)
{
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return UniqueFd();
    return fd;
}

// How a raw client waits for its reply. Blocked in recvmsg it is woken for
// nothing when the server reads its call (the kernel wakes a unix socket's
// sleepers when its peer frees send space); poll's sleeper only input wakes,
// as Client waits.
enum class Wait { InRecvmsg, InPoll };

// A Varlink client with no library: sends the request bytes, reads up to
// the reply's NUL, keeps the fds until the next call.
class RawClient {
public:
    explicit RawClient(const std::string& path, Wait wait = Wait::InRecvmsg, const std::string& request = kRequest)
        : fd_(connect_unix(path)), wait_(wait), request_(request)
    {
    }
    [[nodiscard]] bool connected() const { return fd_.valid(); }
    // The reply frame with its NUL; empty on any failure or an error reply.
    std::string acquire()
    {
        if (!send_all_with_fds(fd_.get(), request_, {}))
            return {};
        std::string reply;
        std::size_t fds = 0;
        char buf[4096];
        while (reply.empty() || reply.back() != '\0') {
            if (wait_ == Wait::InPoll) {
                pollfd p{fd_.get(), POLLIN, 0};
                if (::poll(&p, 1, 10000) != 1)
                    return {};
            }
            auto r = recv_with_fds(fd_.get(), buf, 8);
            if (!r || (r->bytes == 0 && r->fds.empty()))
                return {};
            reply.append(buf, r->bytes);
            fds += r->fds.size();
        }
        if (fds == 0 || reply.rfind(R"({"parameters")", 0) != 0)
            return {};
        return reply;
    }

private:
    UniqueFd fd_;
    Wait wait_;
    std::string request_;
};

// How a floor server reads: plainly, or as bpfbrokerd does, peeking each
// request and taking requests off the socket in batches of 1 KiB (see
// VarlinkServer::on_readable), so the reading wakes no client.
enum class FloorReads { Plain, Peeked };

// A listening stream socket at `path`, for a floor server.
UniqueFd listen_unix(const std::string& path)
{
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener.get(), 128) != 0)
        die("floor server: bind/listen " + path);
    return listener;
}

// The socket floor: thread per connection, each request answered with
// `reply` and one fd (of /dev/null), no parsing, no policy.
pid_t start_floor_server(const std::string& path, const std::string& reply, FloorReads reads)
{
    UniqueFd listener = listen_unix(path);
    pid_t pid = spawn([&] {
        UniqueFd payload(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        int fd = payload.get();
        for (;;) {
            int conn = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
            if (conn < 0)
                continue;
            std::thread([conn, fd, &reply, reads] {
                UniqueFd c(conn);
                const int zero = 0;
                const bool peeks =
                    reads == FloorReads::Peeked && ::setsockopt(conn, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) == 0;
                char buf[4096];
                std::size_t unconsumed = 0;
                for (;;) {
                    auto r = peeks ? peek_with_fds(c.get(), buf, 0) : recv_with_fds(c.get(), buf, 0);
                    if (!r || r->bytes == 0)
                        return;
                    for (std::size_t n = std::count(buf, buf + r->bytes, '\0'); n > 0; --n)
                        (void)send_all_with_fds(c.get(), reply, std::span<const int>(&fd, 1));
                    if (peeks && (unconsumed += r->bytes) >= 1024) {
                        for (; unconsumed > 0;) {
                            const ssize_t n = ::recv(c.get(), buf, std::min(unconsumed, sizeof buf), 0);
                            if (n <= 0)
                                return;
                            unconsumed -= static_cast<std::size_t>(n);
                        }
                    }
                }
            }).detach();
        }
    });
    return pid;
}

// A private bus anyone may own names on and call anything over.
class PrivateBus {
public:
    explicit PrivateBus(const std::string& dir)
    {
        std::string socket = dir + "/bus.sock";
        std::string config = dir + "/bus.conf";
        std::ofstream(config) << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" "
                                 "\"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                                 "<busconfig><type>system</type><listen>unix:path="
                              << socket
                              << "</listen><auth>EXTERNAL</auth><policy context=\"default\">"
                                 "<allow user=\"*\"/><allow own=\"*\"/><allow send_type=\"method_call\"/>"
                                 "<allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>\n";
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0)
            die("pipe2");
        UniqueFd rd(p[0]), wr(p[1]);
        pid_ = spawn([&] {
            ::dup2(wr.get(), 3);
            ::execlp("dbus-daemon", "dbus-daemon", ("--config-file=" + config).c_str(), "--nofork", "--nopidfile",
                     "--nosyslog", "--print-address=3", nullptr);
            _exit(127);
        });
        wr.reset();
        char buf[512];
        ssize_t n = ::read(rd.get(), buf, sizeof buf - 1);
        if (n <= 0)
            die("dbus-daemon did not start (is the dbus-daemon package installed?)");
        address_ = "unix:path=" + socket;
        ::setenv("DBUS_SYSTEM_BUS_ADDRESS", address_.c_str(), 1);  // for the daemon and Client::connect_dbus
    }
    ~PrivateBus()
    {
        stop(pid_);
        ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    }
    [[nodiscard]] pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
    std::string address_;
};

// A D-Bus floor server owning `bus_name`: `add_method` registers its one
// method on the floor's object, answering with copies of `payload` (an fd
// of /dev/null). Returns once the method is served.
pid_t start_dbus_floor_server(const char* bus_name, const std::function<void(sdbus::IObject&, int payload)>& add_method)
{
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        die("pipe2");
    UniqueFd rd(p[0]), wr(p[1]);
    pid_t pid = spawn([&] {
        UniqueFd payload(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        auto conn = sdbus::createSystemBusConnection(bus_name);
        auto object = sdbus::createObject(*conn, kFloorPath);
        add_method(*object, payload.get());
        object->finishRegistration();
        (void)::write(wr.get(), "1", 1);
        conn->enterEventLoop();
    });
    wr.reset();
    char c;
    if (::read(rd.get(), &c, 1) != 1)
        die(std::string("the D-Bus floor server ") + bus_name + " did not start");
    return pid;
}

// The D-Bus floor: one method returning one fd.
pid_t start_dbus_floor()
{
    return start_dbus_floor_server(kFloorBusName, [](sdbus::IObject& object, int payload) {
        object.registerMethod("Fd").onInterface(kFloorInterface).implementedAs([payload] { return sdbus::UnixFd(payload); });
    });
}

// The info a{sv} of a daemon's D-Bus acquire reply, captured once, for the
// shaped floor to write back field by field as the daemon does
// (brokerd/dbus_handout_info.cpp): the same bytes, none of the deciding.
using InfoValue = std::variant<std::string, std::uint32_t, std::map<std::string, std::string>,
                               std::map<std::string, std::uint64_t>>;
struct ShapedInfo {
    std::vector<std::pair<std::string, InfoValue>> fields;
};
// What a reply carries: a reference, as the daemon's DbusHandoutInfo does.
struct ShapedInfoRef {
    const ShapedInfo& info;
};

ShapedInfo shaped_info(const std::map<std::string, sdbus::Variant>& info)
{
    ShapedInfo out;
    for (const auto& [key, v] : info) {
        if (v.containsValueOfType<std::string>())
            out.fields.emplace_back(key, v.get<std::string>());
        else if (v.containsValueOfType<std::uint32_t>())
            out.fields.emplace_back(key, v.get<std::uint32_t>());
        else if (v.containsValueOfType<std::map<std::string, std::string>>())
            out.fields.emplace_back(key, v.get<std::map<std::string, std::string>>());
        else if (v.containsValueOfType<std::map<std::string, std::uint64_t>>())
            out.fields.emplace_back(key, v.get<std::map<std::string, std::uint64_t>>());
        else
            die("the daemon's acquire info has a field of type " + std::string(v.peekValueType()));
    }
    return out;
}

sdbus::Message& operator<<(sdbus::Message& msg, const ShapedInfoRef& ref)
{
    msg.openContainer("{sv}");
    for (const auto& [key, value] : ref.info.fields) {
        msg.openDictEntry("sv");
        msg << key;
        std::visit(
            [&msg](const auto& v) {
                msg.openVariant(sdbus::signature_of<std::decay_t<decltype(v)>>::str());
                msg << v;
                msg.closeVariant();
            },
            value);
        msg.closeDictEntry();
    }
    msg.closeContainer();
    return msg;
}

}  // namespace

template <>
struct sdbus::signature_of<ShapedInfoRef> : sdbus::signature_of<std::map<std::string, sdbus::Variant>> {};

namespace {

// The shaped D-Bus floor: AcquireProgram's signature, (s) -> (h a{sh} a{sv}),
// answered with one fd and the daemon's own info, with no policy, identity
// or audit. dbus_warm against it is the daemon's work; it against the bare
// floor is what the reply's shape costs the bus and both ends.
pid_t start_shaped_dbus_floor(const ShapedInfo& info)
{
    return start_dbus_floor_server(kShapedFloorBusName, [&info](sdbus::IObject& object, int payload) {
        object.registerMethod("Shaped").onInterface(kFloorInterface).implementedAs([&info, payload](const std::string&) {
            // One copy of the fd for sd-bus to send, as the daemon's reply
            // adopts the one its core made (handed_fd.h).
            sdbus::UnixFd fd(::fcntl(payload, F_DUPFD_CLOEXEC, 0), sdbus::adopt_fd);
            return std::tuple<sdbus::UnixFd, std::map<std::string, sdbus::UnixFd>, ShapedInfoRef>(
                std::move(fd), std::map<std::string, sdbus::UnixFd>{}, ShapedInfoRef{info});
        });
    });
}

// A scratch root with the in-tree programs, a settings file that lifts the
// per-uid limits (the benchmark is one uid), a private bus, and a daemon
// serving the socket and that bus.
class Daemon {
public:
    Daemon()
    {
        char tmpl[] = "/tmp/bpfbroker-bench-XXXXXX";
        if (!::mkdtemp(tmpl))
            die("mkdtemp");
        root_ = tmpl;
        undo_.emplace([root = root_] { std::filesystem::remove_all(root); });
        ::chmod(root_.c_str(), 0755);
        std::string cmd = std::string(BPFBROKER_SOURCE_DIR) + "/scripts/make-demo-root.sh " + root_ + " " + BPFBROKER_BUILD_DIR;
        if (std::system(cmd.c_str()) != 0)
            die("make-demo-root.sh failed");
        std::ofstream(root_ + "/etc/bpfbroker/bpfbroker.json")
            << R"({"limits":{"max_instances_per_uid":4096,"max_connections_per_uid":256,"max_connections_total":1024,)"
            << R"("max_requests_per_second":1000000}})";
        std::ofstream(root_ + "/etc/bpfbroker/allowlist.d/bench.json")
            << R"([{"program":"drop_small","match":{"signer":")" << dev_key_id()
            << R"("},"principals":{"users":[0]}},{"program":"udp_stats","match":{"signer":")" << dev_key_id()
            << R"("},"principals":{"users":[0]}}])";
        bus_ = std::make_unique<PrivateBus>(root_);
        pid_ = spawn([&] {
            ::execl(BPFBROKERD_PATH, BPFBROKERD_PATH, "--root", root_.c_str(), "--foreground", nullptr);
            _exit(127);
        });
        for (int i = 0; i < 400; ++i) {
            if (Client::connect_socket(socket()) && dbus_ready())
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        die("bpfbrokerd did not start on the socket and the bus");
    }
    ~Daemon()
    {
        stop(pid_);
        bus_.reset();
        std::filesystem::remove_all(root_);
    }
    [[nodiscard]] std::string socket() const { return root_ + "/run/bpfbroker/org.bpfbroker.Broker"; }
    [[nodiscard]] std::string scratch(const char* name) const { return root_ + "/" + name; }
    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] pid_t bus_pid() const { return bus_->pid(); }
    [[nodiscard]] std::string object_path() const
    {
        return std::string(BPFBROKER_BUILD_DIR) + "/programs/udp_stats/udp_stats.bpf.o";
    }

private:
    static bool dbus_ready()
    {
        auto c = Client::connect_dbus(std::chrono::seconds(2));
        return c && c->features();
    }
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
    std::optional<bench_cli::UndoOnDie> undo_;
    std::unique_ptr<PrivateBus> bus_;
    pid_t pid_ = -1;
};

// Latencies are measured with the benchmark, the servers and the bus on one
// CPU: on a small VM, waking an idle vCPU costs tens of microseconds and
// varies run to run, which would drown what we measure. Throughput runs
// unpinned.
void set_cpus(const std::vector<pid_t>& pids, bool only_first)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    long n = only_first ? 1 : ::sysconf(_SC_NPROCESSORS_ONLN);
    for (long i = 0; i < n; ++i)
        CPU_SET(static_cast<int>(i), &set);
    // Every thread of each process: the daemon and the floor run several.
    for (pid_t pid : pids) {
        std::string dir = pid == 0 ? "/proc/self/task" : "/proc/" + std::to_string(pid) + "/task";
        for (const auto& task : std::filesystem::directory_iterator(dir))
            if (::sched_setaffinity(std::stoi(task.path().filename()), sizeof set, &set) != 0 && errno != ESRCH)
                die("sched_setaffinity");
    }
}

int silent_print(enum libbpf_print_level, const char*, va_list)
{
    return 0;
}

// Opens and loads `object` as direct_load does; `loaded` sees it before it closes.
void load_directly(const std::string& object, const std::function<void(bpf_object*)>& loaded = {})
{
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "udp_stats");
    bpf_object* obj = bpf_object__open_mem(object.data(), object.size(), &opts);
    if (!obj || bpf_object__load(obj) != 0)
        die("direct load failed");
    if (loaded)
        loaded(obj);
    bpf_object__close(obj);
}

// The cold floor: a bare server in another process answering each request
// on one connection at a time by loading `object` itself, as direct_load
// does, and sending `reply` (the daemon's own reply to a cold acquire, the
// same size) with the program's fd and its "stats" map's, as the daemon's
// reply carries: no policy, journal, audit or read-only copy.
pid_t start_load_floor_server(const std::string& path, const std::string& reply, const std::string& object)
{
    UniqueFd listener = listen_unix(path);
    return spawn([&] {
        for (;;) {
            UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!conn)
                continue;
            char buf[4096];
            for (;;) {
                auto r = recv_with_fds(conn.get(), buf, 0);
                if (!r || r->bytes == 0)
                    break;
                for (std::size_t n = std::count(buf, buf + r->bytes, '\0'); n > 0; --n)
                    load_directly(object, [&](bpf_object* obj) {
                        const int fds[] = {bpf_program__fd(bpf_object__next_program(obj, nullptr)),
                                           bpf_map__fd(bpf_object__find_map_by_name(obj, "stats"))};
                        (void)send_all_with_fds(conn.get(), reply, fds);
                    });
            }
        }
    });
}

struct Throughput {
    long acquires = 0;
    long errors = 0;
    double seconds = 0;

    [[nodiscard]] double per_second() const { return seconds > 0 ? static_cast<double>(acquires) / seconds : 0; }
    void add(const Throughput& other)
    {
        acquires += other.acquires;
        errors += other.errors;
        seconds += other.seconds;
    }
};

// `clients` raw Varlink clients acquiring as fast as they can against
// `path`, counted over `duration` from when every client has connected and
// been answered once: starting threads and accepting connections (the
// floor starts a thread per connection, the daemon takes its peer's pidfd
// and names) is not what the figure measures.
Throughput throughput(const std::string& path, int clients, std::chrono::milliseconds duration)
{
    std::atomic<long> total{0}, errors{0};
    std::atomic<bool> stopping{false};
    std::latch answered_once(clients), go(1);
    std::vector<std::thread> threads;
    for (int i = 0; i < clients; ++i)
        threads.emplace_back([&] {
            RawClient c(path);
            // A failed call leaves the stream unusable: count it, connect again.
            auto acquire = [&c, &path, &errors] {
                if (!c.acquire().empty())
                    return true;
                ++errors;
                c = RawClient(path);
                return false;
            };
            (void)acquire();
            answered_once.count_down();
            go.wait();
            long n = 0;
            while (c.connected() && !stopping.load(std::memory_order_relaxed))
                n += acquire() ? 1 : 0;
            if (!c.connected())
                ++errors;
            total += n;
        });
    answered_once.wait();
    const auto start = Clock::now();
    go.count_down();
    std::this_thread::sleep_for(duration);
    stopping = true;
    const auto end = Clock::now();
    for (auto& t : threads)
        t.join();
    return {total.load(), errors.load(), std::chrono::duration<double>(end - start).count()};
}

// Nanoseconds per call of `op`, over enough calls to drown the clock.
double ns_per_call(int calls, const std::function<void()>& op)
{
    for (int i = 0; i < calls / 10; ++i)
        op();
    auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i)
        op();
    return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / calls;
}

// The client's half of a warm acquire on each codec: encode the call,
// decode the daemon's reply (`reply` with its NUL).
double codec_ns(const std::string& reply, bool fast)
{
    std::string_view frame(reply.data(), reply.size() - 1);
    varlink::AcquireCall call;
    call.name = "drop_small";
    return ns_per_call(200000, [&] {
        auto request = fast ? varlink::encode_acquire_call(call) : varlink::encode_acquire_call_via_json(call);
        auto decoded = fast ? varlink::decode_acquire_reply(frame) : varlink::decode_acquire_reply_via_json(frame);
        if (!request || !decoded)
            die("the codec refused the daemon's own reply");
    });
}

struct Ratio {
    std::string name;
    double value;
};

}  // namespace

constexpr std::string_view kUsage =
    "usage: acquire_bench [ITERATIONS]   (as root; default 2000 per latency figure)\n"
    "Starts a private dbus-daemon and bpfbrokerd, measures each hand-out cost against a floor\n"
    "measured in the same run, and ends with one `ratio NAME VALUE` line per ratio.\n";

int main(int argc, char** argv)
{
    bench_cli::start("acquire_bench", argc, argv, kUsage);
    if (argc > 2)
        bench_cli::usage_error("one ITERATIONS argument at most", kUsage);
    int iterations = argc > 1 ? bench_cli::positive_count(argv[1], kUsage) : 2000;
    if (::geteuid() != 0)
        die("run as root: it starts bpfbrokerd and loads programs");
    libbpf_set_print(silent_print);
    ::signal(SIGPIPE, SIG_IGN);
    Daemon daemon;

    // The floor answers with the daemon's own reply bytes, so both replies
    // are the same size.
    RawClient probe(daemon.socket());
    std::string reply = probe.acquire();
    if (reply.empty())
        die("the daemon refused the raw AcquireProgram call");
    std::string floor_socket = daemon.scratch("floor.sock");
    pid_t floor_server = start_floor_server(floor_socket, reply, FloorReads::Plain);
    std::string peeked_floor_socket = daemon.scratch("floor-peeked.sock");
    pid_t peeked_floor_server = start_floor_server(peeked_floor_socket, reply, FloorReads::Peeked);
    pid_t dbus_floor_server = start_dbus_floor();
    auto floor_bus = sdbus::createSystemBusConnection();
    // The daemon's own D-Bus reply, for the shaped floor to send back.
    ShapedInfo captured;
    {
        auto daemon_proxy = sdbus::createProxy(*floor_bus, kDbusBusName, kDbusObjectPath);
        daemon_proxy->finishRegistration();
        sdbus::UnixFd program;
        std::map<std::string, sdbus::UnixFd> maps;
        std::map<std::string, sdbus::Variant> info;
        daemon_proxy->callMethod("AcquireProgram")
            .onInterface(kDbusInterface)
            .withArguments(std::string("drop_small"))
            .storeResultsTo(program, maps, info);
        if (!maps.empty())
            die("the daemon's drop_small reply carries map fds; the shaped floor sends none");
        captured = shaped_info(info);
    }
    pid_t shaped_dbus_floor_server = start_shaped_dbus_floor(captured);
    // The daemon's own reply to a cold acquire, for the load floor.
    const std::string object = read_file(daemon.object_path());
    const std::string cold_reply = RawClient(daemon.socket(), Wait::InRecvmsg, kColdRequest).acquire();
    if (cold_reply.empty())
        die("the daemon refused the raw cold AcquireProgram call");
    std::string load_floor_socket = daemon.scratch("load-floor.sock");
    pid_t load_floor_server = start_load_floor_server(load_floor_socket, cold_reply, object);

    auto client = must(Client::connect_socket(daemon.socket()), "connect");
    auto dbus_client = must(Client::connect_dbus(), "connect over D-Bus");
    RawClient raw(daemon.socket()), raw_floor(floor_socket), raw_peeked_floor(peeked_floor_socket);
    RawClient raw_poll(daemon.socket(), Wait::InPoll), raw_floor_poll(floor_socket, Wait::InPoll);
    auto floor_proxy = sdbus::createProxy(*floor_bus, kFloorBusName, kFloorPath);
    floor_proxy->finishRegistration();
    auto shaped_proxy = sdbus::createProxy(*floor_bus, kShapedFloorBusName, kFloorPath);
    shaped_proxy->finishRegistration();

    std::vector<pid_t> everyone = {0, daemon.pid(), daemon.bus_pid(), floor_server, peeked_floor_server, dbus_floor_server,
                                 shaped_dbus_floor_server, load_floor_server};
    set_cpus(everyone, true);
    // Who serves each figure: its CPU per call is printed beside it.
    const std::vector<pid_t> by_daemon = {daemon.pid()}, by_floor = {floor_server}, by_peeked_floor = {peeked_floor_server};
    const std::vector<pid_t> by_daemon_and_bus = {daemon.pid(), daemon.bus_pid()};
    const std::vector<pid_t> by_dbus_floor_and_bus = {dbus_floor_server, daemon.bus_pid()};
    const std::vector<pid_t> by_shaped_dbus_floor_and_bus = {shaped_dbus_floor_server, daemon.bus_pid()};
    // Raw acquires on `c`, served by `servers`.
    auto raw_acquires = [&](RawClient& c, const std::vector<pid_t>& servers, const char* failure) {
        return Series{servers, iterations, [&c, failure] {
                          if (c.acquire().empty())
                              die(failure);
                      }};
    };
    Series floor = raw_acquires(raw_floor, by_floor, "floor reply lost its fd");
    Series warm_socket = raw_acquires(raw, by_daemon, "raw warm acquire failed");
    Series floor_peeked = raw_acquires(raw_peeked_floor, by_peeked_floor, "peeked floor reply lost its fd");
    Series floor_poll = raw_acquires(raw_floor_poll, by_floor, "floor reply lost its fd");
    Series warm_socket_poll = raw_acquires(raw_poll, by_daemon, "raw warm acquire failed");
    Series warm_client{by_daemon, iterations, [&] { must(client.acquire("drop_small"), "warm acquire"); }};
    Series dbus_floor{by_dbus_floor_and_bus, iterations, [&] {
                          sdbus::UnixFd fd;
                          floor_proxy->callMethod("Fd").onInterface(kFloorInterface).storeResultsTo(fd);
                          if (!fd.isValid())
                              die("D-Bus floor reply lost its fd");
                      }};
    // Read as Client::acquire reads the daemon's reply (dbus_transport.cpp).
    Series dbus_floor_shaped{by_shaped_dbus_floor_and_bus, iterations, [&] {
                                 sdbus::UnixFd fd;
                                 std::map<std::string, sdbus::UnixFd> maps;
                                 DbusProgramInfo info;
                                 shaped_proxy->callMethod("Shaped")
                                     .onInterface(kFloorInterface)
                                     .withArguments(std::string("drop_small"))
                                     .storeResultsTo(fd, maps, info);
                                 UniqueFd own(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
                                 if (!own || info.info.tag.empty())
                                     die("the shaped D-Bus floor's reply lost its fd or info");
                             }};
    Series dbus_warm{by_daemon_and_bus, iterations,
                     [&] { must(dbus_client.acquire("drop_small"), "warm D-Bus acquire"); }};
    measure_interleaved(
        {&floor, &warm_socket, &floor_peeked, &floor_poll, &warm_socket_poll, &warm_client, &dbus_floor, &dbus_floor_shaped,
         &dbus_warm});
    // Loads on their own: the kernel frees what each released in the
    // background, which would land on the warm figures beside them.
    const int cold_iterations = std::max(50, iterations / 10);
    Series cold{by_daemon, cold_iterations, [&] { must(client.acquire("udp_stats"), "cold acquire"); }};
    Series direct{{kThisThread}, cold_iterations, [&] { load_directly(object); }};
    RawClient raw_cold(daemon.socket(), Wait::InPoll, kColdRequest);
    RawClient raw_load_floor(load_floor_socket, Wait::InPoll, kColdRequest);
    Series cold_raw{by_daemon, cold_iterations, [&] {
                        if (raw_cold.acquire().empty())
                            die("raw cold acquire failed");
                    }};
    Series load_floor{{load_floor_server}, cold_iterations, [&] {
                          if (raw_load_floor.acquire().empty())
                              die("the load floor's reply lost its fds");
                      }};
    measure_interleaved({&cold, &direct, &cold_raw, &load_floor});
    double codec_fast = codec_ns(reply, true);
    double codec_general = codec_ns(reply, false);
    set_cpus(everyone, false);

    std::printf("latencies with the client, the servers and the bus on one CPU (reply %zu bytes)\n", reply.size());
    std::printf("%-52s %12s %12s %14s\n", "operation", "median us", "p99 us", "server cpu us");
    auto row = [](const char* name, const Series& series) {
        const Stats s = series.stats();
        std::printf("%-52s %12.1f %12.1f %14.1f\n", name, s.median_us, s.p99_us, s.server_cpu_us);
    };
    row("floor: bare server, same reply, one fd", floor);
    row("warm_socket: AcquireProgram drop_small, raw Varlink", warm_socket);
    row("floor_peeked: the floor, reading as the daemon does", floor_peeked);
    row("floor_poll: the floor, the client waiting in poll", floor_poll);
    row("warm_socket_poll: warm_socket, waiting in poll", warm_socket_poll);
    row("warm_client: warm_socket through Client::acquire", warm_client);
    row("dbus_floor: bare sdbus-c++ method, one fd", dbus_floor);
    row("dbus_floor_shaped: the daemon's reply, no deciding", dbus_floor_shaped);
    row("dbus_warm: Client::acquire over D-Bus", dbus_warm);
    row("cold_per_client: Client::acquire udp_stats", cold);
    row("direct_load: bpf_object__load udp_stats", direct);
    row("cold_raw: cold_per_client, raw Varlink in poll", cold_raw);
    row("load_floor: a bare server loading it, same reply", load_floor);

    std::printf("client codec, encode call + decode reply: fast %.0f ns, general (nlohmann) %.0f ns\n", codec_fast,
                codec_general);

    auto median = [](const Series& s) { return s.stats().median_us; };
    auto cpu = [](const Series& s) { return s.stats().server_cpu_us; };
    std::vector<Ratio> ratios = {
        {"warm_socket/floor", median(warm_socket) / median(floor)},
        // Against a floor that reads the way the daemon does: what the
        // daemon's own work costs, with the read's wake-up taken out of both.
        {"warm_socket/floor_peeked", median(warm_socket) / median(floor_peeked)},
        {"warm_socket_poll/floor_poll", median(warm_socket_poll) / median(floor_poll)},
        {"warm_client/floor", median(warm_client) / median(floor)},
        {"dbus_warm/dbus_floor", median(dbus_warm) / median(dbus_floor)},
        // The D-Bus gap split: the daemon's own work, and the reply's shape.
        {"dbus_warm/dbus_floor_shaped", median(dbus_warm) / median(dbus_floor_shaped)},
        {"dbus_floor_shaped/dbus_floor", median(dbus_floor_shaped) / median(dbus_floor)},
        {"cold_per_client/direct_load", median(cold) / median(direct)},
        // The cold gap split: loading in another process and passing the
        // fds back, and the daemon's own work around its load.
        {"load_floor/direct_load", median(load_floor) / median(direct)},
        {"cold_raw/load_floor", median(cold_raw) / median(load_floor)},
        {"codec_fast/codec_general", codec_fast / codec_general},
        // The same comparisons by the servers' CPU per call (the D-Bus ones
        // with the bus daemon's share): steadier on a noisy machine.
        {"cpu_warm_socket/cpu_floor", cpu(warm_socket) / cpu(floor)},
        {"cpu_warm_socket_poll/cpu_floor_poll", cpu(warm_socket_poll) / cpu(floor_poll)},
        {"cpu_dbus_warm/cpu_dbus_floor", cpu(dbus_warm) / cpu(dbus_floor)},
        {"cpu_dbus_warm/cpu_dbus_floor_shaped", cpu(dbus_warm) / cpu(dbus_floor_shaped)},
        {"cpu_cold_per_client/cpu_direct_load", cpu(cold) / cpu(direct)},
        {"cpu_cold_raw/cpu_load_floor", cpu(cold_raw) / cpu(load_floor)},
    };
    std::printf("throughput, unpinned, raw Varlink clients, 1.5 s each in slices alternating with the floor's\n");
    for (int clients : {16, 64}) {
        // Six slices of 250 ms each, in the order daemon, floor, floor,
        // daemon, ...: a drift of the machine's speed weighs on both alike.
        Throughput broker, bare;
        for (int slice = 0; slice < 12; ++slice) {
            const bool daemon_turn = (slice % 4 == 0) || (slice % 4 == 3);
            auto got = throughput(daemon_turn ? daemon.socket() : floor_socket, clients, std::chrono::milliseconds(250));
            (daemon_turn ? broker : bare).add(got);
        }
        std::printf("tput%-3d bpfbrokerd %10.0f acquires/s, %ld errors; floor %10.0f/s, %ld errors\n", clients,
                    broker.per_second(), broker.errors, bare.per_second(), bare.errors);
        std::string n = std::to_string(clients);
        ratios.push_back({"tput" + n + "/floor_tput" + n, broker.per_second() / bare.per_second()});
    }
    stop(floor_server);
    stop(peeked_floor_server);
    stop(dbus_floor_server);
    stop(shaped_dbus_floor_server);
    stop(load_floor_server);
    for (const auto& r : ratios)
        std::printf("ratio %s %.2f\n", r.name.c_str(), r.value);
    return 0;
}
