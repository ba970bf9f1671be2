// Children running as another uid; see unprivileged_child.h.
#include "unprivileged_child.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

namespace bpfbroker::test_support {

namespace {

// Drops to uid/gid for good and proves it.
void drop_privileges(uid_t uid, gid_t gid)
{
    if (::setgroups(0, nullptr) != 0)
        throw ChildFailure("setgroups(0) failed: " + errno_text(errno));
    if (::setgid(gid) != 0)
        throw ChildFailure("setgid failed: " + errno_text(errno));
    if (::setuid(uid) != 0)
        throw ChildFailure("setuid failed: " + errno_text(errno));
    uid_t r, e, s;
    gid_t rg, eg, sg;
    ::getresuid(&r, &e, &s);
    ::getresgid(&rg, &eg, &sg);
    require(r == uid && e == uid && s == uid, "uids are not all " + std::to_string(uid));
    require(rg == gid && eg == gid && sg == gid, "gids are not all " + std::to_string(gid));
    require(::getgroups(0, nullptr) == 0, "supplementary groups remain after setgroups(0)");
    if (uid != 0)
        require(::setuid(0) != 0, "the child could become root again");
    // Changing credentials cleared the parent-death signal: set it again so
    // the child cannot outlive a test process that crashed. It also made the
    // process non-dumpable, which makes its /proc entries root's; children
    // read their own /proc/self/fd.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

}  // namespace

void require(bool condition, const std::string& what)
{
    if (!condition)
        throw ChildFailure(what);
}

std::string ChildResult::describe() const
{
    std::string how = timed_out ? "timed out and was killed"
                      : exited  ? "exited " + std::to_string(exit_code)
                                : "was killed by signal " + std::to_string(signal);
    return "child " + how + "; report: " + report;
}

void ChildChannel::tell_parent(const std::string& line)
{
    write_all(to_parent_, line + "\n");
}

std::string ChildChannel::wait_parent(Millis timeout)
{
    auto line = read_line(from_parent_, buffered_, Clock::now() + timeout);
    require(line.has_value(), "the parent did not answer in time");
    return *line;
}

std::optional<std::string> ChildChannel::try_parent_line()
{
    return read_line(from_parent_, buffered_, Clock::now());
}

std::optional<std::string> ChildProcess::wait_message(Millis timeout)
{
    return read_line(messages_.get(), buffered_, Clock::now() + timeout);
}

void ChildProcess::tell_child(const std::string& line)
{
    write_all(to_child_.get(), line + "\n");
}

ChildResult ChildProcess::wait(Millis timeout)
{
    ChildResult result;
    if (process_.pid() <= 0) {
        result.report = "(no child)";
        return result;
    }
    const auto deadline = Clock::now() + timeout;
    char buf[4096];
    while (poll_until(report_.get(), POLLIN, deadline) > 0) {
        ssize_t n = ::read(report_.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        result.report.append(buf, static_cast<std::size_t>(n));
    }
    if (!process_.wait_exit(Millis(std::max(remaining_ms(deadline), 100)))) {
        result.timed_out = true;
        return result;
    }
    const int status = process_.status();
    if (WIFEXITED(status)) {
        result.exited = true;
        result.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        result.signal = WTERMSIG(status);
    }
    return result;
}

ChildProcess spawn_as(uid_t uid, gid_t gid, ChildBody body)
{
    int report[2], messages[2], to_child[2];
    if (::pipe2(report, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe2: " + errno_text(errno));
    if (::pipe2(messages, O_CLOEXEC) != 0) {
        ::close(report[0]), ::close(report[1]);
        throw std::runtime_error("pipe2: " + errno_text(errno));
    }
    if (::pipe2(to_child, O_CLOEXEC) != 0) {
        ::close(report[0]), ::close(report[1]), ::close(messages[0]), ::close(messages[1]);
        throw std::runtime_error("pipe2: " + errno_text(errno));
    }
    const pid_t parent = ::getpid();
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        for (int fd : {report[0], report[1], messages[0], messages[1], to_child[0], to_child[1]})
            ::close(fd);
        throw std::runtime_error("fork: " + errno_text(err));
    }
    if (pid == 0) {
        ::close(report[0]);
        ::close(messages[0]);
        ::close(to_child[1]);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (::getppid() != parent)
            ::_exit(3);
        std::string report_text;
        int code = 0;
        try {
            drop_privileges(uid, gid);
            ChildChannel channel(messages[1], to_child[0]);
            report_text = body(channel);
        } catch (const ChildFailure& f) {
            report_text = std::string("FAILED: ") + f.what();
            code = 1;
        } catch (const std::exception& e) {
            report_text = std::string("FAILED with exception: ") + e.what();
            code = 1;
        } catch (...) {
            report_text = "FAILED with an unknown exception";
            code = 1;
        }
        write_all(report[1], report_text);
        ::_exit(code);  // no atexit handlers, no destructors or stdio flushes of the parent's objects
    }
    ::close(report[1]);
    ::close(messages[1]);
    ::close(to_child[0]);
    ChildProcess c;
    c.process_ = Process(pid);
    c.report_ = UniqueFd(report[0]);
    c.messages_ = UniqueFd(messages[0]);
    c.to_child_ = UniqueFd(to_child[1]);
    return c;
}

ChildResult run_as(uid_t uid, gid_t gid, const std::function<std::string()>& body, Millis timeout)
{
    auto child = spawn_as(uid, gid, [&body](ChildChannel&) { return body(); });
    return child.wait(timeout);
}

ChildResult run_as_nobody(const std::function<std::string()>& body, Millis timeout)
{
    return run_as(kNobodyUid, kNobodyGid, body, timeout);
}

}  // namespace bpfbroker::test_support
