// How bpfbrokerctl speaks: one JSON document on stdout with --json, short
// human lines otherwise; errors always on stderr, as "bpfbrokerctl: ..." or,
// under --json, as one JSON object {"error": ErrorCode name, "message": ...}.
#pragma once

#include <bpfbroker/error.h>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace bpfbroker::ctl {

struct GlobalOptions {
    std::string root = "/";
    bool json = false;
    bool trust_own_files = false;  // accept policy files owned by the caller (development)
    std::string socket_path;       // empty: <root>/run/bpfbroker/org.bpfbroker.Broker
    std::string bus = "socket";    // "socket" or "system"
};

// Exit codes: 0 success, 1 the thing asked about is refused/failed, 2 usage.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUsage = 2;

void print_json(const nlohmann::json& doc);
// From now on report_error() prints JSON whenever `json` is true (it is read
// at each report: the flag is bound by the parser after this call).
void report_errors_as_json_when(const bool& json);
// Prints the error to stderr (and the detail, e.g. a verifier log); returns exit_code.
int report_error(const Error& error, int exit_code = kExitRefused);
// A message of the CLI's own: InvalidParameter for usage errors, else SystemError.
int report_error(std::string_view message, int exit_code = kExitRefused);
nlohmann::json error_to_json(const Error& error);

// Reads a whole file (for keys and manifests given on the command line).
bool read_file(const std::string& path, std::string& out, std::string& why);
// Writes a new file with `mode`; refuses to overwrite unless `replace`.
bool write_file(const std::string& path, std::string_view data, unsigned mode, bool replace, std::string& why);

}  // namespace bpfbroker::ctl
