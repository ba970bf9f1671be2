// The method table: lookups answer with the Varlink spec's errors, and the
// parameter spec names the first offending field.
#include "brokerd/varlink_method_table.h"

#include <gtest/gtest.h>

namespace bpfbroker::brokerd {
namespace {

std::string error_of(const std::variant<const MethodSpec*, DispatchError>& found)
{
    auto* err = std::get_if<DispatchError>(&found);
    return err ? err->reply["error"].get<std::string>() : "";
}

const MethodSpec& spec_of(std::string_view method)
{
    return *std::get<const MethodSpec*>(find_method(method));
}

TEST(varlink_method_table, lookup_uses_the_spec_error_names)
{
    EXPECT_EQ(error_of(find_method("org.bpfbroker.Broker.AcquireProgram")), "");
    EXPECT_EQ(error_of(find_method("org.varlink.service.GetInfo")), "");
    EXPECT_EQ(error_of(find_method("org.bpfbroker.Broker.Nope")), "org.varlink.service.MethodNotFound");
    EXPECT_EQ(error_of(find_method("com.example.X.Y")), "org.varlink.service.InterfaceNotFound");
    EXPECT_EQ(error_of(find_method("")), "org.varlink.service.InterfaceNotFound");
}

TEST(varlink_method_table, admin_and_oneway_flags)
{
    for (const auto& m : varlink_methods()) {
        bool admin = m.member == "Approve" || m.member == "Revoke" || m.member == "Reload";
        EXPECT_EQ(m.admin, admin) << m.member;
        if (admin || m.member == "AcquireProgram" || m.member == "AttachRing") {
            EXPECT_FALSE(m.oneway_allowed) << m.member << " may be called oneway";
        }
    }
}

TEST(varlink_method_table, parameters_are_checked_against_the_spec)
{
    const auto& acquire = spec_of("org.bpfbroker.Broker.AcquireProgram");
    EXPECT_FALSE(check_parameters(acquire, {{"name", "udp_stats"}}));
    EXPECT_FALSE(check_parameters(acquire, {{"name", "x"}, {"parameters", {{"min_len", 8u}}}}));
    auto field_of = [&](const nlohmann::json& params) {
        auto bad = check_parameters(acquire, params);
        return bad ? bad->reply["parameters"]["parameter"].get<std::string>() : "";
    };
    EXPECT_EQ(field_of(nlohmann::json::object()), "name");
    EXPECT_EQ(field_of({{"name", std::string(65, 'a')}}), "name");
    EXPECT_EQ(field_of({{"name", "x"}, {"other", 1}}), "other");
    EXPECT_EQ(field_of({{"name", "x"}, {"parameters", {{"n", -1}}}}), "parameters");
    EXPECT_EQ(field_of({{"name", "x"}, {"parameters", {{"n", "1"}}}}), "parameters");

    const auto& approve = spec_of("org.bpfbroker.Broker.Approve");
    EXPECT_FALSE(check_parameters(approve, {{"program", "p"}, {"users", {"nobody", 1000u}}, {"anyone", false}}));
    auto bad = check_parameters(approve, {{"program", "p"}, {"users", {true}}});
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->reply["parameters"]["parameter"], "users");
}

TEST(varlink_method_table, checked_parameters_read_back)
{
    nlohmann::json p = {{"program", "p"}, {"users", {"nobody", 1000u}}, {"anyone", true}};
    CheckedParameters c(p);
    EXPECT_EQ(c.string("program"), "p");
    EXPECT_EQ(c.names("users"), (std::vector<std::string>{"nobody", "1000"}));
    EXPECT_TRUE(c.boolean("anyone"));
    EXPECT_FALSE(c.boolean("polkit"));
    EXPECT_TRUE(c.names("groups").empty());
}

}  // namespace
}  // namespace bpfbroker::brokerd
