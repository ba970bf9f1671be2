// reuseport_cpu: steers each datagram of an SO_REUSEPORT group to the socket
// registered for the receiving CPU, falling back to the kernel's hash when
// that CPU has no socket.
//
// The kernel has no BPF_PROG_TEST_RUN for sk_reuseport programs (6.18 returns
// ENOTSUPP), so this is tested for real: a group of loopback UDP sockets, one
// per CPU, and a sender thread pinned to one CPU at a time. Loopback receive
// processing runs on the sending CPU (the softirq raised by the transmit runs
// there, in the sender's context or that CPU's ksoftirqd), so the program sees
// the sender's CPU, unless RPS on lo moves packets elsewhere: then we skip.
#include "bpf_object_loader.h"
#include "loopback_udp.h"
#include "reuseport_cpu/reuseport_cpu.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace bpfbroker::test {
namespace {

constexpr std::size_t kDatagramsPerCpu = 20;

std::vector<std::uint32_t> usable_cpus()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<std::uint32_t> cpus;
    if (::sched_getaffinity(0, sizeof(set), &set) != 0)
        return cpus;
    for (std::uint32_t cpu = 0; cpu < REUSEPORT_CPU_MAX_SOCKETS; ++cpu) {
        if (CPU_ISSET(cpu, &set))
            cpus.push_back(cpu);
    }
    return cpus;
}

bool loopback_uses_rps()
{
    std::ifstream mask("/sys/class/net/lo/queues/rx-0/rps_cpus");
    std::string text;
    mask >> text;
    return text.find_first_not_of("0,") != std::string::npos;
}

// Sends `count` datagrams to `to` from a fresh socket on a thread pinned to
// `cpu`; returns how many were sent.
std::size_t send_from_cpu(std::uint32_t cpu, const SocketAddress& to, std::size_t count)
{
    std::size_t sent = 0;
    std::thread sender([&] {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (::sched_setaffinity(0, sizeof(set), &set) != 0)  // 0: this thread
            return;
        UniqueFd fd = bind_loopback_udp(IpFamily::v4);
        for (std::size_t i = 0; fd && i < count; ++i)
            sent += send_datagram(fd.get(), to, 8, 'x') ? 1 : 0;
    });
    sender.join();
    return sent;
}

class ReuseportCpu : public RootTest {
protected:
    void SetUp() override
    {
        RootTest::SetUp();
        if (IsSkipped())
            return;
        if (loopback_uses_rps())
            GTEST_SKIP() << "RPS is enabled on lo: receive CPU need not be the sending CPU";
        cpus_ = usable_cpus();
        ASSERT_FALSE(cpus_.empty());

        ASSERT_TRUE(load_built_object("reuseport_cpu", object_));
        ASSERT_TRUE(find_program_fd(object_, "select_by_cpu", program_fd_));
        ASSERT_TRUE(find_map_fd(object_, "sockets", sockets_map_fd_));

        // One socket per usable CPU, all in one group on the same port.
        std::uint16_t port = 0;
        for (std::size_t i = 0; i < cpus_.size(); ++i) {
            UniqueFd fd = bind_loopback_udp(IpFamily::v4, port, {.reuseport = true});
            ASSERT_TRUE(fd.valid()) << std::strerror(errno);
            port = local_port(fd.get());
            group_.push_back(std::move(fd));
        }
        auto to = make_address(IpFamily::v4, "127.0.0.1", port);
        ASSERT_TRUE(to.has_value());
        to_ = *to;
    }

    void register_socket(std::size_t index)
    {
        std::uint32_t key = cpus_[index];
        auto value = static_cast<std::uint64_t>(group_[index].get());
        ASSERT_EQ(bpf_map_update_elem(sockets_map_fd_, &key, &value, BPF_ANY), 0)
            << "registering the socket of cpu " << key << ": " << std::strerror(errno);
    }

    void attach()
    {
        // Attaching through any member applies to the whole group.
        ASSERT_EQ(::setsockopt(group_[0].get(), SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &program_fd_,
                               sizeof(program_fd_)),
                  0)
            << std::strerror(errno);
    }

    std::vector<std::uint32_t> cpus_;
    BpfObjectPtr object_;
    int program_fd_ = -1;
    int sockets_map_fd_ = -1;
    std::vector<UniqueFd> group_;
    SocketAddress to_;
};

TEST_F(ReuseportCpu, EachCpusDatagramsReachThatCpusSocket)
{
    for (std::size_t i = 0; i < cpus_.size(); ++i)
        ASSERT_NO_FATAL_FAILURE(register_socket(i));
    ASSERT_NO_FATAL_FAILURE(attach());

    for (std::size_t sender = 0; sender < cpus_.size(); ++sender) {
        SCOPED_TRACE("sending from cpu " + std::to_string(cpus_[sender]));
        ASSERT_EQ(send_from_cpu(cpus_[sender], to_, kDatagramsPerCpu), kDatagramsPerCpu);
        for (std::size_t receiver = 0; receiver < group_.size(); ++receiver) {
            std::size_t expected = receiver == sender ? kDatagramsPerCpu : 0;
            EXPECT_EQ(drain_datagrams(group_[receiver].get()), expected)
                << "socket of cpu " << cpus_[receiver];
        }
    }
}

TEST_F(ReuseportCpu, EmptySlotFallsBackToTheKernelsChoice)
{
    // Every CPU but the sender's has its socket; the sender's slot is empty.
    // (On a one-CPU machine the whole array is empty.)
    for (std::size_t i = 1; i < cpus_.size(); ++i)
        ASSERT_NO_FATAL_FAILURE(register_socket(i));
    ASSERT_NO_FATAL_FAILURE(attach());

    ASSERT_EQ(send_from_cpu(cpus_[0], to_, kDatagramsPerCpu), kDatagramsPerCpu);
    std::size_t received = 0;
    for (const UniqueFd& fd : group_)
        received += drain_datagrams(fd.get());
    EXPECT_EQ(received, kDatagramsPerCpu) << "an empty slot must not drop traffic";
}

// Revoked, the program selects nothing and the kernel hashes each flow over
// the group. The sending CPU's slot names socket 0, so unrevoked every
// datagram lands there; revoked, flows from fresh source ports spread over two or more
// sockets (all of kFlows landing on socket 0 by chance: 2^-32 at worst).
TEST_F(ReuseportCpu, RevokedSelectsNothingAndTheKernelHashes)
{
    constexpr std::size_t kFlows = 32;
    if (group_.size() < 2) {
        UniqueFd extra = bind_loopback_udp(IpFamily::v4, local_port(group_[0].get()), {.reuseport = true});
        ASSERT_TRUE(extra.valid()) << std::strerror(errno);
        group_.push_back(std::move(extra));
    }
    ASSERT_NO_FATAL_FAILURE(register_socket(0));  // the sending CPU's slot (a socket fits one slot only)
    ASSERT_NO_FATAL_FAILURE(attach());

    ASSERT_EQ(send_from_cpu(cpus_[0], to_, kDatagramsPerCpu), kDatagramsPerCpu);
    EXPECT_EQ(drain_datagrams(group_[0].get()), kDatagramsPerCpu) << "unrevoked, the program steers to socket 0";

    ASSERT_TRUE(set_revoked(object_, true));
    std::size_t elsewhere = 0;
    std::size_t total = 0;
    for (std::size_t flow = 0; flow < kFlows; ++flow) {
        ASSERT_EQ(send_from_cpu(cpus_[0], to_, 1), 1u);
        for (std::size_t i = 0; i < group_.size(); ++i) {
            const std::size_t got = drain_datagrams(group_[i].get());
            total += got;
            elsewhere += i == 0 ? 0 : got;
        }
    }
    EXPECT_EQ(total, kFlows) << "revoked, nothing may be dropped";
    EXPECT_GT(elsewhere, 0u) << "revoked, the kernel's hash must choose, not the program";
}

}  // namespace
}  // namespace bpfbroker::test
