// The org.bpfbroker.Broker Varlink interface: turns one parsed call from an
// identified peer into one reply (parameters plus the fds it references by
// index). Parsing is strict; the Broker decides; this file only translates.
#pragma once

#include "brokerd/broker.h"

#include <bpfbroker/unique_fd.h>

#include <nlohmann/json.hpp>

#include <vector>

namespace bpfbroker::brokerd {

struct VarlinkResponse {
    nlohmann::json message;      // a full reply or error message object
    std::vector<UniqueFd> fds;   // referenced by index from message.parameters
};

// `method` and `parameters` from a parsed varlink::Call.
VarlinkResponse handle_varlink_call(Broker& broker, const policy::Peer& peer, const std::string& method,
                                    const nlohmann::json& parameters);

// Shared by both transports: the info dictionary of an acquire reply and the
// JSON view of listings and features.
nlohmann::json handout_info_json(const Handout& h);
nlohmann::json listing_json(const ProgramListing& l);

}  // namespace bpfbroker::brokerd
