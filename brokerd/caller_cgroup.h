// The cgroup v2 id of a caller, for parameters bound to caller.cgroup_id
// (what bpf_get_current_cgroup_id() returns in the caller's tasks). Taken
// from the kernel's word: /proc/PID/cgroup's unified line, the directory's
// file handle on the cgroup2 mount (a cgroup2 handle is its 64-bit id), and
// a check afterwards that the pidfd's process is still alive, so PID was
// not reused for another process while we read.
#pragma once

#include <bpfbroker/result.h>

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bpfbroker::brokerd {

// Where a cgroup2 hierarchy is mounted: unified, or hybrid systemd layout.
inline const std::vector<std::string> kCgroup2Roots{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};

// Unsupported when no cgroup2 hierarchy is mounted at any of `roots`;
// SystemError (errno) when /proc or the cgroup cannot be read (also when
// the process was reaped already); InvalidParameter when the process behind
// `pidfd` exited while we read.
Result<std::uint64_t> caller_cgroup_id(int pidfd, pid_t pid, const std::vector<std::string>& roots = kCgroup2Roots);

}  // namespace bpfbroker::brokerd
