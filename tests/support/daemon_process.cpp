// bpfbrokerd as a subprocess; see daemon_process.h.
#include "daemon_process.h"

#include "build_paths.h"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <thread>

namespace bpfbroker::test_support {

void DaemonProcess::start(DaemonOptions options)
{
    options_ = std::move(options);
    SpawnOptions o;
    o.argv = {daemon_binary(), "--root", options_.root, "--foreground", "--audit-log", options_.audit_log};
    o.argv.insert(o.argv.end(), options_.extra_args.begin(), options_.extra_args.end());
    o.env = options_.env;
    o.output_file = options_.log_file;
    // A daemon left behind by a crashed test binary still shuts down properly.
    o.death_signal = SIGTERM;
    if (const auto nofile = options_.nofile_limit) {
        o.before_exec = [limit = static_cast<rlim_t>(*nofile)]() -> std::string {
            rlimit lim{limit, limit};
            return ::setrlimit(RLIMIT_NOFILE, &lim) == 0 ? "" : "setrlimit(RLIMIT_NOFILE): " + errno_text(errno);
        };
    }
    if (options_.service_manager)
        options_.service_manager->prepare(o);
    process_ = spawn(o);
    started_ = true;
}

std::string DaemonProcess::wait_ready(const std::function<bool()>& ready, Millis timeout)
{
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (!process_.running())
            return "bpfbrokerd exited during startup (wait status " + std::to_string(process_.status()) + "):\n" +
                   tail(log());
        if (ready())
            return "";
        if (Clock::now() >= deadline)
            return "bpfbrokerd was not ready within " + std::to_string(timeout.count()) + " ms:\n" + tail(log());
        std::this_thread::sleep_for(20ms);
    }
}

void DaemonProcess::signal(int signo)
{
    if (process_.running())
        ::kill(process_.pid(), signo);
}

std::string DaemonProcess::log() const
{
    return read_text_file(options_.log_file);
}

void DaemonProcess::expect_clean_stop(Millis grace)
{
    if (!started_)
        return;
    started_ = false;
    if (!process_.running()) {
        ADD_FAILURE() << "bpfbrokerd died during the test (wait status " << process_.status() << ")";
        return;
    }
    if (!process_.stop(SIGTERM, grace)) {
        ADD_FAILURE() << "bpfbrokerd did not stop within " << grace.count() << " ms of SIGTERM; killed it";
        return;
    }
    const int status = process_.status();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "bpfbrokerd did not exit cleanly on SIGTERM (wait status " << status << ")";
}

}  // namespace bpfbroker::test_support
