// The fast path for the AcquireProgram messages: a hand-written encoder and
// a strict decoder over JsonScanner, no nlohmann-json. See acquire_codec.h.
//
// Decoders read the whole frame before they judge its shape: a wrong type or
// an unknown field is noted and the value skipped (still checked), so a
// frame that is also malformed later is refused as malformed, exactly as
// the general path (which parses first, then looks at the shape) refuses it.
#include "wire/acquire_codec.h"

#include "wire/json_scanner.h"
#include "wire/json_writer.h"
#include "wire/varlink_framing.h"

namespace bpfbroker::varlink {

namespace {

constexpr std::string_view kCallPrefix = R"({"method":"org.bpfbroker.Broker.AcquireProgram")";

// ---- decoding ------------------------------------------------------------------

// A field's name as a fault names it, "where.key": joined only when a fault
// is noted, so a well-formed message builds no names.
struct FieldName {
    std::string_view where;
    std::string_view key{};

    [[nodiscard]] std::string text() const
    {
        if (where.empty() || key.empty())
            return std::string(where.empty() ? key : where);
        std::string out(where);
        out += '.';
        out += key;
        return out;
    }
};

// The first field of the wrong type or unknown, while the rest is still read.
class ShapeFault {
public:
    void note(FieldName field)
    {
        if (!first_)
            first_ = field.text();
    }
    [[nodiscard]] const std::optional<std::string>& first() const noexcept { return first_; }

private:
    std::optional<std::string> first_;
};

// Each reader returns false only when the scanner failed (the frame is
// malformed); a value of the wrong type is noted in `fault` and skipped.
bool read_string(JsonScanner& s, std::string& out, ShapeFault& fault, FieldName field)
{
    if (s.peek() != JsonKind::String) {
        fault.note(field);
        return s.skip_value();
    }
    return s.string(out);
}

bool read_u64(JsonScanner& s, std::optional<std::uint64_t>& out, ShapeFault& fault, FieldName field)
{
    if (s.peek() != JsonKind::Number) {
        fault.note(field);
        return s.skip_value();
    }
    if (!s.number(out))
        return false;
    if (!out)
        fault.note(field);
    return true;
}

// A map's entries are named "field.entry" in a fault; `field` is whole.
bool read_u64_map(JsonScanner& s, std::map<std::string, std::uint64_t>& out, ShapeFault& fault, const std::string& field)
{
    if (s.peek() != JsonKind::Object) {
        fault.note({field});
        return s.skip_value();
    }
    return s.object([&](const std::string& key) {
        std::optional<std::uint64_t> value;
        if (!read_u64(s, value, fault, {field, key}))
            return false;
        if (value)
            out.emplace(key, *value);
        return true;
    });
}

bool read_string_map(JsonScanner& s, std::map<std::string, std::string>& out, ShapeFault& fault,
                     const std::string& field)
{
    if (s.peek() != JsonKind::Object) {
        fault.note({field});
        return s.skip_value();
    }
    return s.object([&](const std::string& key) { return read_string(s, out[key], fault, {field, key}); });
}

// Reads an object whose known fields are named in `fields` (at most 32);
// `seen` gets one bit per field read, and `field(index, key)` reads the
// value of fields[index] (dispatch by index: no second comparison of keys).
template <typename Field>
bool read_fields(JsonScanner& s, std::initializer_list<std::string_view> fields, std::uint32_t& seen,
                 ShapeFault& fault, std::string_view where, Field&& field)
{
    if (s.peek() != JsonKind::Object) {
        fault.note({where});
        return s.skip_value();
    }
    return s.object([&](const std::string& key) {
        std::size_t index = 0;
        for (std::string_view f : fields) {
            if (f == key) {
                seen |= 1u << index;
                return field(index, key);
            }
            ++index;
        }
        fault.note({where, key});
        return s.skip_value();
    });
}

// The top-level object of a frame, `member(key)` called for each field.
template <typename Member>
void read_message(JsonScanner& s, Member&& member, const char* what)
{
    if (s.start() && s.peek() != JsonKind::Object)
        s.fault(std::string("a ") + what + " must be a JSON object");
    if (!s.failed())
        s.object(member);
}

Unexpected malformed(const JsonScanner& s)
{
    return fail(ErrorCode::ProtocolError, "malformed message: " + s.error());
}

}  // namespace

bool looks_like_acquire_call(std::string_view frame) noexcept
{
    return frame.starts_with(kCallPrefix);
}

Result<std::string> encode_acquire_call(const AcquireCall& call)
{
    // Keys in sorted order, as nlohmann writes them.
    JsonWriter w;
    w.raw(kCallPrefix);
    if (call.more)
        w.raw(R"(,"more":true)");
    if (call.oneway)
        w.raw(R"(,"oneway":true)");
    w.raw(R"(,"parameters":{"name":)").string(call.name);
    if (!call.parameters.empty())
        w.raw(R"(,"parameters":)").u64_object(call.parameters);
    w.raw("}");
    if (call.upgrade)
        w.raw(R"(,"upgrade":true)");
    w.raw("}");
    return std::move(w).finish_frame(kDefaultMaxMessageSize);
}

Result<AcquireCall> decode_acquire_call(std::string_view frame)
{
    JsonScanner s(frame);
    AcquireCall call;
    ShapeFault fault;
    bool have_method = false;
    bool have_name = false;
    auto flag = [&](const std::string& key, bool& out) {
        if (s.peek() != JsonKind::Boolean)
            return s.fault("\"" + key + "\" must be a boolean");
        return s.boolean(out);
    };
    auto parameter = [&](const std::string& key) {
        if (key == "name") {
            have_name = s.peek() == JsonKind::String;
            return read_string(s, call.name, fault, {"name"});
        }
        if (key == "parameters")
            return read_u64_map(s, call.parameters, fault, "parameters");
        fault.note({key});
        return s.skip_value();
    };
    auto member = [&](const std::string& key) {
        if (key == "method") {
            if (s.peek() != JsonKind::String)
                return s.fault("\"method\" must be a string");
            bool acquire = false;
            if (!s.string_equals(kAcquireMethod, acquire))
                return false;
            if (!acquire)
                return s.fault("not an AcquireProgram call");
            return have_method = true;
        }
        if (key == "parameters") {
            if (s.peek() != JsonKind::Object)
                return s.fault("\"parameters\" must be an object");
            return s.object(parameter);
        }
        if (key == "oneway")
            return flag(key, call.oneway);
        if (key == "more")
            return flag(key, call.more);
        if (key == "upgrade")
            return flag(key, call.upgrade);
        return s.fault("unexpected field \"" + key + "\" in call");
    };
    read_message(s, member, "call");
    if (!s.finish())
        return malformed(s);
    if (!have_method)
        return fail(ErrorCode::ProtocolError, "call has no \"method\"");
    if (fault.first())
        return fail(ErrorCode::InvalidParameter, *fault.first());
    if (!have_name)
        return fail(ErrorCode::InvalidParameter, "name");
    return call;
}

Result<std::string> encode_acquire_reply(const AcquireReply& reply)
{
    const ProgramInfo& i = reply.info;
    // A socket_filter reply with no maps is ~215 bytes; one with a few maps
    // and values fits 512.
    JsonWriter w(512);
    w.raw(R"({"parameters":{"info":)").open();
    if (!i.attach.empty())
        w.literal_key("attach").string(i.attach);
    w.literal_key("id").number(i.id).literal_key("instance").string(i.instance).literal_key("map_access");
    w.object(i.map_access, [&w](const std::string& v) { w.string(v); });
    w.literal_key("name").string(i.name);
    if (!i.parameters.empty())
        w.literal_key("parameters").u64_object(i.parameters);
    w.literal_key("tag").string(i.tag).literal_key("type").string(i.type).literal_key("version").string(i.version).close();
    if (reply.links)
        w.literal_key("links").u64_object(*reply.links);
    w.literal_key("maps").u64_object(reply.maps);
    if (reply.program)
        w.literal_key("program").number(*reply.program);
    w.raw("}}");
    return std::move(w).finish_frame(kMaxReplySize);
}

Result<AcquireReply> decode_acquire_reply(std::string_view frame)
{
    JsonScanner s(frame);
    AcquireReply reply;
    ShapeFault fault;
    bool error_reply = false;
    std::uint32_t top = 0, info_seen = 0;

    // In the order read_fields is given them below.
    enum InfoField : std::size_t { Name, Id, Tag, Type, Instance, Version, MapAccess, Attach, Parameters };
    auto info_field = [&](std::size_t index, const std::string& key) {
        ProgramInfo& i = reply.info;
        const FieldName field{"info", key};
        switch (index) {
        case Id: {
            std::optional<std::uint64_t> id;
            if (!read_u64(s, id, fault, field))
                return false;
            if (id && *id > UINT32_MAX)
                fault.note(field);
            i.id = static_cast<std::uint32_t>(id.value_or(0));
            return true;
        }
        case MapAccess: return read_string_map(s, i.map_access, fault, field.text());
        case Parameters: return read_u64_map(s, i.parameters, fault, field.text());
        case Name: return read_string(s, i.name, fault, field);
        case Tag: return read_string(s, i.tag, fault, field);
        case Type: return read_string(s, i.type, fault, field);
        case Instance: return read_string(s, i.instance, fault, field);
        case Version: return read_string(s, i.version, fault, field);
        default: return read_string(s, i.attach, fault, field);
        }
    };
    enum TopField : std::size_t { Program, Links, Maps, Info };
    auto parameter = [&](std::size_t index, const std::string& key) {
        switch (index) {
        case Program: return read_u64(s, reply.program, fault, {key});
        case Links: return read_u64_map(s, reply.links.emplace(), fault, key);
        case Maps: return read_u64_map(s, reply.maps, fault, key);
        default:
            return read_fields(s, {"name", "id", "tag", "type", "instance", "version", "map_access", "attach", "parameters"},
                               info_seen, fault, "info", info_field);
        }
    };
    auto member = [&](const std::string& key) {
        if (key == "error") {  // an error reply: the general path reads those
            error_reply = true;
            return false;
        }
        if (key == "continues") {
            bool continues = false;
            if (s.peek() != JsonKind::Boolean)
                return s.fault("\"continues\" must be a boolean");
            if (s.boolean(continues) && continues)
                fault.note({"continues"});
            return !s.failed();
        }
        if (key == "parameters") {
            if (s.peek() != JsonKind::Object)
                return s.fault("\"parameters\" must be an object");
            return read_fields(s, {"program", "links", "maps", "info"}, top, fault, "", parameter);
        }
        return s.fault("unexpected field \"" + key + "\" in reply");
    };
    read_message(s, member, "reply");
    if (error_reply)
        return decode_acquire_reply_via_json(frame);
    if (!s.finish())
        return malformed(s);
    constexpr std::uint32_t kMapsAndInfo = 0b1100;
    constexpr std::uint32_t kRequiredInfo = 0b1111111;
    if (fault.first())
        return fail(ErrorCode::ProtocolError, "malformed AcquireProgram reply: bad or unknown field " + *fault.first());
    if ((top & kMapsAndInfo) != kMapsAndInfo || (info_seen & kRequiredInfo) != kRequiredInfo)
        return fail(ErrorCode::ProtocolError, "malformed AcquireProgram reply: a required field is missing");
    return reply;
}

}  // namespace bpfbroker::varlink
