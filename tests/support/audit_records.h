// The daemon's audit log as the tests read it: each line
// "audit: key=value key=\"quoted value\" ..." as a map of fields, strictly
// (a repeated key, an unclosed quote or a missing prefix is not a record).
// Shared by the socket and the D-Bus suites.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::test_support {

using AuditFields = std::map<std::string, std::string>;

std::optional<AuditFields> parse_audit_line(std::string_view line);

// Every record of the log at `path`; ADD_FAILURE for a line that is not one.
std::vector<AuditFields> read_audit_records(const std::string& path);

// Whether one record has all of `fields` with exactly these values.
bool has_audit_record(const std::vector<AuditFields>& records, const AuditFields& fields);

}  // namespace bpfbroker::test_support
