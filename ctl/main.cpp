// bpfbrokerctl: administer bpfbroker (keys, signatures, catalog, approvals)
// and acquire programs from the daemon as a user.
#include "commands.h"

#include <bpfbroker_version.h>

#include <iostream>

namespace {

// Usage errors are raised before --json is bound, so look for it in argv
// itself (up to "--", after which words belong to the command `exec` or
// `uring-stats` runs).
bool json_requested(int argc, char** argv)
{
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--")
            return false;
        if (arg == "--json")
            return true;
    }
    return false;
}

}  // namespace

int main(int argc, char** argv)
{
    using namespace bpfbroker::ctl;
    CLI::App app{"bpfbrokerctl - sign, inspect, approve and acquire BPF programs managed by bpfbrokerd"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "bpfbrokerctl " BPFBROKER_VERSION);
    // Subcommands inherit this: options they do not know (the global ones
    // below) fall through to the app, so they work after the subcommand too.
    app.fallthrough();
    GlobalOptions options;
    app.add_option("--root", options.root, "Root directory holding usr/lib/bpfbroker, etc/bpfbroker, var/lib/bpfbroker")
        ->check(CLI::ExistingDirectory);
    app.add_option("--socket", options.socket_path, "bpfbrokerd's socket (default ROOT/run/bpfbroker/org.bpfbroker.Broker)");
    app.add_option("--bus", options.bus, "How to reach bpfbrokerd: the direct socket, or D-Bus on the system bus")
        ->check(CLI::IsMember({"socket", "system"}));
    app.add_flag("--json", options.json, "Print machine-readable JSON on stdout, and errors as JSON on stderr");
    app.add_flag("--trust-own-files", options.trust_own_files,
                 "Accept policy files owned by the invoking user instead of root (development only)");
    report_errors_as_json_when(options.json);

    int exit_code = kExitOk;
    add_signing_commands(app, options, exit_code);
    add_catalog_commands(app, options, exit_code);
    add_grants_commands(app, options, exit_code);
    add_daemon_commands(app, options, exit_code);
    add_uring_stats_command(app, options, exit_code);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0)  // --help, --version
            return app.exit(e);
        if (json_requested(argc, argv))
            return report_error(bpfbroker::make_error(bpfbroker::ErrorCode::InvalidParameter, e.what()), kExitUsage);
        app.exit(e);
        return kExitUsage;
    }
    return exit_code;
}
