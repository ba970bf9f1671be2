// The audit log: one structured record per decision, allow or deny, with its
// reason. Under systemd the record goes to the journal with fields
// (BPFBROKER_PROGRAM=, BPFBROKER_UID=, ...); otherwise it is one line of
// key=value pairs on stderr, and optionally appended to a file. Each record
// carries the MESSAGE_ID of its kind (systemd/bpfbroker.catalog explains
// them to `journalctl -x`): one for acquire decisions, one for admin actions.
#pragma once

#include "brokerd/limits.h"

#include <bpfbroker/error.h>
#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace bpfbroker::brokerd {

// The journal's MESSAGE_ID of each record kind: fixed forever, 128-bit,
// lower-case hex without dashes (as sd_id128 prints them).
inline constexpr std::string_view kAcquireMessageId = "5a7803f0a3a34a6096babfcfb590a200";
inline constexpr std::string_view kAdminMessageId = "6db43a06209a4076a913511d4b0b98ec";

struct AuditRecord {
    std::string action = "acquire";   // acquire, approve, revoke, reload
    std::string transport;            // "socket" or "dbus"
    std::string program;
    uid_t uid = static_cast<uid_t>(-1);
    pid_t pid = 0;
    bool allowed = false;
    std::optional<ErrorCode> code;    // when denied
    std::string reason;
    std::uint32_t prog_id = 0;        // when a program was handed out
    std::uint64_t suppressed = 0;     // the uid's refusals like this not written before it (refusal_record_throttle.h)
    // Views: a record lives only for the record() call, and these three
    // are the daemon's own hex of state that outlives it (the hand-out,
    // the catalog entry); not copied per acquire.
    std::string_view tag;
    std::string_view manifest_sha256;  // acquire of a catalog entry: the manifest it was decided on
    std::string_view signer;           // ... and the key id that signed it

    // kAcquireMessageId for acquire, kAdminMessageId for everything else.
    [[nodiscard]] std::string_view message_id() const;
};

// Every string a record holds may have come from a caller (a program name
// of megabytes over D-Bus, a reason quoting it): each field is cut to this
// many bytes before it is written, so no call makes the daemon write more
// than a few hundred bytes per record.
inline constexpr std::size_t kMaxAuditFieldBytes = Limits::kAuditFieldBytes;

// `value` cut to at most `max` bytes on a UTF-8 boundary, the cut marked
// with "...(N bytes)" so a reader knows the record was shortened.
std::string cap_for_record(std::string_view value, std::size_t max = kMaxAuditFieldBytes);

class AuditLog {
public:
    // journal: send to the journal instead of stderr. file: also append
    // lines there ("" for none); a file that cannot be opened is an error,
    // not a log the daemon quietly runs without.
    static Result<std::unique_ptr<AuditLog>> open(bool journal, const std::string& file);

    // Writes `r` with every field capped (cap_for_record) to every sink.
    // When a sink refuses it (a full disk, the journal gone), the error
    // names the sink and the errno, and is logged (throttled). What an
    // unrecorded decision means is the caller's: the broker hands nothing
    // out without its record.
    [[nodiscard]] Result<void> record(const AuditRecord& r);

    // The key=value line used on stderr and in the file (fields as given).
    static std::string format_line(const AuditRecord& r);

private:
    // format_line, with the line's tail (prog_id onward: the program, its
    // manifest and signer, the reason) kept from the last record and
    // reused when the next one's are the same; a warm acquire repeats
    // them, and escaping them is most of the line's cost. Under mutex_.
    // The line is line_, which keeps its buffer from record to record.
    std::string& line_reusing_tail(const AuditRecord& r);

    struct Tail {
        std::uint32_t prog_id = 0;
        std::string tag, manifest_sha256, signer, reason;
        bool acquire = false;  // which message id
        std::string text;
    };
    AuditLog(bool journal, std::string file_path, UniqueFd file);

    // `line` (one record) to every sink; the first refusal, or nothing.
    [[nodiscard]] Result<void> write_line(const AuditRecord& r, std::string& line);

    std::mutex mutex_;
    bool journal_;
    std::string file_path_;  // for the error that names it
    UniqueFd file_;
    // A failed write left part of a line there: the next line starts anew.
    bool stderr_torn_ = false;
    bool file_torn_ = false;
    std::optional<Tail> last_tail_;
    std::string line_;  // the line being written
};

}  // namespace bpfbroker::brokerd
