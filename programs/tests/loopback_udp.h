// UDP sockets on the loopback interface, for tests that attach programs with
// SO_ATTACH_BPF / SO_ATTACH_REUSEPORT_EBPF and push real datagrams through the
// kernel's receive path.
//
// Loopback delivery is synchronous: sendto() runs the receive path (and so the
// attached program) in the sender's context, on the sender's CPU, before it
// returns. Tests rely on that for ordering, and prove a drop by sending a
// kept datagram after the dropped one and receiving the kept one first.
#pragma once

#include <bpfbroker/unique_fd.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace bpfbroker::test {

enum class IpFamily { v4, v6 };

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
};

// Whether ::1 is usable here (IPv6 may be disabled in a container).
bool ipv6_loopback_available();

struct UdpBindOptions {
    bool reuseport = false;  // set SO_REUSEPORT before bind
    bool v6only = true;      // IPV6_V6ONLY, for IPv6 sockets
};

// A SOCK_CLOEXEC UDP socket of `family` bound to `address` (a literal such as
// "127.0.0.1" or "::ffff:127.0.0.1") at `port` (0: any free port). Invalid,
// with errno set, on failure.
UniqueFd bind_udp(IpFamily family, const std::string& address, std::uint16_t port,
                  UdpBindOptions options = {});

// The same, bound to 127.0.0.1 or ::1.
UniqueFd bind_loopback_udp(IpFamily family, std::uint16_t port = 0, UdpBindOptions options = {});

// A socket address from a literal; nullopt if it is not one of `family`.
std::optional<SocketAddress> make_address(IpFamily family, const std::string& address,
                                          std::uint16_t port);
std::optional<SocketAddress> local_address(int fd);
std::uint16_t local_port(int fd);

// Sends `payload_len` bytes of `marker` to `to`; false (errno set) on failure.
bool send_datagram(int fd, const SocketAddress& to, std::size_t payload_len, char marker);

struct Datagram {
    std::size_t length = 0;
    char marker = 0;  // first byte, or 0 for an empty datagram
};

// The next datagram, or nullopt if none arrives within `timeout`.
std::optional<Datagram> receive_datagram(int fd, std::chrono::milliseconds timeout);

// How many datagrams are queued right now (reads them all, non-blocking).
std::size_t drain_datagrams(int fd);

}  // namespace bpfbroker::test
