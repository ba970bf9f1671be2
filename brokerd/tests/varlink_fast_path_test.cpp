// The socket's fast path for AcquireProgram against the general one: every
// frame below goes through what the server does (parse_frame + answer_frame)
// and through the general pipeline (parse_message + parse_call +
// handle_varlink_call + encode_for_socket); both must reach the same verdict
// and write the same bytes with the same number of fds. The plain calls must
// take the fast path (or this test would prove nothing), and everything
// unusual (repeated keys, depth, unknown fields, bounds, flags) the general one.
#include "brokerd/limits.h"
#include "brokerd/varlink_methods.h"

#include "support/core_fixture.h"

#include "wire/varlink_framing.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace bpfbroker::brokerd {
namespace {

using VarlinkFastPath = test_support::CoreFixture;

struct Answer {
    bool closes = false;  // a ProtocolError that ends the connection
    bool reply = true;
    std::string bytes;
    std::size_t fds = 0;
};

policy::Peer nobody()
{
    policy::Peer p;
    p.uid = p.gid = 65534;
    p.pid = 4242;
    return p;
}

Answer refusal(const Error& e)
{
    auto bytes = varlink::encode_message(varlink::make_error_reply(e.code, e.message));
    return {true, true, bytes ? *bytes : "", 0};
}

Answer general_path(Broker& broker, std::string_view frame)
{
    auto message = varlink::parse_message(frame);
    if (!message)
        return refusal(message.error());
    auto call = varlink::parse_call(*message);
    if (!call)
        return refusal(call.error());
    if (call->more || call->upgrade) {
        auto e = encode_for_socket({varlink::make_error_reply(ErrorCode::InvalidParameter,
                                                              "this service answers every call once: \"more\" and "
                                                              "\"upgrade\" are not supported"),
                                    {},
                                    true});
        return {false, true, e.bytes, 0};
    }
    auto resp = encode_for_socket(handle_varlink_call(broker, nobody(), call->method, call->parameters, call->oneway));
    return {false, resp.reply, resp.bytes, resp.fds.size()};
}

// With a `cache` as the server's loop keeps one (acquire_reply_cache.h).
Answer server_path(Broker& broker, std::string_view frame, bool& fast, AcquireReplyCache* cache = nullptr)
{
    auto parsed = parse_frame(frame);
    if (!parsed)
        return refusal(parsed.error());
    fast = parsed->acquire.has_value();
    auto resp = answer_frame(broker, socket_context(nobody()), *parsed, cache);
    return {false, resp.reply, resp.bytes, resp.fds.size()};
}

const std::string kCall = R"({"method":"org.bpfbroker.Broker.AcquireProgram","parameters":)";

TEST_F(VarlinkFastPath, same_verdict_and_bytes_as_the_general_path)
{
    approve("drop_small", false);  // shared: the same program id on both paths
    const std::string long_name(65, 'a');
    std::string many_parameters = "{";
    for (std::size_t i = 0; i <= Limits::kChosenParameters; ++i)
        many_parameters += (i ? ",\"p" : "\"p") + std::to_string(i) + "\":1";
    many_parameters += "}";
    std::string deep = "1";
    for (int i = 0; i < 300; ++i)
        deep = "[" + deep + "]";

    struct Case {
        std::string frame;
        bool fast;  // expected to take the fast path
    };
    const std::vector<Case> cases = {
        {kCall + R"({"name":"drop_small"}})", true},
        {kCall + R"({"name":"drop_small","parameters":{}}})", true},
        {kCall + R"({"name":"no_such_program"}})", true},
        {kCall + R"({"name":"udp_stats"}})", true},  // not approved: the core refuses
        {kCall + R"({"name":"drop_small","parameters":{"min_len":5}}})", true},
        {kCall + R"({"name":"")" + long_name + R"("}})", false},
        {kCall + R"({"name":"drop_small","parameters":)" + many_parameters + "}}", false},
        {kCall + R"({"name":"drop_small","parameters":{")" + long_name + R"(":1}}})", false},
        {kCall + R"({"name":"drop_small","name":"drop_small"}})", false},
        {kCall + R"({"name":"drop_small","verbose":true}})", false},
        {kCall + R"({"name":"drop_small","parameters":{"x":-1}}})", false},
        {kCall + R"({"name":"drop_small","parameters":{"x":1.5}}})", false},
        {kCall + R"({"name":7}})", false},
        {kCall + R"({}})", false},
        {kCall + R"({"name":"drop_small"},"oneway":true})", false},
        {kCall + R"({"name":"drop_small"},"more":true})", false},
        {kCall + R"({"name":"drop_small"},"upgrade":true})", false},
        {kCall + R"({"name":"drop_small"},"method":"x"})", false},
        {kCall + R"({"name":"drop_small"},"extra":1})", false},
        {kCall + R"({"name":"drop_small","deep":)" + deep + "}}", false},
        {kCall + R"({"name":"drop_small"}} )", true},
        {kCall + R"({"name":"drop_small"}}{})", false},
        {kCall + R"({"name":"drop_\u0073mall"}})", true},
        {kCall + "{\"name\":\"drop\xff\"}}", false},
        {"\xEF\xBB\xBF" + kCall + R"({"name":"drop_small"}})", false},
        {R"( {"method":"org.bpfbroker.Broker.AcquireProgram","parameters":{"name":"drop_small"}})", false},
        {R"({"parameters":{"name":"drop_small"},"method":"org.bpfbroker.Broker.AcquireProgram"})", false},
        {R"({"method":"org.bpfbroker.Broker.ListPrograms"})", false},
        {kCall, false},
        {"", false},
    };
    // Twice over, the second time through one reply cache kept across the
    // cases: a reply it gives again is the bytes the general path writes.
    AcquireReplyCache cache;
    for (AcquireReplyCache* with : {static_cast<AcquireReplyCache*>(nullptr), &cache, &cache}) {
        for (const auto& c : cases) {
            SCOPED_TRACE(c.frame.substr(0, 200) + (with ? " (cached)" : ""));
            auto general = general_path(*broker_, c.frame);
            bool fast = false;
            auto server = server_path(*broker_, c.frame, fast, with);
            EXPECT_EQ(fast, c.fast);
            EXPECT_EQ(server.closes, general.closes);
            EXPECT_EQ(server.reply, general.reply);
            EXPECT_EQ(server.bytes, general.bytes);
            EXPECT_EQ(server.fds, general.fds);
        }
    }
}

TEST_F(VarlinkFastPath, a_fast_acquire_hands_out_the_program)
{
    approve("drop_small", false);
    bool fast = false;
    auto server = server_path(*broker_, kCall + R"({"name":"drop_small"}})", fast);
    ASSERT_TRUE(fast);
    ASSERT_EQ(server.fds, 1u);
    ASSERT_FALSE(server.bytes.empty());
    auto reply = varlink::decode_acquire_reply_via_json(std::string_view(server.bytes).substr(0, server.bytes.size() - 1));
    ASSERT_TRUE(reply) << reply.error().describe();
    EXPECT_EQ(reply->program, 0u);
    EXPECT_EQ(reply->info.name, "drop_small");
    EXPECT_EQ(reply->info.instance, "shared");
}

}  // namespace
}  // namespace bpfbroker::brokerd
