// End-to-end test support: a real bpfbrokerd on a scratch root, children
// that drop to uid 65534 to act as unprivileged clients, and raw socket
// helpers for speaking (and abusing) the Varlink protocol by hand.
//
// Everything here needs root (loading BPF, dropping privileges); the fixture
// skips the test otherwise. Each test gets its own root and daemon, so tests
// are independent and may run in parallel.
#pragma once

#include <bpfbroker/client.h>
#include <bpfbroker/unique_fd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::e2e {

using namespace std::chrono_literals;
using Millis = std::chrono::milliseconds;

inline constexpr uid_t kNobodyUid = 65534;
inline constexpr gid_t kNobodyGid = 65534;

// ---- children ------------------------------------------------------------------

// Thrown by require() inside a child: the child reports the message and exits 1.
struct ChildFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Fails the running child with `what` unless `condition` holds.
void require(bool condition, const std::string& what);

// "EPERM (Operation not permitted)" style text for reports.
std::string errno_text(int err);

// How a child ended and what it reported.
struct ChildResult {
    bool exited = false;  // exited normally (not killed, not timed out)
    int exit_code = -1;
    int signal = 0;
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

private:
    int to_parent_;
    int from_parent_;
    std::string buffered_;
};

using ChildBody = std::function<std::string(ChildChannel&)>;

// A forked child running as another uid. Destroying it kills and reaps the
// child if it is still running, so no test leaves a process behind.
class ChildProcess {
public:
    ChildProcess() = default;
    ChildProcess(ChildProcess&& other) noexcept;
    ChildProcess& operator=(ChildProcess&& other) noexcept;
    ~ChildProcess();

    [[nodiscard]] pid_t pid() const { return pid_; }
    // The next line the child sent with tell_parent(); nullopt on timeout or EOF.
    std::optional<std::string> wait_message(Millis timeout = 20s);
    void tell_child(const std::string& line);
    // Reads the child's report and reaps it; SIGKILL after `timeout`.
    ChildResult wait(Millis timeout = 60s);

private:
    friend ChildProcess spawn_as(uid_t, gid_t, ChildBody);
    void kill_and_reap();

    pid_t pid_ = -1;
    UniqueFd report_;      // child -> parent: the final report
    UniqueFd messages_;    // child -> parent: tell_parent lines
    UniqueFd to_child_;    // parent -> child: tell_child lines
    std::string buffered_;
};

// Forks a child that drops to uid/gid (setgroups(0), setgid, setuid, and
// checks that it cannot get root back), runs `body` and reports what it
// returns; a ChildFailure or any exception becomes a report and exit code 1.
ChildProcess spawn_as(uid_t uid, gid_t gid, ChildBody body);

// spawn_as(65534, 65534, body) and wait.
ChildResult run_as_nobody(const std::function<std::string()>& body, Millis timeout = 60s);

// Number of open fds of this process (/proc/self/fd, minus the listing's own).
std::size_t own_fd_count();

// ---- commands ------------------------------------------------------------------

struct CommandResult {
    bool exited = false;
    int exit_code = -1;
    std::string out;
    std::string err;
    [[nodiscard]] bool ok() const { return exited && exit_code == 0; }
};

// fork/execv with stdout and stderr captured; SIGKILL after `timeout`.
CommandResult run_command(const std::vector<std::string>& argv, Millis timeout = 60s);

// ---- raw protocol ----------------------------------------------------------------

// A Varlink connection driven by hand: bytes and fds exactly as given, replies
// read with recvmsg and split at NUL, and every received fd counted and owned.
class RawConnection {
public:
    // Connects (blocking socket); an invalid connection when it cannot.
    static RawConnection connect(const std::string& path);

    [[nodiscard]] bool valid() const { return fd_.valid(); }
    [[nodiscard]] int fd() const { return fd_.get(); }

    // Sends every byte; false (errno kept) when the peer is gone.
    bool send_bytes(std::string_view bytes);
    // One sendmsg carrying `bytes` and SCM_RIGHTS `fds`.
    bool send_with_fds(std::string_view bytes, std::span<const int> fds);
    // {"method": method, "parameters": params} plus NUL.
    bool send_call(const std::string& method, const nlohmann::json& params = nlohmann::json::object());

    struct Message {
        nlohmann::json json;       // discarded() when the frame was not JSON
        std::string frame;
        std::vector<UniqueFd> fds; // every fd that arrived with the bytes of this reply
    };
    // The next NUL-terminated reply; nullopt on EOF, reset or timeout (see closed()).
    std::optional<Message> read_message(Millis timeout = 5s);
    // True once the daemon has closed the connection (EOF or ECONNRESET).
    [[nodiscard]] bool closed() const { return closed_; }
    // Reads (and drops) until the peer closes; false on timeout.
    bool wait_closed(Millis timeout = 5s);
    // Total fds received on this connection, including those read_message returned.
    [[nodiscard]] std::size_t fds_received() const { return fds_received_; }

    // send_call + read_message.
    std::optional<Message> call(const std::string& method, const nlohmann::json& params = nlohmann::json::object(),
                                Millis timeout = 5s);

private:
    // One recvmsg (after waiting up to `timeout`); false on EOF/error/timeout.
    bool receive_some(Millis timeout);

    UniqueFd fd_;
    std::string buffer_;
    std::vector<UniqueFd> pending_fds_;
    std::size_t fds_received_ = 0;
    bool closed_ = false;
};

// The error name of a reply ("" for a success reply).
std::string error_name(const RawConnection::Message& m);
// parameters.reason of a reply, or "".
std::string error_reason(const RawConnection::Message& m);

// ---- audit log ---------------------------------------------------------------------

// One audit line "audit: action=... program=... decision=... reason=\"...\"" as fields.
using AuditFields = std::map<std::string, std::string>;
std::optional<AuditFields> parse_audit_line(std::string_view line);

// ---- the daemon ------------------------------------------------------------------

// Approval options for the usual cases.
ApproveOptions for_users(std::vector<std::string> users);
ApproveOptions for_anyone();

// Starts a bpfbrokerd on a scratch root before each test and stops it after.
// Derived fixtures override settings_json() to write bpfbroker.json first.
class DaemonFixture : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;

    // The content of etc/bpfbroker/bpfbroker.json; nullopt: no file (defaults).
    [[nodiscard]] virtual std::optional<std::string> settings_json() const { return std::nullopt; }
    // RLIMIT_NOFILE (soft and hard) for the daemon; nullopt: inherit the test's.
    [[nodiscard]] virtual std::optional<unsigned long> daemon_nofile_limit() const { return std::nullopt; }

    [[nodiscard]] const std::string& root() const { return root_; }
    [[nodiscard]] const std::string& socket_path() const { return socket_path_; }
    [[nodiscard]] const std::string& audit_log_path() const { return audit_log_; }
    [[nodiscard]] pid_t daemon_pid() const { return daemon_pid_; }
    [[nodiscard]] std::string program_dir(const std::string& name) const;

    // Whether the daemon process is still alive (reaps it if it died).
    bool daemon_alive();
    void signal_daemon(int signo);
    [[nodiscard]] std::string daemon_stderr() const;

    // A client connected as root (the test process); fails the test when it cannot.
    Result<Client> connect_client(Millis timeout = 10s) const;
    // Approves as root over the socket; ADD_FAILURE and false when refused.
    bool approve(const std::string& program, const ApproveOptions& options);

    // Open fds of the daemon (/proc/PID/fd).
    [[nodiscard]] std::size_t daemon_fd_count() const;
    // The count once it stops changing (three equal readings 50 ms apart, at most ~2 s).
    std::size_t settled_daemon_fd_count();
    // Waits until the daemon holds at most `limit` fds; returns the last count seen.
    std::size_t wait_daemon_fd_count_at_most(std::size_t limit, Millis timeout = 5s);

    [[nodiscard]] std::vector<AuditFields> audit_records() const;

private:
    void start_daemon();
    void stop_daemon();

    std::string base_;  // scratch directory holding root, audit log, stderr
    std::string root_;
    std::string socket_path_;
    std::string audit_log_;
    std::string stderr_file_;
    pid_t daemon_pid_ = -1;
    int daemon_exit_status_ = -1;  // waitpid status once reaped
    bool daemon_reaped_ = false;
    std::size_t own_fds_at_start_ = 0;
};

// Paths baked in by CMake.
std::string daemon_binary();
std::string ctl_binary();
std::string build_dir();
std::string source_dir();

}  // namespace bpfbroker::e2e
