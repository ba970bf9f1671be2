// The thread-per-core server the broker is meant to enable, end to end: root
// approves reuseport_cpu for "nobody"; a uid-65534 process acquires it, opens
// one SO_REUSEPORT UDP socket per CPU on one 127.0.0.1 port, registers each
// socket under its CPU number in the writable `sockets` map it was given,
// attaches the program to the group through its own io_uring, and then a
// sender pinned to each CPU in turn sees its datagrams land on that CPU's
// socket.
//
// Loopback receive processing runs on the sending CPU (the softirq raised by
// the transmit runs there, in the sender's context or that CPU's ksoftirqd),
// so the program sees the sender's CPU, unless RPS on lo moves packets to
// other CPUs: then the test is skipped (as programs/tests/reuseport_cpu_test
// does).
#include "support/client_ring.h"
#include "support/daemon_fixture.h"

#include "reuseport_cpu/reuseport_cpu.h"

#include <bpfbroker/uring_attach.h>

#include <bpf/bpf.h>
#include <liburing.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace bpfbroker::e2e {
namespace {

constexpr std::size_t kDatagramsPerCpu = 20;

// Whether any receive queue of lo has RPS CPUs configured.
bool loopback_uses_rps()
{
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/sys/class/net/lo/queues", ec)) {
        if (entry.path().filename().string().rfind("rx-", 0) != 0)
            continue;
        std::string mask = test_support::read_text_file((entry.path() / "rps_cpus").string());
        if (mask.find_first_not_of("0,\n") != std::string::npos)
            return true;
    }
    return false;
}

// The CPUs this process may run on (online and in its affinity mask), below
// the map's bound.
std::vector<std::uint32_t> usable_cpus()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<std::uint32_t> cpus;
    if (::sched_getaffinity(0, sizeof set, &set) != 0)
        return cpus;
    for (std::uint32_t cpu = 0; cpu < REUSEPORT_CPU_MAX_SOCKETS && cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &set))
            cpus.push_back(cpu);
    return cpus;
}

sockaddr_in loopback_address(std::uint16_t port)
{
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
}

// A UDP socket with SO_REUSEPORT bound to 127.0.0.1:port (0: any free port).
UniqueFd bind_reuseport_udp(std::uint16_t port)
{
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    require(fd.valid(), "socket: " + errno_text(errno));
    int one = 1;
    require(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0,
            "SO_REUSEPORT: " + errno_text(errno));
    sockaddr_in addr = loopback_address(port);
    require(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0,
            "bind 127.0.0.1:" + std::to_string(port) + ": " + errno_text(errno));
    return fd;
}

std::uint16_t local_port(int fd)
{
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    require(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname: " + errno_text(errno));
    return ntohs(addr.sin_port);
}

std::uint64_t socket_cookie(int fd)
{
    std::uint64_t cookie = 0;
    socklen_t len = sizeof cookie;
    require(::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0, "SO_COOKIE: " + errno_text(errno));
    return cookie;
}

// One member of the group: the socket a server thread on `cpu` would read.
struct Member {
    std::uint32_t cpu = 0;
    UniqueFd fd;
};

// From a thread pinned to `cpu`, sends `count` datagrams "cpu=<cpu>" from a
// fresh socket to 127.0.0.1:port. "" on success, else what went wrong (a
// thread must not throw require()'s exception).
std::string send_from_cpu(std::uint32_t cpu, std::uint16_t port, std::size_t count)
{
    std::string error;
    std::thread sender([&] {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (::sched_setaffinity(0, sizeof set, &set) != 0) {  // 0: this thread
            error = "sched_setaffinity to cpu " + std::to_string(cpu) + ": " + errno_text(errno);
            return;
        }
        if (int now = ::sched_getcpu(); now != static_cast<int>(cpu)) {
            error = "pinned to cpu " + std::to_string(cpu) + " but running on " + std::to_string(now);
            return;
        }
        UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!fd.valid()) {
            error = "sender socket: " + errno_text(errno);
            return;
        }
        const std::string payload = "cpu=" + std::to_string(cpu);
        sockaddr_in to = loopback_address(port);
        for (std::size_t i = 0; i < count; ++i) {
            ssize_t sent = ::sendto(fd.get(), payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to),
                                    sizeof to);
            if (sent != static_cast<ssize_t>(payload.size())) {
                error = "sendto #" + std::to_string(i) + " from cpu " + std::to_string(cpu) + ": " + errno_text(errno);
                return;
            }
        }
    });
    sender.join();
    return error;
}

// Receives from every member until `expected` datagrams have arrived in all
// or 3 s pass (the softirq may have been deferred to ksoftirqd); returns the
// count per member. Every datagram must carry `payload`.
std::vector<std::size_t> collect(const std::vector<Member>& group, std::size_t expected, const std::string& payload)
{
    std::vector<std::size_t> counts(group.size(), 0);
    std::size_t total = 0;
    const auto deadline = test_support::Clock::now() + 3s;
    std::vector<pollfd> pfds;
    for (const Member& m : group)
        pfds.push_back({m.fd.get(), POLLIN, 0});
    while (total < expected) {
        int ready = ::poll(pfds.data(), pfds.size(), test_support::remaining_ms(deadline));
        if (ready < 0 && errno == EINTR)
            continue;
        require(ready >= 0, "poll: " + errno_text(errno));
        if (ready == 0)
            break;
        for (std::size_t i = 0; i < group.size(); ++i) {
            if ((pfds[i].revents & POLLIN) == 0)
                continue;
            char buf[64];
            ssize_t got;
            while ((got = ::recv(group[i].fd.get(), buf, sizeof buf, MSG_DONTWAIT)) >= 0) {
                require(std::string(buf, static_cast<std::size_t>(got)) == payload,
                        "socket of cpu " + std::to_string(group[i].cpu) + " received \"" +
                            std::string(buf, static_cast<std::size_t>(got)) + "\", expected \"" + payload + "\"");
                ++counts[i];
                ++total;
            }
            require(errno == EAGAIN || errno == EWOULDBLOCK, "recv: " + errno_text(errno));
        }
    }
    return counts;
}

class Reuseport : public DaemonFixture {};

TEST_F(Reuseport, NobodySteersEachCpusDatagramsToThatCpusSocket)
{
    if (loopback_uses_rps())
        GTEST_SKIP() << "RPS is enabled on lo: the receiving CPU need not be the sending CPU";
    ASSERT_TRUE(approve("reuseport_cpu", for_users({"nobody"})));
    const std::string sock_path = socket_path();

    auto result = run_as_nobody([&]() -> std::string {
        const std::vector<std::uint32_t> cpus = usable_cpus();
        require(!cpus.empty(), "no usable CPU below " + std::to_string(REUSEPORT_CPU_MAX_SOCKETS));

        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect: " + (client ? "" : client.error().describe()));
        auto prog = client->acquire("reuseport_cpu");
        require(bool(prog), "acquire reuseport_cpu: " + (prog ? "" : prog.error().describe()));
        const auto& info = prog->info();
        require(info.name == "reuseport_cpu" && info.type == "sk_reuseport" && info.instance == "per-client",
                "unexpected info: " + info.name + " " + info.type + " " + info.instance);
        require(info.map_access.count("sockets") && info.map_access.at("sockets") == "write",
                "sockets is not reported writable");

        require(prog->fd().valid(), "no program fd");
        require(fd_link(prog->fd().get()) == "anon_inode:bpf-prog",
                "the program fd is not a BPF program: " + fd_link(prog->fd().get()));
        bpf_prog_info pinfo{};
        __u32 plen = sizeof pinfo;
        require(bpf_obj_get_info_by_fd(prog->fd().get(), &pinfo, &plen) == 0, "prog info: " + errno_text(errno));
        require(pinfo.type == BPF_PROG_TYPE_SK_REUSEPORT, "not an sk_reuseport program: type " + std::to_string(pinfo.type));
        require(pinfo.id == info.id, "kernel prog id " + std::to_string(pinfo.id) + " != reported " + std::to_string(info.id));

        const UniqueFd* sockets = prog->map("sockets");
        require(sockets != nullptr && sockets->valid(), "no sockets map fd");
        require(prog->maps().size() == 1, "expected exactly one map fd, got " + std::to_string(prog->maps().size()));
        require(fd_link(sockets->get()) == "anon_inode:bpf-map", "the sockets fd is not a BPF map: " + fd_link(sockets->get()));
        bpf_map_info minfo{};
        __u32 mlen = sizeof minfo;
        require(bpf_obj_get_info_by_fd(sockets->get(), &minfo, &mlen) == 0, "map info: " + errno_text(errno));
        require(minfo.type == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, "sockets is not a REUSEPORT_SOCKARRAY");
        require(minfo.key_size == sizeof(__u32) && minfo.value_size == sizeof(__u64) &&
                    minfo.max_entries == REUSEPORT_CPU_MAX_SOCKETS,
                "sockets map layout differs from reuseport_cpu.h");

        // One socket per CPU, all in one group: the first picks the port.
        std::vector<Member> group;
        std::uint16_t port = 0;
        for (std::uint32_t cpu : cpus) {
            Member m;
            m.cpu = cpu;
            m.fd = bind_reuseport_udp(port);
            port = local_port(m.fd.get());
            group.push_back(std::move(m));
        }

        // Register each socket under its CPU through the map fd we were given,
        // as uid 65534 (the map was created by the daemon; updating a sockarray
        // needs only a writable map fd and our own socket's fd). A lookup gives
        // back the socket's cookie: the slot holds exactly that socket.
        for (const Member& m : group) {
            __u32 key = m.cpu;
            __u64 value = static_cast<__u64>(m.fd.get());
            int r = bpf_map_update_elem(sockets->get(), &key, &value, BPF_ANY);
            require(r == 0, "bpf_map_update_elem(sockets[" + std::to_string(key) + "] = fd " +
                                std::to_string(m.fd.get()) + ") as uid 65534: " + errno_text(errno));
            __u64 cookie = 0;
            require(bpf_map_lookup_elem(sockets->get(), &key, &cookie) == 0,
                    "lookup sockets[" + std::to_string(key) + "]: " + errno_text(errno));
            require(cookie == socket_cookie(m.fd.get()),
                    "sockets[" + std::to_string(key) + "] holds cookie " + std::to_string(cookie) +
                        ", not that of the socket registered");
        }

        // Attach through any member applies to the whole group; through our ring.
        Ring ring(4);
        auto attached = attach_via_ring(ring.get(), group.front().fd.get(), prog->fd().get(), AttachKind::Reuseport);
        require(bool(attached), "SO_ATTACH_REUSEPORT_EBPF through IORING_OP_URING_CMD failed (cqe res != 0): " +
                                    (attached ? "" : attached.error().describe()));
        require(io_uring_cq_ready(&ring.get()) == 0, "the attach left a completion in the ring");

        std::string summary;
        for (std::size_t sender = 0; sender < group.size(); ++sender) {
            const std::uint32_t cpu = group[sender].cpu;
            std::string err = send_from_cpu(cpu, port, kDatagramsPerCpu);
            require(err.empty(), err);
            std::vector<std::size_t> counts = collect(group, kDatagramsPerCpu, "cpu=" + std::to_string(cpu));
            std::string seen;
            for (std::size_t r = 0; r < group.size(); ++r)
                seen += " cpu" + std::to_string(group[r].cpu) + ":" + std::to_string(counts[r]);
            for (std::size_t r = 0; r < group.size(); ++r) {
                std::size_t want = r == sender ? kDatagramsPerCpu : 0;
                require(counts[r] == want, "sent " + std::to_string(kDatagramsPerCpu) + " from cpu " +
                                               std::to_string(cpu) + "; received per socket:" + seen);
            }
            summary += " cpu" + std::to_string(cpu) + "->" + std::to_string(counts[sender]);
        }
        return "port=" + std::to_string(port) + " sockets=" + std::to_string(group.size()) + summary;
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_NE(result.report.find("sockets="), std::string::npos) << result.report;

    // The hand-out was audited once, as an allow for uid 65534.
    std::size_t allows = 0;
    for (const auto& r : audit_records())
        if (r.at("action") == "acquire" && r.at("decision") == "allow") {
            ++allows;
            EXPECT_EQ(r.at("program"), "reuseport_cpu");
            EXPECT_EQ(r.at("uid"), "65534");
        }
    EXPECT_EQ(allows, 1u);
}

}  // namespace
}  // namespace bpfbroker::e2e
