// Every name of bpfbroker's interfaces, in one place: the Varlink interface
// and the socket it is served on, the D-Bus name, object and interface, and
// the polkit actions. The daemon, the client library, the CLI and the tests
// all take them from here. The interfaces themselves are described beside
// this header: org.bpfbroker.Broker1.xml (D-Bus) and
// org.bpfbroker.Broker.varlink (Varlink).
#pragma once

#include <string_view>

namespace bpfbroker {

// Varlink, on the direct socket.
inline constexpr std::string_view kVarlinkInterface = "org.bpfbroker.Broker";
inline constexpr std::string_view kDefaultSocketPath = "/run/bpfbroker/org.bpfbroker.Broker";

// D-Bus, on the system bus.
inline constexpr const char* kDbusInterface = "org.bpfbroker.Broker1";
inline constexpr const char* kDbusBusName = "org.bpfbroker.Broker1";
inline constexpr const char* kDbusObjectPath = "/org/bpfbroker/Broker1";

// polkit actions (systemd/org.bpfbroker.policy declares them).
inline constexpr const char* kPolkitActionManage = "org.bpfbroker.manage";
inline constexpr const char* kPolkitActionAcquire = "org.bpfbroker.acquire";

}  // namespace bpfbroker
