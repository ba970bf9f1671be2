// End-to-end test support; see daemon_fixture.h.
#include "daemon_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#ifndef BPFBROKER_E2E_DAEMON
#error "BPFBROKER_E2E_DAEMON must name the bpfbrokerd binary"
#endif

namespace bpfbroker::e2e {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline)
{
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd until the deadline: >0 ready, 0 timeout, <0 error.
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

// Reads one line (without its newline) from fd into/through `buffered`.
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
    // Changing credentials made the process non-dumpable, which makes its
    // /proc entries root's; the tests read their own /proc/self/fd.
    ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

[[noreturn]] void child_exit(int report_fd, const std::string& report, int code)
{
    write_all(report_fd, report);
    ::_exit(code);  // no atexit handlers, no flush of the parent's stdio buffers
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::size_t count_dir_entries(const std::string& path)
{
    std::error_code ec;
    std::size_t n = 0;
    for (auto it = std::filesystem::directory_iterator(path, ec); !ec && it != std::filesystem::directory_iterator();
         it.increment(ec))
        ++n;
    return n;
}

}  // namespace

// ---- children ------------------------------------------------------------------

void require(bool condition, const std::string& what)
{
    if (!condition)
        throw ChildFailure(what);
}

std::string errno_text(int err)
{
    const char* name = strerrorname_np(err);
    return std::string(name ? name : std::to_string(err).c_str()) + " (" + std::strerror(err) + ")";
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

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), report_(std::move(other.report_)), messages_(std::move(other.messages_)),
      to_child_(std::move(other.to_child_)), buffered_(std::move(other.buffered_))
{
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept
{
    if (this != &other) {
        kill_and_reap();
        pid_ = std::exchange(other.pid_, -1);
        report_ = std::move(other.report_);
        messages_ = std::move(other.messages_);
        to_child_ = std::move(other.to_child_);
        buffered_ = std::move(other.buffered_);
    }
    return *this;
}

ChildProcess::~ChildProcess()
{
    kill_and_reap();
}

void ChildProcess::kill_and_reap()
{
    if (pid_ <= 0)
        return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
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
    if (pid_ <= 0) {
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
    int status = 0;
    for (;;) {
        pid_t w = ::waitpid(pid_, &status, WNOHANG);
        if (w == pid_)
            break;
        if (w < 0 && errno != EINTR)
            break;
        if (Clock::now() >= deadline) {
            result.timed_out = true;
            ::kill(pid_, SIGKILL);
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        std::this_thread::sleep_for(5ms);
    }
    pid_ = -1;
    if (!result.timed_out && WIFEXITED(status)) {
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
        try {
            drop_privileges(uid, gid);
            ChildChannel channel(messages[1], to_child[0]);
            std::string out = body(channel);
            child_exit(report[1], out, 0);
        } catch (const ChildFailure& f) {
            child_exit(report[1], std::string("FAILED: ") + f.what(), 1);
        } catch (const std::exception& e) {
            child_exit(report[1], std::string("FAILED with exception: ") + e.what(), 1);
        } catch (...) {
            child_exit(report[1], "FAILED with an unknown exception", 1);
        }
    }
    ::close(report[1]);
    ::close(messages[1]);
    ::close(to_child[0]);
    ChildProcess c;
    c.pid_ = pid;
    c.report_ = UniqueFd(report[0]);
    c.messages_ = UniqueFd(messages[0]);
    c.to_child_ = UniqueFd(to_child[1]);
    return c;
}

ChildResult run_as_nobody(const std::function<std::string()>& body, Millis timeout)
{
    auto child = spawn_as(kNobodyUid, kNobodyGid, [&](ChildChannel&) { return body(); });
    return child.wait(timeout);
}

std::size_t own_fd_count()
{
    // The directory iterator holds one fd of its own while listing.
    auto n = count_dir_entries("/proc/self/fd");
    return n > 0 ? n - 1 : 0;
}

// ---- commands ------------------------------------------------------------------

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
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        int devnull = ::open("/dev/null", O_RDONLY);
        ::dup2(devnull, 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    UniqueFd out_fd(out[0]), err_fd(err[0]);
    if (pid < 0)
        return result;
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
    int status = 0;
    for (;;) {
        pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (Clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            result.err += "\n(killed after the timeout)";
            return result;
        }
        std::this_thread::sleep_for(5ms);
    }
    if (WIFEXITED(status)) {
        result.exited = true;
        result.exit_code = WEXITSTATUS(status);
    }
    return result;
}

// ---- raw protocol ----------------------------------------------------------------

RawConnection RawConnection::connect(const std::string& path)
{
    RawConnection c;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return c;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
        return c;
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return c;
    c.fd_ = std::move(fd);
    return c;
}

bool RawConnection::send_bytes(std::string_view bytes)
{
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

bool RawConnection::send_with_fds(std::string_view bytes, std::span<const int> fds)
{
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<unsigned char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    if (cmsg == nullptr)
        return false;
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    ssize_t n;
    do
        n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return false;
    return send_bytes(bytes.substr(static_cast<std::size_t>(n)));
}

bool RawConnection::send_call(const std::string& method, const nlohmann::json& params)
{
    std::string frame = nlohmann::json{{"method", method}, {"parameters", params}}.dump();
    frame.push_back('\0');
    return send_bytes(frame);
}

bool RawConnection::receive_some(Millis timeout)
{
    if (closed_)
        return false;
    int ready = poll_until(fd_.get(), POLLIN, Clock::now() + timeout);
    if (ready <= 0)
        return false;
    char buf[65536];
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * 253)];
    iovec iov{buf, sizeof buf};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do
        n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        // ECONNRESET: the daemon closed with bytes of ours still unread.
        closed_ = true;
        return false;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            pending_fds_.emplace_back(fd);
            ++fds_received_;
        }
    }
    if (n == 0) {
        closed_ = true;
        return false;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
}

std::optional<RawConnection::Message> RawConnection::read_message(Millis timeout)
{
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (auto nul = buffer_.find('\0'); nul != std::string::npos) {
            Message m;
            m.frame = buffer_.substr(0, nul);
            buffer_.erase(0, nul + 1);
            m.json = nlohmann::json::parse(m.frame, nullptr, false);
            m.fds = std::move(pending_fds_);
            pending_fds_.clear();
            return m;
        }
        if (closed_ || Clock::now() >= deadline)
            return std::nullopt;
        if (!receive_some(Millis(remaining_ms(deadline))) && !closed_ && Clock::now() >= deadline)
            return std::nullopt;
    }
}

bool RawConnection::wait_closed(Millis timeout)
{
    const auto deadline = Clock::now() + timeout;
    while (!closed_ && Clock::now() < deadline) {
        receive_some(Millis(remaining_ms(deadline)));
        buffer_.clear();
        pending_fds_.clear();
    }
    return closed_;
}

std::optional<RawConnection::Message> RawConnection::call(const std::string& method, const nlohmann::json& params,
                                                          Millis timeout)
{
    if (!send_call(method, params))
        return std::nullopt;
    return read_message(timeout);
}

std::string error_name(const RawConnection::Message& m)
{
    if (!m.json.is_object())
        return "(not a JSON object: " + m.frame + ")";
    auto it = m.json.find("error");
    return it != m.json.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string error_reason(const RawConnection::Message& m)
{
    if (!m.json.is_object())
        return {};
    auto p = m.json.find("parameters");
    if (p == m.json.end() || !p->is_object())
        return {};
    auto r = p->find("reason");
    return r != p->end() && r->is_string() ? r->get<std::string>() : std::string();
}

// ---- audit log ---------------------------------------------------------------------

std::optional<AuditFields> parse_audit_line(std::string_view line)
{
    constexpr std::string_view kPrefix = "audit: ";
    if (line.substr(0, kPrefix.size()) != kPrefix)
        return std::nullopt;
    line.remove_prefix(kPrefix.size());
    AuditFields fields;
    std::size_t i = 0;
    while (i < line.size()) {
        auto eq = line.find('=', i);
        if (eq == std::string_view::npos)
            return std::nullopt;
        std::string key(line.substr(i, eq - i));
        i = eq + 1;
        std::string value;
        if (i < line.size() && line[i] == '"') {
            ++i;
            bool closed = false;
            while (i < line.size()) {
                char c = line[i++];
                if (c == '\\' && i < line.size()) {
                    value += line[i++];
                } else if (c == '"') {
                    closed = true;
                    break;
                } else {
                    value += c;
                }
            }
            if (!closed)
                return std::nullopt;
        } else {
            auto sp = line.find(' ', i);
            value = std::string(line.substr(i, sp == std::string_view::npos ? std::string_view::npos : sp - i));
            i = sp == std::string_view::npos ? line.size() : sp;
        }
        if (!fields.emplace(key, value).second)
            return std::nullopt;  // a repeated key would mean a forged field
        while (i < line.size() && line[i] == ' ')
            ++i;
    }
    return fields;
}

// ---- the daemon ------------------------------------------------------------------

ApproveOptions for_users(std::vector<std::string> users)
{
    ApproveOptions o;
    o.users = std::move(users);
    return o;
}

ApproveOptions for_anyone()
{
    ApproveOptions o;
    o.anyone = true;
    return o;
}

std::string daemon_binary() { return BPFBROKER_E2E_DAEMON; }
std::string ctl_binary() { return BPFBROKER_E2E_CTL; }
std::string build_dir() { return BPFBROKER_E2E_BUILD_DIR; }
std::string source_dir() { return BPFBROKER_E2E_SOURCE_DIR; }

void DaemonFixture::SetUp()
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "end-to-end tests need root (they load BPF and drop to uid 65534)";
    own_fds_at_start_ = own_fd_count();

    char tmpl[] = "/tmp/bpfbroker-e2e.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << errno_text(errno);
    base_ = tmpl;
    // mkdtemp makes 0700; uid 65534 children must reach the socket below it.
    ASSERT_EQ(::chmod(base_.c_str(), 0755), 0) << errno_text(errno);
    root_ = base_ + "/root";
    socket_path_ = root_ + "/run/bpfbroker/org.bpfbroker.Broker";
    audit_log_ = base_ + "/audit.log";
    stderr_file_ = base_ + "/bpfbrokerd.stderr";

    auto made = run_command({"/bin/bash", source_dir() + "/scripts/make-demo-root.sh", root_, build_dir()});
    ASSERT_TRUE(made.ok()) << "make-demo-root.sh failed: " << made.out << made.err;

    if (auto settings = settings_json()) {
        std::string path = root_ + "/etc/bpfbroker/bpfbroker.json";
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
        ASSERT_TRUE(fd) << path << ": " << errno_text(errno);
        write_all(fd.get(), *settings);
        ASSERT_EQ(::fchmod(fd.get(), 0644), 0);
        ASSERT_EQ(::fchown(fd.get(), 0, 0), 0);
    }
    start_daemon();
}

void DaemonFixture::start_daemon()
{
    UniqueFd err(::open(stderr_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(err) << errno_text(errno);
    std::vector<std::string> argv = {daemon_binary(), "--root", root_, "--foreground", "--audit-log", audit_log_,
                                     "--no-dbus"};
    std::vector<char*> args;
    for (auto& a : argv)
        args.push_back(a.data());
    args.push_back(nullptr);
    const auto nofile = daemon_nofile_limit();
    std::fflush(nullptr);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0) << errno_text(errno);
    if (pid == 0) {
        if (nofile) {
            rlimit lim{static_cast<rlim_t>(*nofile), static_cast<rlim_t>(*nofile)};
            if (::setrlimit(RLIMIT_NOFILE, &lim) != 0)
                ::_exit(126);
        }
        // The daemon must not outlive a crashed test binary.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
        int devnull = ::open("/dev/null", O_RDWR);
        ::dup2(devnull, 0);
        ::dup2(err.get(), 1);
        ::dup2(err.get(), 2);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    daemon_pid_ = pid;
    daemon_reaped_ = false;

    // Ready when the socket accepts a connection; bounded.
    const auto deadline = Clock::now() + 15s;
    for (;;) {
        ASSERT_TRUE(daemon_alive()) << "bpfbrokerd exited during startup:\n" << daemon_stderr();
        if (RawConnection::connect(socket_path_).valid())
            return;
        ASSERT_LT(Clock::now(), deadline) << "bpfbrokerd did not accept connections within 15 s:\n" << daemon_stderr();
        std::this_thread::sleep_for(20ms);
    }
}

bool DaemonFixture::daemon_alive()
{
    if (daemon_pid_ <= 0 || daemon_reaped_)
        return false;
    int status = 0;
    pid_t w = ::waitpid(daemon_pid_, &status, WNOHANG);
    if (w == daemon_pid_) {
        daemon_reaped_ = true;
        daemon_exit_status_ = status;
        return false;
    }
    return true;
}

void DaemonFixture::signal_daemon(int signo)
{
    if (daemon_alive())
        ::kill(daemon_pid_, signo);
}

void DaemonFixture::stop_daemon()
{
    if (daemon_pid_ <= 0)
        return;
    if (!daemon_reaped_) {
        ::kill(daemon_pid_, SIGTERM);
        const auto deadline = Clock::now() + 5s;
        while (daemon_alive() && Clock::now() < deadline)
            std::this_thread::sleep_for(10ms);
        if (!daemon_reaped_) {
            ADD_FAILURE() << "bpfbrokerd did not stop within 5 s of SIGTERM; killing it";
            ::kill(daemon_pid_, SIGKILL);
            int status = 0;
            while (::waitpid(daemon_pid_, &status, 0) < 0 && errno == EINTR) {
            }
            daemon_reaped_ = true;
            daemon_exit_status_ = status;
        } else {
            EXPECT_TRUE(WIFEXITED(daemon_exit_status_) && WEXITSTATUS(daemon_exit_status_) == 0)
                << "bpfbrokerd did not exit cleanly on SIGTERM (wait status " << daemon_exit_status_ << ")";
        }
    }
    daemon_pid_ = -1;
}

void DaemonFixture::TearDown()
{
    if (base_.empty())
        return;  // skipped before anything was made
    if (daemon_pid_ > 0) {
        EXPECT_TRUE(daemon_alive()) << "bpfbrokerd died during the test (wait status " << daemon_exit_status_ << ")";
        stop_daemon();
    }
    if (HasFailure()) {
        auto log = daemon_stderr();
        if (log.size() > 6000)
            log = "...\n" + log.substr(log.size() - 6000);
        std::cerr << "---- bpfbrokerd stderr (" << stderr_file_ << ") ----\n" << log << "---- end ----\n";
    }
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
    EXPECT_EQ(own_fd_count(), own_fds_at_start_) << "the test leaked file descriptors";
}

std::string DaemonFixture::program_dir(const std::string& name) const
{
    return root_ + "/usr/lib/bpfbroker/programs.d/" + name;
}

std::string DaemonFixture::daemon_stderr() const
{
    return read_file(stderr_file_);
}

Result<Client> DaemonFixture::connect_client(Millis timeout) const
{
    return Client::connect_socket(socket_path_, timeout);
}

bool DaemonFixture::approve(const std::string& program, const ApproveOptions& options)
{
    auto client = connect_client();
    if (!client) {
        ADD_FAILURE() << "cannot connect as root: " << client.error().describe();
        return false;
    }
    auto approved = client->approve(program, options);
    if (!approved) {
        ADD_FAILURE() << "approve " << program << " failed: " << approved.error().describe();
        return false;
    }
    return true;
}

std::size_t DaemonFixture::daemon_fd_count() const
{
    return count_dir_entries("/proc/" + std::to_string(daemon_pid_) + "/fd");
}

std::size_t DaemonFixture::settled_daemon_fd_count()
{
    std::size_t last = daemon_fd_count();
    int same = 0;
    for (int i = 0; i < 40 && same < 2; ++i) {
        std::this_thread::sleep_for(50ms);
        auto now = daemon_fd_count();
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

std::size_t DaemonFixture::wait_daemon_fd_count_at_most(std::size_t limit, Millis timeout)
{
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        auto n = daemon_fd_count();
        if (n <= limit || Clock::now() >= deadline)
            return n;
        std::this_thread::sleep_for(20ms);
    }
}

std::vector<AuditFields> DaemonFixture::audit_records() const
{
    std::vector<AuditFields> out;
    std::istringstream in(read_file(audit_log_));
    for (std::string line; std::getline(in, line);) {
        auto fields = parse_audit_line(line);
        if (fields)
            out.push_back(std::move(*fields));
        else
            ADD_FAILURE() << "unparseable audit line: " << line;
    }
    return out;
}

}  // namespace bpfbroker::e2e
