// Varlink framing (NUL-terminated JSON objects) and message shapes; see
// varlink_framing.h.
#include "wire/varlink_framing.h"

#include "base/strict_json.h"

#include <bpfbroker/error_names.h>

#include <set>
#include <utility>
#include <vector>

namespace bpfbroker::varlink {

using nlohmann::json;

// ---- FrameReader ---------------------------------------------------------------

FrameReader::FrameReader(std::size_t max_message_size) : max_(max_message_size) {}

Result<void> FrameReader::fail_with(Error error)
{
    failure_ = error;
    return fail(std::move(error));
}

Result<void> FrameReader::feed(std::string_view bytes)
{
    if (failure_)
        return fail(*failure_);

    // Validate before keeping anything: every frame the new bytes finish, and
    // the unfinished one they leave, must fit in max_.
    std::size_t tail_len = buffer_.size() - tail_start_;
    std::size_t new_frames = 0;
    std::size_t last_nul = std::string_view::npos;
    for (std::size_t pos = 0;;) {
        std::size_t nul = bytes.find('\0', pos);
        std::size_t segment = (nul == std::string_view::npos ? bytes.size() : nul) - pos;
        if (segment > max_ || tail_len > max_ - segment)
            return fail_with(make_error(ErrorCode::LimitExceeded,
                                        "message exceeds " + std::to_string(max_) +
                                            " bytes without a terminating NUL"));
        if (nul == std::string_view::npos)
            break;
        ++new_frames;
        last_nul = nul;
        tail_len = 0;
        pos = nul + 1;
    }

    if (consumed_ > 0) {  // drop frames already handed out before growing
        buffer_.erase(0, consumed_);
        tail_start_ -= consumed_;
        consumed_ = 0;
    }
    std::size_t base = buffer_.size();
    buffer_.append(bytes);
    complete_ += new_frames;
    if (last_nul != std::string_view::npos)
        tail_start_ = base + last_nul + 1;
    return {};
}

Result<std::optional<std::string>> FrameReader::next_frame()
{
    if (failure_)
        return fail(*failure_);
    if (complete_ == 0)
        return std::optional<std::string>{};

    std::size_t nul = buffer_.find('\0', consumed_);
    // complete_ > 0 guarantees a NUL; anything else is a bookkeeping bug.
    if (nul == std::string::npos) {
        auto r = fail_with(make_error(ErrorCode::Internal, "frame reader lost a frame boundary"));
        return fail(std::move(r).error());
    }
    std::optional<std::string> frame(std::in_place, buffer_, consumed_, nul - consumed_);
    consumed_ = nul + 1;
    --complete_;
    if (consumed_ == buffer_.size()) {
        buffer_.clear();
        consumed_ = 0;
        tail_start_ = 0;
    }
    return frame;
}

Result<std::optional<json>> FrameReader::next_message()
{
    auto frame = next_frame();
    if (!frame)
        return fail(std::move(frame).error());
    if (!frame->has_value())
        return std::optional<json>{};
    auto message = parse_message(**frame);
    if (!message) {
        auto r = fail_with(std::move(message).error());
        return fail(std::move(r).error());
    }
    return std::optional<json>(std::move(*message));
}

Result<void> FrameReader::finish() const
{
    if (failure_)
        return fail(*failure_);
    std::size_t tail_len = buffer_.size() - tail_start_;
    if (tail_len > 0)
        return fail(ErrorCode::ProtocolError,
                    "connection closed in the middle of a message (" + std::to_string(tail_len) +
                        " bytes without a terminating NUL)");
    return {};
}

// ---- parsing -------------------------------------------------------------------

namespace {

Unexpected protocol_error(std::string message)
{
    return fail(ErrorCode::ProtocolError, std::move(message));
}

}  // namespace

// One strict reader for every JSON this project reads (base/strict_json.h):
// a request is refused for the same duplicate key, depth or byte-order mark
// as a policy file, so no two parsers can read one message differently.
Result<json> parse_message(std::string_view frame)
{
    if (frame.empty())
        return protocol_error("empty message");
    auto message = parse_strict_json(frame, ErrorCode::ProtocolError);
    if (!message)
        return fail(std::move(message).error());
    if (!message->is_object())
        return protocol_error(std::string("message is a JSON ") + message->type_name() + ", not an object");
    return std::move(*message);
}

Result<std::string> encode_message(const json& message, std::size_t max_message_size)
{
    if (!message.is_object())
        return fail(ErrorCode::InvalidParameter, "a Varlink message must be a JSON object");
    std::string out;
    try {
        out = message.dump(-1, ' ', false, json::error_handler_t::replace);
    } catch (const json::exception& e) {
        return fail(ErrorCode::Internal, std::string("cannot serialise message: ") + e.what());
    }
    if (out.size() > max_message_size)
        return fail(ErrorCode::LimitExceeded, "message of " + std::to_string(out.size()) +
                                                  " bytes exceeds the limit of " +
                                                  std::to_string(max_message_size));
    out.push_back('\0');
    return out;
}

// ---- message shapes ------------------------------------------------------------

namespace {

Result<bool> bool_field(const json& value, std::string_view key)
{
    if (!value.is_boolean())
        return protocol_error("\"" + std::string(key) + "\" must be a boolean");
    return value.get<bool>();
}

Result<json> parameters_field(const json& value)
{
    if (!value.is_object())
        return protocol_error("\"parameters\" must be an object");
    return value;
}

}  // namespace

Result<Call> parse_call(const json& message)
{
    if (!message.is_object())
        return protocol_error("a call must be a JSON object");
    Call call;
    call.parameters = json::object();
    bool have_method = false;
    for (const auto& [key, value] : message.items()) {
        if (key == "method") {
            if (!value.is_string())
                return protocol_error("\"method\" must be a string");
            call.method = value.get<std::string>();
            // interface.Member: at least one dot, not first or last
            auto dot = call.method.rfind('.');
            if (dot == std::string::npos || dot == 0 || dot + 1 == call.method.size())
                return protocol_error("\"method\" must be a qualified name (interface.Method)");
            have_method = true;
        } else if (key == "parameters") {
            auto p = parameters_field(value);
            if (!p)
                return fail(std::move(p).error());
            call.parameters = std::move(*p);
        } else if (key == "oneway" || key == "more" || key == "upgrade") {
            auto b = bool_field(value, key);
            if (!b)
                return fail(std::move(b).error());
            (key == "oneway" ? call.oneway : key == "more" ? call.more : call.upgrade) = *b;
        } else {
            return protocol_error("unexpected field \"" + key + "\" in call");
        }
    }
    if (!have_method)
        return protocol_error("call has no \"method\"");
    return call;
}

Result<Reply> parse_reply(const json& message)
{
    if (!message.is_object())
        return protocol_error("a reply must be a JSON object");
    Reply reply;
    reply.parameters = json::object();
    for (const auto& [key, value] : message.items()) {
        if (key == "parameters") {
            auto p = parameters_field(value);
            if (!p)
                return fail(std::move(p).error());
            reply.parameters = std::move(*p);
        } else if (key == "continues") {
            auto b = bool_field(value, key);
            if (!b)
                return fail(std::move(b).error());
            reply.continues = *b;
        } else if (key == "error") {
            if (!value.is_string() || value.get_ref<const std::string&>().empty())
                return protocol_error("\"error\" must be a non-empty string");
            reply.error = value.get<std::string>();
        } else {
            return protocol_error("unexpected field \"" + key + "\" in reply");
        }
    }
    return reply;
}

json make_call(std::string_view method, json parameters)
{
    return json{{"method", std::string(method)}, {"parameters", std::move(parameters)}};
}

json make_reply(json parameters)
{
    return json{{"parameters", std::move(parameters)}};
}

json make_error_reply(ErrorCode code, std::string_view reason)
{
    return json{{"error", varlink_error_name(code)},
                {"parameters", json{{"reason", std::string(reason)}}}};
}

json make_invalid_parameter_reply(std::string_view parameter, std::string_view reason)
{
    json params{{"parameter", std::string(parameter)}};
    if (!reason.empty())
        params["reason"] = std::string(reason);
    return json{{"error", std::string(kVarlinkInvalidParameter)}, {"parameters", std::move(params)}};
}

json make_method_not_found_reply(std::string_view method)
{
    return json{{"error", std::string(kVarlinkMethodNotFound)},
                {"parameters", json{{"method", std::string(method)}}}};
}

Error error_from_reply(const Reply& reply)
{
    if (!reply.error)
        return make_error(ErrorCode::Internal, "error_from_reply called on a successful reply");

    const std::string& name = *reply.error;
    auto code = error_code_from_varlink_name(name);
    // An empty string says nothing: the next field, or the error's name,
    // says what went wrong (an error is never shown without a message).
    auto text = [&](const char* key) -> std::optional<std::string> {
        auto it = reply.parameters.find(key);
        if (it != reply.parameters.end() && it->is_string() && !it->get_ref<const std::string&>().empty())
            return it->get<std::string>();
        return std::nullopt;
    };

    std::string message;
    if (auto reason = text("reason"))
        message = *reason;
    else if (auto parameter = text("parameter"))
        message = "invalid parameter \"" + *parameter + "\"";
    else if (auto method = text("method"))
        message = "method not found: " + *method;
    else
        message = name;

    if (!code)
        return make_error(ErrorCode::ProtocolError, "unknown error " + name + ": " + message);
    return make_error(*code, std::move(message));
}

}  // namespace bpfbroker::varlink
