// Running a command with an acquired program's fds inherited, as
// `bpfbrokerctl exec` and `uring-stats` do: the environment says where they
// are (BPFBROKER_PROGRAM=name, BPFBROKER_PROGRAM_FD=N for client-attached
// programs, BPFBROKER_LINK_FDS=name:N,... for broker-attached ones,
// BPFBROKER_MAP_FDS=name:N,...). exec keeps the process, so a
// broker-attached program's caller is the command itself.
#pragma once

#include <bpfbroker/client.h>

#include <string>
#include <vector>

namespace bpfbroker::ctl {

// Makes the fds inheritable, sets the environment and execs `command`
// (looked up in PATH). Returns only on failure, with the exit code to use
// (127: the command cannot be run) after reporting why.
int exec_with_program(const Program& p, const std::vector<std::string>& command);

}  // namespace bpfbroker::ctl
