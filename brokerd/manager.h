// bpfbrokerd's manager: owns everything the daemon runs (audit log, Broker,
// the socket server, the D-Bus service, the signal fd) and their order of
// start and stop. main() parses options, starts a Manager and runs it.
#pragma once

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <memory>
#include <string>

namespace bpfbroker::brokerd {

struct DaemonOptions {
    std::string root = "/";
    std::string socket_path;        // default <root>/run/bpfbroker/org.bpfbroker.Broker
    std::string settings_file;      // default <root>/etc/bpfbroker/bpfbroker.json
    std::string audit_file;         // also append audit lines here
    bool foreground = false;        // log to stderr even under systemd
    bool trust_own_files = false;   // policy files owned by our euid (tests, demo)
    bool dbus = true;               // also serve org.bpfbroker.Broker1 when a bus exists
};

class AuditLog;
class Broker;
class DbusService;
class VarlinkServer;

class Manager {
public:
    // Chooses the log, blocks the signals it serves, probes the kernel,
    // loads the policy, listens (or takes systemd's socket) and starts
    // D-Bus when a bus is there. The error says what failed, to log once.
    static Result<std::unique_ptr<Manager>> start(const DaemonOptions& options);
    ~Manager();  // stops D-Bus, removes the socket file it created
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;

    // Serves until SIGTERM or SIGINT; SIGHUP reloads the policy.
    Result<void> run();

private:
    Manager() = default;

    UniqueFd signals_;
    std::unique_ptr<AuditLog> audit_;
    std::unique_ptr<Broker> broker_;
    std::unique_ptr<VarlinkServer> server_;
    std::unique_ptr<DbusService> dbus_;
    std::string socket_path_;
    bool created_socket_ = false;
};

}  // namespace bpfbroker::brokerd
