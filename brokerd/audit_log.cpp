// The audit log; see audit_log.h.
#include "brokerd/audit_log.h"

#include "base/key_number.h"
#include "brokerd/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

namespace bpfbroker::brokerd {

namespace {

// A table, not a chain of comparisons: GCC kept the chain an out-of-line
// call per byte, and every acquire's record passes ~200 bytes through it.
constexpr std::array<bool, 256> kTokenChar = [] {
    std::array<bool, 256> t{};
    for (int c = 0; c < 256; ++c)
        t[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
               c == '.' || c == ':' || c == '/';
    return t;
}();

bool is_token_char(char c)
{
    return kTokenChar[static_cast<unsigned char>(c)];
}

// What a quoted value must rewrite: a quote or backslash (escaped) and a
// control character (as '?'). Every other byte is copied as it is.
bool needs_rewrite(char c)
{
    return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
}

// Values are quoted when they hold anything but a plain token, so a reason
// with spaces (or a hostile program name) cannot forge another field. Runs
// of plain bytes are appended whole: every acquire writes a record.
void append_value(std::string& out, std::string_view v)
{
    if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return is_token_char(c); })) {
        out += v;
        return;
    }
    out += '"';
    while (!v.empty()) {
        const auto run = static_cast<std::size_t>(std::find_if(v.begin(), v.end(), [](char c) { return needs_rewrite(c); }) - v.begin());
        out.append(v.data(), run);
        if (run == v.size())
            break;
        const char c = v[run];
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else {
            out += '?';
        }
        v.remove_prefix(run + 1);
    }
    out += '"';
}

void append_field(std::string& out, std::string_view key, std::string_view v)
{
    out += ' ';
    out += key;
    out += '=';
    append_value(out, v);
}

bool fits_uncapped(const AuditRecord& r)
{
    for (const auto* field : {&r.action, &r.transport, &r.program, &r.reason})
        if (field->size() > kMaxAuditFieldBytes)
            return false;
    for (const auto* view : {&r.tag, &r.manifest_sha256, &r.signer})
        if (view->size() > kMaxAuditFieldBytes)
            return false;
    return true;
}

// Writes all of `text`; the errno of a write that failed (0: all
// written). `partial` says a failed write left part of `text` behind.
int write_all(int fd, std::string_view text, bool& partial)
{
    const std::size_t size = text.size();
    partial = false;
    while (!text.empty()) {
        ssize_t n = ::write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            partial = text.size() < size;
            return n < 0 ? errno : EIO;
        }
        text.remove_prefix(static_cast<std::size_t>(n));
    }
    return 0;
}

}  // namespace

std::string_view AuditRecord::message_id() const
{
    return action == "acquire" ? kAcquireMessageId : kAdminMessageId;
}

std::string cap_for_record(std::string_view value, std::size_t max)
{
    if (value.size() <= max)
        return std::string(value);
    std::string marker = "...(" + std::to_string(value.size()) + " bytes)";
    std::size_t cut = max > marker.size() ? max - marker.size() : 0;
    // Back off to the start of a UTF-8 sequence: the journal wants valid text.
    while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80)
        --cut;
    return std::string(value.substr(0, cut)) + marker;
}

Result<std::unique_ptr<AuditLog>> AuditLog::open(bool journal, const std::string& file)
{
    UniqueFd fd;
    if (!file.empty()) {
        fd = UniqueFd(::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!fd)
            return fail(make_system_error("cannot open the audit log " + file, errno));
    }
    return std::unique_ptr<AuditLog>(new AuditLog(journal, file, std::move(fd)));
}

AuditLog::AuditLog(bool journal, std::string file_path, UniqueFd file)
    : journal_(journal), file_path_(std::move(file_path)), file_(std::move(file))
{
}

namespace {

std::string line_buffer(const AuditRecord& r)
{
    // Built by appending into one buffer: every acquire writes a record.
    std::string line;
    line.reserve(160 + r.program.size() + r.reason.size() + r.tag.size() + r.manifest_sha256.size() + r.signer.size());
    return line;
}

// Who asked for what, and the decision.
void append_head(std::string& line, const AuditRecord& r)
{
    line += "audit:";
    append_field(line, "action", r.action);
    append_field(line, "transport", r.transport);
    append_field(line, "program", r.program);
    append_key_number(line, "uid", r.uid);
    line += " pid=";
    line += std::to_string(r.pid);
    line += r.allowed ? " decision=allow" : " decision=deny";
    if (r.code) {
        line += " code=";
        line += error_code_name(*r.code);
    }
    if (r.suppressed)
        append_key_number(line, "suppressed", r.suppressed);
}

// The program, its manifest and signer, the reason, the message id.
void append_tail(std::string& line, const AuditRecord& r)
{
    if (r.prog_id) {
        append_key_number(line, "prog_id", r.prog_id);
        append_field(line, "tag", r.tag);
    }
    if (!r.manifest_sha256.empty())
        append_field(line, "manifest_sha256", r.manifest_sha256);
    if (!r.signer.empty())
        append_field(line, "signer", r.signer);
    append_field(line, "reason", r.reason);
    line += " message_id=";
    line += r.message_id();
}

}  // namespace

std::string AuditLog::format_line(const AuditRecord& r)
{
    std::string line = line_buffer(r);
    append_head(line, r);
    append_tail(line, r);
    return line;
}

std::string& AuditLog::line_reusing_tail(const AuditRecord& r)
{
    std::string& line = line_;
    line.clear();  // keeps its capacity: no allocation for a line no longer than the longest yet
    append_head(line, r);
    const bool acquire = r.action == "acquire";
    const auto& t = last_tail_;
    if (t && t->prog_id == r.prog_id && t->acquire == acquire && t->tag == r.tag && t->reason == r.reason &&
        t->manifest_sha256 == r.manifest_sha256 && t->signer == r.signer) {
        line += t->text;
    } else {
        const std::size_t head = line.size();
        append_tail(line, r);
        last_tail_ = Tail{r.prog_id, std::string(r.tag), std::string(r.manifest_sha256), std::string(r.signer),
                          r.reason,  acquire,            line.substr(head)};
    }
    return line;
}

Result<void> AuditLog::record(const AuditRecord& given)
{
    // Only a record with an oversized field is copied to be capped (its
    // views then see `capped_views`).
    std::optional<AuditRecord> capped;
    std::array<std::string, 3> capped_views;
    if (!fits_uncapped(given)) {
        capped = given;
        for (auto* field : {&capped->action, &capped->transport, &capped->program, &capped->reason})
            *field = cap_for_record(*field);
        std::string_view* views[] = {&capped->tag, &capped->manifest_sha256, &capped->signer};
        for (std::size_t i = 0; i < capped_views.size(); ++i) {
            capped_views[i] = cap_for_record(*views[i]);
            *views[i] = capped_views[i];
        }
    }
    const AuditRecord& r = capped ? *capped : given;
    Result<void> written;
    {
        std::lock_guard lock(mutex_);
        written = write_line(r, line_reusing_tail(r));
    }
    if (!written)
        // Keyed by action and decision: a flood of refused calls cannot
        // hide that a hand-out's, an approval's or a revocation's record
        // was lost.
        log_caller_warning("audit-write action=" + r.action + (r.allowed ? " allow" : " deny"),
                           written.error().message + ": " + std::strerror(written.error().sys_errno) + "; the " +
                               r.action + " record of uid " + std::to_string(r.uid) + " is lost" +
                               (r.allowed && r.action == "acquire" ? ", and nothing is handed out" : ""));
    return written;
}

Result<void> AuditLog::write_line(const AuditRecord& r, std::string& line)
{
    // Every sink is offered the record, whichever refused it: the first
    // refusal is the answer.
    Result<void> first;
    auto refused = [&first](Error e) {
        if (first)
            first = fail(std::move(e));
    };
    if (journal_) {
        std::string code = r.code ? std::string(error_code_name(*r.code)) : std::string();
        const std::string message_id(r.message_id());
        // sd_journal_send takes C strings.
        const std::string tag(r.tag), manifest(r.manifest_sha256), signer(r.signer);
        const int sent = sd_journal_send(
            "MESSAGE=%s", line.c_str(), "MESSAGE_ID=%s", message_id.c_str(), "PRIORITY=%d", r.allowed ? 6 : 5,
            "BPFBROKER_ACTION=%s", r.action.c_str(), "BPFBROKER_TRANSPORT=%s", r.transport.c_str(),
            "BPFBROKER_PROGRAM=%s", r.program.c_str(), "BPFBROKER_UID=%u", static_cast<unsigned>(r.uid),
            "BPFBROKER_PID=%d", static_cast<int>(r.pid), "BPFBROKER_DECISION=%s", r.allowed ? "allow" : "deny",
            "BPFBROKER_CODE=%s", code.c_str(), "BPFBROKER_REASON=%s", r.reason.c_str(), "BPFBROKER_PROG_ID=%u",
            r.prog_id, "BPFBROKER_PROG_TAG=%s", tag.c_str(), "BPFBROKER_MANIFEST_SHA256=%s", manifest.c_str(),
            "BPFBROKER_SIGNER=%s", signer.c_str(), "BPFBROKER_SUPPRESSED=%llu",
            static_cast<unsigned long long>(r.suppressed), nullptr);
        if (sent < 0)
            refused(make_system_error("cannot send the audit record to the journal", -sent));
    }
    line += '\n';
    // One write(2) per line, no stdio buffer: lines of concurrent records
    // never interleave, and none waits in a buffer when the daemon dies.
    // After a write that left part of a line, the next starts on a line
    // of its own.
    auto write_to = [&](int fd, bool& torn, const std::string& sink) {
        bool partial = false;
        const int err = torn ? write_all(fd, "\n" + line, partial) : write_all(fd, line, partial);
        // Still torn when nothing was written after a fragment.
        torn = err != 0 && (torn || partial);
        if (err != 0)
            refused(make_system_error("cannot write the audit record to " + sink, err));
    };
    if (!journal_)
        write_to(STDERR_FILENO, stderr_torn_, "stderr");
    if (file_)
        write_to(file_.get(), file_torn_, file_path_);
    return first;
}

}  // namespace bpfbroker::brokerd
