// ErrorCode <-> Varlink / D-Bus names: one mapping, both directions.
#include <bpfbroker/error_names.h>

#include <gtest/gtest.h>

namespace bpfbroker {
namespace {

TEST(error_names, every_code_round_trips_on_both_transports)
{
    for (const auto& [code, name] : kErrorCodeNames) {
        const std::string varlink = varlink_error_name(code);
        const std::string dbus = dbus_error_name(code);
        EXPECT_EQ(error_code_from_varlink_name(varlink), code) << varlink;
        EXPECT_EQ(error_code_from_dbus_name(dbus), code) << dbus;
        EXPECT_EQ(dbus, "org.bpfbroker.Broker1.Error." + std::string(name));
        if (code != ErrorCode::InvalidParameter) {
            EXPECT_EQ(varlink, "org.bpfbroker.Broker." + std::string(name));
        }
    }
}

TEST(error_names, invalid_parameter_uses_the_varlink_spec_name)
{
    EXPECT_EQ(varlink_error_name(ErrorCode::InvalidParameter), "org.varlink.service.InvalidParameter");
    EXPECT_EQ(error_code_from_varlink_name("org.varlink.service.InvalidParameter"),
              ErrorCode::InvalidParameter);
    // Never sent under our own interface, so not accepted from it either.
    EXPECT_EQ(error_code_from_varlink_name("org.bpfbroker.Broker.InvalidParameter"), std::nullopt);
    EXPECT_EQ(dbus_error_name(ErrorCode::InvalidParameter),
              "org.bpfbroker.Broker1.Error.InvalidParameter");
}

TEST(error_names, foreign_standard_errors_map_to_codes)
{
    EXPECT_EQ(error_code_from_varlink_name("org.varlink.service.MethodNotFound"), ErrorCode::Unsupported);
    EXPECT_EQ(error_code_from_varlink_name("org.varlink.service.PermissionDenied"),
              ErrorCode::PermissionDenied);
    EXPECT_EQ(error_code_from_dbus_name("org.freedesktop.DBus.Error.AccessDenied"),
              ErrorCode::PermissionDenied);
    EXPECT_EQ(error_code_from_dbus_name("org.freedesktop.DBus.Error.InvalidArgs"),
              ErrorCode::InvalidParameter);
    EXPECT_EQ(error_code_from_dbus_name("org.freedesktop.DBus.Error.UnknownMethod"), ErrorCode::Unsupported);
}

TEST(error_names, unknown_names_are_not_guessed)
{
    for (const char* name : {"", "org.bpfbroker.Broker.", "org.bpfbroker.Broker.NoSuchError",
                             "org.bpfbroker.Broker1.Error.PermissionDenied",  // D-Bus name on Varlink
                             "org.bpfbroker.BrokerX.PermissionDenied", "PermissionDenied"})
        EXPECT_EQ(error_code_from_varlink_name(name), std::nullopt) << name;
    for (const char* name : {"", "org.bpfbroker.Broker1.Error.", "org.bpfbroker.Broker.PermissionDenied",
                             "org.bpfbroker.Broker1.Error.Nope"})
        EXPECT_EQ(error_code_from_dbus_name(name), std::nullopt) << name;
}

}  // namespace
}  // namespace bpfbroker
