// bpfbrokerctl: administer bpfbroker (keys, signatures, catalog, approvals)
// and acquire programs from the daemon as a user.
#include "commands.h"

#include <iostream>

int main(int argc, char** argv)
{
    using namespace bpfbroker::ctl;
    CLI::App app{"bpfbrokerctl - sign, inspect, approve and acquire BPF programs managed by bpfbrokerd"};
    app.require_subcommand(1);
    GlobalOptions options;
    app.add_option("--root", options.root, "Root directory holding usr/lib/bpfbroker, etc/bpfbroker, var/lib/bpfbroker")
        ->check(CLI::ExistingDirectory);
    app.add_option("--socket", options.socket_path, "bpfbrokerd's socket (default ROOT/run/bpfbroker/org.bpfbroker.Broker)");
    app.add_option("--bus", options.bus, "How to reach bpfbrokerd: the direct socket, or D-Bus on the system bus")
        ->check(CLI::IsMember({"socket", "system"}));
    app.add_flag("--json", options.json, "Print machine-readable JSON on stdout");
    app.add_flag("--trust-own-files", options.trust_own_files,
                 "Accept policy files owned by the invoking user instead of root (development only)");

    int exit_code = kExitOk;
    add_signing_commands(app, options, exit_code);
    add_catalog_commands(app, options, exit_code);
    add_daemon_commands(app, options, exit_code);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? kExitOk : kExitUsage;
    }
    return exit_code;
}
