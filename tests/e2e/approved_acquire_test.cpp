// The path the broker exists for: root approves udp_stats for "nobody"; a
// uid-65534 process acquires it, attaches it to its own UDP socket through
// its own io_uring, and reads the counters through the read-only map fd it
// was given, while it still cannot load BPF itself.
#include "support/client_ring.h"
#include "support/daemon_fixture.h"
#include "support/loopback_socket.h"

#include "src_allow/src_allow.h"
#include "udp_stats/udp_stats.h"

#include <bpfbroker/uring_attach.h>

#include <bpf/bpf.h>
#include <liburing.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cstring>
#include <numeric>

namespace bpfbroker::e2e {
namespace {

class ApprovedAcquire : public DaemonFixture {};

TEST_F(ApprovedAcquire, NobodyAttachesViaRingAndReadsCountersReadOnly)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    const std::string sock_path = socket_path();
    // Sizes chosen to include an empty datagram and one near the loopback MTU.
    static constexpr std::array<std::size_t, 7> kSizes = {0, 1, 7, 64, 333, 1000, 1472};
    const std::uint64_t expected_bytes = std::accumulate(kSizes.begin(), kSizes.end(), std::uint64_t{0});

    auto result = run_as_nobody([&]() -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect: " + (client ? "" : client.error().describe()));
        auto prog = client->acquire("udp_stats");
        require(bool(prog), "acquire udp_stats: " + (prog ? "" : prog.error().describe()));
        require(prog->fd().valid(), "no program fd");
        require(fd_link(prog->fd().get()) == "anon_inode:bpf-prog",
                "the program fd is not a BPF program: " + fd_link(prog->fd().get()));
        const UniqueFd* stats = prog->map("stats");
        require(stats != nullptr && stats->valid(), "no stats map fd");
        require(fd_link(stats->get()) == "anon_inode:bpf-map", "the stats fd is not a BPF map: " + fd_link(stats->get()));
        require(prog->maps().size() == 1, "expected exactly one map fd, got " + std::to_string(prog->maps().size()));
        const auto& info = prog->info();
        require(info.name == "udp_stats" && info.type == "socket_filter" && info.instance == "per-client",
                "unexpected info: " + info.name + " " + info.type + " " + info.instance);
        require(info.map_access.count("stats") && info.map_access.at("stats") == "read", "stats is not reported read-only");
        require((::fcntl(prog->fd().get(), F_GETFD) & FD_CLOEXEC) != 0, "the received program fd is not CLOEXEC");

        // The fd names the program the reply describes.
        bpf_prog_info pinfo{};
        __u32 len = sizeof pinfo;
        require(bpf_obj_get_info_by_fd(prog->fd().get(), &pinfo, &len) == 0, "BPF_OBJ_GET_INFO_BY_FD: " + errno_text(errno));
        require(pinfo.id == info.id, "kernel prog id " + std::to_string(pinfo.id) + " != reported " + std::to_string(info.id));
        require(pinfo.type == BPF_PROG_TYPE_SOCKET_FILTER, "not a socket filter");

        test_support::LoopbackSocket sock;

        Ring ring(8);
        auto attached = attach_via_ring(ring.get(), sock.fd.get(), prog->fd().get(), AttachKind::SocketFilter);
        require(bool(attached), "attach through IORING_OP_URING_CMD failed (cqe res != 0): " +
                                    (attached ? "" : attached.error().describe()));
        require(io_uring_cq_ready(&ring.get()) == 0, "the attach left a completion in the ring");

        std::string payload(2000, 'x');
        for (std::size_t size : kSizes) {
            ssize_t sent = ::sendto(sock.fd.get(), payload.data(), size, 0, reinterpret_cast<sockaddr*>(&sock.addr),
                                    sizeof sock.addr);
            require(sent == static_cast<ssize_t>(size), "sendto " + std::to_string(size) + ": " + errno_text(errno));
        }
        char buf[2048];
        for (std::size_t size : kSizes) {
            ssize_t got = ::recv(sock.fd.get(), buf, sizeof buf, 0);
            require(got == static_cast<ssize_t>(size),
                    "expected a datagram of " + std::to_string(size) + " bytes, recv gave " + std::to_string(got) +
                        (got < 0 ? " " + errno_text(errno) : ""));
        }

        __u32 key = 0;
        udp_stats totals{};
        require(bpf_map_lookup_elem(stats->get(), &key, &totals) == 0, "lookup through the read-only fd: " + errno_text(errno));
        require(totals.packets == kSizes.size(), "packets " + std::to_string(totals.packets) + ", expected " +
                                                     std::to_string(kSizes.size()));
        require(totals.bytes == expected_bytes,
                "bytes " + std::to_string(totals.bytes) + ", expected " + std::to_string(expected_bytes));

        udp_stats zero{};
        int upd = bpf_map_update_elem(stats->get(), &key, &zero, BPF_ANY);
        int upd_errno = errno;
        require(upd != 0 && upd_errno == EPERM,
                "update through the read-only map fd: expected EPERM, got " + (upd == 0 ? "success" : errno_text(upd_errno)));

        // Unprivileged: it may use what it was given, never load its own.
        const bpf_insn insns[] = {
            {BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0},  // r0 = 0
            {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
        };
        int own = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "mine", "GPL", insns, 2, nullptr);
        int load_errno = errno;
        if (own >= 0)
            ::close(own);
        require(own < 0 && load_errno == EPERM,
                "bpf_prog_load as uid 65534: expected EPERM, got " + (own >= 0 ? "a program" : errno_text(load_errno)));
        int own_map = bpf_map_create(BPF_MAP_TYPE_ARRAY, "mine", 4, 8, 1, nullptr);
        int map_errno = errno;
        if (own_map >= 0)
            ::close(own_map);
        require(own_map < 0 && map_errno == EPERM, "bpf_map_create as uid 65534 was not refused with EPERM");

        return "packets=" + std::to_string(totals.packets) + " bytes=" + std::to_string(totals.bytes) + " id=" +
               std::to_string(info.id);
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_NE(result.report.find("packets=" + std::to_string(kSizes.size()) + " bytes=" + std::to_string(expected_bytes)),
              std::string::npos)
        << result.report;

    // The hand-out was audited once, as an allow for uid 65534.
    std::size_t allows = 0;
    for (const auto& r : audit_records())
        if (r.at("action") == "acquire" && r.at("decision") == "allow") {
            ++allows;
            EXPECT_EQ(r.at("program"), "udp_stats");
            EXPECT_EQ(r.at("uid"), "65534");
            EXPECT_NE(result.report.find("id=" + r.at("prog_id")), std::string::npos) << "audited prog_id " << r.at("prog_id");
        }
    EXPECT_EQ(allows, 1u);
}

using test_support::LoopbackSocket;

std::uint32_t map_id(int fd)
{
    bpf_map_info info{};
    __u32 len = sizeof info;
    require(bpf_obj_get_info_by_fd(fd, &info, &len) == 0, "map info: " + errno_text(errno));
    return info.id;
}

TEST_F(ApprovedAcquire, WritableMapsArePrivateToEachInstance)
{
    ASSERT_TRUE(approve("src_allow", for_users({"nobody"})));
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect");
        auto a = client->acquire("src_allow");
        auto b = client->acquire("src_allow");
        require(a && b, "acquire src_allow twice");
        for (auto* p : {&*a, &*b}) {
            require(p->maps().size() == 2 && p->map("allowed_v4") && p->map("allowed_v6"), "src_allow map fds missing");
            require(p->info().map_access.at("allowed_v4") == "write", "allowed_v4 is not writable");
        }
        require(a->info().id != b->info().id, "per-client instances share a program");
        require(map_id(a->map("allowed_v4")->get()) != map_id(b->map("allowed_v4")->get()),
                "per-client instances share a writable map");

        LoopbackSocket sa, sb;
        Ring ring(4);
        auto at_a = attach_via_ring(ring.get(), sa.fd.get(), a->fd().get(), AttachKind::SocketFilter);
        require(bool(at_a), "attach a: " + (at_a ? "" : at_a.error().describe()));
        auto at_b = attach_via_ring(ring.get(), sb.fd.get(), b->fd().get(), AttachKind::SocketFilter);
        require(bool(at_b), "attach b: " + (at_b ? "" : at_b.error().describe()));
        require(!sa.round_trip() && !sb.round_trip(), "an empty allow-list let a datagram through");

        // Writing A's trie opens A's socket only.
        src_allow_v4_key key{};
        key.prefixlen = 8;
        key.addr[0] = 127;
        __u8 allow = SRC_ALLOW_ALLOW;
        require(bpf_map_update_elem(a->map("allowed_v4")->get(), &key, &allow, BPF_ANY) == 0,
                "update through the writable map fd: " + errno_text(errno));
        require(sa.round_trip(), "127.0.0.0/8 allowed, yet the datagram was dropped");
        require(!sb.round_trip(), "writing one client's map changed another client's filter");
        return "ok";
    });
    ASSERT_TRUE(result.ok()) << result.describe();
}

TEST_F(ApprovedAcquire, SharedProgramIsOneInstanceForEveryone)
{
    ASSERT_TRUE(approve("drop_small", for_anyone()));
    auto root_client = connect_client();
    ASSERT_TRUE(root_client) << root_client.error().describe();
    auto mine = root_client->acquire("drop_small");
    ASSERT_TRUE(mine) << mine.error().describe();
    EXPECT_EQ(mine->info().instance, "shared");
    EXPECT_TRUE(mine->maps().empty());
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect");
        auto p = client->acquire("drop_small");
        require(bool(p), "acquire drop_small: " + (p ? "" : p.error().describe()));
        bpf_prog_info info{};
        __u32 len = sizeof info;
        require(bpf_obj_get_info_by_fd(p->fd().get(), &info, &len) == 0, "prog info");
        return std::to_string(info.id);
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_EQ(result.report, std::to_string(mine->info().id)) << "a shared program was loaded twice";
}

}  // namespace
}  // namespace bpfbroker::e2e
