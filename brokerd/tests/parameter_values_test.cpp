// resolve_parameters: bound values come from the caller's identity only,
// choices from the request within bounds, defaults otherwise.
#include "brokerd/parameter_values.h"

#include <gtest/gtest.h>

namespace bpfbroker::brokerd {
namespace {

using policy::ChoiceType;
using policy::Manifest;
using policy::ParameterBinding;
using policy::ParameterChoice;
using policy::ParameterSpec;

Manifest with_parameters()
{
    Manifest m;
    m.name = "demo";
    m.parameters = {
        {"target_tgid", ParameterBinding::CallerTgid, std::nullopt},
        {"target_uid", ParameterBinding::CallerUid, std::nullopt},
        {"target_cgroup", ParameterBinding::CallerCgroupId, std::nullopt},
        {"min_len", std::nullopt, ParameterChoice{ChoiceType::U32, 2, 1500, 8}},
        {"verbose", std::nullopt, ParameterChoice{ChoiceType::Bool, 0, 1, 0}},
    };
    return m;
}

const CallerIdentity kCaller{4242, 65534, 77};

std::string error_of(const ParameterValues& requested)
{
    auto values = resolve_parameters(with_parameters(), kCaller, requested);
    if (values)
        return "";
    EXPECT_EQ(values.error().code, ErrorCode::InvalidParameter);
    return values.error().message;
}

TEST(parameter_values, binds_come_from_the_caller_and_choices_default)
{
    auto values = resolve_parameters(with_parameters(), kCaller, {});
    ASSERT_TRUE(values) << values.error().describe();
    EXPECT_EQ(*values, (ParameterValues{{"target_tgid", 4242}, {"target_uid", 65534}, {"target_cgroup", 77},
                                        {"min_len", 8}, {"verbose", 0}}));
    values = resolve_parameters(with_parameters(), kCaller, {{"min_len", 1500}, {"verbose", 1}});
    ASSERT_TRUE(values) << values.error().describe();
    EXPECT_EQ(values->at("min_len"), 1500u);
    EXPECT_EQ(values->at("verbose"), 1u);
}

TEST(parameter_values, a_request_cannot_override_a_bound_value_or_leave_the_bounds)
{
    EXPECT_EQ(error_of({{"target_tgid", 1}}),
              "parameters.target_tgid: is bound to caller.tgid; the broker sets it, a request cannot");
    EXPECT_EQ(error_of({{"min_len", 1501}}), "parameters.min_len: 1501 lies outside [2, 1500]");
    EXPECT_EQ(error_of({{"min_len", 1}}), "parameters.min_len: 1 lies outside [2, 1500]");
    EXPECT_EQ(error_of({{"verbose", 2}}), "parameters.verbose: 2 lies outside [0, 1]");
    EXPECT_EQ(error_of({{"nope", 0}}), "parameters.nope: program \"demo\" has no such parameter");
}

TEST(parameter_values, an_unknown_caller_process_fails_closed)
{
    auto values = resolve_parameters(with_parameters(), CallerIdentity{0, 0, 77}, {});
    ASSERT_FALSE(values);
    EXPECT_EQ(values.error().code, ErrorCode::Internal);
    EXPECT_NE(values.error().message.find("caller.tgid"), std::string::npos);
}

TEST(parameter_values, sizes_follow_the_kernel_types)
{
    auto m = with_parameters();
    EXPECT_EQ(parameter_size(m.parameters[0]), 4u);
    EXPECT_EQ(parameter_size(m.parameters[1]), 4u);
    EXPECT_EQ(parameter_size(m.parameters[2]), 8u);
    EXPECT_EQ(parameter_size(m.parameters[3]), 4u);
    EXPECT_EQ(parameter_size(m.parameters[4]), 1u);
}

}  // namespace
}  // namespace bpfbroker::brokerd
