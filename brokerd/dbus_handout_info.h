// The info a{sv} of a D-Bus acquire reply (attach, id, instance,
// map_access, name, parameters, tag, type, version), written straight into
// the reply from a Handout. Built as a std::map of sdbus::Variant it cost a
// message per field, each copied into the reply again: 19% of the daemon's
// time on a warm D-Bus acquire. Fields and their types are what a client's
// DbusProgramInfo reads (client/src/dbus_program_info.h), in the order a
// std::map would have put them; dbus_handout_info_test holds it to that.
#pragma once

#include "brokerd/handout.h"

#include <sdbus-c++/sdbus-c++.h>

#include <map>
#include <string>

namespace bpfbroker::brokerd {

// Refers to the Handout: a reply serialises it at once.
struct DbusHandoutInfo {
    const Handout& handout;
};

sdbus::Message& operator<<(sdbus::Message& msg, const DbusHandoutInfo& info);

}  // namespace bpfbroker::brokerd

// On the wire it is an a{sv}.
template <>
struct sdbus::signature_of<bpfbroker::brokerd::DbusHandoutInfo>
    : sdbus::signature_of<std::map<std::string, sdbus::Variant>> {};
