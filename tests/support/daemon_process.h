// bpfbrokerd as a subprocess of a test: started in the foreground on a
// scratch root with its own audit log and log file, waited for until it is
// ready, and stopped with SIGTERM afterwards, where it must exit cleanly.
#pragma once

#include "io.h"
#include "process.h"
#include "service_manager_standin.h"

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bpfbroker::test_support {

struct DaemonOptions {
    std::string root;                        // --root
    std::string audit_log;                   // --audit-log
    std::string log_file;                    // its stdout and stderr
    std::vector<std::string> extra_args;     // after the above, e.g. "--no-dbus"
    std::map<std::string, std::string> env;  // on top of the test's environment
    // RLIMIT_NOFILE (soft and hard) for the daemon; nullopt: inherit the test's.
    std::optional<unsigned long> nofile_limit;
    // Started as this stand-in service manager would (socket activation, a
    // notify socket, the fd store); null: a plain child with its own socket.
    ServiceManagerStandin* service_manager = nullptr;
};

class DaemonProcess {
public:
    // Spawns bpfbrokerd --root ROOT --foreground --audit-log LOG [extra_args].
    // It gets SIGTERM should the test process die. Throws std::runtime_error
    // when fork fails.
    void start(DaemonOptions options);
    // Polls `ready` every 20 ms until it holds: "" then; otherwise why not
    // (the daemon exited, or `timeout` passed), with the tail of its log.
    std::string wait_ready(const std::function<bool()>& ready, Millis timeout);

    [[nodiscard]] bool started() const { return started_; }
    // Whether it still runs (reaps it once it has exited).
    [[nodiscard]] bool running() { return process_.running(); }
    // -1 once it has been reaped.
    [[nodiscard]] pid_t pid() const { return process_.pid(); }
    // waitpid status once reaped, -1 before.
    [[nodiscard]] int status() const { return process_.status(); }
    // Sends `signo` if it still runs.
    void signal(int signo);
    // Everything it wrote to stdout and stderr so far.
    [[nodiscard]] std::string log() const;

    // For TearDown: sends SIGTERM and waits up to `grace`. Fails the running
    // test when the daemon had died during the test, did not stop in time
    // (it is killed then), or did not exit with status 0.
    void expect_clean_stop(Millis grace);

private:
    DaemonOptions options_;
    Process process_;
    bool started_ = false;
};

}  // namespace bpfbroker::test_support
