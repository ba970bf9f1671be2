// The daemon's own log (not the audit log): to the journal when systemd
// started us with a journal stream, to stderr otherwise. Only the daemon's
// boundary logs; libraries return errors.
#pragma once

#include <string>
#include <string_view>

namespace bpfbroker::brokerd {

void log_to_journal(bool enabled);
void log_info(const std::string& message);
void log_warning(const std::string& message);
void log_error(const std::string& message);

// A warning a caller can cause (refused connection, malformed call), keyed
// by what and who ("connection-limit uid=65534"): at most a few lines per
// key a minute, the rest summarised (see WarningThrottle).
void log_caller_warning(std::string_view key, const std::string& message);

}  // namespace bpfbroker::brokerd
