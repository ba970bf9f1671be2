// D-Bus end-to-end test support; see bus_fixture.h.
#include "bus_fixture.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#ifndef BPFBROKER_DBUS_DAEMON
#error "BPFBROKER_DBUS_DAEMON must name the bpfbrokerd binary"
#endif

extern char** environ;

namespace bpfbroker::dbus_test {

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kPolkitd = "/usr/lib/polkit-1/polkitd";
constexpr const char* kPolkitActionsDir = "/usr/share/polkit-1/actions";
constexpr const char* kPolkitRulesDir = "/etc/polkit-1/rules.d";
constexpr const char* kActionFileName = "org.bpfbroker.policy";
constexpr const char* kRulesFileName = "49-bpfbroker-dbus-test.rules";
// The first line of every rules file this suite writes: how a leftover of a
// crashed run is told apart from a file someone else put there.
constexpr const char* kRulesMarker = "// bpfbroker dbus_e2e_tests: temporary test rules, removed after each test\n";

int remaining_ms(Clock::time_point deadline)
{
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

int poll_until(int fd, short events, Clock::time_point deadline)
{
    for (;;) {
        pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, remaining_ms(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        return n;
    }
}

void write_all(int fd, std::string_view bytes)
{
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::optional<std::string> read_line(int fd, std::string& buffered, Clock::time_point deadline)
{
    for (;;) {
        if (auto nl = buffered.find('\n'); nl != std::string::npos) {
            std::string line = buffered.substr(0, nl);
            buffered.erase(0, nl + 1);
            return line;
        }
        if (poll_until(fd, POLLIN, deadline) <= 0)
            return std::nullopt;
        char buf[512];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return std::nullopt;
        buffered.append(buf, static_cast<std::size_t>(n));
    }
}

// The first executable `name` in PATH (or the usual places), or "".
std::string find_program(const std::string& name)
{
    std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
    path += ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    std::stringstream ss(path);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
        if (dir.empty())
            continue;
        std::string candidate = dir + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0)
            return candidate;
    }
    return "";
}

bool write_file(const std::string& path, const std::string& content, mode_t mode)
{
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd)
        return false;
    write_all(fd.get(), content);
    return ::fchmod(fd.get(), mode) == 0;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to)
{
    for (std::size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size())
        text.replace(pos, from.size(), to);
    return text;
}

std::string tail(const std::string& text, std::size_t max_bytes = 6000)
{
    return text.size() <= max_bytes ? text : "[...]\n" + text.substr(text.size() - max_bytes);
}

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
    check(r == uid && e == uid && s == uid, "uids are not all " + std::to_string(uid));
    check(rg == gid && eg == gid && sg == gid, "gids are not all " + std::to_string(gid));
    check(::getgroups(0, nullptr) == 0, "supplementary groups remain after setgroups(0)");
    if (uid != 0)
        check(::setuid(0) != 0, "the child could become root again");
    // Changing credentials cleared the parent-death signal: set it again so
    // the child cannot outlive a test process that crashed.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
}

// In polkitd's child before exec: a private mount namespace in which the
// test's directories hide the real action and rules directories.
std::string enter_polkit_namespace(const std::string& actions, const std::string& rules)
{
    if (::unshare(CLONE_NEWNS) != 0)
        return "unshare(CLONE_NEWNS): " + errno_text(errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return "making / private: " + errno_text(errno);
    if (::mount(actions.c_str(), kPolkitActionsDir, nullptr, MS_BIND, nullptr) != 0)
        return std::string("bind-mounting over ") + kPolkitActionsDir + ": " + errno_text(errno);
    if (::mount(rules.c_str(), kPolkitRulesDir, nullptr, MS_BIND, nullptr) != 0)
        return std::string("bind-mounting over ") + kPolkitRulesDir + ": " + errno_text(errno);
    return "";
}

// Whether a child can set up that namespace (a container may forbid it).
std::string probe_polkit_namespace(const std::string& actions, const std::string& rules)
{
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        return "pipe2: " + errno_text(errno);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        std::string why = enter_polkit_namespace(actions, rules);
        write_all(p[1], why);
        ::_exit(why.empty() ? 0 : 1);
    }
    ::close(p[1]);
    UniqueFd rd(p[0]);
    if (pid < 0)
        return "fork: " + errno_text(errno);
    std::string why;
    char buf[256];
    for (ssize_t n; (n = ::read(rd.get(), buf, sizeof buf)) > 0;)
        why.append(buf, static_cast<std::size_t>(n));
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return "";
    return why.empty() ? "the probe child failed" : why;
}

}  // namespace

// ---- basics ----------------------------------------------------------------------

std::string daemon_binary() { return BPFBROKER_DBUS_DAEMON; }
std::string ctl_binary() { return BPFBROKER_DBUS_CTL; }
std::string build_dir() { return BPFBROKER_DBUS_BUILD_DIR; }
std::string source_dir() { return BPFBROKER_DBUS_SOURCE_DIR; }

std::string errno_text(int err)
{
    const char* name = strerrorname_np(err);
    return std::string(name ? name : std::to_string(err).c_str()) + " (" + std::strerror(err) + ")";
}

std::string read_text_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string polkit_user_name(uid_t uid)
{
    if (const passwd* pw = ::getpwuid(uid))
        return pw->pw_name;
    return std::to_string(uid);
}

std::string polkitd_unavailable_reason()
{
    if (::access(kPolkitd, X_OK) != 0)
        return std::string(kPolkitd) + " is missing (Debian package polkitd)";
    if (::getpwnam("polkitd") == nullptr)
        return "there is no user polkitd for polkitd to run as";
    if (::access(kPolkitRulesDir, F_OK) != 0 || ::access(kPolkitActionsDir, F_OK) != 0)
        return std::string(kPolkitRulesDir) + " or " + kPolkitActionsDir + " is missing";
    return "";
}

// ---- processes ---------------------------------------------------------------

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
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env)
        env_strings.push_back(k + "=" + v);
    std::vector<char*> envp, argv;
    for (auto& s : env_strings)
        envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = options.argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string output = options.output_file.empty() ? "/dev/null" : options.output_file;

    std::fflush(nullptr);
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error("fork: " + errno_text(errno));
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
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
        if (options.before_exec) {
            std::string why = options.before_exec();
            if (!why.empty()) {
                why = "before exec: " + why + "\n";
                write_all(2, why);
                ::_exit(124);
            }
        }
        ::execve(argv[0], argv.data(), envp.data());
        std::string why = "execve " + args[0] + ": " + std::strerror(errno) + "\n";
        write_all(2, why);
        ::_exit(127);
    }
    return Process(pid);
}

std::string CommandResult::describe() const
{
    std::string how = timed_out ? "timed out" : exited ? "exited " + std::to_string(exit_code) : "was killed";
    return "command " + how + "\n--- stdout:\n" + tail(out) + "\n--- stderr:\n" + tail(err);
}

CommandResult run_command(const std::vector<std::string>& argv, Millis timeout)
{
    CommandResult result;
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
        return result;
    }
    if (WIFEXITED(process.status())) {
        result.exited = true;
        result.exit_code = WEXITSTATUS(process.status());
    }
    return result;
}

// ---- children -------------------------------------------------------------------

namespace {
// The child's ends of its pipes (only meaningful in a child).
int g_child_messages_fd = -1;
int g_child_from_parent_fd = -1;
std::string g_child_buffered;
}  // namespace

void check(bool condition, const std::string& what)
{
    if (!condition)
        throw ChildFailure(what);
}

std::string ChildResult::describe() const
{
    std::string how = timed_out ? "timed out and was killed"
                      : exited  ? "exited " + std::to_string(exit_code)
                                : "was killed by a signal";
    return "child " + how + "; report: " + report;
}

std::optional<std::string> Child::wait_message(Millis timeout)
{
    return read_line(messages_.get(), buffered_, Clock::now() + timeout);
}

void Child::tell_child(const std::string& line)
{
    write_all(to_child_.get(), line + "\n");
}

void Child::tell_parent(const std::string& line)
{
    write_all(g_child_messages_fd, line + "\n");
}

std::string Child::wait_parent(Millis timeout)
{
    auto line = read_line(g_child_from_parent_fd, g_child_buffered, Clock::now() + timeout);
    check(line.has_value(), "the parent did not answer in time");
    return *line;
}

int Child::parent_fd()
{
    return g_child_from_parent_fd;
}

std::optional<std::string> Child::try_parent_line()
{
    return read_line(g_child_from_parent_fd, g_child_buffered, Clock::now());
}

ChildResult Child::wait(Millis timeout)
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
    if (WIFEXITED(process_.status())) {
        result.exited = true;
        result.exit_code = WEXITSTATUS(process_.status());
    }
    return result;
}

Child spawn_as(uid_t uid, gid_t gid, std::function<std::string()> body)
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
        g_child_messages_fd = messages[1];
        g_child_from_parent_fd = to_child[0];
        std::string report_text;
        int code = 0;
        try {
            drop_privileges(uid, gid);
            report_text = body();
        } catch (const ChildFailure& f) {
            report_text = std::string("FAILED: ") + f.what();
            code = 1;
        } catch (const sdbus::Error& e) {
            report_text = "FAILED with D-Bus error " + e.getName() + ": " + e.getMessage();
            code = 1;
        } catch (const std::exception& e) {
            report_text = std::string("FAILED with exception: ") + e.what();
            code = 1;
        } catch (...) {
            report_text = "FAILED with an unknown exception";
            code = 1;
        }
        write_all(report[1], report_text);
        ::_exit(code);  // no atexit handlers, no destructors of the parent's objects
    }
    ::close(report[1]);
    ::close(messages[1]);
    ::close(to_child[0]);
    Child c;
    c.process_ = Process(pid);
    c.report_ = UniqueFd(report[0]);
    c.messages_ = UniqueFd(messages[0]);
    c.to_child_ = UniqueFd(to_child[1]);
    return c;
}

ChildResult run_as(uid_t uid, gid_t gid, std::function<std::string()> body, Millis timeout)
{
    auto child = spawn_as(uid, gid, std::move(body));
    return child.wait(timeout);
}

// ---- D-Bus helpers -------------------------------------------------------------

std::string dbus_error_of(const std::function<void()>& call, std::string* message)
{
    try {
        call();
    } catch (const sdbus::Error& e) {
        if (message)
            *message = e.getMessage();
        return e.getName();
    }
    if (message)
        message->clear();
    return "";
}

BrokerBus::BrokerBus()
    : connection_(sdbus::createSystemBusConnection())
{
    proxy_ = sdbus::createProxy(*connection_, kBusName, kObjectPath);
    auto record = [this](std::string member, std::vector<std::string> args) {
        const auto* msg = proxy_->getCurrentlyProcessedMessage();
        signals_.push_back(Signal{std::move(member), std::move(args), msg ? msg->getSender() : "",
                                  msg ? msg->getPath() : ""});
    };
    proxy_->uponSignal("ProgramApproved").onInterface(kInterface).call([record](std::string program, std::string sha) {
        record("ProgramApproved", {program, sha});
    });
    proxy_->uponSignal("ProgramRevoked").onInterface(kInterface).call([record](std::string program) {
        record("ProgramRevoked", {program});
    });
    proxy_->uponSignal("CatalogReloaded").onInterface(kInterface).call([record](std::uint32_t programs) {
        record("CatalogReloaded", {std::to_string(programs)});
    });
    proxy_->finishRegistration();
}

BrokerBus::~BrokerBus()
{
    proxy_.reset();
    connection_.reset();
}

std::string BrokerBus::owner_of(const std::string& name)
{
    auto bus = sdbus::createProxy(*connection_, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    bus->finishRegistration();
    std::string owner;
    try {
        bus->callMethod("GetNameOwner").onInterface("org.freedesktop.DBus").withArguments(name).storeResultsTo(owner);
    } catch (const sdbus::Error&) {
        return "";
    }
    return owner;
}

void BrokerBus::drain()
{
    while (connection_->processPendingRequest()) {
    }
}

bool BrokerBus::wait_for(const std::function<bool()>& done, Millis timeout)
{
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        drain();
        if (done())
            return true;
        if (Clock::now() >= deadline)
            return false;
        auto poll_data = connection_->getEventLoopPollData();
        int wait = std::min(remaining_ms(deadline), 100);
        int t = poll_data.getPollTimeout();
        if (t >= 0 && t < wait)
            wait = t;
        pollfd p{poll_data.fd, poll_data.events, 0};
        ::poll(&p, 1, wait);
    }
}

std::vector<BrokerBus::Signal> BrokerBus::signals_named(const std::string& member) const
{
    std::vector<Signal> out;
    for (const auto& s : signals_)
        if (s.member == member)
            out.push_back(s);
    return out;
}

// ---- the fixture -------------------------------------------------------------------

void BusFixture::SetUp()
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root: a private system bus, bpfbrokerd loading BPF, children dropping to uid 65534";
    if (polkit_mode() == PolkitMode::Real) {
        if (auto why = polkitd_unavailable_reason(); !why.empty())
            GTEST_SKIP() << "polkitd cannot run here: " << why;
    }

    for (uid_t uid : {kNobodyUid, kOtherUid, kThirdUid})
        if (::getpwuid(uid) == nullptr)
            GTEST_SKIP() << "uid " << uid << " has no passwd entry: dbus-daemon would not let it connect";

    char tmpl[] = "/tmp/bpfbroker-dbus.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << errno_text(errno);
    base_ = tmpl;
    // uid 65534 must reach the bus socket inside.
    ASSERT_EQ(::chmod(base_.c_str(), 0755), 0) << errno_text(errno);
    root_ = base_ + "/root";
    bus_socket_ = base_ + "/bus";

    if (const char* old = std::getenv("DBUS_SYSTEM_BUS_ADDRESS")) {
        had_saved_bus_address_ = true;
        saved_bus_address_ = old;
    }

    ASSERT_NO_FATAL_FAILURE(start_bus());
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_address().c_str(), 1);

    if (polkit_mode() == PolkitMode::Real) {
        std::string why = prepare_polkit_files();
        if (why.rfind("skip:", 0) == 0)
            GTEST_SKIP() << why.substr(5);
        ASSERT_EQ(why, "");
        ASSERT_NO_FATAL_FAILURE(start_polkitd());
    }
    {
        std::string why = before_daemon();
        ASSERT_EQ(why, "") << why;
    }
    ASSERT_NO_FATAL_FAILURE(start_daemon());
}

void BusFixture::start_bus()
{
    std::string dbus_daemon = find_program("dbus-daemon");
    ASSERT_FALSE(dbus_daemon.empty()) << "dbus-daemon is missing (Debian package dbus-daemon)";
    std::string tmpl = read_text_file(source_dir() + "/tests/dbus/system-bus.conf.in");
    ASSERT_FALSE(tmpl.empty()) << "cannot read tests/dbus/system-bus.conf.in";
    std::string conf = replace_all(tmpl, "@BUS_SOCKET@", bus_socket_);
    conf = replace_all(conf, "@PROJECT_POLICY@", source_dir() + "/systemd/org.bpfbroker.Broker1.conf");
    bus_config_ = base_ + "/system-bus.conf";
    ASSERT_TRUE(write_file(bus_config_, conf, 0644)) << errno_text(errno);

    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0) << errno_text(errno);
    UniqueFd rd(p[0]), wr(p[1]);
    SpawnOptions o;
    o.argv = {dbus_daemon, "--config-file=" + bus_config_, "--nofork", "--nopidfile", "--nosyslog",
              "--print-address=3"};
    o.output_file = base_ + "/dbus-daemon.log";
    o.notify_fd = wr.get();
    bus_ = spawn(o);
    wr.reset();
    std::string buffered;
    auto address = read_line(rd.get(), buffered, Clock::now() + 20s);
    ASSERT_TRUE(address.has_value()) << "dbus-daemon did not start:\n" << read_text_file(base_ + "/dbus-daemon.log");
    ASSERT_NE(address->find(bus_socket_), std::string::npos) << *address;
}

bool BusFixture::wait_for_name(const std::string& name, Millis timeout)
{
    const auto deadline = Clock::now() + timeout;
    std::unique_ptr<sdbus::IConnection> conn;
    std::unique_ptr<sdbus::IProxy> bus;
    try {
        conn = sdbus::createSystemBusConnection();
        bus = sdbus::createProxy(*conn, "org.freedesktop.DBus", "/org/freedesktop/DBus");
        bus->finishRegistration();
    } catch (const sdbus::Error& e) {
        ADD_FAILURE() << "cannot connect to the private bus: " << e.getName() << ": " << e.getMessage();
        return false;
    }
    while (Clock::now() < deadline) {
        bool has = false;
        try {
            bus->callMethod("NameHasOwner").onInterface("org.freedesktop.DBus").withArguments(name).storeResultsTo(has);
        } catch (const sdbus::Error&) {
        }
        if (has)
            return true;
        if (name == kBusName && !daemon_.running())
            return false;
        if (name == kPolkitBusName && polkitd_.pid() > 0 && !polkitd_.running())
            return false;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

void BusFixture::start_daemon()
{
    auto demo = run_command({"bash", source_dir() + "/scripts/make-demo-root.sh", root_, build_dir()}, 60s);
    ASSERT_TRUE(demo.ok()) << "make-demo-root.sh failed: " << demo.describe();
    SpawnOptions o;
    o.argv = {daemon_binary(), "--root", root_, "--foreground", "--audit-log", base_ + "/audit.log"};
    o.env["DBUS_SYSTEM_BUS_ADDRESS"] = bus_address();
    o.output_file = base_ + "/bpfbrokerd.log";
    daemon_ = spawn(o);
    daemon_started_ = true;
    ASSERT_TRUE(wait_for_name(kBusName, 30s))
        << "bpfbrokerd did not take " << kBusName << " on the private bus; its log:\n" << tail(daemon_log());
}

std::string BusFixture::prepare_polkit_files()
{
    std::string action = read_text_file(source_dir() + "/systemd/" + kActionFileName);
    if (action.empty())
        return "cannot read systemd/org.bpfbroker.policy";
    std::string rules = kRulesMarker + polkit_rules();

    const char* mode = std::getenv("BPFBROKER_DBUS_TEST_POLKIT_FILES");
    polkit_namespace_ = !(mode && std::string(mode) == "host");
    std::string dir = base_ + "/polkit";
    std::string actions_dir = dir + "/actions";
    std::string rules_dir = dir + "/rules.d";
    if (polkit_namespace_) {
        // polkitd reads rules as user polkitd: the directories and files must
        // be readable to it.
        if (::mkdir(dir.c_str(), 0755) != 0 || ::mkdir(actions_dir.c_str(), 0755) != 0 ||
            ::mkdir(rules_dir.c_str(), 0755) != 0)
            return "mkdir " + dir + ": " + errno_text(errno);
        if (!write_file(actions_dir + "/" + kActionFileName, action, 0644) ||
            !write_file(rules_dir + "/" + kRulesFileName, rules, 0644))
            return "cannot write the polkit files: " + errno_text(errno);
        std::string why = probe_polkit_namespace(actions_dir, rules_dir);
        if (why.empty())
            return "";
        std::cerr << "[dbus_e2e] no private mount namespace for polkitd (" << why
                  << "); installing the polkit files on the host instead\n";
        polkit_namespace_ = false;
    }

    // Host mode: the real directories, one test at a time (a lock on the
    // rules directory), only files this test creates are removed.
    polkit_lock_ = UniqueFd(::open(kPolkitRulesDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!polkit_lock_)
        return std::string("open ") + kPolkitRulesDir + ": " + errno_text(errno);
    auto deadline = Clock::now() + 120s;
    while (::flock(polkit_lock_.get(), LOCK_EX | LOCK_NB) != 0) {
        if (Clock::now() >= deadline)
            return std::string("another test holds the lock on ") + kPolkitRulesDir;
        std::this_thread::sleep_for(50ms);
    }
    auto create = [this](const std::string& path, const std::string& content) -> std::string {
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (!fd)
            return path + ": " + errno_text(errno);
        write_all(fd.get(), content);
        ::fchmod(fd.get(), 0644);
        struct stat st {};
        ::fstat(fd.get(), &st);
        host_files_created_.push_back({path, {st.st_dev, st.st_ino}});
        return "";
    };
    std::string action_path = std::string(kPolkitActionsDir) + "/" + kActionFileName;
    if (::access(action_path.c_str(), F_OK) == 0) {
        if (read_text_file(action_path) != action)
            return "skip:" + action_path + " exists and differs from systemd/org.bpfbroker.policy; not replacing it";
        // Installed already (e.g. by make install): use it, leave it.
    } else if (auto why = create(action_path, action); !why.empty()) {
        return why;
    }
    std::string rules_path = std::string(kPolkitRulesDir) + "/" + kRulesFileName;
    if (::access(rules_path.c_str(), F_OK) == 0) {
        if (read_text_file(rules_path).rfind(kRulesMarker, 0) != 0)
            return "skip:" + rules_path + " exists and was not written by these tests; not replacing it";
        // A leftover of a run that crashed: ours to replace and remove.
        ::unlink(rules_path.c_str());
    }
    return create(rules_path, rules);
}

void BusFixture::start_polkitd()
{
    SpawnOptions o;
    o.argv = {kPolkitd};
    o.env["DBUS_SYSTEM_BUS_ADDRESS"] = bus_address();
    o.output_file = base_ + "/polkitd.log";
    if (polkit_namespace_) {
        std::string actions_dir = base_ + "/polkit/actions";
        std::string rules_dir = base_ + "/polkit/rules.d";
        o.before_exec = [actions_dir, rules_dir] { return enter_polkit_namespace(actions_dir, rules_dir); };
    }
    polkitd_ = spawn(o);
    ASSERT_TRUE(wait_for_name(kPolkitBusName, 30s))
        << "polkitd did not take " << kPolkitBusName << " on the private bus; its log:\n" << tail(polkitd_log());
}

void BusFixture::remove_host_polkit_files()
{
    for (const auto& [path, id] : host_files_created_) {
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0 && st.st_dev == id.first && st.st_ino == id.second)
            ::unlink(path.c_str());
    }
    host_files_created_.clear();
    polkit_lock_.reset();  // releases the flock
}

void BusFixture::TearDown()
{
    if (base_.empty())
        return;
    if (daemon_started_) {
        // Also catches a daemon that died during the test (already reaped).
        bool clean = daemon_.stop(SIGTERM, 15s);
        EXPECT_TRUE(clean) << "bpfbrokerd did not stop within 15 s of SIGTERM";
        if (clean) {
            EXPECT_TRUE(WIFEXITED(daemon_.status()) && WEXITSTATUS(daemon_.status()) == 0)
                << "bpfbrokerd exited with status " << daemon_.status();
        }
        daemon_started_ = false;
    }
    if (polkitd_.pid() > 0)
        polkitd_.stop(SIGTERM, 5s);
    if (bus_.pid() > 0)
        bus_.stop(SIGTERM, 5s);
    remove_host_polkit_files();
    if (HasFailure()) {
        std::cerr << "---- bpfbrokerd log:\n" << tail(daemon_log()) << "\n";
        if (::access((base_ + "/polkitd.log").c_str(), F_OK) == 0)
            std::cerr << "---- polkitd log:\n" << tail(polkitd_log()) << "\n";
    }
    if (had_saved_bus_address_)
        ::setenv("DBUS_SYSTEM_BUS_ADDRESS", saved_bus_address_->c_str(), 1);
    else
        ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
    EXPECT_FALSE(ec) << "cannot remove " << base_ << ": " << ec.message();
    base_.clear();
}

std::string BusFixture::daemon_log() const { return read_text_file(base_ + "/bpfbrokerd.log"); }
std::string BusFixture::polkitd_log() const { return read_text_file(base_ + "/polkitd.log"); }

std::string BusFixture::approve_as_root(const std::string& program, const ApproveOptions& options)
{
    auto client = Client::connect_dbus(10s);
    if (!client) {
        ADD_FAILURE() << "root cannot connect over D-Bus: " << client.error().describe();
        return "";
    }
    auto sha = client->approve(program, options);
    if (!sha) {
        ADD_FAILURE() << "root cannot approve " << program << " over D-Bus: " << sha.error().describe();
        return "";
    }
    return *sha;
}

std::vector<std::string> BusFixture::audit_lines() const
{
    std::vector<std::string> out;
    std::stringstream ss(read_text_file(base_ + "/audit.log"));
    for (std::string line; std::getline(ss, line);)
        out.push_back(line);
    return out;
}

bool BusFixture::audited(const std::map<std::string, std::string>& fields) const
{
    for (const auto& raw : audit_lines()) {
        std::string line = " " + raw + " ";
        bool all = true;
        for (const auto& [k, v] : fields)
            if (line.find(" " + k + "=" + v + " ") == std::string::npos &&
                line.find(" " + k + "=\"" + v + "\" ") == std::string::npos)
                all = false;
        if (all)
            return true;
    }
    return false;
}

}  // namespace bpfbroker::dbus_test
