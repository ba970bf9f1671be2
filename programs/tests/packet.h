// Ethernet frames holding one UDP datagram, as BPF_PROG_TEST_RUN wants them
// for a socket filter. The kernel strips the 14-byte Ethernet header before
// the program runs, so the program sees skb->data at the IP header and
// skb->len == frame size - 14 (on a real UDP socket it would instead see the
// UDP header first; the programs read headers relative to the network header
// to be indifferent to that).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bpfbroker::test {

inline constexpr std::size_t kEthernetHeaderLen = 14;

struct UdpPacket {
    std::string source;       // IPv4 or IPv6 literal; the family follows it
    std::string destination;  // same family as source
    std::size_t payload_len = 0;
    // IPv4 only: 32-bit words of (NOP) options, making the header longer than 20.
    std::size_t ipv4_option_words = 0;
    // IPv6 only: put an 8-byte Destination Options header before UDP.
    bool ipv6_destination_options = false;
};

// Checksums are left zero: BPF_PROG_TEST_RUN does not verify them.
std::vector<std::uint8_t> ethernet_frame(const UdpPacket& packet);

// A datagram of `payload_len` bytes between the tests' usual addresses
// (192.0.2.1 -> 192.0.2.2, 2001:db8::1 -> 2001:db8::2), with IPv4 options
// or an IPv6 Destination Options header where asked.
std::vector<std::uint8_t> v4(std::size_t payload_len, std::size_t option_words = 0);
std::vector<std::uint8_t> v6(std::size_t payload_len, bool destination_options = false);

// An Ethernet frame of some other protocol (e.g. ARP, 0x0806).
std::vector<std::uint8_t> non_ip_frame(std::uint16_t ethertype, std::size_t body_len);

// skb->len a socket filter sees for this frame under BPF_PROG_TEST_RUN.
std::uint32_t test_run_skb_len(const std::vector<std::uint8_t>& frame);

}  // namespace bpfbroker::test
