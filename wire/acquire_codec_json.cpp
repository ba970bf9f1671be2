// The general path for the AcquireProgram messages: nlohmann-json behind
// varlink::parse_message. The reference the fast path (acquire_codec.cpp)
// is held to; see acquire_codec.h.
#include "wire/acquire_codec.h"

#include "wire/varlink_framing.h"

#include <nlohmann/json.hpp>

namespace bpfbroker::varlink {

namespace {

using nlohmann::json;

// Like encode_message, but strings that are not UTF-8 are refused rather
// than replaced: a replaced name would ask for, or describe, another program.
Result<std::string> dump_strict(const json& message, std::size_t max_size)
{
    std::string out;
    try {
        out = message.dump(-1, ' ', false, json::error_handler_t::strict);
    } catch (const json::type_error&) {
        return fail(ErrorCode::InvalidParameter, "a string in the message is not UTF-8");
    }
    if (out.size() > max_size)
        return fail(ErrorCode::LimitExceeded, "message of " + std::to_string(out.size()) +
                                                  " bytes exceeds the limit of " + std::to_string(max_size));
    out.push_back('\0');
    return out;
}

Unexpected bad_reply(const std::string& why)
{
    return fail(ErrorCode::ProtocolError, "malformed AcquireProgram reply: " + why);
}

// An object of NAME -> unsigned integer; false when it is not one.
bool u64_map(const json& j, std::map<std::string, std::uint64_t>& out)
{
    if (!j.is_object())
        return false;
    for (const auto& [k, v] : j.items()) {
        if (!v.is_number_unsigned())
            return false;
        out.emplace(k, v.get<std::uint64_t>());
    }
    return true;
}

bool string_field(const json& j, std::string& out)
{
    if (!j.is_string())
        return false;
    out = j.get<std::string>();
    return true;
}

// Fills `info` from the "info" object; the name of the offending field on failure.
std::optional<std::string> read_info(const json& j, ProgramInfo& info)
{
    if (!j.is_object())
        return "info";
    static const char* const required[] = {"name", "id", "tag", "type", "instance", "version", "map_access"};
    for (const char* key : required)
        if (!j.contains(key))
            return std::string("info.") + key;
    for (const auto& [k, v] : j.items()) {
        bool ok = false;
        if (k == "name")
            ok = string_field(v, info.name);
        else if (k == "tag")
            ok = string_field(v, info.tag);
        else if (k == "type")
            ok = string_field(v, info.type);
        else if (k == "instance")
            ok = string_field(v, info.instance);
        else if (k == "version")
            ok = string_field(v, info.version);
        else if (k == "attach")
            ok = string_field(v, info.attach);
        else if (k == "id") {
            ok = v.is_number_unsigned() && v.get<std::uint64_t>() <= UINT32_MAX;
            if (ok)
                info.id = v.get<std::uint32_t>();
        } else if (k == "parameters")
            ok = u64_map(v, info.parameters);
        else if (k == "map_access") {
            ok = v.is_object();
            if (ok)
                for (const auto& [map, access] : v.items())
                    ok = ok && string_field(access, info.map_access[map]);
        }
        if (!ok)
            return "info." + k;
    }
    return std::nullopt;
}

}  // namespace

Result<std::string> encode_acquire_call_via_json(const AcquireCall& call)
{
    json parameters = {{"name", call.name}};
    if (!call.parameters.empty())
        parameters["parameters"] = call.parameters;
    json message = make_call(kAcquireMethod, std::move(parameters));
    if (call.oneway)
        message["oneway"] = true;
    if (call.more)
        message["more"] = true;
    if (call.upgrade)
        message["upgrade"] = true;
    return dump_strict(message, kDefaultMaxMessageSize);
}

Result<AcquireCall> decode_acquire_call_via_json(std::string_view frame)
{
    auto message = parse_message(frame);
    if (!message)
        return fail(std::move(message).error());
    auto call = parse_call(*message);
    if (!call)
        return fail(std::move(call).error());
    if (call->method != kAcquireMethod)
        return fail(ErrorCode::ProtocolError, "not an AcquireProgram call: " + call->method);
    AcquireCall out;
    out.oneway = call->oneway;
    out.more = call->more;
    out.upgrade = call->upgrade;
    bool have_name = false;
    for (const auto& [key, value] : call->parameters.items()) {
        if (key == "name") {
            if (!string_field(value, out.name))
                return fail(ErrorCode::InvalidParameter, "name");
            have_name = true;
        } else if (key == "parameters") {
            if (!value.is_object())
                return fail(ErrorCode::InvalidParameter, "parameters");
            for (const auto& [name, v] : value.items()) {
                if (!v.is_number_unsigned())
                    return fail(ErrorCode::InvalidParameter, "parameters." + name);
                out.parameters.emplace(name, v.get<std::uint64_t>());
            }
        } else {
            return fail(ErrorCode::InvalidParameter, key);
        }
    }
    if (!have_name)
        return fail(ErrorCode::InvalidParameter, "name");
    return out;
}

json acquire_reply_message(const AcquireReply& reply)
{
    const ProgramInfo& i = reply.info;
    json info = {{"name", i.name}, {"id", i.id}, {"tag", i.tag}, {"type", i.type},
                 {"instance", i.instance}, {"version", i.version}, {"map_access", i.map_access}};
    if (!i.attach.empty())
        info["attach"] = i.attach;
    if (!i.parameters.empty())
        info["parameters"] = i.parameters;
    json parameters = {{"maps", reply.maps}, {"info", std::move(info)}};
    if (reply.program)
        parameters["program"] = *reply.program;
    if (reply.links)
        parameters["links"] = *reply.links;
    return make_reply(std::move(parameters));
}

Result<std::string> encode_acquire_reply_via_json(const AcquireReply& reply)
{
    return dump_strict(acquire_reply_message(reply), kMaxReplySize);
}

Result<AcquireReply> decode_acquire_reply_via_json(std::string_view frame)
{
    auto message = parse_message(frame);
    if (!message)
        return fail(std::move(message).error());
    auto reply = parse_reply(*message);
    if (!reply)
        return fail(std::move(reply).error());
    if (reply->error)
        return fail(error_from_reply(*reply));
    if (reply->continues)
        return bad_reply("\"continues\" in the reply to a single call");
    const json& p = reply->parameters;
    if (!p.contains("maps") || !p.contains("info"))
        return bad_reply("no maps or no info");
    AcquireReply out;
    for (const auto& [key, value] : p.items()) {
        bool ok = false;
        if (key == "program") {
            ok = value.is_number_unsigned();
            if (ok)
                out.program = value.get<std::uint64_t>();
        } else if (key == "links") {
            ok = u64_map(value, out.links.emplace());
        } else if (key == "maps") {
            ok = u64_map(value, out.maps);
        } else if (key == "info") {
            if (auto field = read_info(value, out.info))
                return bad_reply("bad or missing field " + *field);
            ok = true;
        }
        if (!ok)
            return bad_reply("bad or unknown field " + key);
    }
    return out;
}

}  // namespace bpfbroker::varlink
