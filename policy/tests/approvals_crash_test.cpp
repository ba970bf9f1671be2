// Crash safety of the approvals store: a writer killed with SIGKILL at random
// instants must never leave approvals.json unparseable or missing an approval
// that an earlier, completed update reported as written.
#include "policy/approvals_store.h"
#include "policy/paths.h"

#include "test_root.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <set>
#include <thread>

using namespace bpfbroker;
using namespace bpfbroker::policy;
using namespace bpfbroker::policy::testing;

namespace {

// Child: approve p<first>, p<first+1>, ... forever, reporting each index on
// `report_fd` only after update() returned success.
[[noreturn]] void approve_forever(const TempRoot& root, int first, int report_fd)
{
    auto rootfd = open_trusted_root(root.path(), root.trust());
    if (!rootfd)
        _exit(2);
    for (int i = first;; ++i) {
        auto r = ApprovalsStore::update(rootfd->get(), root.trust(), [i](Approvals& a) -> Result<void> {
            Grant g;
            g.program = "p" + std::to_string(i);
            g.match_value = std::string(64, 'c');
            g.principals.uids = {static_cast<uid_t>(i)};
            a.approve(std::move(g));
            return {};
        });
        if (!r)
            _exit(3);
        if (::write(report_fd, &i, sizeof i) != sizeof i)
            _exit(4);
    }
}

}  // namespace

TEST(approvals_crash, sigkill_during_approve_never_loses_or_tears_the_store)
{
    TempRoot root;
    std::mt19937 rng(12345);
    std::set<int> confirmed;
    int next = 0;
    for (int round = 0; round < 40; ++round) {
        int pipefd[2];
        ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::close(pipefd[0]);
            approve_forever(root, next, pipefd[1]);
        }
        ::close(pipefd[1]);
        // Let the writer complete at least one approval (however loaded the
        // machine is), then kill it at a random instant of the next ones.
        int first_done;
        ASSERT_EQ(::read(pipefd[0], &first_done, sizeof first_done), static_cast<ssize_t>(sizeof first_done))
            << "the writer died before completing an approval";
        confirmed.insert(first_done);
        next = std::max(next, first_done + 1);
        std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<>(0, 8000)(rng)));
        ::kill(pid, SIGKILL);
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(status)) << "writer failed with exit status " << WEXITSTATUS(status);
        int i;
        while (::read(pipefd[0], &i, sizeof i) == sizeof i) {
            confirmed.insert(i);
            next = std::max(next, i + 1);
        }
        ::close(pipefd[0]);
        // The approval in flight when killed may or may not have landed; start past it.
        next += 1;

        auto bytes = root.read("var/lib/bpfbroker/approvals.json");
        if (bytes.empty() && confirmed.empty())
            continue;
        auto parsed = parse_approvals(bytes);
        ASSERT_TRUE(parsed) << "round " << round << ": " << parsed.error().describe();
        std::set<std::string> present;
        for (const auto& g : parsed->approvals)
            present.insert(g.program);
        for (int c : confirmed)
            ASSERT_TRUE(present.contains("p" + std::to_string(c))) << "round " << round << " lost p" << c;
    }
    EXPECT_GE(confirmed.size(), 40u) << "every round completes at least one approval";
}
