// Running commands; see command.h.
#include "command.h"

#include "process.h"

#include <bpfbroker/unique_fd.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>

namespace bpfbroker::test_support {

std::string CommandResult::describe() const
{
    std::string how = timed_out ? "timed out" : exited ? "exited " + std::to_string(exit_code) : "was killed";
    return "command " + how + "\n--- stdout:\n" + tail(out) + "\n--- stderr:\n" + tail(err);
}

CommandResult run_command(const std::vector<std::string>& argv, Millis timeout)
{
    CommandResult result;
    if (argv.empty())
        return result;
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0)
        return result;
    if (::pipe2(err, O_CLOEXEC) != 0) {
        ::close(out[0]), ::close(out[1]);
        return result;
    }
    std::vector<std::string> args = argv;
    std::vector<char*> cargs;
    for (auto& a : args)
        cargs.push_back(a.data());
    cargs.push_back(nullptr);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        int devnull = ::open("/dev/null", O_RDONLY);
        ::dup2(devnull, 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        ::execvp(cargs[0], cargs.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    UniqueFd out_fd(out[0]), err_fd(err[0]);
    if (pid < 0)
        return result;
    Process process(pid);
    const auto deadline = Clock::now() + timeout;
    bool out_open = true, err_open = true;
    while ((out_open || err_open) && Clock::now() < deadline) {
        pollfd p[2] = {{out_open ? out_fd.get() : -1, POLLIN, 0}, {err_open ? err_fd.get() : -1, POLLIN, 0}};
        int n = ::poll(p, 2, remaining_ms(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        char buf[4096];
        for (int i = 0; i < 2; ++i) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = ::read(p[i].fd, buf, sizeof buf);
            if (r <= 0) {
                (i == 0 ? out_open : err_open) = false;
                continue;
            }
            (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(r));
        }
    }
    if (!process.wait_exit(Millis(std::max(remaining_ms(deadline), 100)))) {
        result.timed_out = true;
        result.err += "\n(killed after the timeout)";
        return result;
    }
    if (WIFEXITED(process.status())) {
        result.exited = true;
        result.exit_code = WEXITSTATUS(process.status());
    }
    return result;
}

}  // namespace bpfbroker::test_support
