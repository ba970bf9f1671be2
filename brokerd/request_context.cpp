// Request contexts; see request_context.h.
#include "brokerd/request_context.h"

namespace bpfbroker::brokerd {

std::string_view transport_name(TransportKind kind)
{
    switch (kind) {
    case TransportKind::Socket:
        return "socket";
    case TransportKind::Dbus:
        return "dbus";
    case TransportKind::Signal:
        return "signal";
    }
    return "unknown";
}

std::string RequestContext::describe_peer() const
{
    std::string who = "uid " + std::to_string(peer.uid);
    if (!peer.user_name.empty())
        who += " (" + peer.user_name + ")";
    return who;
}

}  // namespace bpfbroker::brokerd
