// The one mapping between ErrorCode and the error names on the wire, for both
// transports. The daemon turns a code into a name when it replies; a client
// turns the name back into a code, so both sides of both transports agree.
//
//   Varlink: org.bpfbroker.Broker.<Name>, except the protocol errors the
//            Varlink spec names itself (org.varlink.service.InvalidParameter,
//            org.varlink.service.MethodNotFound, ...).
//   D-Bus:   org.bpfbroker.Broker1.Error.<Name> for every code.
//
// <Name> is error_code_name() from error.h.
#pragma once

#include <bpfbroker/error.h>
#include <bpfbroker/interface.h>

#include <optional>
#include <string>
#include <string_view>

namespace bpfbroker {

// Errors defined by the Varlink specification (org.varlink.service).
inline constexpr std::string_view kVarlinkInvalidParameter = "org.varlink.service.InvalidParameter";
inline constexpr std::string_view kVarlinkMethodNotFound = "org.varlink.service.MethodNotFound";
inline constexpr std::string_view kVarlinkMethodNotImplemented =
    "org.varlink.service.MethodNotImplemented";
inline constexpr std::string_view kVarlinkInterfaceNotFound = "org.varlink.service.InterfaceNotFound";
inline constexpr std::string_view kVarlinkPermissionDenied = "org.varlink.service.PermissionDenied";
inline constexpr std::string_view kVarlinkExpectedMore = "org.varlink.service.ExpectedMore";

// "org.bpfbroker.Broker.PermissionDenied"; InvalidParameter maps to the
// spec's org.varlink.service.InvalidParameter.
[[nodiscard]] std::string varlink_error_name(ErrorCode code);

// "org.bpfbroker.Broker1.Error.PermissionDenied".
[[nodiscard]] std::string dbus_error_name(ErrorCode code);

// Inverse of varlink_error_name. Also accepts the org.varlink.service errors
// a server may send on its own: MethodNotFound, MethodNotImplemented and
// InterfaceNotFound mean the server lacks what we asked for (Unsupported),
// PermissionDenied -> PermissionDenied, ExpectedMore -> ProtocolError.
// nullopt for a name nobody defined: the caller decides (usually ProtocolError).
[[nodiscard]] std::optional<ErrorCode> error_code_from_varlink_name(std::string_view name);

// Inverse of dbus_error_name. Also accepts the standard org.freedesktop.DBus
// errors a bus or library may produce in our place (AccessDenied, InvalidArgs,
// UnknownMethod, LimitsExceeded, ...). nullopt for an unknown name.
[[nodiscard]] std::optional<ErrorCode> error_code_from_dbus_name(std::string_view name);

}  // namespace bpfbroker
