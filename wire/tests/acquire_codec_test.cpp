// The fast AcquireProgram codec against the general (nlohmann) one: the same
// bytes out of both encoders, and the same verdict and values out of both
// decoders on well-formed frames and on each kind of bad frame the wire must
// refuse (repeated keys, nesting too deep, unknown fields, invalid UTF-8, a
// byte-order mark). fuzz/acquire_codec_fuzzer.cpp does the same on any input.
#include "wire/acquire_codec.h"

#include "wire/varlink_framing.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

using namespace bpfbroker;
using namespace bpfbroker::varlink;

namespace {

AcquireCall call_named(std::string name, std::map<std::string, std::uint64_t> parameters = {})
{
    AcquireCall c;
    c.name = std::move(name);
    c.parameters = std::move(parameters);
    return c;
}

AcquireCall sample_call()
{
    return call_named("drop_small", {{"min_len", 64}, {"on", 1}, {"big", UINT64_MAX}});
}

AcquireCall call_with_flags()
{
    AcquireCall c = call_named("x");
    c.oneway = c.more = c.upgrade = true;
    return c;
}

AcquireReply sample_reply()
{
    AcquireReply r;
    r.links = std::map<std::string, std::uint64_t>{{"on_complete", 0}, {"on_submit", 1}};
    r.maps = {{"stats", 2}};
    r.info = {.name = "uring_stats", .version = "1.0", .type = "tracepoint", .instance = "per-client", .id = 42,
              .tag = "0123abcd", .map_access = {{"stats", "read"}}, .attach = "io_uring/io_uring_complete",
              .parameters = {{"target_tgid", 1234}}};
    return r;
}

std::string without_nul(std::string frame)
{
    EXPECT_EQ(frame.back(), '\0');
    frame.pop_back();
    return frame;
}

// Both decoders' verdict on `frame`: nullopt when accepted, else the code.
template <typename Fast, typename General>
std::optional<ErrorCode> same_verdict(std::string_view frame, Fast fast, General general)
{
    auto a = fast(frame);
    auto b = general(frame);
    EXPECT_EQ(bool(a), bool(b)) << "fast and general disagree on: " << frame << "\n fast: "
                                << (a ? std::string("accepted") : a.error().describe())
                                << "\n general: " << (b ? std::string("accepted") : b.error().describe());
    if (a && b) {
        EXPECT_TRUE(*a == *b) << frame;
    }
    if (!a && !b) {
        EXPECT_EQ(a.error().code, b.error().code) << frame << ": " << a.error().describe() << " / "
                                                  << b.error().describe();
    }
    return a ? std::nullopt : std::optional<ErrorCode>(a.error().code);
}

std::optional<ErrorCode> call_verdict(std::string_view frame)
{
    return same_verdict(frame, decode_acquire_call, decode_acquire_call_via_json);
}

std::optional<ErrorCode> reply_verdict(std::string_view frame)
{
    return same_verdict(frame, decode_acquire_reply, decode_acquire_reply_via_json);
}

const std::string kGoodReply =
    R"({"parameters":{"program":0,"maps":{"stats":1},"info":{"name":"udp_stats","id":5,"tag":"ab","type":"socket_filter","instance":"shared","version":"1","map_access":{"stats":"read"}}}})";

}  // namespace

TEST(acquire_codec, both_call_encoders_write_the_same_bytes)
{
    for (const auto& call : {sample_call(), call_named("a\"\\\n\x01\x7f/é"), call_with_flags()}) {
        auto fast = encode_acquire_call(call);
        auto general = encode_acquire_call_via_json(call);
        ASSERT_TRUE(fast && general);
        EXPECT_EQ(*fast, *general);
        EXPECT_TRUE(looks_like_acquire_call(*fast));
        auto back = decode_acquire_call(without_nul(*fast));
        ASSERT_TRUE(back) << back.error().describe();
        EXPECT_TRUE(*back == call);
    }
}

TEST(acquire_codec, both_reply_encoders_write_the_same_bytes)
{
    AcquireReply client_attached;
    client_attached.program = 0;
    client_attached.info.name = "udp_stats";
    client_attached.info.type = "socket_filter";
    for (const auto& reply : {sample_reply(), client_attached}) {
        auto fast = encode_acquire_reply(reply);
        auto general = encode_acquire_reply_via_json(reply);
        ASSERT_TRUE(fast && general);
        EXPECT_EQ(*fast, *general);
        auto back = decode_acquire_reply(without_nul(*fast));
        ASSERT_TRUE(back) << back.error().describe();
        EXPECT_TRUE(*back == reply);
    }
}

TEST(acquire_codec, encoders_refuse_what_is_not_utf8)
{
    AcquireCall call = call_named("bad\xC0\x80");
    auto fast = encode_acquire_call(call);
    auto general = encode_acquire_call_via_json(call);
    ASSERT_FALSE(fast);
    ASSERT_FALSE(general);
    EXPECT_EQ(fast.error().code, ErrorCode::InvalidParameter);
    EXPECT_EQ(general.error().code, ErrorCode::InvalidParameter);
}

TEST(acquire_codec, calls_in_any_key_order_and_spacing_are_read_alike)
{
    EXPECT_EQ(call_verdict(R"( { "parameters" : { "parameters": {"b": 0, "a": 7}, "name" : "x\u00e9\ud83d\ude00" },)"
                           R"( "oneway": false, "method" : "org.bpfbroker.Broker.AcquireProgram" } )"),
              std::nullopt);
    // The method name escaped is the same name (compared decoded, not in place).
    EXPECT_EQ(call_verdict(R"({"method":"org.bpfbroker.Broker.Acquire\u0050rogram","parameters":{"name":"x"}})"),
              std::nullopt);
    auto call = decode_acquire_call(R"({"parameters":{"name":"x"},"method":"org.bpfbroker.Broker.AcquireProgram"})");
    ASSERT_TRUE(call);
    EXPECT_EQ(call->name, "x");
    EXPECT_FALSE(looks_like_acquire_call(R"({"parameters":{"name":"x"},"method":"org.bpfbroker.Broker.AcquireProgram"})"));
}

TEST(acquire_codec, bad_calls_are_refused_alike)
{
    const std::string m = R"("method":"org.bpfbroker.Broker.AcquireProgram")";
    struct Case {
        std::string frame;
        ErrorCode code;
    } cases[] = {
        {"{" + m + R"(,"parameters":{"name":"a","name":"b"}})", ErrorCode::ProtocolError},        // repeated key
        {"{" + m + R"(,"parameters":{"name":"a"},"method":"x.Y"})", ErrorCode::ProtocolError},    // repeated key
        {"{" + m + R"(,"parameters":{"name":"a","extra":1}})", ErrorCode::InvalidParameter},      // unknown field
        {"{" + m + R"(,"parameters":{"name":"a"},"extra":1})", ErrorCode::ProtocolError},         // unknown field
        {"{" + m + R"(,"parameters":{"name":"a","x":1,"x":2}})", ErrorCode::ProtocolError},       // repeated unknown
        // A key written escaped repeats one written plainly, either way round.
        {"{" + m + R"(,"parameters":{"name":"a","\u006eame":"b"}})", ErrorCode::ProtocolError},
        {"{" + m + R"(,"parameters":{"n\u0061me":"a","name":"b"}})", ErrorCode::ProtocolError},
        {"{" + m + R"(,"parameters":{"name":"a","parameters":{"x\"":1,"x\u0022":2}}})", ErrorCode::ProtocolError},
        // Past the 16 keys kept in place, a repeat of an early (escaped) one.
        {"{" + m + R"(,"parameters":{"name":"a","parameters":{"\u0061":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,)"
                   R"("h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"a":18}}})",
         ErrorCode::ProtocolError},
        {"{" + m + R"(,"parameters":{"name":"a\xff"}})", ErrorCode::ProtocolError},               // invalid UTF-8
        {"{" + m + R"(,"parameters":{"name":"\xED\xA0\x80"}})", ErrorCode::ProtocolError},        // a surrogate
        {"{" + m + R"(,"parameters":{"name":"\ud800"}})", ErrorCode::ProtocolError},              // lone surrogate
        {"\xEF\xBB\xBF{" + m + R"(,"parameters":{"name":"a"}})", ErrorCode::ProtocolError},       // byte-order mark
        {"{" + m + R"(,"parameters":{"name":"a","x":)" + std::string(40, '[') + std::string(40, ']') + "}}",
         ErrorCode::ProtocolError},                                                               // too deep
        {"{" + m + R"(,"parameters":{"name":1}})", ErrorCode::InvalidParameter},
        {"{" + m + R"(,"parameters":{}})", ErrorCode::InvalidParameter},                          // no name
        {"{" + m + R"(,"parameters":{"name":"a","parameters":{"x":-1}}})", ErrorCode::InvalidParameter},
        {"{" + m + R"(,"parameters":{"name":"a","parameters":{"x":1.0}}})", ErrorCode::InvalidParameter},
        {"{" + m + R"(,"parameters":{"name":"a","parameters":{"x":18446744073709551616}}})", ErrorCode::InvalidParameter},
        {"{" + m + R"(,"parameters":{"name":"a","parameters":{"x":1e999}}})", ErrorCode::ProtocolError},
        {"{" + m + R"(,"parameters":{"name":"a","parameters":{"x":01}}})", ErrorCode::ProtocolError},
        {"{" + m + R"(,"parameters":{"name":"a"},"oneway":1})", ErrorCode::ProtocolError},
        {R"({"method":"org.bpfbroker.Broker.ListPrograms","parameters":{}})", ErrorCode::ProtocolError},
        // The method: longer, shorter, past ASCII, a bad escape, unterminated.
        {R"({"method":"org.bpfbroker.Broker.AcquireProgramX","parameters":{"name":"a"}})", ErrorCode::ProtocolError},
        {R"({"method":"org.bpfbroker.Broker.AcquireProgra","parameters":{"name":"a"}})", ErrorCode::ProtocolError},
        {R"({"method":"org.bpfbroker.Broker.AcquireProgr\u00e1m","parameters":{"name":"a"}})", ErrorCode::ProtocolError},
        {"{\"method\":\"org.bpfbroker.Broker.AcquireProgr\xc3\xa1m\",\"parameters\":{\"name\":\"a\"}}", ErrorCode::ProtocolError},
        {R"({"method":"org.bpfbroker.Broker.AcquireProgram\u00zz","parameters":{"name":"a"}})", ErrorCode::ProtocolError},
        {R"({"method":"org.bpfbroker.Broker.AcquireProgram)", ErrorCode::ProtocolError},
        {"{" + m + R"(,"parameters":{"name":"a"}} x)", ErrorCode::ProtocolError},                 // trailing bytes
        {"", ErrorCode::ProtocolError},
        {"[]", ErrorCode::ProtocolError},
    };
    for (const auto& c : cases)
        EXPECT_EQ(call_verdict(c.frame), c.code) << c.frame;
}

TEST(acquire_codec, bad_replies_are_refused_alike)
{
    EXPECT_EQ(reply_verdict(kGoodReply), std::nullopt);
    std::string replace_from = R"("version":"1")";
    auto with = [&](const std::string& instead) {
        std::string s = kGoodReply;
        return s.replace(s.find(replace_from), replace_from.size(), instead);
    };
    const std::string cases[] = {
        with(R"("version":"1","version":"2")"),              // repeated key
        with(R"("version":"1","future":true)"),              // unknown field
        with(R"("version":"\xC0\xAF")"),                      // overlong UTF-8
        with(R"("version":)" + std::string(40, '[') + std::string(40, ']')),
        with(R"("version":1)"),                               // wrong type
        with(R"("version":"1","id":4294967296)"),            // repeated, too big
        R"({"parameters":{"program":0,"maps":{}}})",          // no info
        "\xEF\xBB\xBF" + kGoodReply,                          // byte-order mark
        kGoodReply + std::string("\0\0junk", 6),               // a NUL, then bytes nlohmann would ignore
        kGoodReply.substr(0, kGoodReply.size() - 1) + R"(,"continues":true})",
        kGoodReply.substr(0, kGoodReply.size() - 1) + R"(,"extra":1})",
    };
    for (const auto& c : cases)
        EXPECT_EQ(reply_verdict(c), ErrorCode::ProtocolError) << c;
}

TEST(acquire_codec, error_replies_keep_their_code_on_both_paths)
{
    EXPECT_EQ(reply_verdict(R"({"parameters":{"reason":"no"},"error":"org.bpfbroker.Broker.PermissionDenied"})"),
              ErrorCode::PermissionDenied);
    EXPECT_EQ(reply_verdict(R"({"parameters":{"program":"x"},"error":"org.varlink.service.InvalidParameter"})"),
              ErrorCode::InvalidParameter);
    auto e = decode_acquire_reply(R"({"error":"org.bpfbroker.Broker.PermissionDenied","parameters":{"reason":"no"}})");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().message, "no");
}

TEST(acquire_codec, the_general_reader_refuses_a_byte_order_mark)
{
    auto message = parse_message("\xEF\xBB\xBF{}");
    ASSERT_FALSE(message);
    EXPECT_EQ(message.error().code, ErrorCode::ProtocolError);
    EXPECT_NE(message.error().message.find("byte-order mark"), std::string::npos);
}
