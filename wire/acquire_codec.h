// The two hot Varlink messages, AcquireProgram's call and its reply, as
// typed values, with two codecs for each:
//  - the fast path (encode_*/decode_*): hand-written, no nlohmann-json, what
//    the client uses and what the daemon can call for its half;
//  - the general path (*_via_json): varlink::parse_message/encode_message and
//    nlohmann-json, the reference the fast path is checked against by
//    wire/tests/acquire_codec_test.cpp and fuzz/acquire_codec_fuzzer.cpp.
// Both accept exactly the same frames and yield the same values; both refuse
// repeated keys, nesting deeper than kMaxJsonDepth, unknown fields,
// invalid UTF-8 and a byte-order mark. Encoders of the two paths write the
// same bytes (keys in sorted order, as nlohmann writes them).
//
// Frames are the bytes between NULs (FrameReader::next_frame()); encoders
// append the NUL.
#pragma once

#include <bpfbroker/program_info.h>
#include <bpfbroker/result.h>

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace bpfbroker::varlink {

inline constexpr std::string_view kAcquireMethod = "org.bpfbroker.Broker.AcquireProgram";

// {"method": kAcquireMethod, "parameters": {"name": s, "parameters"?: {NAME: u64}}, ...}
struct AcquireCall {
    std::string name;
    std::map<std::string, std::uint64_t> parameters;  // absent on the wire when empty
    bool oneway = false;  // Varlink call flags, written only when true; the
    bool more = false;    // daemon decides whether it allows them
    bool upgrade = false;
    bool operator==(const AcquireCall&) const = default;
};

// {"parameters": {"program"?: i, "links"?: {s: i}, "maps": {s: i}, "info": {...}}}
// where i is an index into the fds sent with the reply.
struct AcquireReply {
    std::optional<std::uint64_t> program;                     // client-attached programs
    std::optional<std::map<std::string, std::uint64_t>> links;  // broker-attached programs
    std::map<std::string, std::uint64_t> maps;
    ProgramInfo info;  // "attach" and "parameters" absent on the wire when empty
    bool operator==(const AcquireReply&) const = default;
};

// True when the frame begins the way both encoders write an AcquireProgram
// call: a server may send such frames to decode_acquire_call() and every
// other frame down the general path (both reach the same verdict).
[[nodiscard]] bool looks_like_acquire_call(std::string_view frame) noexcept;

// Decoding a call fails with ProtocolError when the frame is not a valid
// Varlink call of AcquireProgram, and with InvalidParameter when only its
// parameters are wrong: then the message is the parameter's name ("name",
// "parameters", "parameters.X" or the unknown field), ready for
// make_invalid_parameter_reply().
Result<std::string> encode_acquire_call(const AcquireCall& call);
Result<AcquireCall> decode_acquire_call(std::string_view frame);
Result<std::string> encode_acquire_call_via_json(const AcquireCall& call);
Result<AcquireCall> decode_acquire_call_via_json(std::string_view frame);

// Decoding a reply fails with ProtocolError when the frame is malformed or
// not of this shape, and with the daemon's error when it is an error reply
// (error_from_reply()). Encoders refuse (InvalidParameter) strings that are
// not UTF-8 and (LimitExceeded) replies over kMaxReplySize.
Result<std::string> encode_acquire_reply(const AcquireReply& reply);
Result<AcquireReply> decode_acquire_reply(std::string_view frame);
Result<std::string> encode_acquire_reply_via_json(const AcquireReply& reply);
Result<AcquireReply> decode_acquire_reply_via_json(std::string_view frame);
// The reply as the general path builds it, before encoding: for a server
// that answers through nlohmann-json (encode_message) where the fast
// encoder refuses.
nlohmann::json acquire_reply_message(const AcquireReply& reply);

}  // namespace bpfbroker::varlink
