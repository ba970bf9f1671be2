// The server's view of its own io_uring statistics, from uring_stats (a
// broker-attached program the daemon binds to the calling process): the
// map fds come from the environment when the server runs under
// `bpfbrokerctl uring-stats` or `exec uring_stats` (BPFBROKER_MAP_FDS; the
// links stay with that process), or from acquiring uring_stats itself. Not
// granted, or not there: the server says why and runs on without it.
#pragma once

#include "uring_stats_report.h"

#include <bpfbroker/client.h>
#include <bpfbroker/unique_fd.h>

#include <optional>
#include <string>

namespace bpfbroker::example {

class RingStats {
public:
    // Inherited fds if the environment names them, else an acquire on `client`.
    static RingStats open(Client& client);

    [[nodiscard]] bool available() const { return ops_ >= 0; }
    // Where the fds came from, or why there are none.
    [[nodiscard]] const std::string& description() const { return description_; }
    [[nodiscard]] Result<uring_stats::Snapshot> read() const;

private:
    std::optional<Program> acquired_;  // holds the links while the server runs
    UniqueFd inherited_[3];            // ops, errors, latency from BPFBROKER_MAP_FDS
    int ops_ = -1;
    int errors_ = -1;
    int latency_ = -1;
    std::string description_;
};

}  // namespace bpfbroker::example
