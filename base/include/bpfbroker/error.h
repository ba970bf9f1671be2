// The one list of errors bpfbroker reports. Every layer returns these codes;
// the transports map each code once to a D-Bus and a Varlink error name
// (error_names in the wire code), so a client sees the same name whichever
// way it asked.
#pragma once

#include <array>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

namespace bpfbroker {

enum class ErrorCode {
    // Caller-facing request errors.
    InvalidParameter,    // malformed request or argument
    ProgramNotFound,     // no catalog entry of that name
    PermissionDenied,    // no grant matches, revoked, or not an admin
    LimitExceeded,       // a per-caller bound (instances, connections, rate, size)
    Unsupported,         // the kernel lacks a feature the program requires
    // Catalog and trust errors.
    ManifestInvalid,     // manifest.json fails parsing or validation
    SignatureInvalid,    // signature missing, malformed or not matching
    UntrustedSigner,     // signed by a key that is not trusted (or masked)
    KeyInvalid,          // a key file that cannot be used (type, size, format)
    ObjectHashMismatch,  // object bytes differ from manifest's object_sha256
    UnsafeFile,          // symlink, wrong owner, group/other-writable, not regular
    GrantInvalid,        // malformed allow-list or approvals file
    // Runtime errors.
    LoadFailed,          // the kernel refused the program (verifier log attached)
    ProtocolError,       // framing or transport violation
    SystemError,         // a syscall failed (errno attached)
    Internal,            // a bug: should never reach a client
};

inline constexpr std::array<std::pair<ErrorCode, std::string_view>, 16> kErrorCodeNames{{
    {ErrorCode::InvalidParameter, "InvalidParameter"},
    {ErrorCode::ProgramNotFound, "ProgramNotFound"},
    {ErrorCode::PermissionDenied, "PermissionDenied"},
    {ErrorCode::LimitExceeded, "LimitExceeded"},
    {ErrorCode::Unsupported, "Unsupported"},
    {ErrorCode::ManifestInvalid, "ManifestInvalid"},
    {ErrorCode::SignatureInvalid, "SignatureInvalid"},
    {ErrorCode::UntrustedSigner, "UntrustedSigner"},
    {ErrorCode::KeyInvalid, "KeyInvalid"},
    {ErrorCode::ObjectHashMismatch, "ObjectHashMismatch"},
    {ErrorCode::UnsafeFile, "UnsafeFile"},
    {ErrorCode::GrantInvalid, "GrantInvalid"},
    {ErrorCode::LoadFailed, "LoadFailed"},
    {ErrorCode::ProtocolError, "ProtocolError"},
    {ErrorCode::SystemError, "SystemError"},
    {ErrorCode::Internal, "Internal"},
}};

// Stable identifier, e.g. "PermissionDenied"; used in error names and logs.
inline std::string_view error_code_name(ErrorCode code) noexcept
{
    for (const auto& [c, name] : kErrorCodeNames)
        if (c == code)
            return name;
    return "Internal";
}

// Inverse of error_code_name; false when the name is unknown.
inline bool error_code_from_name(std::string_view name, ErrorCode& out) noexcept
{
    for (const auto& [c, n] : kErrorCodeNames)
        if (n == name) {
            out = c;
            return true;
        }
    return false;
}

struct Error {
    ErrorCode code = ErrorCode::Internal;
    std::string message;  // a sentence a person can act on
    int sys_errno = 0;    // for SystemError / LoadFailed, else 0
    std::string detail;   // e.g. the verifier log; may be long

    // "PermissionDenied: no grant for uid 1000" (+ ": strerror" when errno set)
    [[nodiscard]] std::string describe() const
    {
        std::string out(error_code_name(code));
        out += ": ";
        out += message;
        if (sys_errno != 0) {
            out += ": ";
            out += std::strerror(sys_errno);
        }
        return out;
    }
};

inline Error make_error(ErrorCode code, std::string message)
{
    return Error{code, std::move(message), 0, {}};
}

inline Error make_system_error(std::string message, int err)
{
    return Error{ErrorCode::SystemError, std::move(message), err, {}};
}

}  // namespace bpfbroker
