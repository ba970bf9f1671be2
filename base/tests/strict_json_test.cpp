// The one strict JSON reader: what it refuses, for policy files and Varlink
// messages alike.
#include "base/strict_json.h"

#include <gtest/gtest.h>

#include <string>

namespace bpfbroker {
namespace {

TEST(strict_json, accepts_plain_objects)
{
    auto doc = parse_strict_json(R"({"a": [1, {"b": true}], "c": "d"})", ErrorCode::ManifestInvalid);
    ASSERT_TRUE(doc) << doc.error().message;
    EXPECT_EQ((*doc)["c"], "d");
}

TEST(strict_json, refuses_a_utf8_byte_order_mark)
{
    // nlohmann alone skips it, so without the check these bytes would parse.
    auto doc = parse_strict_json("\xEF\xBB\xBF{\"a\": 1}", ErrorCode::ProtocolError);
    ASSERT_FALSE(doc);
    EXPECT_EQ(doc.error().code, ErrorCode::ProtocolError);
    EXPECT_NE(doc.error().message.find("byte-order mark"), std::string::npos) << doc.error().message;
}

TEST(strict_json, refuses_a_repeated_key_at_any_depth)
{
    for (const char* text : {R"({"a": 1, "a": 2})", R"({"x": {"a": 1, "a": 1}})", R"([{"k": 0, "k": 0}])"}) {
        auto doc = parse_strict_json(text, ErrorCode::ManifestInvalid);
        ASSERT_FALSE(doc) << text;
        EXPECT_NE(doc.error().message.find("duplicate key"), std::string::npos) << doc.error().message;
    }
    // The same key in sibling objects is fine.
    EXPECT_TRUE(parse_strict_json(R"([{"k": 0}, {"k": 1}])", ErrorCode::ManifestInvalid));
}

TEST(strict_json, bounds_nesting)
{
    std::string ok = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
    EXPECT_TRUE(parse_strict_json(ok, ErrorCode::ManifestInvalid));
    std::string deep = std::string(kMaxJsonDepth + 2, '[') + std::string(kMaxJsonDepth + 2, ']');
    auto doc = parse_strict_json(deep, ErrorCode::ManifestInvalid);
    ASSERT_FALSE(doc);
    EXPECT_NE(doc.error().message.find("nested deeper"), std::string::npos) << doc.error().message;
}

TEST(strict_json, refuses_comments_and_trailing_bytes)
{
    EXPECT_FALSE(parse_strict_json("{\"a\": 1} // no", ErrorCode::ManifestInvalid));
    EXPECT_FALSE(parse_strict_json("{\"a\": 1}x", ErrorCode::ManifestInvalid));
}

}  // namespace
}  // namespace bpfbroker
