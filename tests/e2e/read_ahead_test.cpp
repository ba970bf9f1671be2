// The socket loop reads a caller's next call without polling first when
// that caller was all a turn served (VarlinkServer::choose_read_ahead). A
// caller asking back to back keeps the loop off epoll_wait for a few turns
// at a time, never for good: a new connection and its call are still seen.
// The daemon and both callers run on one CPU, where each reply runs the
// busy caller before the loop goes on, so the read-ahead finds its next
// call every time.
#include "support/drop_small_for_anyone.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>

namespace bpfbroker::e2e {
namespace {

constexpr const char* kAcquire = "org.bpfbroker.Broker.AcquireProgram";
constexpr const char* kList = "org.bpfbroker.Broker.ListPrograms";

cpu_set_t first_cpu()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    return set;
}

// Every thread of `pid` (the daemon runs several) on the first CPU.
bool pin_process(pid_t pid)
{
    const cpu_set_t set = first_cpu();
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec))
        if (::sched_setaffinity(std::stoi(task.path().filename()), sizeof set, &set) != 0 && errno != ESRCH)
            return false;
    return !ec;
}

bool pin_this_thread()
{
    const cpu_set_t set = first_cpu();
    return ::sched_setaffinity(0, sizeof set, &set) == 0;
}

class ReadAheadTest : public DropSmallForAnyoneFixture {};

TEST_F(ReadAheadTest, ACallerAskingBackToBackDoesNotKeepANewCallerWaiting)
{
    ASSERT_TRUE(pin_process(daemon_pid())) << errno_text(errno);
    ASSERT_TRUE(pin_this_thread()) << errno_text(errno);
    // Past its burst the busy caller's calls are refused by the rate
    // limit: answered all the same, and each one a call the loop read.
    constexpr long kGiveUpAfter = 200000;  // calls; a loop that never polled again would reach it
    std::atomic<bool> stop{false};
    std::atomic<long> answered{0};
    std::atomic<bool> busy_failed{false};
    std::thread busy([&] {
        // Real-time: woken by a reply it preempts the loop at once and asks
        // again before the loop reads ahead, every time.
        sched_param fifo{};
        fifo.sched_priority = 1;
        if (!pin_this_thread() || ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &fifo) != 0) {
            busy_failed = true;
            return;
        }
        auto conn = RawConnection::connect(socket_path());
        while (!stop.load() && answered.load() < kGiveUpAfter) {
            if (!conn.call(kAcquire, {{"name", "drop_small"}})) {
                busy_failed = true;
                return;
            }
            ++answered;
        }
    });
    while (answered.load() < 500 && !busy_failed.load())
        std::this_thread::yield();
    ASSERT_FALSE(busy_failed.load());

    // Connected, accepted and answered while the busy caller goes on.
    const long before = answered.load();
    auto late = RawConnection::connect(socket_path());
    ASSERT_TRUE(late.valid());
    auto reply = late.call(kList);
    const long meanwhile = answered.load() - before;
    stop = true;
    busy.join();
    ASSERT_FALSE(busy_failed.load());
    ASSERT_TRUE(reply.has_value()) << "the new caller got no answer";
    EXPECT_EQ(error_name(*reply), "") << reply->frame;
    // The loop polls at least every 8 calls: the new connection waits for
    // one poll to be accepted and one more for its call. The slack is for
    // the scheduler sharing the CPU between the three.
    EXPECT_LT(meanwhile, 2000) << "the busy caller got " << meanwhile << " answers while a new caller waited";
}

}  // namespace
}  // namespace bpfbroker::e2e
