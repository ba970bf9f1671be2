// Strict JSON parsing and schema walking; see strict_json.h.
#include "base/strict_json.h"

#include <vector>

namespace bpfbroker {

namespace {

std::string quote(std::string_view s)
{
    std::string out = "\"";
    for (char c : s.substr(0, 64)) {
        unsigned char u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? '?' : c;
    }
    if (s.size() > 64)
        out += "...";
    out += '"';
    return out;
}

const char* type_name(const nlohmann::json& v)
{
    return v.type_name();
}

}  // namespace

Result<nlohmann::json> parse_strict_json(std::string_view bytes, ErrorCode code)
{
    // nlohmann skips a leading UTF-8 byte-order mark; JSON (RFC 8259) forbids
    // one, and a reader that skips it reads differently from one that does not.
    if (bytes.starts_with("\xEF\xBB\xBF"))
        return fail(code, "$: starts with a UTF-8 byte-order mark");
    // nlohmann reads a NUL as the end of the input and would ignore what
    // follows it; JSON has no place for one outside an escaped string.
    if (bytes.find('\0') != std::string_view::npos)
        return fail(code, "$: contains a NUL byte");
    // One set of seen keys per open object; the callback sees keys in order.
    std::vector<std::set<std::string, std::less<>>> open_objects;
    std::string problem;
    // Open containers, counted here rather than taken from the callback's
    // depth (which counts keys as a level for objects but not for arrays),
    // so the rule is simply: at most kMaxJsonDepth containers inside each
    // other. The Varlink fast path (wire/json_scanner) counts the same way.
    std::size_t open_containers = 0;

    auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        if (!problem.empty())
            return false;
        if ((event == Event::object_start || event == Event::array_start) && ++open_containers > kMaxJsonDepth) {
            problem = "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
            return false;
        }
        switch (event) {
        case Event::object_start:
            open_objects.emplace_back();
            break;
        case Event::object_end:
            --open_containers;
            if (!open_objects.empty())
                open_objects.pop_back();
            break;
        case Event::array_end:
            --open_containers;
            break;
        case Event::key: {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!open_objects.empty() && !open_objects.back().insert(key).second) {
                problem = "duplicate key " + quote(key);
                return false;
            }
            break;
        }
        default:
            break;
        }
        return true;
    };

    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(bytes.begin(), bytes.end(), callback, /*allow_exceptions=*/true,
                                    /*ignore_comments=*/false);
    } catch (const nlohmann::json::exception& e) {
        if (problem.empty())
            problem = e.what();
    }
    if (!problem.empty())
        return fail(code, "$: " + problem);
    if (doc.is_discarded())
        return fail(code, "$: document was rejected while parsing");
    return doc;
}

JsonObjectReader::JsonObjectReader(const nlohmann::json& value, std::string path)
    : value_(value), path_(std::move(path))
{
    if (!value_.is_object())
        throw SchemaViolation{path_, std::string("expected an object, found ") + type_name(value_)};
}

bool JsonObjectReader::has(std::string_view key) const
{
    return value_.find(key) != value_.end();
}

std::string JsonObjectReader::path_of(std::string_view key) const
{
    return path_ + "." + std::string(key);
}

void JsonObjectReader::violation(std::string_view key, std::string reason) const
{
    throw SchemaViolation{key.empty() ? path_ : path_of(key), std::move(reason)};
}

const nlohmann::json& JsonObjectReader::required(std::string_view key)
{
    auto it = value_.find(key);
    if (it == value_.end())
        violation(key, "required field is missing");
    consumed_.emplace(key);
    return *it;
}

const nlohmann::json* JsonObjectReader::optional(std::string_view key)
{
    auto it = value_.find(key);
    if (it == value_.end())
        return nullptr;
    consumed_.emplace(key);
    return &*it;
}

std::string JsonObjectReader::required_string(std::string_view key, std::size_t max_len)
{
    return json_as_string(required(key), path_of(key), max_len);
}

std::string JsonObjectReader::optional_string(std::string_view key, std::size_t max_len,
                                              std::string fallback)
{
    const auto* v = optional(key);
    return v ? json_as_string(*v, path_of(key), max_len) : std::move(fallback);
}

bool JsonObjectReader::optional_bool(std::string_view key, bool fallback)
{
    const auto* v = optional(key);
    if (!v)
        return fallback;
    if (!v->is_boolean())
        violation(key, std::string("expected true or false, found ") + type_name(*v));
    return v->get<bool>();
}

std::int64_t JsonObjectReader::required_int(std::string_view key, std::int64_t min, std::int64_t max)
{
    return json_as_int(required(key), path_of(key), min, max);
}

void JsonObjectReader::reject_unknown() const
{
    for (auto it = value_.begin(); it != value_.end(); ++it)
        if (!consumed_.contains(it.key()))
            throw SchemaViolation{path_of(it.key()), "unknown field " + quote(it.key())};
}

std::string json_as_string(const nlohmann::json& v, const std::string& path, std::size_t max_len)
{
    if (!v.is_string())
        throw SchemaViolation{path, std::string("expected a string, found ") + type_name(v)};
    const auto& s = v.get_ref<const std::string&>();
    if (s.size() > max_len)
        throw SchemaViolation{path, "longer than " + std::to_string(max_len) + " bytes"};
    for (char c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            throw SchemaViolation{path, "contains a control character"};
    return s;
}

std::int64_t json_as_int(const nlohmann::json& v, const std::string& path, std::int64_t min,
                         std::int64_t max)
{
    if (!v.is_number_integer())
        throw SchemaViolation{path, std::string("expected an integer, found ") + type_name(v)};
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max))
        throw SchemaViolation{path, "out of range"};
    auto n = v.get<std::int64_t>();
    if (n < min || n > max)
        throw SchemaViolation{path, "must be between " + std::to_string(min) + " and " +
                                        std::to_string(max)};
    return n;
}

const nlohmann::json& json_as_array(const nlohmann::json& v, const std::string& path,
                                    std::size_t max_items)
{
    if (!v.is_array())
        throw SchemaViolation{path, std::string("expected an array, found ") + type_name(v)};
    if (v.size() > max_items)
        throw SchemaViolation{path, "more than " + std::to_string(max_items) + " items"};
    return v;
}

}  // namespace bpfbroker
