// A self-addressed loopback UDP socket; see loopback_socket.h.
#include "loopback_socket.h"

#include "io.h"
#include "unprivileged_child.h"

#include <sys/socket.h>

#include <cerrno>
#include <string>

namespace bpfbroker::test_support {

LoopbackSocket::LoopbackSocket()
{
    fd = UniqueFd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    require(fd.valid(), "socket: " + errno_text(errno));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    require(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "bind: " + errno_text(errno));
    socklen_t len = sizeof addr;
    require(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname");
    timeval tv{0, 300000};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

bool LoopbackSocket::round_trip()
{
    const char msg[] = "hello, filter";
    require(::sendto(fd.get(), msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
                static_cast<ssize_t>(sizeof msg),
            "sendto: " + errno_text(errno));
    char buf[64];
    return ::recv(fd.get(), buf, sizeof buf, 0) == static_cast<ssize_t>(sizeof msg);
}

unsigned LoopbackSocket::send_and_receive(unsigned count, std::size_t size)
{
    std::string payload(size, 'x');
    for (unsigned i = 0; i < count; ++i)
        require(::sendto(fd.get(), payload.data(), size, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
                    static_cast<ssize_t>(size),
                "sendto: " + errno_text(errno));
    unsigned received = 0;
    char buf[2048];
    while (::recv(fd.get(), buf, sizeof buf, 0) >= 0)
        ++received;
    return received;
}

}  // namespace bpfbroker::test_support
