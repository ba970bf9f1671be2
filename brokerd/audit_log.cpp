// The audit log; see audit_log.h.
#include "brokerd/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include <cctype>
#include <cstdio>

namespace bpfbroker::brokerd {

namespace {

// Values are quoted when they hold anything but a plain token, so a reason
// with spaces (or a hostile program name) cannot forge another field.
std::string value(const std::string& v)
{
    bool plain = !v.empty();
    for (char c : v)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == ':' || c == '/'))
            plain = false;
    if (plain)
        return v;
    std::string out = "\"";
    for (char c : v) {
        if (c == '"' || c == '\\')
            out += '\\';
        if (static_cast<unsigned char>(c) < 0x20)
            out += '?';
        else
            out += c;
    }
    return out + "\"";
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

AuditLog::AuditLog(bool journal, std::string file) : journal_(journal)
{
    if (!file.empty())
        file_fd_ = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

std::string AuditLog::format_line(const AuditRecord& r)
{
    std::string line = "audit: action=" + value(r.action) + " transport=" + value(r.transport) +
                       " program=" + value(r.program) + " uid=" + std::to_string(r.uid) +
                       " pid=" + std::to_string(r.pid) + " decision=" + (r.allowed ? "allow" : "deny");
    if (r.code)
        line += " code=" + std::string(error_code_name(*r.code));
    if (r.prog_id)
        line += " prog_id=" + std::to_string(r.prog_id) + " tag=" + value(r.tag);
    if (!r.manifest_sha256.empty())
        line += " manifest_sha256=" + value(r.manifest_sha256);
    if (!r.signer.empty())
        line += " signer=" + value(r.signer);
    line += " reason=" + value(r.reason);
    line += " message_id=" + std::string(r.message_id());
    return line;
}

void AuditLog::record(const AuditRecord& given)
{
    AuditRecord r = given;
    for (auto* field : {&r.action, &r.transport, &r.program, &r.reason, &r.tag, &r.manifest_sha256, &r.signer})
        *field = cap_for_record(*field);
    std::lock_guard lock(mutex_);
    auto line = format_line(r);
    std::string code = r.code ? std::string(error_code_name(*r.code)) : std::string();
    if (journal_) {
        const std::string message_id(r.message_id());
        sd_journal_send("MESSAGE=%s", line.c_str(), "MESSAGE_ID=%s", message_id.c_str(), "PRIORITY=%d",
                        r.allowed ? 6 : 5,
                        "BPFBROKER_ACTION=%s", r.action.c_str(), "BPFBROKER_TRANSPORT=%s", r.transport.c_str(),
                        "BPFBROKER_PROGRAM=%s", r.program.c_str(), "BPFBROKER_UID=%u", static_cast<unsigned>(r.uid),
                        "BPFBROKER_PID=%d", static_cast<int>(r.pid), "BPFBROKER_DECISION=%s",
                        r.allowed ? "allow" : "deny", "BPFBROKER_CODE=%s", code.c_str(), "BPFBROKER_REASON=%s",
                        r.reason.c_str(), "BPFBROKER_PROG_ID=%u", r.prog_id, "BPFBROKER_PROG_TAG=%s", r.tag.c_str(),
                        "BPFBROKER_MANIFEST_SHA256=%s", r.manifest_sha256.c_str(), "BPFBROKER_SIGNER=%s",
                        r.signer.c_str(), nullptr);
    } else {
        std::fprintf(stderr, "%s\n", line.c_str());
    }
    if (file_fd_ >= 0) {
        line += '\n';
        (void)!::write(file_fd_, line.data(), line.size());
    }
}

}  // namespace bpfbroker::brokerd
