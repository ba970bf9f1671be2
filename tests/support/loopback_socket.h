// A UDP socket bound to 127.0.0.1:0 that sends datagrams to itself, with a
// short receive timeout: what the end-to-end tests attach socket filters to,
// to see whether a filter passes, drops or counts. Fails the running child
// (require()) when a system call fails.
#pragma once

#include <bpfbroker/unique_fd.h>

#include <netinet/in.h>

#include <cstddef>

namespace bpfbroker::test_support {

struct LoopbackSocket {
    UniqueFd fd;
    sockaddr_in addr{};

    LoopbackSocket();
    // Sends a datagram to itself; true when it came through the filter.
    bool round_trip();
    // Sends `count` datagrams of `size` bytes to itself; returns how many
    // arrived (a dropped one is waited for 300 ms).
    unsigned send_and_receive(unsigned count, std::size_t size = 100);
};

}  // namespace bpfbroker::test_support
