// D-Bus end-to-end test support: a private dbus-daemon of the system type
// (tests/dbus/system-bus.conf.in filled in), a real bpfbrokerd on a scratch
// root serving org.bpfbroker.Broker1 on it, optionally a real polkitd or a
// scripted stand-in authority on the same bus, forked children that drop to
// another uid, and helpers to run the stock D-Bus tools (busctl, gdbus).
//
// Everything needs root (loading BPF, dropping privileges, starting polkitd);
// the fixture skips each test otherwise. Each test gets its own bus, root and
// daemon and removes all of them (and every process it started) afterwards.
#pragma once

#include <bpfbroker/client.h>
#include <bpfbroker/unique_fd.h>

#include <gtest/gtest.h>
#include <sdbus-c++/sdbus-c++.h>

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bpfbroker::dbus_test {

using namespace std::chrono_literals;
using Millis = std::chrono::milliseconds;

inline constexpr uid_t kNobodyUid = 65534;
inline constexpr gid_t kNobodyGid = 65534;
// A second and third unprivileged uid. They must have passwd entries:
// dbus-daemon closes the connection of a uid it cannot look up (65533 has
// none on Debian), so these are the stock Debian accounts daemon and bin.
inline constexpr uid_t kOtherUid = 1;
inline constexpr gid_t kOtherGid = 1;
inline constexpr uid_t kThirdUid = 2;
inline constexpr gid_t kThirdGid = 2;

inline constexpr const char* kBusName = "org.bpfbroker.Broker1";
inline constexpr const char* kObjectPath = "/org/bpfbroker/Broker1";
inline constexpr const char* kInterface = "org.bpfbroker.Broker1";
inline constexpr const char* kPolkitBusName = "org.freedesktop.PolicyKit1";
inline constexpr const char* kPolkitPath = "/org/freedesktop/PolicyKit1/Authority";
inline constexpr const char* kPolkitInterface = "org.freedesktop.PolicyKit1.Authority";

// Paths baked in by CMake.
std::string daemon_binary();
std::string ctl_binary();
std::string build_dir();
std::string source_dir();

// "EACCES (Permission denied)".
std::string errno_text(int err);
std::string read_text_file(const std::string& path);
// The user name of `uid` as polkit shows it to rules: the passwd name, or the
// decimal uid when there is none.
std::string polkit_user_name(uid_t uid);

// ---- processes ---------------------------------------------------------------

// A child process this test started. Destroying it kills (SIGKILL) and reaps
// it if it still runs, so no test leaves a process behind.
class Process {
public:
    Process() = default;
    explicit Process(pid_t pid) : pid_(pid) {}
    Process(Process&& other) noexcept : pid_(std::exchange(other.pid_, -1)), status_(other.status_) {}
    Process& operator=(Process&& other) noexcept;
    ~Process() { kill_and_reap(); }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] bool running();  // reaps it when it has exited
    // waitpid status once reaped, -1 before.
    [[nodiscard]] int status() const { return status_; }
    // Sends `signo`, waits up to `grace` for the exit, then SIGKILL. Returns
    // true when it exited within the grace period (or had already exited).
    bool stop(int signo, Millis grace);
    // Waits for the exit (SIGKILL after `timeout`); true when it exited in time.
    bool wait_exit(Millis timeout);
    void kill_and_reap();

private:
    pid_t pid_ = -1;
    int status_ = -1;
};

struct SpawnOptions {
    std::vector<std::string> argv;                   // argv[0] is a path
    std::map<std::string, std::string> env;          // set on top of this process's environment
    std::string output_file;                         // stdout and stderr go here ("" = /dev/null)
    int notify_fd = -1;                              // passed to the child as fd 3
    // Runs in the child after fork, before exec; returns "" or what failed.
    std::function<std::string()> before_exec;
};

// fork + execve; throws std::runtime_error when fork fails.
Process spawn(const SpawnOptions& options);

struct CommandResult {
    bool exited = false;
    int exit_code = -1;
    bool timed_out = false;
    std::string out;
    std::string err;
    [[nodiscard]] bool ok() const { return exited && exit_code == 0; }
    [[nodiscard]] std::string describe() const;
};

// Runs a command with stdout and stderr captured; SIGKILL after `timeout`.
CommandResult run_command(const std::vector<std::string>& argv, Millis timeout = 30s);

// ---- children running as another uid ----------------------------------------

// Thrown by check() in a child: the child reports the message and exits 1.
struct ChildFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
};
void check(bool condition, const std::string& what);

struct ChildResult {
    bool exited = false;
    int exit_code = -1;
    bool timed_out = false;
    std::string report;
    [[nodiscard]] bool ok() const { return exited && exit_code == 0; }
    [[nodiscard]] std::string describe() const;
};

// A child that dropped to uid/gid (setgroups(0), setgid, setuid, proven) and
// runs `body`; its return value is the report. The child sees the same
// DBUS_SYSTEM_BUS_ADDRESS as the test. `messages` lines written by the child
// with tell_parent() are readable in the parent while it runs.
class Child {
public:
    Child() = default;
    Child(Child&&) noexcept = default;
    Child& operator=(Child&&) noexcept = default;

    [[nodiscard]] pid_t pid() const { return process_.pid(); }
    // The next line the child sent with tell_parent(); nullopt on timeout/EOF.
    std::optional<std::string> wait_message(Millis timeout = 20s);
    // Sends a line the child reads with wait_parent().
    void tell_child(const std::string& line);
    ChildResult wait(Millis timeout = 60s);
    // SIGKILL and reap, if still running.
    void kill() { process_.kill_and_reap(); }

    // In the child only.
    static void tell_parent(const std::string& line);
    static std::string wait_parent(Millis timeout = 20s);
    // The fd wait_parent() reads, for a child's own poll loop, and the next
    // line already there (nullopt when none is, without waiting).
    static int parent_fd();
    static std::optional<std::string> try_parent_line();

private:
    friend Child spawn_as(uid_t, gid_t, std::function<std::string()>);
    Process process_;
    UniqueFd report_;
    UniqueFd messages_;
    UniqueFd to_child_;
    std::string buffered_;
};

Child spawn_as(uid_t uid, gid_t gid, std::function<std::string()> body);
ChildResult run_as(uid_t uid, gid_t gid, std::function<std::string()> body, Millis timeout = 60s);

// ---- D-Bus helpers -------------------------------------------------------------

// The error name a call failed with, or "" when it succeeded.
std::string dbus_error_of(const std::function<void()>& call, std::string* message = nullptr);

// A proxy of org.bpfbroker.Broker1 on its own connection to the system bus
// (DBUS_SYSTEM_BUS_ADDRESS), with no event-loop thread: signals are collected
// while wait_for() pumps the connection. Records every signal of the
// interface, with the sender's unique name.
class BrokerBus {
public:
    struct Signal {
        std::string member;
        std::vector<std::string> args;  // strings as sent; numbers in decimal
        std::string sender;
        std::string path;
    };

    BrokerBus();
    ~BrokerBus();

    [[nodiscard]] sdbus::IConnection& connection() { return *connection_; }
    [[nodiscard]] sdbus::IProxy& proxy() { return *proxy_; }
    [[nodiscard]] std::string unique_name() const { return connection_->getUniqueName(); }
    // The unique name that owns `name` now, or "".
    std::string owner_of(const std::string& name);

    // Pumps the connection until `done()` or the timeout; returns done().
    bool wait_for(const std::function<bool()>& done, Millis timeout = 10s);
    // Processes whatever has arrived, without waiting.
    void drain();
    [[nodiscard]] const std::vector<Signal>& signals() const { return signals_; }
    // Signals of that member received so far.
    [[nodiscard]] std::vector<Signal> signals_named(const std::string& member) const;

private:
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> proxy_;
    std::vector<Signal> signals_;
};

// ---- the bus and the daemon ------------------------------------------------------

// What the fixture starts besides dbus-daemon and bpfbrokerd.
enum class PolkitMode {
    None,     // nothing owns org.freedesktop.PolicyKit1
    Real,     // /usr/lib/polkit-1/polkitd with this test's action and rules files
};

// Starts a private system-type bus and a bpfbrokerd on a scratch root before
// each test, and removes everything after.
class BusFixture : public ::testing::Test {
protected:
    void SetUp() override;
    void TearDown() override;

    // Derived fixtures choose; called at the start of SetUp.
    [[nodiscard]] virtual PolkitMode polkit_mode() const { return PolkitMode::None; }
    // The JS rules polkitd reads (PolkitMode::Real).
    [[nodiscard]] virtual std::string polkit_rules() const { return ""; }
    // Called once the bus runs, before bpfbrokerd starts (e.g. to start a
    // stand-in authority). Returns "" or why the test cannot go on.
    virtual std::string before_daemon() { return ""; }

    [[nodiscard]] const std::string& scratch() const { return base_; }
    [[nodiscard]] const std::string& root() const { return root_; }
    [[nodiscard]] const std::string& bus_socket() const { return bus_socket_; }
    // "unix:path=..."
    [[nodiscard]] std::string bus_address() const { return "unix:path=" + bus_socket_; }
    [[nodiscard]] std::string daemon_log() const;
    [[nodiscard]] std::string polkitd_log() const;
    [[nodiscard]] bool daemon_running() { return daemon_.running(); }
    [[nodiscard]] pid_t daemon_pid() const { return daemon_.pid(); }

    // Waits until `name` has an owner on the private bus; false on timeout.
    bool wait_for_name(const std::string& name, Millis timeout = 20s);

    // Approves as root over D-Bus (Client::connect_dbus()); the manifest hash.
    std::string approve_as_root(const std::string& program, const ApproveOptions& options);

    // Lines of the audit log (--audit-log).
    [[nodiscard]] std::vector<std::string> audit_lines() const;
    // Whether one audit line has all these fields (key=value, quoted or not).
    [[nodiscard]] bool audited(const std::map<std::string, std::string>& fields) const;

private:
    void start_bus();
    void start_daemon();
    std::string prepare_polkit_files();
    void start_polkitd();
    void remove_host_polkit_files();

    std::string base_;
    std::string root_;
    std::string bus_socket_;
    std::string bus_config_;
    std::optional<std::string> saved_bus_address_;
    bool had_saved_bus_address_ = false;
    Process bus_;
    Process daemon_;
    bool daemon_started_ = false;
    Process polkitd_;
    // Real polkit: files polkitd reads. In a private mount namespace (the
    // default) they are bind-mounted over the real directories for polkitd
    // alone; in host mode they are written to the real directories and
    // removed afterwards (only those this test created).
    bool polkit_namespace_ = true;
    UniqueFd polkit_lock_;
    std::vector<std::pair<std::string, std::pair<dev_t, ino_t>>> host_files_created_;
};

// Whether polkitd can run here at all (binary present, its user exists).
std::string polkitd_unavailable_reason();

}  // namespace bpfbroker::dbus_test
