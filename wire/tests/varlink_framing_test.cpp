// Varlink framing: frames split and joined across reads, size limits that
// hold without buffering, strict parsing, call/reply shapes.
#include "wire/varlink_framing.h"

#include "base/strict_json.h"

#include <bpfbroker/error_names.h>

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::varlink {
namespace {

using nlohmann::json;
using namespace std::string_literals;

// Feeds `stream` in chunks of `chunk` bytes, draining after each feed as a
// connection handler would; returns the frames in order.
std::vector<std::string> frames_of(std::string_view stream, std::size_t chunk, FrameReader& reader)
{
    std::vector<std::string> out;
    for (std::size_t pos = 0; pos < stream.size(); pos += chunk) {
        auto fed = reader.feed(stream.substr(pos, chunk));
        EXPECT_TRUE(fed) << fed.error().describe();
        for (;;) {
            auto frame = reader.next_frame();
            EXPECT_TRUE(frame);
            if (!frame || !frame->has_value())
                break;
            out.push_back(**frame);
        }
    }
    return out;
}

TEST(varlink_framing, frames_split_across_reads_reassemble)
{
    const std::string stream = "{\"method\":\"a.B\"}\0{\"parameters\":{}}\0"s;
    for (std::size_t chunk = 1; chunk <= stream.size(); ++chunk) {
        FrameReader reader;
        auto frames = frames_of(stream, chunk, reader);
        ASSERT_EQ(frames.size(), 2u) << "chunk " << chunk;
        EXPECT_EQ(frames[0], "{\"method\":\"a.B\"}");
        EXPECT_EQ(frames[1], "{\"parameters\":{}}");
        EXPECT_EQ(reader.buffered_bytes(), 0u);
        EXPECT_TRUE(reader.finish());
    }
}

TEST(varlink_framing, several_frames_in_one_read)
{
    FrameReader reader;
    ASSERT_TRUE(reader.feed("{\"a\":1}\0{\"b\":2}\0{\"c\""s));
    std::vector<json> got;
    for (;;) {
        auto m = reader.next_message();
        ASSERT_TRUE(m) << m.error().describe();
        if (!m->has_value())
            break;
        got.push_back(**m);
    }
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0]["a"], 1);
    EXPECT_EQ(got[1]["b"], 2);
    ASSERT_TRUE(reader.feed(":3}\0"s));
    auto last = reader.next_message();
    ASSERT_TRUE(last);
    ASSERT_TRUE(last->has_value());
    EXPECT_EQ((**last)["c"], 3);
}

TEST(varlink_framing, frame_of_exactly_the_limit_is_accepted)
{
    FrameReader reader(16);
    std::string body = "{\"k\":\"" + std::string(16 - 8, 'x') + "\"}";
    ASSERT_EQ(body.size(), 16u);
    ASSERT_TRUE(reader.feed(body));
    ASSERT_TRUE(reader.feed(std::string_view("\0", 1)));
    auto m = reader.next_message();
    ASSERT_TRUE(m) << m.error().describe();
    ASSERT_TRUE(m->has_value());
}

TEST(varlink_framing, oversized_frame_refused_without_growing)
{
    constexpr std::size_t kMax = 1024;
    FrameReader reader(kMax);
    const std::string chunk(100, 'x');
    std::size_t fed = 0;
    Result<void> result;
    for (int i = 0; i < 10'000 && result; ++i) {  // a peer that never sends NUL
        result = reader.feed(chunk);
        if (result)
            fed += chunk.size();
        EXPECT_LE(reader.buffered_bytes(), kMax);
    }
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, ErrorCode::LimitExceeded);
    EXPECT_LE(fed, kMax);
    EXPECT_LE(reader.buffered_bytes(), kMax);
    EXPECT_TRUE(reader.failed());

    // The stream cannot be resynchronised: everything after fails the same way.
    auto again = reader.feed("{}\0"s);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, ErrorCode::LimitExceeded);
    auto next = reader.next_frame();
    ASSERT_FALSE(next);
    EXPECT_EQ(next.error().code, ErrorCode::LimitExceeded);
}

TEST(varlink_framing, oversized_frame_with_nul_in_same_read_refused)
{
    FrameReader reader(8);
    auto r = reader.feed("{\"a\":\"0123456789\"}\0"s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::LimitExceeded);
    EXPECT_EQ(reader.buffered_bytes(), 0u);
}

TEST(varlink_framing, oversized_frame_after_good_one_in_same_read)
{
    FrameReader reader(8);
    auto r = reader.feed("{}\0{\"long\":\"value\"}"s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::LimitExceeded);
}

TEST(varlink_framing, missing_nul_at_eof_is_protocol_error)
{
    FrameReader reader;
    ASSERT_TRUE(reader.feed("{\"method\":\"a.B\"}\0{\"method\""s));
    auto first = reader.next_message();
    ASSERT_TRUE(first);
    ASSERT_TRUE(first->has_value());
    auto none = reader.next_message();
    ASSERT_TRUE(none);
    EXPECT_FALSE(none->has_value());
    auto eof = reader.finish();
    ASSERT_FALSE(eof);
    EXPECT_EQ(eof.error().code, ErrorCode::ProtocolError);
}

TEST(varlink_framing, clean_eof_is_fine)
{
    FrameReader reader;
    EXPECT_TRUE(reader.finish());
    ASSERT_TRUE(reader.feed("{}\0"s));
    EXPECT_TRUE(reader.finish());  // a complete frame waiting is not an error
}

TEST(varlink_framing, garbage_is_protocol_error_and_poisons_reader)
{
    const std::vector<std::string> bad = {
        "not json",
        "{\"a\":1}trailing",
        "{\"a\":1}{\"b\":2}",
        "{\"a\":",
        "\xff\xfe{}",
        "{\"a\":\"\xc3\x28\"}",  // invalid UTF-8 inside a string
        "",                       // empty frame
        "{\"a\":1,\"a\":2}",       // repeated key
    };
    for (const auto& body : bad) {
        FrameReader reader;
        ASSERT_TRUE(reader.feed(body + '\0'));
        auto m = reader.next_message();
        ASSERT_FALSE(m) << "accepted: " << body;
        EXPECT_EQ(m.error().code, ErrorCode::ProtocolError) << body;
        EXPECT_TRUE(reader.failed());
        // Good bytes after garbage do not revive the stream.
        EXPECT_FALSE(reader.feed("{}\0"s));
    }
}

TEST(varlink_framing, non_object_json_is_protocol_error)
{
    for (const char* body : {"[]", "[1,2]", "42", "\"str\"", "null", "true"}) {
        auto m = parse_message(body);
        ASSERT_FALSE(m) << body;
        EXPECT_EQ(m.error().code, ErrorCode::ProtocolError) << body;
    }
}

TEST(varlink_framing, a_byte_order_mark_is_malformed)
{
    // Found by an outside attack run: a message behind a UTF-8 BOM was served.
    FrameReader reader;
    ASSERT_TRUE(reader.feed(std::string("\xEF\xBB\xBF{\"method\":\"org.bpfbroker.Broker.ListPrograms\"}") + '\0'));
    auto m = reader.next_message();
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code, ErrorCode::ProtocolError);
}

TEST(varlink_framing, nesting_is_bounded)
{
    std::string ok = "{\"a\":";
    for (int i = 0; i < static_cast<int>(kMaxJsonDepth) - 2; ++i)
        ok += '[';
    ok += "1";
    for (int i = 0; i < static_cast<int>(kMaxJsonDepth) - 2; ++i)
        ok += ']';
    ok += '}';
    EXPECT_TRUE(parse_message(ok));

    std::string deep = "{\"a\":" + std::string(10'000, '[') + std::string(10'000, ']') + "}";
    auto m = parse_message(deep);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code, ErrorCode::ProtocolError);
}

TEST(varlink_framing, encode_appends_nul_and_round_trips)
{
    json call = make_call("org.bpfbroker.Broker.AcquireProgram", json{{"name", "udp_stats"}});
    auto bytes = encode_message(call);
    ASSERT_TRUE(bytes);
    ASSERT_FALSE(bytes->empty());
    EXPECT_EQ(bytes->back(), '\0');
    EXPECT_EQ(bytes->find('\0'), bytes->size() - 1);

    FrameReader reader;
    ASSERT_TRUE(reader.feed(*bytes));
    auto m = reader.next_message();
    ASSERT_TRUE(m);
    ASSERT_TRUE(m->has_value());
    EXPECT_EQ(**m, call);
}

TEST(varlink_framing, encode_escapes_nul_and_replaces_bad_utf8)
{
    json msg = make_error_reply(ErrorCode::UnsafeFile, "bad\0name\xff"s);
    auto bytes = encode_message(msg);
    ASSERT_TRUE(bytes);
    EXPECT_EQ(bytes->find('\0'), bytes->size() - 1);  // the NUL inside was escaped
    auto back = parse_message(std::string_view(*bytes).substr(0, bytes->size() - 1));
    ASSERT_TRUE(back) << back.error().describe();
}

TEST(varlink_framing, encode_refuses_oversized_and_non_objects)
{
    auto big = encode_message(make_reply(json{{"blob", std::string(100, 'x')}}), 64);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().code, ErrorCode::LimitExceeded);
    auto arr = encode_message(json::array());
    ASSERT_FALSE(arr);
    EXPECT_EQ(arr.error().code, ErrorCode::InvalidParameter);
}

TEST(varlink_messages, parse_call_accepts_the_documented_shape)
{
    auto call = parse_call(json::parse(
        R"({"method":"org.bpfbroker.Broker.AcquireProgram","parameters":{"name":"udp_stats"},"more":true})"));
    ASSERT_TRUE(call) << call.error().describe();
    EXPECT_EQ(call->method, "org.bpfbroker.Broker.AcquireProgram");
    EXPECT_EQ(call->parameters["name"], "udp_stats");
    EXPECT_TRUE(call->more);
    EXPECT_FALSE(call->oneway);

    auto bare = parse_call(json::parse(R"({"method":"org.bpfbroker.Broker.ListPrograms"})"));
    ASSERT_TRUE(bare);
    EXPECT_TRUE(bare->parameters.is_object());
    EXPECT_TRUE(bare->parameters.empty());
}

TEST(varlink_messages, parse_call_is_strict)
{
    for (const char* text : {
             R"({})",
             R"({"method":42})",
             R"({"method":"NoDot"})",
             R"({"method":"trailing."})",
             R"({"method":"a.B","parameters":[]})",
             R"({"method":"a.B","oneway":"yes"})",
             R"({"method":"a.B","extra":1})",
         }) {
        auto call = parse_call(json::parse(text));
        ASSERT_FALSE(call) << text;
        EXPECT_EQ(call.error().code, ErrorCode::ProtocolError) << text;
    }
}

TEST(varlink_messages, parse_reply_and_error_round_trip)
{
    auto ok = parse_reply(make_reply(json{{"program", 0}}));
    ASSERT_TRUE(ok);
    EXPECT_FALSE(ok->error);
    EXPECT_EQ(ok->parameters["program"], 0);

    auto denied = parse_reply(make_error_reply(ErrorCode::PermissionDenied, "no grant for uid 1000"));
    ASSERT_TRUE(denied);
    ASSERT_TRUE(denied->error);
    EXPECT_EQ(*denied->error, "org.bpfbroker.Broker.PermissionDenied");
    Error e = error_from_reply(*denied);
    EXPECT_EQ(e.code, ErrorCode::PermissionDenied);
    EXPECT_EQ(e.message, "no grant for uid 1000");

    auto invalid = parse_reply(make_invalid_parameter_reply("name"));
    ASSERT_TRUE(invalid);
    EXPECT_EQ(*invalid->error, "org.varlink.service.InvalidParameter");
    EXPECT_EQ(invalid->parameters["parameter"], "name");
    EXPECT_EQ(error_from_reply(*invalid).code, ErrorCode::InvalidParameter);

    auto missing = parse_reply(make_method_not_found_reply("org.bpfbroker.Broker.Nope"));
    ASSERT_TRUE(missing);
    EXPECT_EQ(*missing->error, "org.varlink.service.MethodNotFound");
    EXPECT_EQ(error_from_reply(*missing).code, ErrorCode::Unsupported);

    auto unknown = parse_reply(json::parse(R"({"error":"com.example.Weird","parameters":{}})"));
    ASSERT_TRUE(unknown);
    EXPECT_EQ(error_from_reply(*unknown).code, ErrorCode::ProtocolError);

    auto extra = parse_reply(json::parse(R"({"parameters":{},"surprise":1})"));
    ASSERT_FALSE(extra);
    EXPECT_EQ(extra.error().code, ErrorCode::ProtocolError);
}

// Found by varlink_frame_fuzzer: a server's empty "reason" made an error
// with no message at all. An empty field says nothing; the next one, or
// the error's name, does.
TEST(varlink_messages, an_empty_reason_never_makes_an_empty_error_message)
{
    auto empty = parse_reply(json::parse(R"({"error":"org.bpfbroker.Broker.PermissionDenied","parameters":{"reason":""}})"));
    ASSERT_TRUE(empty);
    Error e = error_from_reply(*empty);
    EXPECT_EQ(e.code, ErrorCode::PermissionDenied);
    EXPECT_EQ(e.message, "org.bpfbroker.Broker.PermissionDenied");

    auto fallback = parse_reply(
        json::parse(R"({"error":"org.varlink.service.InvalidParameter","parameters":{"reason":"","parameter":"name"}})"));
    ASSERT_TRUE(fallback);
    EXPECT_EQ(error_from_reply(*fallback).message, "invalid parameter \"name\"");
}

}  // namespace
}  // namespace bpfbroker::varlink
