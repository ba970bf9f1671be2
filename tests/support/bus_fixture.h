// D-Bus end-to-end test support: a private dbus-daemon of the system type
// (tests/dbus/system-bus.conf.in filled in), a real bpfbrokerd on a scratch
// root serving org.bpfbroker.Broker1 on it, optionally a real polkitd or a
// scripted stand-in authority on the same bus, and helpers for calls and
// signals over it: the fixture of the D-Bus suite (tests/dbus), built on the
// pieces beside it in tests/support that both suites use (scratch root,
// daemon process, children running as another uid, commands such as busctl
// and gdbus).
//
// Everything needs root (loading BPF, dropping privileges, starting polkitd);
// the fixture skips each test otherwise. Each test gets its own bus, root and
// daemon and removes all of them (and every process it started) afterwards.
#pragma once

#include "support/audit_records.h"
#include "support/build_paths.h"
#include "support/command.h"
#include "support/daemon_process.h"
#include "support/io.h"
#include "support/process.h"
#include "support/scratch_root.h"
#include "support/unprivileged_child.h"

#include <bpfbroker/client.h>
#include <bpfbroker/interface.h>
#include <bpfbroker/unique_fd.h>

#include <gtest/gtest.h>
#include <sdbus-c++/sdbus-c++.h>

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <string>
#include <utility>
#include <vector>

namespace bpfbroker::dbus_test {

using namespace std::chrono_literals;
using test_support::Millis;

using test_support::kNobodyGid;
using test_support::kNobodyUid;
// A second and third unprivileged uid. They must have passwd entries:
// dbus-daemon closes the connection of a uid it cannot look up (65533 has
// none on Debian), so these are the stock Debian accounts daemon and bin.
inline constexpr uid_t kOtherUid = 1;
inline constexpr gid_t kOtherGid = 1;
inline constexpr uid_t kThirdUid = 2;
inline constexpr gid_t kThirdGid = 2;

inline constexpr const char* kBusName = kDbusBusName;
inline constexpr const char* kObjectPath = kDbusObjectPath;
inline constexpr const char* kInterface = kDbusInterface;
inline constexpr const char* kPolkitBusName = "org.freedesktop.PolicyKit1";
inline constexpr const char* kPolkitPath = "/org/freedesktop/PolicyKit1/Authority";
inline constexpr const char* kPolkitInterface = "org.freedesktop.PolicyKit1.Authority";

// ---- from tests/support ----------------------------------------------------------

using test_support::build_dir;
using test_support::ctl_binary;
using test_support::daemon_binary;
using test_support::source_dir;

using test_support::errno_text;
using test_support::read_text_file;
using test_support::tail;

using test_support::Process;
using test_support::spawn;
using test_support::SpawnOptions;

using test_support::CommandResult;
// Runs a command with stdout and stderr captured; SIGKILL after `timeout`
// (30 s by default in this suite).
inline CommandResult run_command(const std::vector<std::string>& argv, Millis timeout = 30s)
{
    return test_support::run_command(argv, timeout);
}

// Children running as another uid. A child's body may take the
// ChildChannel& to talk to the test while it runs. The child sees the same
// DBUS_SYSTEM_BUS_ADDRESS as the test.
using test_support::ChildChannel;
using test_support::ChildFailure;
using test_support::ChildResult;
using test_support::run_as;
using test_support::spawn_as;
using Child = test_support::ChildProcess;
// Fails the running child with `what` unless `condition` holds.
inline void check(bool condition, const std::string& what)
{
    test_support::require(condition, what);
}

// The user name of `uid` as polkit shows it to rules: the passwd name, or the
// decimal uid when there is none.
std::string polkit_user_name(uid_t uid);

// ---- D-Bus helpers -------------------------------------------------------------

// The error name a call failed with, or "" when it succeeded.
std::string dbus_error_of(const std::function<void()>& call, std::string* message = nullptr);

// AcquireProgram's (h program, a{sh} maps, a{sv} info).
using AcquireReply = std::tuple<sdbus::UnixFd, std::map<std::string, sdbus::UnixFd>, std::map<std::string, sdbus::Variant>>;

// AcquireProgram through a raw proxy on `connection` (or a new connection to
// the system bus): the error name the bus carried ("" on success), its
// message, the reply.
std::string raw_acquire(sdbus::IConnection& connection, const std::string& program, std::string* message = nullptr,
                        AcquireReply* reply = nullptr);
std::string raw_acquire(const std::string& program, std::string* message = nullptr, AcquireReply* reply = nullptr);

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

// A child as uid/gid that tells the parent its unique bus name, then
// acquires `program` with raw_acquire: reports "ok" (a program fd came) or
// "ERROR <name>: <message>".
Child spawn_acquirer(uid_t uid, gid_t gid, const std::string& program);

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
    // False: lay out the demo root but start no bpfbrokerd process (the
    // test serves the bus in process).
    [[nodiscard]] virtual bool runs_daemon_process() const { return true; }
    // Environment for bpfbrokerd on top of the test's (e.g. LD_PRELOAD).
    [[nodiscard]] virtual std::map<std::string, std::string> daemon_env() const { return {}; }

    [[nodiscard]] const std::string& scratch() const { return scratch_.base(); }
    [[nodiscard]] const std::string& root() const { return scratch_.root(); }
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
    // approve_as_root() for uid 65534 ("nobody") only; the manifest hash.
    std::string approve_for_nobody(const std::string& program);
    // approve_as_root() for anyone, polkit required (org.bpfbroker.acquire); the manifest hash.
    std::string approve_for_anyone_with_polkit(const std::string& program);

    // Lines of the audit log (--audit-log).
    [[nodiscard]] std::vector<std::string> audit_lines() const;
    // Whether one audit record has all these fields with these values.
    [[nodiscard]] bool audited(const std::map<std::string, std::string>& fields) const;

private:
    void start_bus();
    void start_daemon();
    std::string prepare_polkit_files();
    void start_polkitd();
    void remove_host_polkit_files();

    test_support::ScratchRoot scratch_;  // root, bus socket, logs, polkit files
    std::string bus_socket_;
    std::string bus_config_;
    std::optional<std::string> saved_bus_address_;
    bool had_saved_bus_address_ = false;
    Process bus_;
    test_support::DaemonProcess daemon_;
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
