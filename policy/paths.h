// Where policy lives, relative to the root the daemon and the CLI are given
// (`--root DIR`, "/" on a real system). Nothing in the code names /etc itself.
#pragma once

#include <string_view>

namespace bpfbroker::policy::paths {

inline constexpr std::string_view kVendorDir = "usr/lib/bpfbroker";  // packages
inline constexpr std::string_view kAdminDir = "etc/bpfbroker";       // the administrator
inline constexpr std::string_view kStateDir = "var/lib/bpfbroker";   // the daemon
inline constexpr std::string_view kRuntimeDir = "run/bpfbroker";

inline constexpr std::string_view kProgramsSubdir = "programs.d";
inline constexpr std::string_view kKeysSubdir = "keys.d";
inline constexpr std::string_view kAllowlistSubdir = "allowlist.d";

inline constexpr std::string_view kManifestFile = "manifest.json";
inline constexpr std::string_view kSignatureFile = "manifest.json.sig";
inline constexpr std::string_view kApprovalsFile = "approvals.json";
inline constexpr std::string_view kSettingsFile = "bpfbroker.json";
inline constexpr std::string_view kSocketName = "org.bpfbroker.Broker";

}  // namespace bpfbroker::policy::paths
