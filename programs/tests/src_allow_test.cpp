// src_allow: keeps a datagram only if the longest prefix in the client's
// tries that contains its source address says "allow"; empty tries drop all.
#include "bpf_object_loader.h"
#include "loopback_udp.h"
#include "packet.h"
#include "src_allow/src_allow.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace bpfbroker::test {
namespace {

using namespace std::chrono_literals;

enum class Verdict { keep, drop };

struct Rule {
    const char* prefix;  // "10.0.0.0/8", "2001:db8::/32"
    std::uint8_t action;
};

constexpr std::uint8_t kAllow = SRC_ALLOW_ALLOW;
constexpr std::uint8_t kDeny = SRC_ALLOW_DENY;

struct SrcAllowCase {
    const char* description;
    std::vector<Rule> rules;
    std::vector<std::uint8_t> frame;
    Verdict expected;
};

std::vector<std::uint8_t> from(const char* source, std::size_t option_words = 0)
{
    bool v6 = std::strchr(source, ':') != nullptr;
    return ethernet_frame({.source = source,
                           .destination = v6 ? "2001:db8:ffff::1" : "198.51.100.1",
                           .payload_len = 32,
                           .ipv4_option_words = option_words});
}

std::vector<std::uint8_t> from_v6_with_extension(const char* source)
{
    return ethernet_frame({.source = source,
                           .destination = "2001:db8:ffff::1",
                           .payload_len = 32,
                           .ipv6_destination_options = true});
}

const SrcAllowCase kSrcAllowCases[] = {
    {"empty tries drop IPv4 (fail closed)", {}, from("10.1.2.3"), Verdict::drop},
    {"empty tries drop IPv6 (fail closed)", {}, from("2001:db8::5"), Verdict::drop},
    {"IPv4 source inside an allowed /24", {{"10.1.2.0/24", kAllow}}, from("10.1.2.3"), Verdict::keep},
    {"IPv4 source just outside an allowed /24", {{"10.1.2.0/24", kAllow}}, from("10.1.3.3"), Verdict::drop},
    {"IPv4 exact /32", {{"10.1.2.3/32", kAllow}}, from("10.1.2.3"), Verdict::keep},
    {"IPv4 /0 allows every source", {{"0.0.0.0/0", kAllow}}, from("203.0.113.77"), Verdict::keep},
    {"longest prefix: deny /16 inside allowed /8 drops",
     {{"10.0.0.0/8", kAllow}, {"10.1.0.0/16", kDeny}}, from("10.1.2.3"), Verdict::drop},
    {"longest prefix: the rest of the allowed /8 is kept",
     {{"10.0.0.0/8", kAllow}, {"10.1.0.0/16", kDeny}}, from("10.2.0.1"), Verdict::keep},
    {"longest prefix: allowed /32 inside a denied /8 is kept",
     {{"10.0.0.0/8", kDeny}, {"10.1.2.3/32", kAllow}}, from("10.1.2.3"), Verdict::keep},
    {"longest prefix: its neighbour in the denied /8 drops",
     {{"10.0.0.0/8", kDeny}, {"10.1.2.3/32", kAllow}}, from("10.1.2.4"), Verdict::drop},
    {"a value other than allow denies", {{"10.0.0.0/8", 7}}, from("10.1.2.3"), Verdict::drop},
    {"only the source counts, not the destination", {{"198.51.100.0/24", kAllow}}, from("10.1.2.3"),
     Verdict::drop},
    {"IPv4 options do not move the source address", {{"10.1.2.3/32", kAllow}}, from("10.1.2.3", 4),
     Verdict::keep},
    {"IPv6 rules do not admit IPv4 packets", {{"::/0", kAllow}}, from("10.1.2.3"), Verdict::drop},
    {"IPv4 rules do not admit IPv6 packets", {{"0.0.0.0/0", kAllow}}, from("2001:db8::5"), Verdict::drop},
    {"IPv6 source inside an allowed /32", {{"2001:db8::/32", kAllow}}, from("2001:db8:1:2::5"), Verdict::keep},
    {"IPv6 source outside an allowed /32", {{"2001:db8::/32", kAllow}}, from("2001:db9::5"), Verdict::drop},
    {"IPv6 exact /128", {{"2001:db8::5/128", kAllow}}, from("2001:db8::5"), Verdict::keep},
    {"IPv6 /0 allows every source", {{"::/0", kAllow}}, from("fe80::1"), Verdict::keep},
    {"IPv6 longest prefix: deny /48 inside allowed /32 drops",
     {{"2001:db8::/32", kAllow}, {"2001:db8:1::/48", kDeny}}, from("2001:db8:1::5"), Verdict::drop},
    {"IPv6 longest prefix: the rest of the allowed /32 is kept",
     {{"2001:db8::/32", kAllow}, {"2001:db8:1::/48", kDeny}}, from("2001:db8:2::5"), Verdict::keep},
    {"IPv6 extension headers do not move the source address", {{"2001:db8::5/128", kAllow}},
     from_v6_with_extension("2001:db8::5"), Verdict::keep},
    {"a frame that is not IP is dropped", {{"0.0.0.0/0", kAllow}, {"::/0", kAllow}},
     non_ip_frame(0x0806, 28), Verdict::drop},
};

::testing::AssertionResult add_rule(const BpfObjectPtr& object, const Rule& rule)
{
    std::string text = rule.prefix;
    auto slash = text.find('/');
    if (slash == std::string::npos)
        return ::testing::AssertionFailure() << "not a prefix: " << text;
    std::string address = text.substr(0, slash);
    auto prefixlen = static_cast<std::uint32_t>(std::stoul(text.substr(slash + 1)));
    bool v6 = address.find(':') != std::string::npos;

    int map_fd = -1;
    if (auto found = find_map_fd(object, v6 ? "allowed_v6" : "allowed_v4", map_fd); !found)
        return found;
    int err = 0;
    if (v6) {
        src_allow_v6_key key{.prefixlen = prefixlen, .addr = {}};
        if (::inet_pton(AF_INET6, address.c_str(), key.addr) != 1)
            return ::testing::AssertionFailure() << "bad IPv6 address: " << address;
        err = bpf_map_update_elem(map_fd, &key, &rule.action, BPF_ANY);
    } else {
        src_allow_v4_key key{.prefixlen = prefixlen, .addr = {}};
        if (::inet_pton(AF_INET, address.c_str(), key.addr) != 1)
            return ::testing::AssertionFailure() << "bad IPv4 address: " << address;
        err = bpf_map_update_elem(map_fd, &key, &rule.action, BPF_ANY);
    }
    if (err != 0)
        return ::testing::AssertionFailure() << "adding " << text << ": " << std::strerror(errno);
    return ::testing::AssertionSuccess();
}

class SrcAllow : public RootTest {};

// Runs one case on a fresh instance (per-client program: every case starts
// from its own empty tries), with the revocation guard set or not.
::testing::AssertionResult run_case(const SrcAllowCase& c, bool revoked, std::uint32_t& retval)
{
    BpfObjectPtr object;
    int program_fd = -1;
    if (auto r = load_built_object("src_allow", object); !r)
        return r;
    if (auto r = find_program_fd(object, "src_allow", program_fd); !r)
        return r;
    for (const Rule& rule : c.rules)
        if (auto r = add_rule(object, rule); !r)
            return r;
    if (revoked)
        if (auto r = set_revoked(object, true); !r)
            return r;
    return test_run(program_fd, c.frame, retval);
}

TEST_F(SrcAllow, TestRunVerdicts)
{
    for (const SrcAllowCase& c : kSrcAllowCases) {
        SCOPED_TRACE(c.description);
        std::uint32_t retval = 0;
        ASSERT_TRUE(run_case(c, false, retval));
        std::uint32_t expected = c.expected == Verdict::keep ? test_run_skb_len(c.frame) : 0;
        EXPECT_EQ(retval, expected);
    }
}

// Revoked, the filter stops filtering: even the fail-closed cases keep.
TEST_F(SrcAllow, TestRunKeepsEverythingOnceRevoked)
{
    for (const SrcAllowCase& c : kSrcAllowCases) {
        SCOPED_TRACE(c.description);
        std::uint32_t retval = 0;
        ASSERT_TRUE(run_case(c, true, retval));
        EXPECT_EQ(retval, test_run_skb_len(c.frame));
    }
}

// On a real socket the IP header lies before skb->data; the source address
// must still be found. A datagram from a denied source, then one sent after
// its source was allowed: only the second may arrive.
void expect_real_socket_filtering(IpFamily receiver_family, const std::string& receiver_address,
                                  IpFamily sender_family, const char* unrelated_prefix,
                                  const char* sender_prefix, bool receiver_v6only = true)
{
    BpfObjectPtr object;
    ASSERT_TRUE(load_built_object("src_allow", object));
    int program_fd = -1;
    ASSERT_TRUE(find_program_fd(object, "src_allow", program_fd));
    ASSERT_TRUE(add_rule(object, {unrelated_prefix, kAllow}));

    UniqueFd receiver = bind_udp(receiver_family, receiver_address, 0, {.v6only = receiver_v6only});
    UniqueFd sender = bind_loopback_udp(sender_family);
    ASSERT_TRUE(receiver.valid() && sender.valid()) << std::strerror(errno);
    ASSERT_EQ(::setsockopt(receiver.get(), SOL_SOCKET, SO_ATTACH_BPF, &program_fd, sizeof(program_fd)), 0)
        << std::strerror(errno);
    auto to = make_address(sender_family, sender_family == IpFamily::v4 ? "127.0.0.1" : "::1",
                           local_port(receiver.get()));
    ASSERT_TRUE(to.has_value());

    ASSERT_TRUE(send_datagram(sender.get(), *to, 16, 'a'));
    ASSERT_TRUE(add_rule(object, {sender_prefix, kAllow}));
    ASSERT_TRUE(send_datagram(sender.get(), *to, 16, 'b'));

    auto got = receive_datagram(receiver.get(), 1000ms);
    ASSERT_TRUE(got.has_value()) << "the allowed datagram did not arrive";
    EXPECT_EQ(got->marker, 'b') << "the datagram from a source not yet allowed got through";
    EXPECT_EQ(got->length, 16u);
    EXPECT_EQ(drain_datagrams(receiver.get()), 0u);
}

TEST_F(SrcAllow, RealIpv4SocketFiltersBySource)
{
    expect_real_socket_filtering(IpFamily::v4, "127.0.0.1", IpFamily::v4, "10.0.0.0/8", "127.0.0.0/8");
}

TEST_F(SrcAllow, RealIpv6SocketFiltersBySource)
{
    if (!ipv6_loopback_available())
        GTEST_SKIP() << "no usable ::1 here";
    expect_real_socket_filtering(IpFamily::v6, "::1", IpFamily::v6, "2001:db8::/32", "::1/128");
}

// A dual-stack IPv6 socket receives IPv4 as ETH_P_IP packets: allowed_v4, not
// allowed_v6 (where a v4-mapped prefix would be), must decide for them.
TEST_F(SrcAllow, RealDualStackSocketJudgesIpv4ByIpv4Rules)
{
    expect_real_socket_filtering(IpFamily::v6, "::ffff:127.0.0.1", IpFamily::v4, "::ffff:0:0/96",
                                 "127.0.0.1/32", /*receiver_v6only=*/false);
}

}  // namespace
}  // namespace bpfbroker::test
