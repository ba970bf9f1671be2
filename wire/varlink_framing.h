// Varlink framing and message shapes for the direct socket, shared by the
// client library and the daemon (internal: in-tree targets reach it through
// bpfbroker_client's build-tree include dir; never installed).
//
// On the wire a message is one JSON object followed by a NUL byte, over a
// SOCK_STREAM AF_UNIX socket:
//   call   {"method":"org.bpfbroker.Broker.AcquireProgram","parameters":{...}}
//   reply  {"parameters":{...}}
//   error  {"error":"org.bpfbroker.Broker.PermissionDenied","parameters":{"reason":"..."}}
// File descriptors travel as SCM_RIGHTS next to the bytes (fd_passing.h) and
// are referenced by index from the parameters.
#pragma once

#include <bpfbroker/error.h>
#include <bpfbroker/result.h>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace bpfbroker::varlink {

inline constexpr std::size_t kDefaultMaxMessageSize = 64 * 1024;
// Replies may be larger than requests (ListPrograms names the whole catalog:
// up to 256 entries with 1 KiB descriptions); both ends use this bound.
inline constexpr std::size_t kMaxReplySize = 4 * 1024 * 1024;

// Cuts a byte stream into NUL-terminated frames.
//
// Memory bound: the bytes of an unfinished frame never exceed
// max_message_size; a peer that sends more without a NUL gets LimitExceeded
// and the offending bytes are not kept. Complete frames wait in the buffer
// until next_frame() takes them, so a caller that drains after every feed()
// holds at most one read's worth plus max_message_size.
//
// After any error the stream cannot be resynchronised: the reader stays
// failed and every later call returns the same error. Close the connection.
class FrameReader {
public:
    explicit FrameReader(std::size_t max_message_size = kDefaultMaxMessageSize);

    // Appends bytes read from the socket. LimitExceeded when a frame (without
    // its NUL) would be longer than max_message_size.
    Result<void> feed(std::string_view bytes);

    // The next complete frame without its NUL, or nullopt if none is complete.
    Result<std::optional<std::string>> next_frame();

    // next_frame(), parsed: a JSON object (ProtocolError for anything else:
    // invalid JSON or UTF-8, a byte-order mark, a NUL byte, trailing bytes,
    // an empty frame, a non-object, nesting deeper than kMaxJsonDepth
    // (base/strict_json.h), a key repeated within an object).
    Result<std::optional<nlohmann::json>> next_message();

    // Call at EOF: ProtocolError when a partial frame (bytes with no NUL yet)
    // is still buffered, i.e. the peer closed in the middle of a message.
    // Complete frames still waiting are not an error; take them first.
    [[nodiscard]] Result<void> finish() const;

    [[nodiscard]] std::size_t buffered_bytes() const noexcept { return buffer_.size() - consumed_; }
    [[nodiscard]] std::size_t max_message_size() const noexcept { return max_; }
    [[nodiscard]] bool failed() const noexcept { return failure_.has_value(); }

private:
    Result<void> fail_with(Error error);

    std::size_t max_;
    std::string buffer_;
    std::size_t consumed_ = 0;    // bytes of buffer_ already returned as frames
    std::size_t tail_start_ = 0;  // where the unfinished frame begins (after the last NUL)
    std::size_t complete_ = 0;    // complete frames in buffer_ not yet returned
    std::optional<Error> failure_;
};

// Strict parse of one frame's bytes into a JSON object (see next_message()).
Result<nlohmann::json> parse_message(std::string_view frame);

// Serialises a message object and appends the terminating NUL. Invalid UTF-8
// in strings is replaced (U+FFFD) rather than failing: error reasons may quote
// file names. LimitExceeded when the encoding exceeds max_message_size (the
// peer would refuse it); InvalidParameter when `message` is not an object.
Result<std::string> encode_message(const nlohmann::json& message,
                                   std::size_t max_message_size = kDefaultMaxMessageSize);

// ---- message shapes ----------------------------------------------------------

struct Call {
    std::string method;          // fully qualified: interface + '.' + member
    nlohmann::json parameters;   // always an object ({} when absent)
    bool oneway = false;
    bool more = false;
    bool upgrade = false;
};

struct Reply {
    std::optional<std::string> error;  // a Varlink error name, when the call failed
    nlohmann::json parameters;         // always an object ({} when absent)
    bool continues = false;
};

// Strict: "method" must be a non-empty string, "parameters" an object,
// "oneway"/"more"/"upgrade" booleans; any other key is a ProtocolError.
Result<Call> parse_call(const nlohmann::json& message);
Result<Reply> parse_reply(const nlohmann::json& message);

nlohmann::json make_call(std::string_view method, nlohmann::json parameters = nlohmann::json::object());
nlohmann::json make_reply(nlohmann::json parameters = nlohmann::json::object());

// {"error": varlink_error_name(code), "parameters": {"reason": reason}}.
// For InvalidParameter prefer make_invalid_parameter_reply, which carries the
// "parameter" field the Varlink spec defines for that error.
nlohmann::json make_error_reply(ErrorCode code, std::string_view reason);
nlohmann::json make_invalid_parameter_reply(std::string_view parameter, std::string_view reason = {});
nlohmann::json make_method_not_found_reply(std::string_view method);

// Turns an error reply back into an Error for the caller: the code from the
// name (ProtocolError for names nobody defined) and the message from
// "reason" (or "parameter"/"method" for the spec's errors).
Error error_from_reply(const Reply& reply);

}  // namespace bpfbroker::varlink
