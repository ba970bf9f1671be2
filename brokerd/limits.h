// Every bound the daemon puts on what callers control, in one place, each
// default written once. The bounds an administrator may change come from
// the settings file (policy::Settings holds their defaults and ranges);
// the rest are fixed here. A Limits follows the current policy snapshot:
// the socket server rebuilds it after each reload.
#pragma once

#include "policy/settings.h"

#include <chrono>
#include <cstddef>

namespace bpfbroker::brokerd {

struct Limits {
    // ---- from the settings file ----
    std::size_t max_message_bytes;
    unsigned max_connections_per_uid;
    unsigned max_connections_total;
    unsigned requests_per_second;  // sustained, per connection (and per uid for acquires); bursts to the same
    std::chrono::milliseconds partial_message_timeout;  // unfinished message or unread replies
    // (max_instances_per_uid stays in policy::Settings::limits: decide() reads it.)

    // ---- fixed ----
    std::size_t max_queued_reply_bytes = 1 << 20;  // per connection
    // Replies waiting to be read hold fds: bounded per connection, per uid
    // and in total, so a client that never reads cannot exhaust the
    // daemon's fd table and lock everyone else out.
    std::size_t max_queued_fds_per_connection = 16;
    std::size_t max_queued_fds_per_uid = 64;
    std::size_t max_queued_fds_total = 4096;
    // Per wakeup of the socket loop: a connect flood cannot keep the loop
    // from reading other connections.
    unsigned max_accepts_per_wakeup = 32;

    // Fixed bounds of components that hold them as constants.
    static constexpr std::size_t kAuditFieldBytes = 256;       // per audit record field
    static constexpr unsigned kPolkitPendingPerUid = 4;        // polkit checks waiting per uid
    static constexpr std::size_t kRateTrackedUids = 65536;     // acquire rate and refusal record buckets
    static constexpr unsigned kRefusalRecordsPerSecond = 20;   // records of refusals that cost no token, per uid
    static constexpr unsigned kListingsPerSecond = 20;         // ListPrograms per uid but root (each judges the catalog)
    static constexpr std::size_t kThrottledWarningKeys = 1024; // distinct throttled warnings
    static constexpr std::size_t kCachedNames = 4096;          // user and group names cached
    static constexpr std::size_t kCachedBusCallers = 4096;     // D-Bus callers' credentials cached
    static constexpr std::size_t kNameWaitsPerUid = 16;        // D-Bus calls waiting for names, per uid
    static constexpr std::size_t kNameWaitsTotal = 256;        // D-Bus calls waiting for names, all uids
    static constexpr std::size_t kChosenParameters = 64;       // chosen values in one acquire
    static constexpr std::size_t kApproveNames = 1024;         // users or groups in one Approve
    static constexpr std::size_t kVerifiedObjectBytes = 4 << 20;  // objects kept for the next load

    explicit Limits(const policy::Settings& settings = policy::Settings{})
        : max_message_bytes(settings.max_message_bytes),
          max_connections_per_uid(settings.max_connections_per_uid),
          max_connections_total(settings.max_connections_total),
          requests_per_second(settings.max_requests_per_second),
          partial_message_timeout(settings.stalled_client_timeout_ms)
    {
    }
};

}  // namespace bpfbroker::brokerd
