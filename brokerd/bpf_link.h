// The broker's attach of a broker-attached program (tracepoint,
// raw_tracepoint) on a caller's behalf. The result is the one fd of the new
// link: the daemon keeps no duplicate, because these links have no
// BPF_LINK_DETACH and closing the caller's fd must detach at once. Stopping
// a program while the caller holds its link is the revocation guard's job.
#pragma once

#include "brokerd/program_loader.h"

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <string>
#include <vector>

namespace bpfbroker::brokerd {

// Where the tracepoint ids are read from. The daemon does not mount tracefs
// itself: tracepoint programs need an administrator (or a unit's
// RequiresMountsFor=) to have it mounted; raw_tracepoint programs need nothing.
inline constexpr const char* kTracefsRoot = "/sys/kernel/tracing";

struct AttachOptions {
    std::string tracefs_root = kTracefsRoot;
};

// One link of a broker-attached instance: the caller's only fd of it.
struct AttachedLink {
    std::string program;  // the program's name, as in the manifest
    UniqueFd fd;          // CLOEXEC
};

// Attaches every program of the instance where its manifest says and
// returns the links in manifest order; on any failure the links made so far
// are closed (detached) again.
//   raw_tracepoint: BPF_RAW_TRACEPOINT_OPEN of the name (no tracefs needed);
//   tracepoint: the event id from tracefs, a perf event of it (all CPUs run
//     the program; the event itself is on CPU 0), and BPF_LINK_CREATE with
//     BPF_PERF_EVENT; the perf event's fd is closed, the link keeps it.
// Errors: Internal for a client-attached program (nothing is attached); Unsupported when tracefs is
// not mounted at options.tracefs_root or the kernel has no such tracepoint;
// SystemError (errno) when the kernel refuses the attach.
Result<std::vector<AttachedLink>> attach_for_caller(const LoadedInstance& instance, const AttachOptions& options = {});

}  // namespace bpfbroker::brokerd
