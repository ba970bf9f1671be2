// Builds the Ethernet/IP/UDP frames the program tests feed to BPF_PROG_TEST_RUN.
#include "packet.h"

#include <arpa/inet.h>

#include <stdexcept>

namespace bpfbroker::test {
namespace {

constexpr std::uint16_t kEthertypeIpv4 = 0x0800;
constexpr std::uint16_t kEthertypeIpv6 = 0x86dd;
constexpr std::uint8_t kProtoUdp = 17;
constexpr std::uint8_t kProtoIpv6DestinationOptions = 60;
constexpr std::size_t kUdpHeaderLen = 8;

void put16(std::vector<std::uint8_t>& out, std::size_t at, std::size_t value)
{
    out.at(at) = static_cast<std::uint8_t>(value >> 8);
    out.at(at + 1) = static_cast<std::uint8_t>(value);
}

void put_ethernet_header(std::vector<std::uint8_t>& out, std::uint16_t ethertype)
{
    // Unicast MACs; the destination does not matter, eth_type_trans only
    // classifies it (PACKET_OTHERHOST is fine for a socket filter run).
    const std::uint8_t macs[12] = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
    out.insert(out.end(), std::begin(macs), std::end(macs));
    out.resize(out.size() + 2);
    put16(out, 12, ethertype);
}

void put_udp_header_and_payload(std::vector<std::uint8_t>& out, std::size_t payload_len)
{
    std::size_t at = out.size();
    out.resize(at + kUdpHeaderLen + payload_len, 0);
    put16(out, at + 0, 40000);  // source port
    put16(out, at + 2, 5353);   // destination port
    put16(out, at + 4, kUdpHeaderLen + payload_len);
    for (std::size_t i = 0; i < payload_len; ++i)
        out[at + kUdpHeaderLen + i] = static_cast<std::uint8_t>('a' + i % 26);
}

template <std::size_t N>
void put_address(std::vector<std::uint8_t>& out, std::size_t at, int family, const std::string& text)
{
    std::uint8_t bytes[N];
    if (::inet_pton(family, text.c_str(), bytes) != 1)
        throw std::invalid_argument("not an address of the expected family: " + text);
    for (std::size_t i = 0; i < N; ++i)
        out.at(at + i) = bytes[i];
}

std::vector<std::uint8_t> ipv4_frame(const UdpPacket& p)
{
    std::vector<std::uint8_t> out;
    put_ethernet_header(out, kEthertypeIpv4);
    std::size_t ip = out.size();
    std::size_t header_len = 20 + 4 * p.ipv4_option_words;
    out.resize(ip + header_len, 0);
    out[ip + 0] = static_cast<std::uint8_t>(0x40 | (header_len / 4));
    put16(out, ip + 2, header_len + kUdpHeaderLen + p.payload_len);  // total length
    out[ip + 8] = 64;                                                 // TTL
    out[ip + 9] = kProtoUdp;
    put_address<4>(out, ip + 12, AF_INET, p.source);
    put_address<4>(out, ip + 16, AF_INET, p.destination);
    for (std::size_t i = 20; i < header_len; ++i)
        out[ip + i] = 1;  // IPOPT_NOOP
    put_udp_header_and_payload(out, p.payload_len);
    return out;
}

std::vector<std::uint8_t> ipv6_frame(const UdpPacket& p)
{
    std::vector<std::uint8_t> out;
    put_ethernet_header(out, kEthertypeIpv6);
    std::size_t ip = out.size();
    std::size_t extension_len = p.ipv6_destination_options ? 8 : 0;
    out.resize(ip + 40 + extension_len, 0);
    out[ip + 0] = 0x60;
    put16(out, ip + 4, extension_len + kUdpHeaderLen + p.payload_len);  // payload length
    out[ip + 6] = p.ipv6_destination_options ? kProtoIpv6DestinationOptions : kProtoUdp;
    out[ip + 7] = 64;  // hop limit
    put_address<16>(out, ip + 8, AF_INET6, p.source);
    put_address<16>(out, ip + 24, AF_INET6, p.destination);
    if (p.ipv6_destination_options) {
        // next header UDP, length 0 (8 bytes), then a PadN option filling 6 bytes
        out[ip + 40] = kProtoUdp;
        out[ip + 41] = 0;
        out[ip + 42] = 1;
        out[ip + 43] = 4;
    }
    put_udp_header_and_payload(out, p.payload_len);
    return out;
}

}  // namespace

std::vector<std::uint8_t> ethernet_frame(const UdpPacket& packet)
{
    bool v6 = packet.source.find(':') != std::string::npos;
    return v6 ? ipv6_frame(packet) : ipv4_frame(packet);
}

std::vector<std::uint8_t> v4(std::size_t payload_len, std::size_t option_words)
{
    return ethernet_frame({.source = "192.0.2.1",
                           .destination = "192.0.2.2",
                           .payload_len = payload_len,
                           .ipv4_option_words = option_words});
}

std::vector<std::uint8_t> v6(std::size_t payload_len, bool destination_options)
{
    return ethernet_frame({.source = "2001:db8::1",
                           .destination = "2001:db8::2",
                           .payload_len = payload_len,
                           .ipv6_destination_options = destination_options});
}

std::vector<std::uint8_t> non_ip_frame(std::uint16_t ethertype, std::size_t body_len)
{
    std::vector<std::uint8_t> out;
    put_ethernet_header(out, ethertype);
    out.resize(out.size() + body_len, 0);
    return out;
}

std::uint32_t test_run_skb_len(const std::vector<std::uint8_t>& frame)
{
    return static_cast<std::uint32_t>(frame.size() - kEthernetHeaderLen);
}

}  // namespace bpfbroker::test
