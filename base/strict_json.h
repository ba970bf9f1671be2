// Strict JSON reading for policy files and requests: duplicate keys, deep
// nesting, unknown fields and wrong types are all refused with the JSON path
// of the offending value. Duplicate keys matter because the signature covers
// bytes: two parsers must never disagree about what a signed file says.
//
// Readers throw SchemaViolation while walking a document; each parse_* entry
// point catches it and returns a Result, so no exception leaves policy/.
#pragma once

#include <bpfbroker/result.h>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace bpfbroker {

struct SchemaViolation {
    std::string path;    // e.g. "$.programs[0].type"
    std::string reason;  // e.g. "unknown program type \"kprobe\""
};

inline constexpr std::size_t kMaxJsonDepth = 16;

// Parses bytes as JSON, refusing duplicate keys, nesting deeper than
// kMaxJsonDepth, a leading byte-order mark and invalid UTF-8. Errors carry `code` and say where.
Result<nlohmann::json> parse_strict_json(std::string_view bytes, ErrorCode code);

// Walks one JSON object; every key must be consumed, or reject_unknown() throws.
class JsonObjectReader {
public:
    JsonObjectReader(const nlohmann::json& value, std::string path);

    [[nodiscard]] bool has(std::string_view key) const;
    const nlohmann::json& required(std::string_view key);
    const nlohmann::json* optional(std::string_view key);

    std::string required_string(std::string_view key, std::size_t max_len);
    std::string optional_string(std::string_view key, std::size_t max_len, std::string fallback);
    bool optional_bool(std::string_view key, bool fallback);
    std::int64_t required_int(std::string_view key, std::int64_t min, std::int64_t max);

    [[nodiscard]] std::string path_of(std::string_view key) const;
    [[noreturn]] void violation(std::string_view key, std::string reason) const;
    void reject_unknown() const;

private:
    const nlohmann::json& value_;
    std::string path_;
    std::set<std::string, std::less<>> consumed_;
};

std::string json_as_string(const nlohmann::json& v, const std::string& path, std::size_t max_len);
std::int64_t json_as_int(const nlohmann::json& v, const std::string& path, std::int64_t min,
                         std::int64_t max);
const nlohmann::json& json_as_array(const nlohmann::json& v, const std::string& path,
                                    std::size_t max_items);

}  // namespace bpfbroker
