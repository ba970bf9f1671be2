// bpfbroker-example-udp-server: an unprivileged io_uring UDP server that gets
// two socket filters from bpfbrokerd and uses them on sockets it owns.
//
//   src_allow  drops datagrams whose source is not in an allow-list; the
//              server writes the list through the program's writable maps.
//   udp_stats  counts datagrams and payload bytes; the server reads the
//              totals through a read-only map fd.
//
// The server never loads BPF (it could not: that needs CAP_BPF). It receives
// program and map fds from the broker, attaches the programs with an
// IORING_OP_URING_CMD on its own ring (plain setsockopt on kernels without
// socket commands), and uses the map fds with ordinary bpf(2) map calls,
// which check only how the fd was opened.
//
// Why two sockets
// ---------------
// A socket has exactly one socket filter. SO_ATTACH_BPF does not stack: it
// replaces whatever filter (classic or eBPF) was attached before, so
// attaching udp_stats after src_allow would silently switch the allow-list
// off, and the other way round would silently stop the counting. The server
// therefore opens two UDP sockets on the same address:
//
//   guarded (--port)        src_allow attached. Datagrams from sources
//                           outside the allow-list are dropped in the kernel
//                           before they are queued: recvmsg never sees them.
//   counted (--stats-port)  udp_stats attached. Every datagram is counted
//                           and accepted; the server compares the kernel's
//                           totals with what it received itself.
//
// Putting both behaviours on one socket would need one program that does
// both (a new signed program, not a composition of these two). See README.md.
//
// Its own ring statistics: when uring_stats is granted (or the server runs
// under `bpfbrokerctl uring-stats`), the server prints the kernel's counts
// of its own io_uring requests on SIGUSR1 and when it stops; without it, it
// says why and runs on.
//
// Order of setup: each filter is attached, and the allow-list written,
// *before* the socket is bound. A datagram can only be queued on a bound
// socket, so none is ever received unfiltered or judged by a half-written
// list; binding first would leave a window in which anything gets in.
#include "prefix.h"
#include "ring_stats.h"
#include "src_allow/src_allow.h"
#include "udp_stats/udp_stats.h"

#include <bpfbroker/client.h>
#include <bpfbroker/unique_fd.h>
#include <bpfbroker/uring_attach.h>

// g++ 12 at -O2 reports a "potential null pointer dereference" inside
// CLI11 2.1's detail::split once vector options are used; it is a false
// positive in library code, silenced for that header only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop
#include <bpf/bpf.h>
#include <liburing.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

using bpfbroker::AttachKind;
using bpfbroker::AttachPath;
using bpfbroker::UniqueFd;
using bpfbroker::example::Prefix;
using bpfbroker::example::RingStats;

constexpr const char* kName = "bpfbroker-example-udp-server";

// Exit statuses.
constexpr int kExitOk = 0;
constexpr int kExitError = 1;     // bpfbroker or a system call failed
constexpr int kExitUsage = 2;     // bad command line
constexpr int kExitShort = 3;     // --count was given and not reached

struct Options {
    std::string socket_path = std::string(bpfbroker::kDefaultSocketPath);
    std::string bind_address = "127.0.0.1";
    std::uint16_t port = 0;
    std::uint16_t stats_port = 0;
    std::vector<std::string> allow;
    std::vector<std::string> deny;
    std::uint64_t count = 0;  // 0: no limit
    double seconds = 0;       // 0: no timeout
    bool json = false;
};

// Progress goes to stdout, or to stderr under --json so that stdout carries
// exactly one JSON document. Flushed per line: a script may be watching.
FILE* g_out = stdout;

[[gnu::format(printf, 1, 2)]] void say(const char* format, ...)
{
    va_list args;
    va_start(args, format);
    std::vfprintf(g_out, format, args);
    va_end(args);
    std::fputc('\n', g_out);
    std::fflush(g_out);
}

// Errors from bpfbroker are printed with describe(): "PermissionDenied: no
// grant allows uid 65534 (nobody) to acquire ...".
int report(const bpfbroker::Error& error, const std::string& what = {})
{
    std::fprintf(stderr, "%s: %s%s%s\n", kName, what.c_str(), what.empty() ? "" : ": ", error.describe().c_str());
    return kExitError;
}

int report_errno(const std::string& what, int err)
{
    return report(bpfbroker::make_system_error(what, err));
}

// The io_uring instance, released on every path.
class Ring {
public:
    Ring() = default;
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    ~Ring()
    {
        if (initialized_)
            io_uring_queue_exit(&ring_);
    }
    int init(unsigned entries)
    {
        int r = io_uring_queue_init(entries, &ring_, 0);
        initialized_ = r == 0;
        return r;
    }
    io_uring& get() noexcept { return ring_; }

private:
    io_uring ring_{};
    bool initialized_ = false;
};

// One UDP socket and its pending IORING_OP_RECVMSG. The kernel writes into
// `from`, `msg` and `buffer` until the request completes, so a Receiver must
// not move while a request is in flight (they live in a fixed array).
struct Receiver {
    const char* role = "";     // "guarded" or "counted"
    const char* program = "";  // the filter attached to it
    std::uint64_t user_data = 0;
    UniqueFd fd;
    std::uint16_t port = 0;
    AttachPath attach_path = AttachPath::Ring;

    std::uint64_t received = 0;
    std::uint64_t bytes = 0;
    std::map<std::string, std::uint64_t> sources;  // source address -> datagrams

    sockaddr_storage from{};
    iovec iov{};
    msghdr msg{};
    std::vector<char> buffer = std::vector<char>(65536);  // the largest UDP payload fits
};

// user_data of the requests this server queues. bpfbroker::attach() uses
// kAttachUserData for its own request; a stray one is skipped below.
constexpr std::uint64_t kUserDataGuarded = 1;
constexpr std::uint64_t kUserDataCounted = 2;
constexpr std::uint64_t kUserDataSignal = 3;
constexpr std::uint64_t kUserDataCancel = 4;

// The requests the kernel still holds, by user_data. Each one keeps pointers
// into a Receiver (or the signalfd buffer) until its completion is reaped.
using InFlight = std::set<std::uint64_t>;

io_uring_sqe* next_sqe(io_uring& ring)
{
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr) {  // full: hand what is queued to the kernel and retry
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

bool queue_recvmsg(io_uring& ring, Receiver& r, InFlight& in_flight)
{
    io_uring_sqe* sqe = next_sqe(ring);
    if (sqe == nullptr)
        return false;
    r.from = {};
    r.iov = {r.buffer.data(), r.buffer.size()};
    r.msg = {};
    r.msg.msg_name = &r.from;
    r.msg.msg_namelen = sizeof r.from;
    r.msg.msg_iov = &r.iov;
    r.msg.msg_iovlen = 1;
    io_uring_prep_recvmsg(sqe, r.fd.get(), &r.msg, 0);
    sqe->user_data = r.user_data;
    in_flight.insert(r.user_data);
    return true;
}

bool queue_signal_read(io_uring& ring, int signal_fd, signalfd_siginfo& info, InFlight& in_flight)
{
    io_uring_sqe* sqe = next_sqe(ring);
    if (sqe == nullptr)
        return false;
    io_uring_prep_read(sqe, signal_fd, &info, sizeof info, 0);
    sqe->user_data = kUserDataSignal;
    in_flight.insert(kUserDataSignal);
    return true;
}

// Cancels the requests still in flight and reaps their last completions, so
// that the kernel writes into no buffer after it is freed. Closing a socket
// would not do: the ring holds its own reference to the file, and a pending
// recvmsg would still complete into our memory.
void cancel_in_flight(io_uring& ring, InFlight& in_flight)
{
    for (const std::uint64_t user_data : in_flight) {
        io_uring_sqe* sqe = next_sqe(ring);
        if (sqe == nullptr)
            break;
        io_uring_prep_cancel64(sqe, user_data, 0);
        sqe->user_data = kUserDataCancel;
    }
    io_uring_submit(&ring);
    while (!in_flight.empty()) {
        io_uring_cqe* cqe = nullptr;
        const int r = io_uring_wait_cqe(&ring, &cqe);
        if (r == -EINTR)
            continue;
        if (r < 0)
            return;
        in_flight.erase(cqe->user_data);
        io_uring_cqe_seen(&ring, cqe);
    }
}

// Runs cancel_in_flight when run() returns, by any path. Declared after the
// buffers it protects, so it is destroyed before them.
class CancelOnExit {
public:
    CancelOnExit(io_uring& ring, InFlight& in_flight) : ring_(ring), in_flight_(in_flight) {}
    CancelOnExit(const CancelOnExit&) = delete;
    CancelOnExit& operator=(const CancelOnExit&) = delete;
    ~CancelOnExit() { cancel_in_flight(ring_, in_flight_); }

private:
    io_uring& ring_;
    InFlight& in_flight_;
};

// "127.0.0.1" / "::1" (address only) and "127.0.0.1:5353" / "[::1]:5353".
std::string address_text(const sockaddr_storage& ss)
{
    char text[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET)
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, text, sizeof text);
    else if (ss.ss_family == AF_INET6)
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, text, sizeof text);
    else
        return "?";
    return text;
}

std::uint16_t port_of(const sockaddr_storage& ss)
{
    if (ss.ss_family == AF_INET)
        return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
    return 0;
}

std::string endpoint_text(const sockaddr_storage& ss)
{
    const std::string address = address_text(ss);
    const std::string port = std::to_string(port_of(ss));
    return ss.ss_family == AF_INET6 ? "[" + address + "]:" + port : address + ":" + port;
}

// The first bytes of a payload, printable characters only.
std::string preview(const char* data, std::size_t length)
{
    constexpr std::size_t kMax = 64;
    std::string out;
    for (std::size_t i = 0; i < length && i < kMax; ++i) {
        const unsigned char c = static_cast<unsigned char>(data[i]);
        out += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? static_cast<char>(c) : '.';
    }
    if (length > kMax)
        out += "...";
    return out;
}

const char* path_text(AttachPath path)
{
    return path == AttachPath::Ring ? "io_uring (IORING_OP_URING_CMD, SOCKET_URING_OP_SETSOCKOPT)"
                                    : "setsockopt(2) fallback (this kernel's io_uring has no socket commands)";
}

const char* path_name(AttachPath path)
{
    return path == AttachPath::Ring ? "ring" : "setsockopt";
}

std::string describe_program(const bpfbroker::Program& p)
{
    const auto& i = p.info();
    std::string maps;
    for (const auto& [name, fd] : p.maps()) {
        const auto access = i.map_access.find(name);
        maps += (maps.empty() ? "" : ", ") + name + " (" +
                (access == i.map_access.end() ? std::string("?") : access->second) + ")";
    }
    return i.name + " " + i.version + ": " + i.type + ", " + i.instance + " instance, prog id " +
           std::to_string(i.id) + ", tag " + i.tag + "; maps: " + (maps.empty() ? "none" : maps);
}

// Fetches a map fd the program must have, or explains what is missing.
const UniqueFd* required_map(const bpfbroker::Program& p, const char* name)
{
    const UniqueFd* fd = p.map(name);
    if (fd == nullptr || !fd->valid())
        std::fprintf(stderr, "%s: %s came without its \"%s\" map; is the manifest the one this example expects?\n",
                     kName, p.info().name.c_str(), name);
    return fd != nullptr && fd->valid() ? fd : nullptr;
}

// Writes one prefix into allowed_v4 or allowed_v6; 0 or -errno.
int write_prefix(int v4_fd, int v6_fd, const Prefix& p, __u8 verdict)
{
    if (p.family == AF_INET) {
        src_allow_v4_key key{};
        key.prefixlen = p.length;
        std::memcpy(key.addr, p.addr.data(), sizeof key.addr);
        return bpf_map_update_elem(v4_fd, &key, &verdict, BPF_ANY);
    }
    src_allow_v6_key key{};
    key.prefixlen = p.length;
    std::memcpy(key.addr, p.addr.data(), sizeof key.addr);
    return bpf_map_update_elem(v6_fd, &key, &verdict, BPF_ANY);
}

struct BindAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
};

std::optional<BindAddress> parse_bind_address(const std::string& text)
{
    BindAddress a;
    auto& v4 = reinterpret_cast<sockaddr_in&>(a.storage);
    auto& v6 = reinterpret_cast<sockaddr_in6&>(a.storage);
    if (::inet_pton(AF_INET, text.c_str(), &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        a.length = sizeof v4;
        return a;
    }
    if (::inet_pton(AF_INET6, text.c_str(), &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        a.length = sizeof v6;
        return a;
    }
    return std::nullopt;
}

int bind_to(const Receiver& r, BindAddress address, std::uint16_t port)
{
    if (address.storage.ss_family == AF_INET)
        reinterpret_cast<sockaddr_in&>(address.storage).sin_port = htons(port);
    else
        reinterpret_cast<sockaddr_in6&>(address.storage).sin6_port = htons(port);
    return ::bind(r.fd.get(), reinterpret_cast<const sockaddr*>(&address.storage), address.length);
}

std::uint16_t bound_port(int fd)
{
    sockaddr_storage ss{};
    socklen_t length = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &length) != 0)
        return 0;
    return port_of(ss);
}

// The kernel's counts of this server's own io_uring requests, `when` being
// "so far" or the like.
void say_ring_stats(const RingStats& ring_stats, const char* when)
{
    auto snapshot = ring_stats.read();
    if (!snapshot) {
        say("ring statistics: %s", snapshot.error().message.c_str());
        return;
    }
    std::string table = bpfbroker::uring_stats::to_table(*snapshot, "  ");
    table.pop_back();  // say() ends the line
    say("ring statistics of this server %s (uring_stats):\n%s", when, table.c_str());
}

nlohmann::json ring_stats_json(const RingStats& ring_stats)
{
    auto snapshot = ring_stats.read();
    if (!snapshot)
        return {{"unavailable", snapshot.error().message}};
    return bpfbroker::uring_stats::to_json(*snapshot);
}

nlohmann::json receiver_json(const Receiver& r)
{
    return {{"port", r.port},         {"program", r.program},
            {"attach_path", path_name(r.attach_path)},
            {"received", r.received}, {"bytes", r.bytes},
            {"sources", r.sources}};
}

int run(const Options& o)
{
    // -- Command line values first, so that a typo costs no broker request.
    std::vector<std::pair<Prefix, __u8>> rules;
    for (const auto* list : {&o.allow, &o.deny}) {
        const __u8 verdict = list == &o.allow ? SRC_ALLOW_ALLOW : SRC_ALLOW_DENY;
        for (const auto& text : *list) {
            std::string error;
            auto prefix = bpfbroker::example::parse_prefix(text, error);
            if (!prefix) {
                std::fprintf(stderr, "%s: %s\n", kName, error.c_str());
                return kExitUsage;
            }
            rules.emplace_back(*prefix, verdict);
        }
    }
    const auto bind_address = parse_bind_address(o.bind_address);
    if (!bind_address) {
        std::fprintf(stderr, "%s: --bind %s is not an IPv4 or IPv6 address\n", kName, o.bind_address.c_str());
        return kExitUsage;
    }

    // -- 1. Ask the broker. It identifies us by SO_PEERCRED: nothing to send.
    auto client = bpfbroker::Client::connect_socket(o.socket_path);
    if (!client)
        return report(client.error());  // its message names the socket
    say("connected to bpfbrokerd at %s", o.socket_path.c_str());

    auto allow_program = client->acquire("src_allow");
    if (!allow_program)
        return report(allow_program.error(), "cannot acquire src_allow");
    say("acquired %s", describe_program(*allow_program).c_str());
    auto stats_program = client->acquire("udp_stats");
    if (!stats_program)
        return report(stats_program.error(), "cannot acquire udp_stats");
    say("acquired %s", describe_program(*stats_program).c_str());
    // Optional: without it the server only cannot show its own ring's counts.
    const RingStats ring_stats = RingStats::open(*client);
    say("ring statistics: %s", ring_stats.description().c_str());

    const UniqueFd* allowed_v4 = required_map(*allow_program, "allowed_v4");
    const UniqueFd* allowed_v6 = required_map(*allow_program, "allowed_v6");
    const UniqueFd* stats = required_map(*stats_program, "stats");
    if (allowed_v4 == nullptr || allowed_v6 == nullptr || stats == nullptr)
        return kExitError;

    // -- 2. Our ring and our two sockets, not bound yet.
    Ring ring;
    if (int r = ring.init(64); r < 0) {
        if (r == -EPERM)
            std::fprintf(stderr, "%s: io_uring is not allowed for this user (see sysctl kernel.io_uring_disabled)\n",
                         kName);
        return report_errno("io_uring_queue_init", -r);
    }

    std::array<Receiver, 2> receivers;
    Receiver& guarded = receivers[0];
    Receiver& counted = receivers[1];
    guarded.role = "guarded";
    guarded.program = "src_allow";
    guarded.user_data = kUserDataGuarded;
    counted.role = "counted";
    counted.program = "udp_stats";
    counted.user_data = kUserDataCounted;
    for (auto& r : receivers) {
        r.fd = UniqueFd(::socket(bind_address->storage.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!r.fd)
            return report_errno("socket", errno);
    }

    // -- 3. The allow-list, through src_allow's writable map fds. An empty
    // list would make src_allow drop everything (it fails closed).
    for (const auto& [prefix, verdict] : rules) {
        if (int err = write_prefix(allowed_v4->get(), allowed_v6->get(), prefix, verdict); err != 0)
            return report_errno("cannot write " + format_prefix(prefix) + " into the allow-list", -err);
        say("allow-list: %-20s %s", format_prefix(prefix).c_str(), verdict == SRC_ALLOW_ALLOW ? "allow" : "deny");
    }
    if (rules.empty())
        say("allow-list: empty, so src_allow drops every datagram on the guarded socket (it fails closed)");

    // -- 4. One filter per socket (see the top of this file), attached on our
    // ring while it is idle, before bind.
    struct Attachment {
        Receiver* receiver;
        const bpfbroker::Program* program;
    };
    for (const Attachment& a : {Attachment{&guarded, &*allow_program}, Attachment{&counted, &*stats_program}}) {
        auto attached = bpfbroker::attach(&ring.get(), a.receiver->fd.get(), a.program->fd().get(),
                                          AttachKind::SocketFilter, &a.receiver->attach_path);
        if (!attached)
            return report(attached.error(), std::string("cannot attach ") + a.receiver->program);
        say("attached %s to the %s socket via %s", a.receiver->program, a.receiver->role,
            path_text(a.receiver->attach_path));
    }

    // The stats map fd is read-only (BPF_F_RDONLY): show that the kernel
    // enforces it. The counters are still zero (nothing is bound), so even a
    // write that wrongly succeeded would change nothing.
    const __u32 key0 = 0;
    const udp_stats zeros{};
    const int write_err = bpf_map_update_elem(stats->get(), &key0, &zeros, BPF_EXIST);
    const bool stats_read_only = write_err != 0;
    if (write_err == -EPERM)
        say("udp_stats's stats map fd is read-only: the kernel refused a write (%s)", std::strerror(EPERM));
    else if (write_err != 0)
        say("udp_stats's stats map fd refused a write (%s)", std::strerror(-write_err));
    else
        say("warning: udp_stats's stats map fd accepted a write; the broker should hand it out read-only");

    // -- 5. Bind, now that the filters are in place.
    if (bind_to(guarded, *bind_address, o.port) != 0)
        return report_errno("cannot bind the guarded socket to " + o.bind_address + " port " + std::to_string(o.port),
                            errno);
    if (bind_to(counted, *bind_address, o.stats_port) != 0)
        return report_errno("cannot bind the counted socket to " + o.bind_address + " port " +
                                std::to_string(o.stats_port),
                            errno);
    guarded.port = bound_port(guarded.fd.get());
    counted.port = bound_port(counted.fd.get());
    say("listening on %s: guarded port %u (src_allow), counted port %u (udp_stats)", o.bind_address.c_str(),
        guarded.port, counted.port);
    say("ports: guarded=%u counted=%u", guarded.port, counted.port);  // for scripts

    // -- 6. Receive through the ring until --count, --seconds or a signal.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGUSR1);  // not a stop: prints the ring statistics
    if (::sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0)
        return report_errno("sigprocmask", errno);
    UniqueFd signal_fd(::signalfd(-1, &stop_signals, SFD_CLOEXEC));
    if (!signal_fd)
        return report_errno("signalfd", errno);
    signalfd_siginfo signal_info{};
    InFlight in_flight;
    const CancelOnExit cancel_on_exit(ring.get(), in_flight);

    for (auto& r : receivers)
        if (!queue_recvmsg(ring.get(), r, in_flight))
            return report_errno("io_uring_get_sqe", EBUSY);
    if (!queue_signal_read(ring.get(), signal_fd.get(), signal_info, in_flight))
        return report_errno("io_uring_get_sqe", EBUSY);

    std::string waiting = o.count ? "waiting for " + std::to_string(o.count) + " datagrams" : "receiving";
    if (o.seconds > 0) {
        char limit[64];
        std::snprintf(limit, sizeof limit, " for at most %g s", o.seconds);
        waiting += limit;
    }
    say("%s (Ctrl-C stops, SIGUSR1 prints the ring statistics)", waiting.c_str());

    using Clock = std::chrono::steady_clock;
    const auto deadline =
        o.seconds > 0 ? Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds))
                      : Clock::time_point::max();
    std::uint64_t total = 0;
    const char* stopped = "";
    for (;;) {
        if (o.count != 0 && total >= o.count) {
            say("stopped: %llu datagrams received", static_cast<unsigned long long>(total));
            stopped = "count";
            break;
        }
        if (int r = io_uring_submit(&ring.get()); r < 0 && r != -EINTR)
            return report_errno("io_uring_submit", -r);

        io_uring_cqe* cqe = nullptr;
        int r;
        if (deadline != Clock::time_point::max()) {
            const auto left = deadline - Clock::now();
            if (left <= Clock::duration::zero()) {
                say("stopped: %g s have passed", o.seconds);
                stopped = "timeout";
                break;
            }
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
            __kernel_timespec ts{};
            ts.tv_sec = ns / 1'000'000'000;
            ts.tv_nsec = ns % 1'000'000'000;
            r = io_uring_wait_cqe_timeout(&ring.get(), &cqe, &ts);
        } else {
            r = io_uring_wait_cqe(&ring.get(), &cqe);
        }
        if (r == -ETIME || r == -EINTR)
            continue;
        if (r < 0)
            return report_errno("waiting for io_uring completions", -r);

        const std::uint64_t user_data = cqe->user_data;
        const int res = cqe->res;
        io_uring_cqe_seen(&ring.get(), cqe);
        in_flight.erase(user_data);

        if (user_data == kUserDataSignal) {
            if (res < 0)
                return report_errno("reading the signalfd", -res);
            if (signal_info.ssi_signo == SIGUSR1) {
                say_ring_stats(ring_stats, "so far");
                if (!queue_signal_read(ring.get(), signal_fd.get(), signal_info, in_flight))
                    return report_errno("io_uring_get_sqe", EBUSY);
                continue;
            }
            say("stopped by %s", sigabbrev_np(static_cast<int>(signal_info.ssi_signo)));
            stopped = "signal";
            break;
        }
        Receiver* rx = user_data == kUserDataGuarded ? &guarded : user_data == kUserDataCounted ? &counted : nullptr;
        if (rx == nullptr)
            continue;  // e.g. a late completion of the attach request
        if (res < 0) {
            if (res != -EINTR && res != -EAGAIN)
                return report_errno(std::string("receiving on the ") + rx->role + " socket", -res);
        } else {
            const auto length = static_cast<std::size_t>(res);
            ++rx->received;
            ++total;
            rx->bytes += length;
            ++rx->sources[address_text(rx->from)];
            say("  %s <- %-26s %5zu bytes  \"%s\"%s", rx->role, endpoint_text(rx->from).c_str(), length,
                preview(rx->buffer.data(), length).c_str(), (rx->msg.msg_flags & MSG_TRUNC) ? " (truncated)" : "");
        }
        if (!queue_recvmsg(ring.get(), *rx, in_flight))
            return report_errno("io_uring_get_sqe", EBUSY);
    }

    // -- 7. The kernel's counters, through the read-only map fd.
    udp_stats totals{};
    if (int err = bpf_map_lookup_elem(stats->get(), &key0, &totals); err != 0)
        return report_errno("cannot read udp_stats's stats map", -err);

    auto sources_text = [](const Receiver& r) {
        std::string out;
        for (const auto& [address, n] : r.sources)
            out += (out.empty() ? "" : ", ") + address + " x" + std::to_string(n);
        return out.empty() ? std::string("none") : out;
    };
    for (const Receiver& r : receivers)
        say("received on the %s socket (port %u, %s): %llu datagram%s, %llu bytes; sources: %s", r.role, r.port,
            r.program, static_cast<unsigned long long>(r.received), r.received == 1 ? "" : "s",
            static_cast<unsigned long long>(r.bytes), sources_text(r).c_str());
    say("udp_stats counters, read through the read-only stats map fd: packets=%llu bytes=%llu",
        static_cast<unsigned long long>(totals.packets), static_cast<unsigned long long>(totals.bytes));
    // Requests still in flight (a receive per socket, the signal read) are
    // cancelled after this, when run() returns.
    say_ring_stats(ring_stats, "at the stop");

    if (o.json) {
        nlohmann::json allow = nlohmann::json::array();
        nlohmann::json deny = nlohmann::json::array();
        for (const auto& [prefix, verdict] : rules)
            (verdict == SRC_ALLOW_ALLOW ? allow : deny).push_back(format_prefix(prefix));
        const nlohmann::json out = {
            {"bind", o.bind_address},
            {"allow", allow},
            {"deny", deny},
            {"guarded", receiver_json(guarded)},
            {"counted", receiver_json(counted)},
            {"udp_stats", {{"packets", totals.packets}, {"bytes", totals.bytes}}},
            {"stats_map_read_only", stats_read_only},
            {"ring_stats", ring_stats_json(ring_stats)},
            {"stopped", stopped},
        };
        std::printf("%s\n", out.dump(2).c_str());
        std::fflush(stdout);
    }

    if (o.count != 0 && total < o.count) {
        std::fprintf(stderr, "%s: received %llu of the %llu datagrams asked for with --count\n", kName,
                     static_cast<unsigned long long>(total), static_cast<unsigned long long>(o.count));
        return kExitShort;
    }
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv)
{
    Options o;
    CLI::App app{"bpfbroker example: an unprivileged io_uring UDP server that acquires src_allow and udp_stats "
                 "from bpfbrokerd, attaches them through its own ring and reads their maps"};
    app.add_option("--socket", o.socket_path, "bpfbrokerd's socket")->capture_default_str();
    app.add_option("--bind", o.bind_address, "Address to bind both sockets to (IPv4 or IPv6)")->capture_default_str();
    app.add_option("--port", o.port, "Port of the guarded socket (src_allow); 0 picks a free one")->capture_default_str();
    app.add_option("--stats-port", o.stats_port, "Port of the counted socket (udp_stats); 0 picks a free one")
        ->capture_default_str();
    app.add_option("--allow", o.allow, "Source prefix to allow on the guarded socket, e.g. 127.0.0.1/32, ::1/128, "
                                       "10.0.0.0/8 (repeatable)")
        ->type_name("PREFIX");
    app.add_option("--deny", o.deny, "Source prefix to deny inside a wider allowed one; the longest prefix "
                                     "decides (repeatable)")
        ->type_name("PREFIX");
    app.add_option("--count", o.count, "Exit after receiving N datagrams on the two sockets together; exit status 3 "
                                       "if they do not come")
        ->type_name("N");
    app.add_option("--seconds", o.seconds, "Stop after S seconds")->type_name("S")->check(CLI::NonNegativeNumber);
    app.add_flag("--json", o.json, "Print the final counters as JSON on stdout (progress goes to stderr)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? kExitOk : kExitUsage;  // --help is a ParseError too
    }

    if (o.json)
        g_out = stderr;
    try {
        return run(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: fatal: %s\n", kName, e.what());
        return kExitError;
    }
}
