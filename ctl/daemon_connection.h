// How bpfbrokerctl reaches bpfbrokerd: the socket under --root (or
// --socket), or D-Bus with --bus system; shared by every command that asks
// the daemon.
#pragma once

#include "output.h"

#include <bpfbroker/client.h>

#include <string>

namespace bpfbroker::ctl {

// --socket, or ROOT/run/bpfbroker/org.bpfbroker.Broker.
std::string socket_path(const GlobalOptions& o);

// A connected client; a daemon that is not running (the likeliest failure)
// gets an error that says how to start it.
Result<Client> connect(const GlobalOptions& o);

}  // namespace bpfbroker::ctl
