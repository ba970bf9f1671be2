// The info a{sv} of a D-Bus acquire reply (name, version, type, instance,
// id, tag, map_access, attach, parameters), read straight from the message
// into a ProgramInfo. sdbus-c++ would make each sdbus::Variant a message of
// its own (a copy per field and another per get<>()): that was most of this
// client's time on a warm acquire. A field of an unknown name or of an
// unexpected type is skipped, so a newer daemon may add fields.
#pragma once

#include <bpfbroker/program_info.h>

#include <sdbus-c++/sdbus-c++.h>

#include <map>
#include <string>

namespace bpfbroker {

struct DbusProgramInfo {
    ProgramInfo info;
};

sdbus::Message& operator>>(sdbus::Message& msg, DbusProgramInfo& out);

}  // namespace bpfbroker

// On the wire it is an a{sv}, whatever it holds.
template <>
struct sdbus::signature_of<bpfbroker::DbusProgramInfo> : sdbus::signature_of<std::map<std::string, sdbus::Variant>> {};
