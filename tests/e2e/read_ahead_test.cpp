// The socket loop reads a caller's next call without polling first when
// that caller's one call was all a turn read (VarlinkServer::choose_read_ahead).
// A caller asking back to back keeps the loop off epoll_wait for a few
// turns at a time, never for good: a new connection and its call are still
// seen. The daemon and both callers run on one CPU, and the busy caller at
// real-time priority: each reply runs it before the loop goes on, so every
// read-ahead finds its next call. (With the bound lifted, by hand, the new
// caller waited through 199,275 busy calls and this test failed.)
#include "support/drop_small_for_anyone.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

namespace bpfbroker::e2e {
namespace {

constexpr const char* kAcquire = "org.bpfbroker.Broker.AcquireProgram";
constexpr const char* kList = "org.bpfbroker.Broker.ListPrograms";

// The first CPU of `allowed`, alone.
std::optional<cpu_set_t> first_of(const cpu_set_t& allowed)
{
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &allowed)) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            return one;
        }
    return std::nullopt;
}

// Every thread of `pid` (the daemon runs several) on `cpus`; "" or what failed.
std::string pin_process(pid_t pid, const cpu_set_t& cpus)
{
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec))
        if (::sched_setaffinity(std::stoi(task.path().filename()), sizeof cpus, &cpus) != 0 && errno != ESRCH)
            return "sched_setaffinity of a daemon thread: " + errno_text(errno);
    return ec ? "cannot list the daemon's threads: " + ec.message() : "";
}

// This thread's CPUs, put back when the test ends however it ends.
class RestoreAffinity {
public:
    explicit RestoreAffinity(const cpu_set_t& mask) : mask_(mask) {}
    ~RestoreAffinity() { ::sched_setaffinity(0, sizeof mask_, &mask_); }
    RestoreAffinity(const RestoreAffinity&) = delete;
    RestoreAffinity& operator=(const RestoreAffinity&) = delete;

private:
    cpu_set_t mask_;
};

class ReadAheadTest : public DropSmallForAnyoneFixture {};

TEST_F(ReadAheadTest, ACallerAskingBackToBackDoesNotKeepANewCallerWaiting)
{
    cpu_set_t allowed;
    ASSERT_EQ(::sched_getaffinity(0, sizeof allowed, &allowed), 0) << errno_text(errno);
    const RestoreAffinity restore(allowed);
    const auto cpu = first_of(allowed);
    ASSERT_TRUE(cpu.has_value());
    const std::string pinned = pin_process(daemon_pid(), *cpu);
    ASSERT_EQ(pinned, "");
    ASSERT_EQ(::sched_setaffinity(0, sizeof *cpu, &*cpu), 0) << errno_text(errno);

    // Past its burst the busy caller's calls are refused by the rate
    // limit: answered all the same, and each one a call the loop read.
    constexpr long kGiveUpAfter = 200000;  // calls; a loop that never polled again would reach it
    enum class Busy { Starting, Running, NoRealTime, Failed };
    std::atomic<Busy> state{Busy::Starting};
    std::atomic<long> answered{0};
    std::string why_not_real_time;
    // Joined (asked to stop first) however the test leaves this scope.
    std::jthread busy([&](const std::stop_token& stop) {
        // Real-time: woken by a reply it preempts the loop at once and asks
        // again before the loop reads ahead, every time.
        sched_param fifo{};
        fifo.sched_priority = 1;
        if (const int err = ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &fifo); err != 0) {
            why_not_real_time = std::strerror(err);
            state = Busy::NoRealTime;
            return;
        }
        auto conn = RawConnection::connect(socket_path());
        state = Busy::Running;
        while (!stop.stop_requested() && answered.load() < kGiveUpAfter) {
            if (!conn.call(kAcquire, {{"name", "drop_small"}})) {
                state = Busy::Failed;
                return;
            }
            ++answered;
        }
    });
    while (state.load() == Busy::Starting || (state.load() == Busy::Running && answered.load() < 500))
        std::this_thread::yield();
    if (state.load() == Busy::NoRealTime)
        GTEST_SKIP() << "this test needs a SCHED_FIFO thread, refused here: " << why_not_real_time;
    ASSERT_EQ(state.load(), Busy::Running) << "the busy caller's call failed";

    // Connected, accepted and answered while the busy caller goes on.
    const long before = answered.load();
    auto late = RawConnection::connect(socket_path());
    ASSERT_TRUE(late.valid());
    auto reply = late.call(kList);
    const long meanwhile = answered.load() - before;
    busy.request_stop();
    busy.join();
    ASSERT_EQ(state.load(), Busy::Running) << "the busy caller's call failed";
    ASSERT_TRUE(reply.has_value()) << "the new caller got no answer";
    EXPECT_EQ(error_name(*reply), "") << reply->frame;
    // The loop polls at least every 9 turns: the new connection waits for
    // one poll to be accepted and one more for its call (15-17 busy calls
    // pass here). The slack is for the scheduler sharing the CPU.
    EXPECT_LT(meanwhile, 2000) << "the busy caller got " << meanwhile << " answers while a new caller waited";
}

}  // namespace
}  // namespace bpfbroker::e2e
