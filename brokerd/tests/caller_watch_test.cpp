// CallerWatch with real processes: a forked child's exit runs its callback
// once, an unwatched one never (nor an unwatched duplicate of a pidfd kept
// open), an already-dead one at the first dispatch;
// fds that are no pidfd and watches past the limit are refused.
#include "brokerd/caller_watch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace bpfbroker::brokerd {
namespace {

// A child that lives until release() (or the end of the test), and is reaped.
class Child {
public:
    Child()
    {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0)
            return;
        pid_ = ::fork();
        if (pid_ == 0) {
            // Keep only the read end: another child's write end inherited
            // here would keep that child alive.
            ::dup2(fds[0], 0);
            ::syscall(SYS_close_range, 3, ~0U, 0);
            char byte;
            (void)::read(0, &byte, 1);  // returns when the parent closes its end
            ::_exit(0);
        }
        ::close(fds[0]);
        hold_ = UniqueFd(fds[1]);
    }
    ~Child()
    {
        release();
        if (pid_ > 0)
            ::waitpid(pid_, nullptr, 0);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    [[nodiscard]] UniqueFd pidfd() const { return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0))); }
    void release() { hold_ = UniqueFd(); }
    void reap()
    {
        release();
        if (pid_ > 0)
            ::waitpid(std::exchange(pid_, -1), nullptr, 0);
    }

private:
    pid_t pid_ = -1;
    UniqueFd hold_;
};

bool readable_within(int fd, int timeout_ms)
{
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1;
}

TEST(caller_watch, a_callers_exit_runs_its_callback_once)
{
    auto watch = CallerWatch::create(8);
    ASSERT_TRUE(watch) << watch.error().describe();
    EXPECT_NE(::fcntl(watch->fd(), F_GETFD) & FD_CLOEXEC, 0);
    Child child;
    Child other;
    int exits = 0;
    int other_exits = 0;
    ASSERT_TRUE(watch->watch(child.pidfd(), [&] { ++exits; }));
    ASSERT_TRUE(watch->watch(other.pidfd(), [&] { ++other_exits; }));
    EXPECT_EQ(watch->size(), 2u);

    EXPECT_FALSE(readable_within(watch->fd(), 50)) << "nobody exited yet";
    auto ran = watch->dispatch();
    ASSERT_TRUE(ran);
    EXPECT_EQ(*ran, 0u);

    child.release();
    ASSERT_TRUE(readable_within(watch->fd(), 5000)) << "the exit must make the watch readable";
    ran = watch->dispatch();
    ASSERT_TRUE(ran);
    EXPECT_EQ(*ran, 1u);
    EXPECT_EQ(exits, 1);
    EXPECT_EQ(other_exits, 0) << "only the process that exited";
    EXPECT_EQ(watch->size(), 1u);
    ran = watch->dispatch();
    ASSERT_TRUE(ran);
    EXPECT_EQ(*ran, 0u) << "a callback runs once";
    EXPECT_EQ(exits, 1);
}

TEST(caller_watch, an_unwatched_process_runs_nothing_and_a_dead_one_runs_at_once)
{
    auto watch = CallerWatch::create(8);
    ASSERT_TRUE(watch);
    Child forgotten;
    int calls = 0;
    auto id = watch->watch(forgotten.pidfd(), [&] { ++calls; });
    ASSERT_TRUE(id);
    watch->unwatch(*id);
    forgotten.reap();
    EXPECT_FALSE(readable_within(watch->fd(), 50));
    ASSERT_TRUE(watch->dispatch());
    EXPECT_EQ(calls, 0);

    Child dead;
    UniqueFd pidfd = dead.pidfd();
    dead.reap();
    ASSERT_TRUE(watch->watch(std::move(pidfd), [&] { ++calls; }));
    ASSERT_TRUE(readable_within(watch->fd(), 1000));
    ASSERT_TRUE(watch->dispatch());
    EXPECT_EQ(calls, 1);
}

// The broker watches a duplicate of the pidfd its connection keeps (as
// here: the original stays open). An unwatched duplicate leaves nothing in
// the epoll set: the next duplicate, given the same number, is watched,
// and the process's exit wakes only the watch that is left.
TEST(caller_watch, an_unwatched_duplicate_leaves_nothing_behind)
{
    auto watch = CallerWatch::create(8);
    ASSERT_TRUE(watch);
    Child child;
    UniqueFd kept = child.pidfd();  // the connection's own
    ASSERT_TRUE(kept);
    int calls = 0;
    int reused = -1;
    for (int round = 0; round < 3; ++round) {
        UniqueFd dup(::fcntl(kept.get(), F_DUPFD_CLOEXEC, 0));
        ASSERT_TRUE(dup);
        if (round > 0) {
            EXPECT_EQ(dup.get(), reused) << "the test needs the number of the last duplicate again";
        }
        reused = dup.get();
        auto id = watch->watch(std::move(dup), [&] { ++calls; });
        ASSERT_TRUE(id) << "round " << round << ": " << id.error().describe();
        watch->unwatch(*id);
    }
    EXPECT_EQ(watch->size(), 0u);
    child.reap();
    EXPECT_FALSE(readable_within(watch->fd(), 100)) << "an unwatched registration is still in the epoll set";
    ASSERT_TRUE(watch->dispatch());
    EXPECT_EQ(calls, 0);
}

TEST(caller_watch, refuses_what_is_no_pidfd_and_watches_past_the_limit)
{
    auto watch = CallerWatch::create(1);
    ASSERT_TRUE(watch);
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    UniqueFd read_end(fds[0]);
    UniqueFd write_end(fds[1]);
    auto refused = watch->watch(std::move(read_end), [] {});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, ErrorCode::InvalidParameter);

    Child a;
    Child b;
    ASSERT_TRUE(watch->watch(a.pidfd(), [] {}));
    auto full = watch->watch(b.pidfd(), [] {});
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().code, ErrorCode::LimitExceeded);
}

}  // namespace
}  // namespace bpfbroker::brokerd
