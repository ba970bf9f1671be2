// What the daemon says about a program it hands out: the "info" of an
// AcquireProgram reply on both transports, as the client library returns it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace bpfbroker {

struct ProgramInfo {
    std::string name;
    std::string version;
    std::string type;      // "socket_filter", "sk_reuseport", "tracepoint", "raw_tracepoint"
    std::string instance;  // "shared" or "per-client"
    std::uint32_t id = 0;  // kernel program id
    std::string tag;       // kernel program tag, hex
    std::map<std::string, std::string> map_access;  // map name -> "read" / "write"
    std::string attach;    // broker-attached only: the attach point, e.g. "io_uring/io_uring_complete"
    std::map<std::string, std::uint64_t> parameters;  // .rodata variable -> value the broker wrote
    bool operator==(const ProgramInfo&) const = default;
};

}  // namespace bpfbroker
