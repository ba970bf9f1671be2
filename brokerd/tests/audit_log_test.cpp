// The audit line format: one record per line, fields that a hostile value
// (a program name, a reason quoting one) cannot forge or split.
#include "brokerd/audit_log.h"

#include <gtest/gtest.h>

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
              "tag=00ff reason=\"granted by var/lib/bpfbroker/approvals.json\"");
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
}
