// uring_stats in the kernel, loaded and attached by the daemon's own loader
// (brokerd/program_loader, brokerd/bpf_link) with target_tgid bound to this
// process: exact per-opcode, errno and latency counts for our rings only,
// nothing from another process flooding NOPs meanwhile, nothing once the
// guard is set, nothing once the links are closed.
#include "bpf_object_loader.h"
#include "shipped_program.h"
#include "uring_stats/uring_stats.h"

#include "brokerd/bpf_link.h"
#include "brokerd/program_loader.h"
#include "policy/manifest.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace bpfbroker::test {
namespace {

// Submits `count` NOPs on `ring` and reaps them; false on any failure.
bool run_nops(io_uring& ring, unsigned count)
{
    for (unsigned done = 0; done < count;) {
        unsigned batch = 0;
        for (; batch < count - done; ++batch) {
            io_uring_sqe* sqe = io_uring_get_sqe(&ring);
            if (sqe == nullptr)
                break;
            io_uring_prep_nop(sqe);
        }
        if (io_uring_submit_and_wait(&ring, batch) < 0)
            return false;
        for (unsigned i = 0; i < batch; ++i) {
            io_uring_cqe* cqe = nullptr;
            if (io_uring_wait_cqe(&ring, &cqe) != 0 || cqe->res != 0)
                return false;
            io_uring_cqe_seen(&ring, cqe);
        }
        done += batch;
    }
    return true;
}

// A read of fd -1: submitted, then completed with -EBADF.
bool run_failing_read(io_uring& ring)
{
    static char buffer[8];
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr)
        return false;
    io_uring_prep_read(sqe, -1, buffer, sizeof(buffer), 0);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_submit_and_wait(&ring, 1) < 0 || io_uring_wait_cqe(&ring, &cqe) != 0)
        return false;
    const bool failed = cqe->res == -EBADF;
    io_uring_cqe_seen(&ring, cqe);
    return failed;
}

// Another process submitting NOPs on its own ring until its pipe closes.
class NopFlooder {
public:
    NopFlooder()
    {
        int ready[2];
        int stop[2];
        if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(stop, O_CLOEXEC) != 0)
            return;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::close(ready[0]);
            ::close(stop[1]);
            io_uring ring;
            // One batch before saying ready: some NOPs surely run while attached.
            if (io_uring_queue_init(64, &ring, 0) != 0 || !run_nops(ring, 32))
                ::_exit(2);
            char byte = 1;
            (void)::write(ready[1], &byte, 1);
            ::fcntl(stop[0], F_SETFL, O_NONBLOCK);
            // Flood until the parent closes its end of `stop` (read gives 0).
            while (::read(stop[0], &byte, 1) < 0 && errno == EAGAIN)
                if (!run_nops(ring, 32))
                    ::_exit(3);
            ::_exit(0);
        }
        ::close(ready[1]);
        ::close(stop[0]);
        stop_ = stop[1];
        char byte = 0;
        started_ = pid_ > 0 && ::read(ready[0], &byte, 1) == 1;
        ::close(ready[0]);
    }
    ~NopFlooder() { (void)finish(); }
    NopFlooder(const NopFlooder&) = delete;
    NopFlooder& operator=(const NopFlooder&) = delete;

    [[nodiscard]] bool started() const { return started_; }
    // Stops the child and reaps it; true when it flooded without error.
    bool finish()
    {
        if (stop_ >= 0)
            ::close(std::exchange(stop_, -1));
        int status = 0;
        if (pid_ <= 0 || ::waitpid(std::exchange(pid_, -1), &status, 0) < 0)
            return false;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }

private:
    pid_t pid_ = -1;
    int stop_ = -1;
    bool started_ = false;
};

struct Totals {
    uring_op_counts nop{};
    uring_op_counts read{};
    std::uint64_t ebadf = 0;
    std::uint64_t other_errors = 0;
    std::uint64_t latency_samples = 0;
};

// Reads the three client maps the way a client does: read-only fds.
::testing::AssertionResult read_totals(const brokerd::LoadedInstance& instance, Totals& out)
{
    auto ops = brokerd::client_map_fd(instance.maps.at(0));
    auto errors = brokerd::client_map_fd(instance.maps.at(1));
    auto latency = brokerd::client_map_fd(instance.maps.at(2));
    if (!ops || !errors || !latency)
        return ::testing::AssertionFailure() << "cannot open the maps read-only";
    out = Totals{};
    std::uint32_t key = IORING_OP_NOP;
    bool ok = bpf_map_lookup_elem(ops->get(), &key, &out.nop) == 0;
    key = IORING_OP_READ;
    ok = ok && bpf_map_lookup_elem(ops->get(), &key, &out.read) == 0;
    for (std::uint32_t e = 1; ok && e < URING_STATS_MAX_ERRNO; ++e) {
        std::uint64_t n = 0;
        ok = bpf_map_lookup_elem(errors->get(), &e, &n) == 0;
        (e == EBADF ? out.ebadf : out.other_errors) += n;
    }
    for (std::uint32_t b = 0; ok && b < URING_STATS_LATENCY_BUCKETS; ++b) {
        std::uint64_t n = 0;
        ok = bpf_map_lookup_elem(latency->get(), &b, &n) == 0;
        out.latency_samples += n;
    }
    if (!ok)
        return ::testing::AssertionFailure() << "map lookup: " << std::strerror(errno);
    return ::testing::AssertionSuccess();
}

class UringStats : public RootTest {};

TEST_F(UringStats, CountsExactlyThisProcesssRingsUntilRevokedOrDetached)
{
    policy::CatalogEntry entry;
    ASSERT_TRUE(brokerd::testing::shipped_entry("uring_stats", entry));
    auto values = brokerd::resolve_parameters(*entry.manifest, {::getpid(), ::getuid(), 1}, {});
    ASSERT_TRUE(values) << values.error().describe();
    auto instance = brokerd::load_instance(entry, *values);
    ASSERT_TRUE(instance) << instance.error().describe() << "\n" << instance.error().detail;
    ASSERT_TRUE(instance->guard);
    auto links = brokerd::attach_for_caller(*instance);
    ASSERT_TRUE(links) << links.error().describe();
    ASSERT_EQ(links->size(), 3u);

    NopFlooder flooder;  // forked before our ring exists, so it shares none
    ASSERT_TRUE(flooder.started());
    io_uring ring;
    ASSERT_EQ(io_uring_queue_init(16, &ring, 0), 0);
    constexpr unsigned kNops = 100;
    ASSERT_TRUE(run_nops(ring, kNops));
    ASSERT_TRUE(run_failing_read(ring));
    EXPECT_TRUE(flooder.finish()) << "the other process must have flooded NOPs meanwhile";

    Totals totals;
    ASSERT_TRUE(read_totals(*instance, totals));
    EXPECT_EQ(totals.nop.submitted, kNops) << "another process's NOPs must not count";
    EXPECT_EQ(totals.nop.completed, kNops);
    EXPECT_EQ(totals.read.submitted, 1u);
    EXPECT_EQ(totals.read.completed, 1u);
    EXPECT_EQ(totals.ebadf, 1u);
    EXPECT_EQ(totals.other_errors, 0u);
    EXPECT_EQ(totals.latency_samples, kNops + 1);

    // Revoked: the links stay but nothing more is counted.
    ASSERT_TRUE(instance->guard->set(true));
    ASSERT_TRUE(run_nops(ring, 10));
    Totals after;
    ASSERT_TRUE(read_totals(*instance, after));
    EXPECT_EQ(after.nop.submitted, kNops);
    EXPECT_EQ(after.nop.completed, kNops);

    // Closing the links detaches: with the guard clear again, still nothing.
    ASSERT_TRUE(instance->guard->set(false));
    links->clear();
    ASSERT_TRUE(run_nops(ring, 10));
    ASSERT_TRUE(read_totals(*instance, after));
    EXPECT_EQ(after.nop.submitted, kNops);
    EXPECT_EQ(after.nop.completed, kNops);
    io_uring_queue_exit(&ring);
}

}  // namespace
}  // namespace bpfbroker::test
