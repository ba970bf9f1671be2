// The audit log writes a bounded amount per record whatever a caller sends:
// a 4 MiB program name (possible over D-Bus) becomes a short, marked field.
#include "brokerd/audit_log.h"

#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

using bpfbroker::brokerd::AuditLog;
using bpfbroker::brokerd::AuditRecord;
using bpfbroker::brokerd::cap_for_record;
using bpfbroker::brokerd::kMaxAuditFieldBytes;

TEST(audit_cap, short_values_are_kept_whole)
{
    EXPECT_EQ(cap_for_record("udp_stats"), "udp_stats");
    std::string exact(kMaxAuditFieldBytes, 'a');
    EXPECT_EQ(cap_for_record(exact), exact);
}

TEST(audit_cap, long_values_are_cut_and_marked_with_their_size)
{
    std::string huge(4 << 20, 'x');
    auto capped = cap_for_record(huge);
    EXPECT_LE(capped.size(), kMaxAuditFieldBytes);
    EXPECT_NE(capped.find("...(4194304 bytes)"), std::string::npos) << capped;
}

TEST(audit_cap, cut_never_splits_a_utf8_sequence)
{
    // "é" is two bytes: whatever the cut, no lone continuation byte ends the kept part.
    std::string text;
    while (text.size() < 2 * kMaxAuditFieldBytes)
        text += "\xc3\xa9";
    for (std::size_t max = 20; max < 40; ++max) {
        auto capped = cap_for_record(text, max);
        auto kept = capped.substr(0, capped.find("..."));
        ASSERT_EQ(kept.size() % 2, 0u) << "cut inside a character at max=" << max;
    }
}

TEST(audit_cap, a_record_with_a_4mib_name_writes_a_short_line)
{
    char dir[] = "/tmp/audit_cap.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    std::string file = std::string(dir) + "/audit.log";
    {
        auto log = AuditLog::open(false, file);
        ASSERT_TRUE(log) << log.error().describe();
        AuditRecord r;
        r.action = "approve";
        r.transport = "dbus";
        r.program = std::string(4 << 20, 'n');
        r.code = bpfbroker::ErrorCode::PermissionDenied;
        r.reason = "no program named \"" + r.program + "\"";
        r.manifest_sha256 = r.program;
        r.signer = r.program;
        EXPECT_TRUE((*log)->record(r));
    }
    std::ifstream in(file);
    std::stringstream content;
    content << in.rdbuf();
    ::unlink(file.c_str());
    ::rmdir(dir);
    EXPECT_LT(content.str().size(), 2048u) << "one refused call wrote " << content.str().size() << " bytes";
    EXPECT_NE(content.str().find("action=approve"), std::string::npos);
}
