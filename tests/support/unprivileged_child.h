// A forked child that drops to another uid/gid for good and runs a lambda
// there: the lambda's return value (or what it failed with) comes back to
// the test as the child's report, over a pipe. While it runs, the child and
// the test may exchange lines (ChildChannel / ChildProcess::tell_child).
#pragma once

#include "io.h"
#include "process.h"

#include <bpfbroker/unique_fd.h>

#include <sys/types.h>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

namespace bpfbroker::test_support {

inline constexpr uid_t kNobodyUid = 65534;
inline constexpr gid_t kNobodyGid = 65534;

// Thrown by require() inside a child: the child reports "FAILED: <what>" and exits 1.
struct ChildFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Fails the running child with `what` unless `condition` holds.
void require(bool condition, const std::string& what);

// How a child ended and what it reported.
struct ChildResult {
    bool exited = false;  // exited normally (not killed, not timed out)
    int exit_code = -1;
    int signal = 0;       // the signal that killed it, if one did
    bool timed_out = false;
    std::string report;

    [[nodiscard]] bool ok() const { return exited && exit_code == 0; }
    [[nodiscard]] std::string describe() const;  // for assertion messages
};

// The child's end of a line-based conversation with the test.
class ChildChannel {
public:
    ChildChannel(int to_parent, int from_parent) : to_parent_(to_parent), from_parent_(from_parent) {}
    void tell_parent(const std::string& line);
    // The next line from the parent; throws ChildFailure on timeout or EOF.
    std::string wait_parent(Millis timeout = 20s);
    // The fd wait_parent() reads, for a child's own poll loop.
    [[nodiscard]] int parent_fd() const { return from_parent_; }
    // The next line from the parent if one is there already, without waiting.
    std::optional<std::string> try_parent_line();

private:
    int to_parent_;
    int from_parent_;
    std::string buffered_;
};

using ChildBody = std::function<std::string(ChildChannel&)>;

// A running child (see spawn_as). Destroying it kills and reaps the child if
// it is still running.
class ChildProcess {
public:
    ChildProcess() = default;
    ChildProcess(ChildProcess&&) noexcept = default;
    ChildProcess& operator=(ChildProcess&&) noexcept = default;

    [[nodiscard]] pid_t pid() const { return process_.pid(); }
    // The next line the child sent with tell_parent(); nullopt on timeout or EOF.
    std::optional<std::string> wait_message(Millis timeout = 20s);
    // Sends a line the child reads with wait_parent().
    void tell_child(const std::string& line);
    // Reads the child's report and reaps it; SIGKILL after `timeout`.
    ChildResult wait(Millis timeout = 60s);
    // SIGKILL and reap, if still running.
    void kill() { process_.kill_and_reap(); }

private:
    friend ChildProcess spawn_as(uid_t, gid_t, ChildBody);
    Process process_;
    UniqueFd report_;    // child -> parent: the final report
    UniqueFd messages_;  // child -> parent: tell_parent lines
    UniqueFd to_child_;  // parent -> child: tell_child lines
    std::string buffered_;
};

// Forks a child that drops to uid/gid (setgroups(0), setgid, setuid, and
// checks that it cannot get root back unless uid is 0), runs `body` and
// reports what it returns; a ChildFailure or any exception becomes a report
// "FAILED...", and exit code 1. The child dies with the test process, and
// stays dumpable so it can read its own /proc entries. Throws
// std::runtime_error when the pipes or the fork fail.
ChildProcess spawn_as(uid_t uid, gid_t gid, ChildBody body);

// spawn_as for a body that does not talk to the test, and wait.
ChildResult run_as(uid_t uid, gid_t gid, const std::function<std::string()>& body, Millis timeout = 60s);

// run_as(65534, 65534, body, timeout).
ChildResult run_as_nobody(const std::function<std::string()>& body, Millis timeout = 60s);

}  // namespace bpfbroker::test_support
