// udp_stats: counts datagrams and UDP payload bytes and keeps every datagram.
// A table run through BPF_PROG_TEST_RUN, then the same counting on real
// loopback sockets, which is where the skb layout differs.
#include "bpf_object_loader.h"
#include "loopback_udp.h"
#include "packet.h"
#include "udp_stats/udp_stats.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <vector>

namespace bpfbroker::test {
namespace {

using namespace std::chrono_literals;

struct UdpStatsCase {
    const char* description;
    std::vector<std::vector<std::uint8_t>> frames;
    std::uint64_t expected_packets;
    std::uint64_t expected_bytes;
};

const UdpStatsCase kUdpStatsCases[] = {
    {"nothing sent, nothing counted", {}, 0, 0},
    {"one IPv4 datagram counts its payload, not headers", {v4(100)}, 1, 100},
    {"an empty datagram counts as a packet of 0 bytes", {v4(0)}, 1, 0},
    {"IPv4 payloads of 0, 1 and 1472 bytes", {v4(0), v4(1), v4(1472)}, 3, 1473},
    {"IPv4 options do not count as payload", {v4(50, 2)}, 1, 50},
    {"IPv6 datagrams of 10 and 20 bytes", {v6(10), v6(20)}, 2, 30},
    {"an IPv6 extension header does not count as payload", {v6(33, true)}, 1, 33},
    {"IPv4 and IPv6 add into the same totals", {v4(7), v6(11), v4(13), v6(17, true)}, 4, 48},
    {"a non-IP frame is counted as a packet without bytes", {non_ip_frame(0x0806, 28), v4(5)}, 2, 5},
};

::testing::AssertionResult read_stats(int map_fd, udp_stats& out)
{
    std::uint32_t key = 0;
    if (bpf_map_lookup_elem(map_fd, &key, &out) != 0)
        return ::testing::AssertionFailure() << "lookup in stats: " << std::strerror(errno);
    return ::testing::AssertionSuccess();
}

class UdpStats : public RootTest {};

// A fresh instance and the fds of its program and its stats map.
void load_udp_stats(BpfObjectPtr& object, int& program_fd, int& stats_fd)
{
    ASSERT_TRUE(load_built_object("udp_stats", object));
    ASSERT_TRUE(find_program_fd(object, "count", program_fd));
    ASSERT_TRUE(find_map_fd(object, "stats", stats_fd));
}

// Runs one case's frames through a fresh instance (per-client program: each
// case starts from zeroed counters), guard set or not, and checks that every
// datagram is kept whole; `totals` is what the instance counted.
void run_case(const UdpStatsCase& c, bool revoked, udp_stats& totals)
{
    BpfObjectPtr object;
    int program_fd = -1;
    int stats_fd = -1;
    ASSERT_NO_FATAL_FAILURE(load_udp_stats(object, program_fd, stats_fd));
    if (revoked) {
        ASSERT_TRUE(set_revoked(object, true));
    }
    for (const auto& frame : c.frames) {
        std::uint32_t retval = 0;
        ASSERT_TRUE(test_run(program_fd, frame, retval));
        EXPECT_EQ(retval, test_run_skb_len(frame)) << "udp_stats must keep every datagram whole";
    }
    ASSERT_TRUE(read_stats(stats_fd, totals));
}

TEST_F(UdpStats, TestRunCountsDatagramsAndPayloadBytes)
{
    for (const UdpStatsCase& c : kUdpStatsCases) {
        SCOPED_TRACE(c.description);
        udp_stats totals{};
        ASSERT_NO_FATAL_FAILURE(run_case(c, false, totals));
        EXPECT_EQ(totals.packets, c.expected_packets);
        EXPECT_EQ(totals.bytes, c.expected_bytes);
    }
}

// Revoked, every datagram is kept whole and nothing is counted.
TEST_F(UdpStats, TestRunCountsNothingOnceRevoked)
{
    for (const UdpStatsCase& c : kUdpStatsCases) {
        SCOPED_TRACE(c.description);
        udp_stats totals{};
        ASSERT_NO_FATAL_FAILURE(run_case(c, true, totals));
        EXPECT_EQ(totals.packets, 0u);
        EXPECT_EQ(totals.bytes, 0u);
    }
}

// On a real socket skb->data starts at the UDP header, not the IP header:
// the byte count must still be the payload recv() returns.
void expect_real_socket_counts(IpFamily family)
{
    BpfObjectPtr object;
    int program_fd = -1;
    int stats_fd = -1;
    ASSERT_NO_FATAL_FAILURE(load_udp_stats(object, program_fd, stats_fd));

    UniqueFd receiver = bind_loopback_udp(family);
    UniqueFd sender = bind_loopback_udp(family);
    ASSERT_TRUE(receiver.valid() && sender.valid()) << std::strerror(errno);
    ASSERT_EQ(::setsockopt(receiver.get(), SOL_SOCKET, SO_ATTACH_BPF, &program_fd, sizeof(program_fd)), 0)
        << std::strerror(errno);
    auto to = local_address(receiver.get());
    ASSERT_TRUE(to.has_value());

    const std::size_t sizes[] = {0, 1, 100, 1000, 1400};
    std::uint64_t total_bytes = 0;
    for (std::size_t size : sizes) {
        ASSERT_TRUE(send_datagram(sender.get(), *to, size, 'x')) << std::strerror(errno);
        auto got = receive_datagram(receiver.get(), 1000ms);
        ASSERT_TRUE(got.has_value()) << "datagram of " << size << " bytes did not arrive";
        EXPECT_EQ(got->length, size) << "the filter must not truncate";
        total_bytes += size;
    }

    udp_stats totals{};
    ASSERT_TRUE(read_stats(stats_fd, totals));
    EXPECT_EQ(totals.packets, std::size(sizes));
    EXPECT_EQ(totals.bytes, total_bytes);
}

TEST_F(UdpStats, RealIpv4SocketCountsWhatArrives)
{
    expect_real_socket_counts(IpFamily::v4);
}

TEST_F(UdpStats, RealIpv6SocketCountsWhatArrives)
{
    if (!ipv6_loopback_available())
        GTEST_SKIP() << "no usable ::1 here";
    expect_real_socket_counts(IpFamily::v6);
}

}  // namespace
}  // namespace bpfbroker::test
