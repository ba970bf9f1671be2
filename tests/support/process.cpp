// Child processes; see process.h.
#include "process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace bpfbroker::test_support {

Process& Process::operator=(Process&& other) noexcept
{
    if (this != &other) {
        kill_and_reap();
        pid_ = std::exchange(other.pid_, -1);
        status_ = other.status_;
    }
    return *this;
}

bool Process::running()
{
    if (pid_ <= 0)
        return false;
    int status = 0;
    pid_t w = ::waitpid(pid_, &status, WNOHANG);
    if (w == pid_) {
        status_ = status;
        pid_ = -1;
        return false;
    }
    return true;
}

bool Process::wait_exit(Millis timeout)
{
    auto deadline = Clock::now() + timeout;
    while (running()) {
        if (Clock::now() >= deadline) {
            kill_and_reap();
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

bool Process::stop(int signo, Millis grace)
{
    if (!running())
        return true;
    ::kill(pid_, signo);
    return wait_exit(grace);
}

void Process::kill_and_reap()
{
    if (pid_ <= 0)
        return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    status_ = status;
    pid_ = -1;
}

namespace {

// Writes `value` into the `width` characters at `out`, left-aligned, the
// rest NUL (after fork: no allocation).
void write_decimal(char* out, int width, pid_t value)
{
    char digits[16];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value > 0 && n < 16);
    for (int i = 0; i < width; ++i)
        out[i] = i < n ? digits[n - 1 - i] : '\0';
}

}  // namespace

Process spawn(const SpawnOptions& options)
{
    // Everything the child needs is prepared before fork: after it, only
    // async-signal-safe calls (and the caller's before_exec).
    std::map<std::string, std::string> env;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        auto eq = kv.find('=');
        if (eq != std::string::npos)
            env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [k, v] : options.env)
        env[k] = v;
    const int n_listen = static_cast<int>(options.listen_fds.size());
    if (n_listen > 0) {
        env["LISTEN_FDS"] = std::to_string(n_listen);
        env["LISTEN_FDNAMES"] = options.listen_fdnames;
        env["LISTEN_PID"] = std::string(10, ' ');  // the child writes its pid here
    }
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env)
        env_strings.push_back(k + "=" + v);
    std::vector<char*> envp, argv;
    char* listen_pid = nullptr;
    for (auto& s : env_strings) {
        envp.push_back(s.data());
        if (s.starts_with("LISTEN_PID=") && n_listen > 0)
            listen_pid = s.data() + std::strlen("LISTEN_PID=");
    }
    envp.push_back(nullptr);
    std::vector<std::string> args = options.argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<int> high(options.listen_fds.size());  // filled after fork: no allocation there
    const std::string output = options.output_file.empty() ? "/dev/null" : options.output_file;
    const std::string exec_failed = "execve " + (args.empty() ? std::string("(no argv)") : args[0]) + ": ";

    std::fflush(nullptr);
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error("fork: " + errno_text(errno));
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, options.death_signal, 0, 0, 0);
        if (::getppid() != parent)
            ::_exit(126);
        int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        int out = ::open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (in < 0 || out < 0)
            ::_exit(125);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(out, 2);
        if (options.notify_fd >= 0) {
            if (options.notify_fd == 3)
                ::fcntl(3, F_SETFD, 0);
            else
                ::dup2(options.notify_fd, 3);
        }
        if (n_listen > 0) {
            // Above every target first, so that no dup2 overwrites a source.
            for (int i = 0; i < n_listen; ++i)
                high[i] = ::fcntl(options.listen_fds[i], F_DUPFD_CLOEXEC, 3 + n_listen);
            for (int i = 0; i < n_listen; ++i)
                if (high[i] < 0 || ::dup2(high[i], 3 + i) < 0)
                    ::_exit(123);
            write_decimal(listen_pid, 10, ::getpid());
        }
        if (options.before_exec) {
            std::string why = options.before_exec();
            if (!why.empty()) {
                why = "before exec: " + why + "\n";
                write_all(2, why);
                ::_exit(124);
            }
        }
        if (!args.empty())
            ::execve(argv[0], argv.data(), envp.data());
        write_all(2, exec_failed);
        write_all(2, std::strerror(errno));
        write_all(2, "\n");
        ::_exit(127);
    }
    return Process(pid);
}

}  // namespace bpfbroker::test_support
