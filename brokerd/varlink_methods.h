// The handlers of the Varlink method table (varlink_method_table.h): one
// call from an identified peer, looked up and checked against its spec,
// becomes one request to the Broker, and the Broker's outcome one reply
// (parameters plus the fds it references by index). The Broker decides;
// this file only translates.
#pragma once

#include "brokerd/acquire_reply_cache.h"
#include "brokerd/broker.h"

#include <bpfbroker/unique_fd.h>

#include "wire/acquire_codec.h"
#include "wire/varlink_framing.h"

#include <nlohmann/json.hpp>

#include <vector>

namespace bpfbroker::brokerd {

struct VarlinkResponse {
    nlohmann::json message;      // a full reply or error message object
    std::vector<HandedFd> fds;   // referenced by index from message.parameters
    bool reply = true;           // false: a oneway call, answered by nothing
};

// `method`, `parameters` and `oneway` from a parsed varlink::Call;
// `caller_pidfd` the connection's SO_PEERPIDFD (-1: none), see RequestContext.
VarlinkResponse handle_varlink_call(Broker& broker, const policy::Peer& peer, const std::string& method,
                                    const nlohmann::json& parameters, bool oneway = false, int caller_pidfd = -1);

// A reply as bytes for the socket (NUL included) with the fds it references.
struct EncodedResponse {
    std::string bytes;
    std::vector<HandedFd> fds;
    bool reply = true;  // false: nothing to send (a oneway call)
};

// Encodes with the general encoder, bounded by kMaxReplySize (beyond it,
// an Internal error and no fds).
EncodedResponse encode_for_socket(VarlinkResponse resp);

// The fast path of AcquireProgram: a call the table accepted as it stands
// (fast_acquire_call()), decided by the Broker, the reply written by the
// fast encoder; the same bytes handle_varlink_call + encode_for_socket give
// (brokerd/tests/varlink_fast_path_test.cpp).
// With a `cache`, a reply it holds for what the hand-out says is sent
// again instead of encoding it anew (acquire_reply_cache.h).
EncodedResponse handle_acquire_call(Broker& broker, const RequestContext& ctx, const varlink::AcquireCall& call,
                                    AcquireReplyCache* cache = nullptr);

// A socket caller's context: `peer` as SO_PEERCRED vouched for it, and the
// connection's SO_PEERPIDFD (-1: none).
RequestContext socket_context(const policy::Peer& peer, int caller_pidfd = -1);

// One frame from a socket peer, parsed once: an AcquireProgram call the
// table takes as it stands by the fast codec, every other frame by the
// general parser (varlink::parse_message + parse_call).
struct ParsedFrame {
    std::optional<varlink::AcquireCall> acquire;  // set: the fast path
    varlink::Call call;                           // the general path
    [[nodiscard]] bool oneway() const { return !acquire && call.oneway; }
};

// ProtocolError (answer with it and close) when the frame is not a call.
Result<ParsedFrame> parse_frame(std::string_view frame);

// The answer to a parsed frame: "more" and "upgrade" refused, the rest to
// handle_acquire_call or handle_varlink_call.
EncodedResponse answer_frame(Broker& broker, const RequestContext& ctx, const ParsedFrame& frame,
                             AcquireReplyCache* cache = nullptr);

// An acquire reply and its fds, numbered as the reply references them: the
// program, then the links, then the maps.
struct AcquireAnswer {
    varlink::AcquireReply reply;
    std::vector<HandedFd> fds;
};

// The socket's wire form of the core's answers: an acquire's reply (the
// hand-out's fds move into it), and one ListPrograms row.
AcquireAnswer to_wire(Handout& h);
// The hand-out's fds in the order to_wire() numbers them.
std::vector<HandedFd> reply_fds(Handout& h);
nlohmann::json to_wire(const ProgramListing& l);

}  // namespace bpfbroker::brokerd
