// The daemon's own log (not the audit log): to the journal when systemd
// started us with a journal stream, to stderr otherwise. Only the daemon's
// boundary logs; libraries return errors.
#pragma once

#include <string>

namespace bpfbroker::brokerd {

void log_to_journal(bool enabled);
void log_info(const std::string& message);
void log_warning(const std::string& message);
void log_error(const std::string& message);

}  // namespace bpfbroker::brokerd
