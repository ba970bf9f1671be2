// The daemon log; see log.h.
#include "brokerd/log.h"

#include "brokerd/warning_throttle.h"

#include <syslog.h>
#include <systemd/sd-journal.h>

#include <atomic>
#include <cstdio>

namespace bpfbroker::brokerd {

namespace {

std::atomic<bool> g_journal{false};

// Five lines per key a minute: enough to see a problem start and recur.
WarningThrottle g_caller_warnings(5, std::chrono::seconds(60));

void emit(int priority, const char* prefix, const std::string& message)
{
    if (g_journal.load())
        sd_journal_print(priority, "%s", message.c_str());
    else
        std::fprintf(stderr, "bpfbrokerd: %s%s\n", prefix, message.c_str());
}

}  // namespace

void log_to_journal(bool enabled)
{
    g_journal.store(enabled);
}

void log_info(const std::string& message)
{
    emit(LOG_INFO, "", message);
}

void log_warning(const std::string& message)
{
    emit(LOG_WARNING, "warning: ", message);
}

void log_error(const std::string& message)
{
    emit(LOG_ERR, "error: ", message);
}

void log_caller_warning(std::string_view key, const std::string& message)
{
    if (auto line = g_caller_warnings.admit(key, message))
        log_warning(*line);
}

}  // namespace bpfbroker::brokerd
