// bpfbrokerd's life cycle: options, logging choice, socket activation,
// readiness, signals, and the transports around one Broker.
#pragma once

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

// Runs until SIGTERM/SIGINT; returns the process exit code.
int run_daemon(const DaemonOptions& options);

}  // namespace bpfbroker::brokerd
