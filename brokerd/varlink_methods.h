// The handlers of the Varlink method table (varlink_method_table.h): one
// call from an identified peer, looked up and checked against its spec,
// becomes one request to the Broker, and the Broker's outcome one reply
// (parameters plus the fds it references by index). The Broker decides;
// this file only translates.
#pragma once

#include "brokerd/broker.h"

#include <bpfbroker/unique_fd.h>

#include <nlohmann/json.hpp>

#include <vector>

namespace bpfbroker::brokerd {

struct VarlinkResponse {
    nlohmann::json message;      // a full reply or error message object
    std::vector<UniqueFd> fds;   // referenced by index from message.parameters
    bool reply = true;           // false: a oneway call, answered by nothing
};

// `method`, `parameters` and `oneway` from a parsed varlink::Call;
// `caller_pidfd` the connection's SO_PEERPIDFD (-1: none), see RequestContext.
VarlinkResponse handle_varlink_call(Broker& broker, const policy::Peer& peer, const std::string& method,
                                    const nlohmann::json& parameters, bool oneway = false, int caller_pidfd = -1);

// The socket's wire form of the core's answers: the info dictionary of an
// acquire reply, and one ListPrograms row.
nlohmann::json to_wire(const Handout& h);
nlohmann::json to_wire(const ProgramListing& l);

}  // namespace bpfbroker::brokerd
