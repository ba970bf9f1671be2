// Running a command to completion with its output captured.
#pragma once

#include "io.h"

#include <string>
#include <vector>

namespace bpfbroker::test_support {

struct CommandResult {
    bool exited = false;  // exited normally (not killed, not timed out)
    int exit_code = -1;
    bool timed_out = false;
    std::string out;
    std::string err;  // ends with "(killed after the timeout)" when it timed out
    [[nodiscard]] bool ok() const { return exited && exit_code == 0; }
    [[nodiscard]] std::string describe() const;  // for assertion messages
};

// fork + execvp (argv[0] is looked up in PATH unless it has a slash), stdin
// from /dev/null, stdout and stderr captured; SIGKILL after `timeout`.
CommandResult run_command(const std::vector<std::string>& argv, Millis timeout = 60s);

}  // namespace bpfbroker::test_support
