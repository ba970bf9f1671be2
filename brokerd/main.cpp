// bpfbrokerd: loads signed, approved BPF programs and hands their fds to
// unprivileged clients over a Varlink socket and D-Bus.
#include "brokerd/log.h"
#include "brokerd/manager.h"

#include <bpfbroker_version.h>

#include <CLI/CLI.hpp>
#include <systemd/sd-daemon.h>

#include <cstdio>
#include <cstring>
#include <exception>

int main(int argc, char** argv)
{
    using namespace bpfbroker::brokerd;
    DaemonOptions o;
    CLI::App app{"bpfbrokerd - hands verified, approved BPF programs to unprivileged io_uring users"};
    app.set_version_flag("--version", "bpfbrokerd " BPFBROKER_VERSION);
    app.add_option("--root", o.root, "Root of the policy tree (usr/lib/bpfbroker, etc/bpfbroker, var/lib/bpfbroker, run/bpfbroker)")
        ->check(CLI::ExistingDirectory);
    app.add_option("--socket", o.socket_path, "Path of the Varlink socket (default ROOT/run/bpfbroker/org.bpfbroker.Broker)");
    app.add_option("--config", o.settings_file, "Settings file (default ROOT/etc/bpfbroker/bpfbroker.json)");
    app.add_option("--audit-log", o.audit_file,
                   "Also append audit records to this file (it must open; a record it refuses stops that hand-out)");
    app.add_flag("--foreground", o.foreground, "Log to stderr even when started by systemd");
    app.add_flag("--trust-own-files", o.trust_own_files,
                 "Accept policy files owned by the daemon's own uid instead of root (tests and demos only)");
    app.add_flag("!--no-dbus", o.dbus, "Do not serve D-Bus even when a bus is available");
    CLI11_PARSE(app, argc, argv);
    try {
        auto manager = Manager::start(o);
        if (!manager) {
            const bpfbroker::Error& e = manager.error();
            log_error(e.sys_errno ? e.message + ": " + std::strerror(e.sys_errno) : e.message);
            return 1;
        }
        sd_notify(0, "READY=1\nSTATUS=Serving");
        auto result = (*manager)->run();
        sd_notify(0, "STOPPING=1");
        manager->reset();
        if (!result) {
            log_error(result.error().describe());
            return 1;
        }
        log_info("stopped");
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bpfbrokerd: fatal: %s\n", e.what());
        return 1;
    }
}
