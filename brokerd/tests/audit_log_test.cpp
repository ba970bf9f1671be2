// The audit line format: one record per line, fields that a hostile value
// (a program name, a reason quoting one) cannot forge or split, the
// MESSAGE_ID of each record kind (explained by systemd/bpfbroker.catalog),
// and the manifest and signer of an acquired program.
#include "brokerd/audit_log.h"

#include "support/build_paths.h"
#include "support/io.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

using bpfbroker::brokerd::AuditLog;
using bpfbroker::brokerd::AuditRecord;

TEST(audit_log, formats_one_line_with_all_fields)
{
    AuditRecord r;
    r.transport = "socket";
    r.program = "udp_stats";
    r.uid = 65534;
    r.pid = 42;
    r.allowed = true;
    r.prog_id = 7;
    r.tag = "00ff";
    r.reason = "granted by var/lib/bpfbroker/approvals.json";
    EXPECT_EQ(AuditLog::format_line(r),
              "audit: action=acquire transport=socket program=udp_stats uid=65534 pid=42 decision=allow prog_id=7 "
              "tag=00ff reason=\"granted by var/lib/bpfbroker/approvals.json\" "
              "message_id=5a7803f0a3a34a6096babfcfb590a200");
}

TEST(audit_log, an_acquire_names_the_manifest_and_its_signer)
{
    AuditRecord r;
    r.transport = "dbus";
    r.program = "udp_stats";
    r.uid = 1000;
    r.code = bpfbroker::ErrorCode::PermissionDenied;
    const std::string manifest(64, 'a'), signer(64, 'b');  // the record only views them
    r.manifest_sha256 = manifest;
    r.signer = signer;
    r.reason = "no grant";
    EXPECT_EQ(AuditLog::format_line(r),
              "audit: action=acquire transport=dbus program=udp_stats uid=1000 pid=0 decision=deny code=PermissionDenied "
              "manifest_sha256=" + std::string(64, 'a') + " signer=" + std::string(64, 'b') +
                  " reason=\"no grant\" message_id=5a7803f0a3a34a6096babfcfb590a200");
}

TEST(audit_log, admin_actions_have_their_own_message_id)
{
    for (const char* action : {"approve", "revoke", "reload"}) {
        AuditRecord r;
        r.action = action;
        r.transport = "socket";
        r.uid = 0;
        r.allowed = true;
        EXPECT_EQ(r.message_id(), bpfbroker::brokerd::kAdminMessageId) << action;
        auto line = AuditLog::format_line(r);
        EXPECT_TRUE(line.ends_with(" message_id=6db43a06209a4076a913511d4b0b98ec")) << line;
        EXPECT_EQ(line.find("manifest_sha256="), std::string::npos) << line;
    }
}

// Each id is 128 bits of lower-case hex, distinct, and has an entry in the
// journal catalog that is installed.
TEST(audit_log, every_message_id_has_a_catalog_entry)
{
    using bpfbroker::brokerd::kAcquireMessageId;
    using bpfbroker::brokerd::kAdminMessageId;
    EXPECT_NE(kAcquireMessageId, kAdminMessageId);
    auto catalog = bpfbroker::test_support::read_text_file(bpfbroker::test_support::source_dir() +
                                                           "/systemd/bpfbroker.catalog");
    for (auto id : {kAcquireMessageId, kAdminMessageId}) {
        ASSERT_EQ(id.size(), 32u);
        EXPECT_TRUE(std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
            << id;
        EXPECT_NE(catalog.find("\n-- " + std::string(id) + "\n"), std::string::npos) << id;
    }
}


TEST(audit_log, hostile_values_cannot_forge_fields_or_lines)
{
    AuditRecord r;
    r.transport = "socket";
    r.program = "x decision=allow";
    r.uid = 1000;
    r.code = bpfbroker::ErrorCode::PermissionDenied;
    r.reason = "no \"grant\"\nfake: line";
    auto line = AuditLog::format_line(r);
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_NE(line.find("program=\"x decision=allow\""), std::string::npos) << line;
    EXPECT_NE(line.find("decision=deny"), std::string::npos) << line;
    EXPECT_NE(line.find("reason=\"no \\\"grant\\\"?fake: line\""), std::string::npos) << line;
    // Rewritten bytes at either end and next to each other.
    r.reason = std::string("\\\x01" "a b\x1f\"");
    line = AuditLog::format_line(r);
    EXPECT_NE(line.find(" reason=\"\\\\?a b?\\\"\" "), std::string::npos) << line;
}

// The log reuses the tail of the last line (prog_id onward) when the next
// record's program, manifest, signer, reason and kind are the same: every
// line it writes is still exactly format_line of its record.
TEST(audit_log, each_written_line_is_its_records_format_whatever_came_before)
{
    char dir[] = "/tmp/audit_tail.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    const std::string file = std::string(dir) + "/audit.log";
    AuditRecord base;
    base.transport = "socket";
    base.program = "drop_small";
    base.uid = 0;
    base.pid = 100;
    base.allowed = true;
    base.prog_id = 7;
    base.tag = "00ff";
    const std::string a(64, 'a'), b(64, 'b'), c(64, 'c'), d(64, 'd');  // the records view them
    base.manifest_sha256 = a;
    base.signer = b;
    base.reason = "granted by etc/bpfbroker/allowlist.d/a.json min_payload_len=8";
    std::vector<AuditRecord> records;
    auto with = [&](auto change) {
        AuditRecord r = base;
        change(r);
        records.push_back(r);
    };
    with([](AuditRecord&) {});
    with([](AuditRecord& r) { r.pid = 101; r.uid = 65534; r.transport = "dbus"; });  // the tail repeats
    with([](AuditRecord& r) { r.reason = "granted by etc/bpfbroker/allowlist.d/b.json min_payload_len=8"; });
    with([](AuditRecord&) {});
    with([](AuditRecord& r) { r.tag = "00fe"; });
    with([](AuditRecord& r) { r.prog_id = 8; });
    with([&](AuditRecord& r) { r.manifest_sha256 = c; });
    with([&](AuditRecord& r) { r.signer = d; });
    with([](AuditRecord& r) { r.action = "approve"; });  // another message id
    with([](AuditRecord& r) { r.allowed = false; r.code = bpfbroker::ErrorCode::LimitExceeded; r.prog_id = 0; });
    with([](AuditRecord& r) { r.reason = "no \"grant\"\nfake: line"; });
    with([](AuditRecord&) {});
    {
        auto log = AuditLog::open(false, file);
        ASSERT_TRUE(log) << log.error().describe();
        for (const auto& r : records)
            ASSERT_TRUE((*log)->record(r));
    }
    auto lines = bpfbroker::test_support::read_text_lines(file);
    ::unlink(file.c_str());
    ::rmdir(dir);
    ASSERT_EQ(lines.size(), records.size());
    for (std::size_t i = 0; i < records.size(); ++i)
        EXPECT_EQ(lines[i], AuditLog::format_line(records[i])) << "record " << i;
}

// The sinks' faults, made by the kernel: an audit log that cannot be opened
// is an error at start, not a log the daemon runs without; a write the
// file refuses (/dev/full: ENOSPC on every write) is an error naming the
// file and the errno, for the broker to refuse the hand-out on.
TEST(audit_log, a_log_that_cannot_be_opened_is_an_error)
{
    auto log = AuditLog::open(false, "/nonexistent-bpfbroker-dir/audit.log");
    ASSERT_FALSE(log);
    EXPECT_EQ(log.error().code, bpfbroker::ErrorCode::SystemError);
    EXPECT_EQ(log.error().sys_errno, ENOENT);
    EXPECT_NE(log.error().message.find("/nonexistent-bpfbroker-dir/audit.log"), std::string::npos)
        << log.error().describe();
}

TEST(audit_log, a_refused_write_is_an_error_naming_the_file)
{
    auto log = AuditLog::open(false, "/dev/full");
    ASSERT_TRUE(log) << log.error().describe();
    AuditRecord r;
    r.transport = "socket";
    r.program = "udp_stats";
    r.allowed = true;
    auto written = (*log)->record(r);
    ASSERT_FALSE(written);
    EXPECT_EQ(written.error().code, bpfbroker::ErrorCode::SystemError);
    EXPECT_EQ(written.error().sys_errno, ENOSPC);
    EXPECT_NE(written.error().message.find("/dev/full"), std::string::npos) << written.error().describe();
}
