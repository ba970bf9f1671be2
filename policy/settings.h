// Daemon settings, etc/bpfbroker/bpfbroker.json (admin-owned, optional).
// Unknown fields are errors, like every policy file:
//   { "vendor_allowlists": true, "polkit": true,
//     "limits": { "max_instances_per_uid": 16, "max_connections_per_uid": 32, "max_connections_total": 1024,
//                 "max_message_bytes": 65536, "max_requests_per_second": 200,
//                 "stalled_client_timeout_ms": 10000 },
//     "attach_points": { "tracepoint": ["sched/sched_process_exit"], "raw_tracepoint": ["sched_*"] } }
// attach_points widen (never narrow) the io_uring attach points manifests of
// broker-attached programs may name; "*" at the end of an entry matches a prefix.
#pragma once

#include "policy/decide.h"
#include "policy/secure_file.h"

#include <bpfbroker/result.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace bpfbroker::policy {

struct Settings {
    bool vendor_allowlists = true;   // honour grants shipped in usr/lib allowlist.d
    bool polkit = true;              // ask polkit where a grant or admin call needs it
    Limits limits;
    unsigned max_connections_per_uid = 32;
    unsigned max_connections_total = 1024;
    std::size_t max_message_bytes = 64 * 1024;
    // Per socket connection for every call, and per uid for acquires over
    // both transports (each may load a program). Sustained; bursts to the same.
    unsigned max_requests_per_second = 200;
    unsigned stalled_client_timeout_ms = 10000;  // unfinished message or unread replies
    AllowedAttachPoints attach_points;           // io_uring's, plus what the file adds
};

inline constexpr std::size_t kMaxExtraAttachPoints = 64;

Result<Settings> parse_settings(std::string_view bytes);

// Reads etc/bpfbroker/bpfbroker.json below an opened root; absent means defaults.
Result<Settings> load_settings(int rootfd, const FileTrust& trust);

// Reads settings from an explicit file (bpfbrokerd --config); the file and
// its directory are checked like every policy file.
Result<Settings> load_settings_file(const std::string& path, const FileTrust& trust);
}  // namespace bpfbroker::policy
