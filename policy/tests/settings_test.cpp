// Daemon settings: defaults, every field, and strict refusals.
#include "policy/settings.h"

#include <gtest/gtest.h>

using namespace bpfbroker;
using namespace bpfbroker::policy;

TEST(settings, empty_object_gives_defaults)
{
    auto s = parse_settings("{}");
    ASSERT_TRUE(s) << s.error().describe();
    EXPECT_TRUE(s->vendor_allowlists);
    EXPECT_TRUE(s->polkit);
    EXPECT_EQ(s->limits.max_instances_per_uid, 16u);
    EXPECT_EQ(s->max_message_bytes, 64u * 1024);
}

TEST(settings, reads_every_field)
{
    auto s = parse_settings(R"({"vendor_allowlists":false,"polkit":false,"limits":{"max_instances_per_uid":3,
        "max_connections_per_uid":4,"max_message_bytes":4096,"max_requests_per_second":5,"stalled_client_timeout_ms":300}})");
    ASSERT_TRUE(s) << s.error().describe();
    EXPECT_FALSE(s->vendor_allowlists);
    EXPECT_FALSE(s->polkit);
    EXPECT_EQ(s->limits.max_instances_per_uid, 3u);
    EXPECT_EQ(s->max_connections_per_uid, 4u);
    EXPECT_EQ(s->max_message_bytes, 4096u);
    EXPECT_EQ(s->max_requests_per_second, 5u);
    EXPECT_EQ(s->stalled_client_timeout_ms, 300u);
}

TEST(settings, refuses_unknown_fields_and_out_of_range_values)
{
    for (const char* bad : {R"({"limit":{}})", R"({"limits":{"max_message_bytes":10}})",
                            R"({"limits":{"max_connections_per_uid":0}})", R"({"polkit":"yes"})",
                            R"({"limits":{"stalled_client_timeout_ms":1}})", "[]"}) {
        auto s = parse_settings(bad);
        ASSERT_FALSE(s) << bad;
        EXPECT_EQ(s.error().code, ErrorCode::InvalidParameter) << bad;
    }
}

TEST(settings, attach_points_widen_the_io_uring_defaults)
{
    auto s = parse_settings("{}");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->attach_points.tracepoint, std::vector<std::string>{"io_uring/*"});
    EXPECT_EQ(s->attach_points.raw_tracepoint, std::vector<std::string>{"io_uring_*"});

    s = parse_settings(R"({"attach_points":{"tracepoint":["sched/sched_switch"],"raw_tracepoint":["sched_*"]}})");
    ASSERT_TRUE(s) << s.error().describe();
    EXPECT_EQ(s->attach_points.tracepoint, (std::vector<std::string>{"io_uring/*", "sched/sched_switch"}));
    EXPECT_TRUE(s->attach_points.allows(ProgramType::RawTracepoint, "sched_switch"));
    EXPECT_TRUE(s->attach_points.allows(ProgramType::RawTracepoint, "io_uring_complete"));
    EXPECT_FALSE(s->attach_points.allows(ProgramType::RawTracepoint, "sys_enter"));

    for (const char* bad : {R"({"attach_points":{"kprobe":[]}})", R"({"attach_points":{"tracepoint":["a*b"]}})",
                            R"({"attach_points":{"tracepoint":["../x"]}})", R"({"attach_points":{"tracepoint":"x"}})"}) {
        auto refused = parse_settings(bad);
        ASSERT_FALSE(refused) << bad;
        EXPECT_EQ(refused.error().code, ErrorCode::InvalidParameter) << bad;
    }
}
