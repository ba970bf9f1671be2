// End-to-end test support; see daemon_fixture.h.
#include "daemon_fixture.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace bpfbroker::e2e {

namespace {

using test_support::Clock;
using test_support::poll_until;
using test_support::remaining_ms;

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

std::size_t own_fd_count()
{
    // The directory iterator holds one fd of its own while listing.
    auto n = count_dir_entries("/proc/self/fd");
    return n > 0 ? n - 1 : 0;
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

void RawConnection::wait_in_recvmsg()
{
    timeval five_seconds{5, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof five_seconds);
    waits_in_poll_ = false;
}

bool RawConnection::receive_some(Millis timeout)
{
    if (closed_)
        return false;
    if (waits_in_poll_ && poll_until(fd_.get(), POLLIN, Clock::now() + timeout) <= 0)
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
        // EAGAIN: the receive timeout. ECONNRESET: the daemon closed with
        // bytes of ours still unread.
        closed_ = errno != EAGAIN;
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

void DaemonFixture::SetUp()
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "end-to-end tests need root (they load BPF and drop to uid 65534)";
    own_fds_at_start_ = own_fd_count();

    ASSERT_EQ(scratch_.create("bpfbroker-e2e"), "");
    socket_path_ = root() + "/run/bpfbroker/org.bpfbroker.Broker";
    audit_log_ = audit_log_target().value_or(scratch_.path("audit.log"));
    ASSERT_EQ(scratch_.make_demo_root(), "");
    if (auto settings = settings_json()) {
        ASSERT_EQ(scratch_.write_settings(*settings), "");
    }

    daemon_options_.root = root();
    daemon_options_.audit_log = audit_log_;
    daemon_options_.log_file = scratch_.path("bpfbrokerd.log");
    daemon_options_.extra_args = {"--no-dbus"};
    daemon_options_.nofile_limit = daemon_nofile_limit();
    daemon_options_.env = daemon_env();
    if (under_service_manager()) {
        std::error_code ec;
        std::filesystem::create_directories(root() + "/run/bpfbroker", ec);
        ASSERT_FALSE(ec) << ec.message();
        service_manager_ = std::make_unique<test_support::ServiceManagerStandin>(
            scratch_.path("notify"), socket_path_, test_support::unit_fd_store_max());
        daemon_options_.service_manager = service_manager_.get();
    }
    ASSERT_EQ(start_daemon(), "") << "bpfbrokerd did not accept connections";
}

std::string DaemonFixture::start_daemon()
{
    daemon_.start(daemon_options_);
    // Ready when the socket accepts a connection (and, socket activated, the
    // daemon said READY=1: the stand-in's socket accepts before that).
    return daemon_.wait_ready(
        [this] {
            return (!service_manager_ || service_manager_->ready()) && RawConnection::connect(socket_path_).valid();
        },
        15s);
}

std::string DaemonFixture::kill_and_restart_daemon()
{
    daemon_.signal(SIGKILL);
    for (int i = 0; i < 500 && daemon_.running(); ++i)
        std::this_thread::sleep_for(10ms);
    if (daemon_.running())
        return "bpfbrokerd outlived SIGKILL for 5 s";
    return start_daemon();
}

void DaemonFixture::TearDown()
{
    if (!scratch_.created())
        return;  // skipped before anything was made
    daemon_.expect_clean_stop(5s);
    service_manager_.reset();  // its socket and store, before the fds are counted
    if (HasFailure())
        std::cerr << "---- bpfbrokerd log ----\n" << test_support::tail(daemon_stderr()) << "---- end ----\n";
    EXPECT_EQ(scratch_.remove(), "");
    EXPECT_EQ(own_fd_count(), own_fds_at_start_) << "the test leaked file descriptors";
}

std::string DaemonFixture::program_dir(const std::string& name) const
{
    return root() + "/usr/lib/bpfbroker/programs.d/" + name;
}

void DaemonFixture::install_signed_variant(const std::string& from, const std::string& name,
                                           const std::function<void(nlohmann::json&)>& edit)
{
    const std::string dir = root() + "/etc/bpfbroker/programs.d/" + name;
    std::filesystem::create_directories(dir);
    const std::string object = from + ".bpf.o";
    std::filesystem::copy_file(program_dir(from) + "/" + object, dir + "/" + object);
    auto manifest = nlohmann::json::parse(std::ifstream(program_dir(from) + "/manifest.json"));
    manifest["name"] = name;
    edit(manifest);
    std::ofstream(dir + "/manifest.json") << manifest.dump(2);
    auto signed_ = test_support::run_command(
        {test_support::ctl_binary(), "sign", "--key", test_support::build_dir() + "/dev-keys/dev-signing-key.pem",
         dir + "/manifest.json"});
    ASSERT_TRUE(signed_.ok()) << signed_.describe();
    ::chmod((dir + "/manifest.json.sig").c_str(), 0644);
    auto admin = connect_client();
    ASSERT_TRUE(admin) << admin.error().describe();
    auto reloaded = admin->reload();
    ASSERT_TRUE(reloaded) << reloaded.error().describe();
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
    return count_dir_entries("/proc/" + std::to_string(daemon_pid()) + "/fd");
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

std::string metrics_once(Client& client, const std::function<bool(const std::string&)>& settled, Millis timeout)
{
    const auto deadline = Clock::now() + timeout;
    std::string text;
    for (;;) {
        auto read = client.metrics();
        if (!read) {
            ADD_FAILURE() << "GetMetrics: " << read.error().describe();
            return text;
        }
        text = std::move(*read);
        if (settled(text) || Clock::now() >= deadline)
            return text;
        std::this_thread::sleep_for(20ms);
    }
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
    return test_support::read_audit_records(audit_log_);
}

}  // namespace bpfbroker::e2e
