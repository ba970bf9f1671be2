// Subcommand families of bpfbrokerctl. Each adds its subcommands to the app;
// their callbacks store the process exit code in `exit_code`.
#pragma once

#include "output.h"

#include <CLI/CLI.hpp>

namespace bpfbroker::ctl {

void add_signing_commands(CLI::App& app, GlobalOptions& options, int& exit_code);  // keygen, sign, verify
void add_catalog_commands(CLI::App& app, GlobalOptions& options, int& exit_code);  // catalog
void add_grants_commands(CLI::App& app, GlobalOptions& options, int& exit_code);   // grants
void add_daemon_commands(CLI::App& app, GlobalOptions& options, int& exit_code);   // list, acquire, approve, ...
void add_uring_stats_command(CLI::App& app, GlobalOptions& options, int& exit_code);  // uring-stats

}  // namespace bpfbroker::ctl
