// The socket as a Varlink service: GetInfo names the real version,
// GetInterfaceDescription answers with the IDL file's text, and parameters
// are checked against the method table (an unknown, missing or mistyped
// field is InvalidParameter naming it as the spec's "parameter").
#include "support/daemon_fixture.h"

#include "support/io.h"

namespace bpfbroker::e2e {
namespace {

constexpr const char* kInvalidParameter = "org.varlink.service.InvalidParameter";

TEST_F(DaemonFixture, get_info_reports_the_project_version)
{
    auto conn = RawConnection::connect(socket_path());
    auto info = conn.call("org.varlink.service.GetInfo");
    ASSERT_TRUE(info.has_value());
    ASSERT_EQ(error_name(*info), "") << info->frame;
    const auto& p = info->json["parameters"];
    EXPECT_EQ(p["version"], BPFBROKER_TEST_PROJECT_VERSION);
    EXPECT_EQ(p["url"].get<std::string>().find(".invalid"), std::string::npos) << "a made-up URL: " << p["url"];
    EXPECT_EQ(p["interfaces"], nlohmann::json::array({"org.varlink.service", "org.bpfbroker.Broker"}));
}

TEST_F(DaemonFixture, interface_description_is_the_idl_file)
{
    auto idl = test_support::read_text_file(source_dir() + "/wire/org.bpfbroker.Broker.varlink");
    ASSERT_FALSE(idl.empty());
    auto conn = RawConnection::connect(socket_path());
    auto reply = conn.call("org.varlink.service.GetInterfaceDescription", {{"interface", "org.bpfbroker.Broker"}});
    ASSERT_TRUE(reply.has_value());
    ASSERT_EQ(error_name(*reply), "") << reply->frame;
    EXPECT_EQ(reply->json["parameters"]["description"], idl);

    auto service = conn.call("org.varlink.service.GetInterfaceDescription", {{"interface", "org.varlink.service"}});
    ASSERT_TRUE(service.has_value());
    EXPECT_NE(service->json["parameters"]["description"].get<std::string>().find("interface org.varlink.service"),
              std::string::npos);

    auto other = conn.call("org.varlink.service.GetInterfaceDescription", {{"interface", "com.example.Other"}});
    ASSERT_TRUE(other.has_value());
    EXPECT_EQ(error_name(*other), "org.varlink.service.InterfaceNotFound") << other->frame;
    EXPECT_EQ(other->json["parameters"]["interface"], "com.example.Other");
}

TEST_F(DaemonFixture, invalid_parameters_name_the_field)
{
    auto conn = RawConnection::connect(socket_path());
    struct Case {
        const char* method;
        nlohmann::json params;
        const char* field;
    };
    const Case cases[] = {
        {"org.bpfbroker.Broker.AcquireProgram", nlohmann::json::object(), "name"},
        {"org.bpfbroker.Broker.AcquireProgram", {{"name", "drop_small"}, {"bogus", 1}}, "bogus"},
        {"org.bpfbroker.Broker.AcquireProgram", {{"name", 7}}, "name"},
        {"org.bpfbroker.Broker.AcquireProgram", {{"name", "drop_small"}, {"parameters", {{"min_len", -1}}}},
         "parameters"},
        {"org.bpfbroker.Broker.ListPrograms", {{"verbose", true}}, "verbose"},
        {"org.bpfbroker.Broker.Revoke", nlohmann::json::object(), "program"},
        {"org.varlink.service.GetInterfaceDescription", nlohmann::json::object(), "interface"},
    };
    for (const auto& c : cases) {
        auto reply = conn.call(c.method, c.params);
        ASSERT_TRUE(reply.has_value()) << c.method;
        EXPECT_EQ(error_name(*reply), kInvalidParameter) << c.method << " " << c.params << " -> " << reply->frame;
        EXPECT_EQ(reply->json["parameters"]["parameter"], c.field) << c.method << " " << c.params;
    }
    EXPECT_EQ(conn.fds_received(), 0u);
}

}  // namespace
}  // namespace bpfbroker::e2e
