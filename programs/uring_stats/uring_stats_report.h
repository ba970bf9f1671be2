// Reading uring_stats's maps (layouts in uring_stats.h) through the
// read-only fds the broker hands out, and showing them: a table for people,
// JSON for scripts. Used by `bpfbrokerctl uring-stats` and the example UDP
// server, so both name opcodes and errors the same way.
#pragma once

#include <bpfbroker/result.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bpfbroker::uring_stats {

struct OpcodeCounts {
    unsigned opcode = 0;
    std::string name;  // "NOP", from the running kernel's BTF; "OP_N" when unknown
    std::uint64_t submitted = 0;
    std::uint64_t completed = 0;
};

struct ErrnoCount {
    int error = 0;     // a CQE's -res
    std::string name;  // "ECANCELED"; "E<N>" when glibc has no name
    std::uint64_t completions = 0;
};

// Requests whose first completion came [min_ns, max_ns) after submission.
struct LatencyBucket {
    std::uint64_t min_ns = 0;
    std::uint64_t max_ns = 0;
    std::uint64_t requests = 0;
};

// The counters at one moment; only entries that are not zero, in key order.
struct Snapshot {
    std::vector<OpcodeCounts> ops;
    std::vector<ErrnoCount> errors;
    std::vector<LatencyBucket> latency;
};

// Reads the three maps (one lookup per key: arrays of 256, 4096 and 64).
// SystemError naming the map when a lookup fails.
Result<Snapshot> read_snapshot(int ops_fd, int errors_fd, int latency_fd);

// The kernel's name of an io_uring opcode without "IORING_OP_", read once
// from /sys/kernel/btf/vmlinux (so opcodes newer than our headers have
// names too); "OP_N" when the kernel has no BTF or no such opcode.
std::string opcode_name(unsigned opcode);

// {"ops": {NAME: {"opcode", "submitted", "completed"}}, "errors": {NAME:
// {"errno", "completions"}}, "latency": [{"min_ns", "max_ns", "requests"}]}
nlohmann::json to_json(const Snapshot& s);

// Three small tables, each line indented by `indent`; "no io_uring
// requests" when there is nothing at all.
std::string to_table(const Snapshot& s, const std::string& indent = "");

}  // namespace bpfbroker::uring_stats
