// End-to-end test support: a real bpfbrokerd on a scratch root, children
// that drop to uid 65534 to act as unprivileged clients, and raw socket
// helpers for speaking (and abusing) the Varlink protocol by hand: the
// fixture of the e2e suite (tests/e2e), built on the pieces beside it in
// tests/support that both suites use (scratch root, daemon process,
// children running as another uid, commands).
//
// Everything here needs root (loading BPF, dropping privileges); the fixture
// skips the test otherwise. Each test gets its own root and daemon, so tests
// are independent and may run in parallel.
#pragma once

#include "support/audit_records.h"
#include "support/build_paths.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/io.h"
#include "support/scratch_root.h"
#include "support/unprivileged_child.h"

#include <bpfbroker/client.h>
#include <bpfbroker/unique_fd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::e2e {

using namespace std::chrono_literals;
using test_support::Millis;

// ---- from tests/support ----------------------------------------------------------

using test_support::kNobodyGid;
using test_support::kNobodyUid;

using test_support::ChildBody;
using test_support::ChildChannel;
using test_support::ChildFailure;
using test_support::ChildProcess;
using test_support::ChildResult;
using test_support::require;
using test_support::run_as_nobody;
using test_support::spawn_as;

using test_support::CommandResult;
using test_support::run_command;

using test_support::errno_text;

using test_support::build_dir;
using test_support::ctl_binary;
using test_support::daemon_binary;
using test_support::source_dir;

// Number of open fds of this process (/proc/self/fd, minus the listing's own).
std::size_t own_fd_count();

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
    // From now on read_message waits in recvmsg itself, as a plain blocking
    // client does, not in poll; a receive timeout (SO_RCVTIMEO) of 5 s
    // bounds each read instead of `timeout`.
    void wait_in_recvmsg();
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
    bool waits_in_poll_ = true;
    bool closed_ = false;
};

// The error name of a reply ("" for a success reply).
std::string error_name(const RawConnection::Message& m);
// parameters.reason of a reply, or "".
std::string error_reason(const RawConnection::Message& m);

// ---- audit log ---------------------------------------------------------------------

// One audit line "audit: action=... program=... decision=... reason=\"...\"" as fields.
// (tests/support/audit_records.h)
using test_support::AuditFields;
using test_support::parse_audit_line;

// The daemon's metrics text read through `client` every 20 ms until
// `settled(text)` holds or `timeout` passes; the last text read (a failed
// read fails the test and ends the wait).
std::string metrics_once(Client& client, const std::function<bool(const std::string&)>& settled, Millis timeout = 2s);

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
    // Where the daemon appends its audit lines (--audit-log); nullopt: a
    // file in the scratch root, which audit_records() reads.
    [[nodiscard]] virtual std::optional<std::string> audit_log_target() const { return std::nullopt; }
    // Environment for the daemon on top of the test's (e.g. LD_PRELOAD).
    [[nodiscard]] virtual std::map<std::string, std::string> daemon_env() const { return {}; }
    // Whether the daemon is started by a stand-in service manager (socket
    // activation, a notify socket, the fd store) instead of as a plain child.
    [[nodiscard]] virtual bool under_service_manager() const { return false; }
    // That stand-in, or null.
    [[nodiscard]] test_support::ServiceManagerStandin* service_manager() const { return service_manager_.get(); }

    [[nodiscard]] const std::string& root() const { return scratch_.root(); }
    [[nodiscard]] const std::string& socket_path() const { return socket_path_; }
    [[nodiscard]] const std::string& audit_log_path() const { return audit_log_; }
    [[nodiscard]] pid_t daemon_pid() const { return daemon_.pid(); }
    [[nodiscard]] std::string program_dir(const std::string& name) const;

    // Whether the daemon process is still alive (reaps it if it died).
    bool daemon_alive() { return daemon_.running(); }
    void signal_daemon(int signo) { daemon_.signal(signo); }
    // Kills the daemon with SIGKILL (it cleans nothing up) and starts it
    // again on the same root, logs and options; "" or what failed.
    std::string kill_and_restart_daemon();
    [[nodiscard]] std::string daemon_stderr() const { return daemon_.log(); }

    // Installs program `name` in etc/bpfbroker/programs.d: the object of the
    // shipped program `from` under its manifest renamed and changed by
    // `edit`, signed with the development key; then reloads as root.
    // Fails the test (ASSERT: call it through ASSERT_NO_FATAL_FAILURE).
    void install_signed_variant(const std::string& from, const std::string& name,
                                const std::function<void(nlohmann::json&)>& edit);

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
    test_support::ScratchRoot scratch_;  // root, audit log, daemon log
    test_support::DaemonProcess daemon_;
    test_support::DaemonOptions daemon_options_;
    std::unique_ptr<test_support::ServiceManagerStandin> service_manager_;
    std::string socket_path_;
    // Starts daemon_ with daemon_options_ and waits until it accepts; "" or why not.
    std::string start_daemon();
    std::string audit_log_;
    std::size_t own_fds_at_start_ = 0;
};

}  // namespace bpfbroker::e2e
