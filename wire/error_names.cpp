// ErrorCode <-> wire error names; see bpfbroker/error_names.h.
#include <bpfbroker/error_names.h>

#include <array>
#include <utility>

namespace bpfbroker {
namespace {

constexpr std::string_view kDbusErrorInfix = ".Error.";

// Names other implementations may send instead of ours.
constexpr std::array<std::pair<std::string_view, ErrorCode>, 5> kVarlinkServiceErrors{{
    {kVarlinkMethodNotFound, ErrorCode::Unsupported},
    {kVarlinkMethodNotImplemented, ErrorCode::Unsupported},
    {kVarlinkInterfaceNotFound, ErrorCode::Unsupported},
    {kVarlinkPermissionDenied, ErrorCode::PermissionDenied},
    {kVarlinkExpectedMore, ErrorCode::ProtocolError},
}};

constexpr std::array<std::pair<std::string_view, ErrorCode>, 10> kDbusStandardErrors{{
    {"org.freedesktop.DBus.Error.AccessDenied", ErrorCode::PermissionDenied},
    {"org.freedesktop.DBus.Error.AuthFailed", ErrorCode::PermissionDenied},
    {"org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", ErrorCode::PermissionDenied},
    {"org.freedesktop.DBus.Error.InvalidArgs", ErrorCode::InvalidParameter},
    {"org.freedesktop.DBus.Error.InvalidSignature", ErrorCode::InvalidParameter},
    {"org.freedesktop.DBus.Error.UnknownMethod", ErrorCode::Unsupported},
    {"org.freedesktop.DBus.Error.UnknownInterface", ErrorCode::Unsupported},
    {"org.freedesktop.DBus.Error.NotSupported", ErrorCode::Unsupported},
    {"org.freedesktop.DBus.Error.LimitsExceeded", ErrorCode::LimitExceeded},
    {"org.freedesktop.DBus.Error.NoMemory", ErrorCode::SystemError},
}};

template <std::size_t N>
std::optional<ErrorCode> lookup(const std::array<std::pair<std::string_view, ErrorCode>, N>& table,
                                std::string_view name)
{
    for (const auto& [n, code] : table)
        if (n == name)
            return code;
    return std::nullopt;
}

// "<prefix><Name>" -> code, when Name is one of ours.
std::optional<ErrorCode> code_after_prefix(std::string_view name, std::string_view prefix)
{
    if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix)
        return std::nullopt;
    ErrorCode code{};
    if (!error_code_from_name(name.substr(prefix.size()), code))
        return std::nullopt;
    return code;
}

std::string varlink_prefix() { return std::string(kVarlinkInterface) + '.'; }
std::string dbus_prefix() { return std::string(kDbusInterface) + std::string(kDbusErrorInfix); }

}  // namespace

std::string varlink_error_name(ErrorCode code)
{
    if (code == ErrorCode::InvalidParameter)
        return std::string(kVarlinkInvalidParameter);
    return varlink_prefix() + std::string(error_code_name(code));
}

std::string dbus_error_name(ErrorCode code)
{
    return dbus_prefix() + std::string(error_code_name(code));
}

std::optional<ErrorCode> error_code_from_varlink_name(std::string_view name)
{
    if (name == kVarlinkInvalidParameter)
        return ErrorCode::InvalidParameter;
    if (auto code = lookup(kVarlinkServiceErrors, name))
        return code;
    auto code = code_after_prefix(name, varlink_prefix());
    // Our InvalidParameter is only ever sent under the spec's name; accepting
    // the other spelling too would make the mapping ambiguous.
    if (code == ErrorCode::InvalidParameter)
        return std::nullopt;
    return code;
}

std::optional<ErrorCode> error_code_from_dbus_name(std::string_view name)
{
    if (auto code = lookup(kDbusStandardErrors, name))
        return code;
    return code_after_prefix(name, dbus_prefix());
}

}  // namespace bpfbroker
