// The audit line format: one record per line, fields that a hostile value
// (a program name, a reason quoting one) cannot forge or split, the
// MESSAGE_ID of each record kind (explained by systemd/bpfbroker.catalog),
// and the manifest and signer of an acquired program.
#include "brokerd/audit_log.h"

#include "support/build_paths.h"
#include "support/io.h"

#include <gtest/gtest.h>

#include <algorithm>

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
    r.manifest_sha256 = std::string(64, 'a');
    r.signer = std::string(64, 'b');
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
