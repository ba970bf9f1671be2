// Who asks and how, for every request the core decides: the transport as an
// enum, the peer as the kernel (SO_PEERCRED) or the bus recorded it, and on
// D-Bus the caller's unique bus name (polkit's subject). Nothing here comes
// from the request's own bytes.
#pragma once

#include "policy/decide.h"

#include <string>
#include <string_view>

namespace bpfbroker::brokerd {

enum class TransportKind {
    Socket,  // the direct Varlink socket: no polkit subject that cannot be raced
    Dbus,    // org.bpfbroker.Broker1 on the system bus
    Signal,  // SIGHUP from the service manager (reload only)
};

// "socket", "dbus", "signal": the audit log's transport field.
std::string_view transport_name(TransportKind kind);

struct RequestContext {
    TransportKind transport = TransportKind::Socket;
    policy::Peer peer;
    std::string bus_name;           // D-Bus only: the caller's unique name
    bool polkit_reachable = false;  // this transport can ask polkit for this caller
    // Socket only: the kernel's pidfd of the peer (SO_PEERPIDFD, taken at
    // accept), owned by the connection; -1 when there is none. It backs
    // peer.pid for caller.tgid bindings and tells the broker of the exit.
    int caller_pidfd = -1;

    // The caller's identity for logs: "uid 65534 (nobody)".
    [[nodiscard]] std::string describe_peer() const;
};

}  // namespace bpfbroker::brokerd
