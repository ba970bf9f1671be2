// Loopback UDP socket helpers for the real-path program tests.
#include "loopback_udp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <cerrno>
#include <vector>

namespace bpfbroker::test {

bool ipv6_loopback_available()
{
    return bind_loopback_udp(IpFamily::v6).valid();
}

std::optional<SocketAddress> make_address(IpFamily family, const std::string& address,
                                          std::uint16_t port)
{
    SocketAddress out;
    if (family == IpFamily::v4) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&out.storage);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        if (::inet_pton(AF_INET, address.c_str(), &sin->sin_addr) != 1)
            return std::nullopt;
        out.length = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        if (::inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) != 1)
            return std::nullopt;
        out.length = sizeof(sockaddr_in6);
    }
    return out;
}

UniqueFd bind_udp(IpFamily family, const std::string& address, std::uint16_t port,
                  UdpBindOptions options)
{
    auto bound = make_address(family, address, port);
    if (!bound) {
        errno = EINVAL;
        return UniqueFd();
    }
    UniqueFd fd(::socket(bound->storage.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd)
        return fd;
    int one = 1;
    if (options.reuseport &&
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        return UniqueFd();
    int v6only = options.v6only ? 1 : 0;
    if (family == IpFamily::v6 &&
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0)
        return UniqueFd();
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&bound->storage), bound->length) != 0)
        return UniqueFd();
    return fd;
}

UniqueFd bind_loopback_udp(IpFamily family, std::uint16_t port, UdpBindOptions options)
{
    return bind_udp(family, family == IpFamily::v4 ? "127.0.0.1" : "::1", port, options);
}

std::optional<SocketAddress> local_address(int fd)
{
    SocketAddress address;
    address.length = sizeof(address.storage);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address.storage), &address.length) != 0)
        return std::nullopt;
    return address;
}

std::uint16_t local_port(int fd)
{
    auto address = local_address(fd);
    if (!address)
        return 0;
    if (address->storage.ss_family == AF_INET)
        return ntohs(reinterpret_cast<const sockaddr_in*>(&address->storage)->sin_port);
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address->storage)->sin6_port);
}

bool send_datagram(int fd, const SocketAddress& to, std::size_t payload_len, char marker)
{
    std::vector<char> payload(payload_len, marker);
    ssize_t sent = ::sendto(fd, payload.data(), payload.size(), 0,
                            reinterpret_cast<const sockaddr*>(&to.storage), to.length);
    return sent == static_cast<ssize_t>(payload_len);
}

std::optional<Datagram> receive_datagram(int fd, std::chrono::milliseconds timeout)
{
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1)
        return std::nullopt;
    char buffer[65536];
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0)
        return std::nullopt;
    Datagram datagram;
    datagram.length = static_cast<std::size_t>(n);
    datagram.marker = n > 0 ? buffer[0] : 0;
    return datagram;
}

std::size_t drain_datagrams(int fd)
{
    std::size_t count = 0;
    char buffer[65536];
    while (::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT) >= 0)
        ++count;
    return count;
}

}  // namespace bpfbroker::test
