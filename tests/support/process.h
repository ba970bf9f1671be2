// A child process a test started, owned like a file descriptor: destroying
// it kills (SIGKILL) and reaps it if it still runs, so no test leaves a
// process behind. spawn() starts one with fork + execve.
#pragma once

#include "io.h"

#include <sys/types.h>

#include <csignal>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace bpfbroker::test_support {

class Process {
public:
    Process() = default;
    explicit Process(pid_t pid) : pid_(pid) {}
    Process(Process&& other) noexcept : pid_(std::exchange(other.pid_, -1)), status_(other.status_) {}
    Process& operator=(Process&& other) noexcept;
    ~Process() { kill_and_reap(); }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    // -1 before it started and once it has been reaped.
    [[nodiscard]] pid_t pid() const { return pid_; }
    // Whether it still runs; reaps it when it has exited.
    [[nodiscard]] bool running();
    // waitpid status once reaped, -1 before.
    [[nodiscard]] int status() const { return status_; }
    // Sends `signo`, waits up to `grace` for the exit, then SIGKILL. Returns
    // true when it exited within the grace period (or had already exited).
    bool stop(int signo, Millis grace);
    // Waits for the exit (SIGKILL after `timeout`); true when it exited in time.
    bool wait_exit(Millis timeout);
    // SIGKILL and reap, if still running.
    void kill_and_reap();

private:
    pid_t pid_ = -1;
    int status_ = -1;
};

struct SpawnOptions {
    std::vector<std::string> argv;           // argv[0] is a path
    std::map<std::string, std::string> env;  // set on top of this process's environment
    std::string output_file;                 // stdout and stderr are appended here ("" = /dev/null)
    int notify_fd = -1;                      // passed to the child as fd 3
    // Socket activation (not with notify_fd): passed as fds 3, 4, ... with
    // LISTEN_FDS, LISTEN_FDNAMES (`listen_fdnames`, colon-separated) and
    // LISTEN_PID set to the child's pid, as a service manager does.
    std::vector<int> listen_fds;
    std::string listen_fdnames;
    int death_signal = SIGKILL;              // what the child gets if the test process dies
    // Runs in the child after fork, before exec; returns "" or what failed
    // (the child then writes that to its output and exits 124).
    std::function<std::string()> before_exec;
};

// fork + execve; throws std::runtime_error when fork fails.
Process spawn(const SpawnOptions& options);

}  // namespace bpfbroker::test_support
