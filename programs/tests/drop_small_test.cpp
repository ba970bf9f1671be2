// drop_small: drops datagrams whose UDP payload is shorter than the chosen
// minimum (the object's built-in value is the manifest's default), keeps the
// rest whole. Boundary cases sit exactly at the minimum.
#include "bpf_object_loader.h"
#include "loopback_udp.h"
#include "packet.h"
#include "shipped_program.h"

#include "brokerd/datasec_variable.h"
#include "policy/manifest.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace bpfbroker::test {
namespace {

using namespace std::chrono_literals;

// The same number the build passed to the BPF compile as MIN_PAYLOAD_LEN,
// the initial value of min_payload_len in the object.
constexpr std::size_t kMin = BPFBROKER_DROP_SMALL_MIN_PAYLOAD_LEN;
static_assert(kMin >= 1, "the boundary cases need a length below the minimum");

enum class Verdict { keep, drop };

struct DropSmallCase {
    const char* description;
    std::vector<std::uint8_t> frame;
    Verdict expected;
};

const DropSmallCase kDropSmallCases[] = {
    {"IPv4 empty payload is dropped", v4(0), Verdict::drop},
    {"IPv4 payload one below the minimum is dropped", v4(kMin - 1), Verdict::drop},
    {"IPv4 payload of exactly the minimum is kept", v4(kMin), Verdict::keep},
    {"IPv4 payload one above the minimum is kept", v4(kMin + 1), Verdict::keep},
    {"IPv4 large payload is kept", v4(1472), Verdict::keep},
    {"IPv4 options are not payload: below the minimum still drops", v4(kMin - 1, 3), Verdict::drop},
    {"IPv4 options are not payload: the minimum still keeps", v4(kMin, 3), Verdict::keep},
    {"IPv6 empty payload is dropped", v6(0), Verdict::drop},
    {"IPv6 payload one below the minimum is dropped", v6(kMin - 1), Verdict::drop},
    {"IPv6 payload of exactly the minimum is kept", v6(kMin), Verdict::keep},
    {"IPv6 extension header is not payload: below the minimum drops", v6(kMin - 1, true), Verdict::drop},
    {"IPv6 extension header is not payload: the minimum keeps", v6(kMin, true), Verdict::keep},
    {"a frame that is not IP cannot be measured and is kept", non_ip_frame(0x0806, 28), Verdict::keep},
};

class DropSmall : public RootTest {};

TEST_F(DropSmall, TestRunVerdicts)
{
    // Shared program without maps: one instance serves every case.
    BpfObjectPtr object;
    ASSERT_TRUE(load_built_object("drop_small", object));
    int program_fd = -1;
    ASSERT_TRUE(find_program_fd(object, "drop_small", program_fd));

    for (const DropSmallCase& c : kDropSmallCases) {
        SCOPED_TRACE(c.description);
        std::uint32_t retval = 0;
        ASSERT_TRUE(test_run(program_fd, c.frame, retval));
        // Keeping means returning skb->len, i.e. no truncation.
        std::uint32_t expected = c.expected == Verdict::keep ? test_run_skb_len(c.frame) : 0;
        EXPECT_EQ(retval, expected);
    }
}

// Revoked, the filter keeps every datagram whole, the short ones included.
TEST_F(DropSmall, TestRunKeepsEverythingOnceRevoked)
{
    BpfObjectPtr object;
    ASSERT_TRUE(load_built_object("drop_small", object));
    int program_fd = -1;
    ASSERT_TRUE(find_program_fd(object, "drop_small", program_fd));
    ASSERT_TRUE(set_revoked(object, true));
    for (const DropSmallCase& c : kDropSmallCases) {
        SCOPED_TRACE(c.description);
        std::uint32_t retval = 0;
        ASSERT_TRUE(test_run(program_fd, c.frame, retval));
        EXPECT_EQ(retval, test_run_skb_len(c.frame));
    }
    // Clearing the guard brings the filter back.
    ASSERT_TRUE(set_revoked(object, false));
    std::uint32_t retval = 1;
    ASSERT_TRUE(test_run(program_fd, v4(0), retval));
    EXPECT_EQ(retval, 0u);
}

// What a caller that chooses nothing gets from the daemon (the manifest's
// default, written into .rodata) is what the cases above test (the object's
// own initial value): the two numbers must not drift apart.
TEST(DropSmallManifest, TheDefaultMinimumIsTheObjectsOwn)
{
    auto manifest = policy::parse_manifest(brokerd::testing::read_file(built_program_dir("drop_small") / "manifest.json"));
    ASSERT_TRUE(manifest) << manifest.error().describe();
    ASSERT_EQ(manifest->parameters.size(), 1u);
    const auto& p = manifest->parameters.front();
    EXPECT_EQ(p.name, "min_payload_len");
    ASSERT_TRUE(p.choice);
    EXPECT_EQ(p.choice->type, policy::ChoiceType::U32);
    EXPECT_EQ(p.choice->default_value, kMin);
}

// A minimum chosen by the caller is written into .rodata before load, as the
// daemon's loader does, and moves the boundary there.
TEST_F(DropSmall, AChosenMinimumMovesTheBoundary)
{
    constexpr std::uint32_t kChosen = 100;
    static_assert(kChosen > kMin + 1);
    BpfObjectPtr object;
    ASSERT_TRUE(open_built_object("drop_small", object));
    auto variable = brokerd::find_datasec_variable(object.get(), "min_payload_len", {".rodata"});
    ASSERT_TRUE(variable);
    ASSERT_EQ(variable->size, sizeof kChosen);
    bpf_map* rodata = brokerd::internal_map_of_section(object.get(), ".rodata");
    ASSERT_NE(rodata, nullptr);
    std::size_t size = 0;
    const auto* initial = static_cast<const std::uint8_t*>(bpf_map__initial_value(rodata, &size));
    ASSERT_NE(initial, nullptr);
    ASSERT_LE(variable->offset + sizeof kChosen, size);
    std::vector<std::uint8_t> image(initial, initial + size);
    std::memcpy(image.data() + variable->offset, &kChosen, sizeof kChosen);
    ASSERT_EQ(bpf_map__set_initial_value(rodata, image.data(), image.size()), 0);
    ASSERT_EQ(bpf_object__load(object.get()), 0) << std::strerror(errno);
    int program_fd = -1;
    ASSERT_TRUE(find_program_fd(object, "drop_small", program_fd));

    const DropSmallCase cases[] = {
        {"the built-in minimum no longer keeps", v4(kMin), Verdict::drop},
        {"IPv4 one below the chosen minimum is dropped", v4(kChosen - 1), Verdict::drop},
        {"IPv4 exactly the chosen minimum is kept", v4(kChosen), Verdict::keep},
        {"IPv6 one below the chosen minimum is dropped", v6(kChosen - 1), Verdict::drop},
        {"IPv6 exactly the chosen minimum is kept", v6(kChosen), Verdict::keep},
    };
    for (const DropSmallCase& c : cases) {
        SCOPED_TRACE(c.description);
        std::uint32_t retval = 0;
        ASSERT_TRUE(test_run(program_fd, c.frame, retval));
        EXPECT_EQ(retval, c.expected == Verdict::keep ? test_run_skb_len(c.frame) : 0u);
    }
}

// The real receive path hands the filter an skb that starts at the UDP header;
// the boundary has to fall at the same payload length there.
void expect_real_socket_boundary(IpFamily family)
{
    BpfObjectPtr object;
    ASSERT_TRUE(load_built_object("drop_small", object));
    int program_fd = -1;
    ASSERT_TRUE(find_program_fd(object, "drop_small", program_fd));

    UniqueFd receiver = bind_loopback_udp(family);
    UniqueFd sender = bind_loopback_udp(family);
    ASSERT_TRUE(receiver.valid() && sender.valid()) << std::strerror(errno);
    ASSERT_EQ(::setsockopt(receiver.get(), SOL_SOCKET, SO_ATTACH_BPF, &program_fd, sizeof(program_fd)), 0)
        << std::strerror(errno);
    auto to = local_address(receiver.get());
    ASSERT_TRUE(to.has_value());

    // Dropped and kept datagrams interleaved, each with its own marker: the
    // kept ones must arrive in order with nothing between them.
    ASSERT_TRUE(send_datagram(sender.get(), *to, kMin - 1, 'a'));
    ASSERT_TRUE(send_datagram(sender.get(), *to, kMin, 'b'));
    ASSERT_TRUE(send_datagram(sender.get(), *to, 0, 'c'));
    ASSERT_TRUE(send_datagram(sender.get(), *to, kMin + 100, 'd'));

    auto first = receive_datagram(receiver.get(), 1000ms);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->marker, 'b');
    EXPECT_EQ(first->length, kMin);
    auto second = receive_datagram(receiver.get(), 1000ms);
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->marker, 'd');
    EXPECT_EQ(second->length, kMin + 100);
    EXPECT_EQ(drain_datagrams(receiver.get()), 0u);
}

TEST_F(DropSmall, RealIpv4SocketDropsBelowTheMinimum)
{
    expect_real_socket_boundary(IpFamily::v4);
}

TEST_F(DropSmall, RealIpv6SocketDropsBelowTheMinimum)
{
    if (!ipv6_loopback_available())
        GTEST_SKIP() << "no usable ::1 here";
    expect_real_socket_boundary(IpFamily::v6);
}

}  // namespace
}  // namespace bpfbroker::test
