// `bpfbrokerctl exec` as an unprivileged user: the command runs with the
// program and map fds inherited and told where they are; denials never run
// the command; and the daemon's audit log has a record, with its reason, for
// each decision.
#include "support/daemon_fixture.h"

#include <sstream>

namespace bpfbroker::e2e {
namespace {

class CtlExecTest : public DaemonFixture {
protected:
    // bpfbrokerctl --root ROOT exec NAME -- sh -c SCRIPT, as uid/gid 65534.
    CommandResult exec_as_nobody(const std::string& name, const std::string& script)
    {
        return run_command({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctl_binary(),
                            "--root", root(), "exec", name, "--", "/bin/sh", "-c", script},
                           30s);
    }
};

std::vector<std::string> lines_of(const std::string& text)
{
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

TEST_F(CtlExecTest, ExecHandsFdsToTheCommandAndEveryDecisionIsAudited)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));

    auto ran = exec_as_nobody("udp_stats",
                              "echo $BPFBROKER_PROGRAM_FD $BPFBROKER_MAP_FDS; "
                              "ls -l /proc/self/fd/$BPFBROKER_PROGRAM_FD; "
                              "ls -l /proc/self/fd/${BPFBROKER_MAP_FDS#stats:}; id -u; echo $BPFBROKER_PROGRAM");
    ASSERT_TRUE(ran.ok()) << "exit " << ran.exit_code << "\nstdout: " << ran.out << "\nstderr: " << ran.err;
    auto out = lines_of(ran.out);
    ASSERT_EQ(out.size(), 5u) << ran.out;
    int prog_fd = -1, map_fd = -1;
    char map_name[32] = {};
    ASSERT_EQ(std::sscanf(out[0].c_str(), "%d %31[^:]:%d", &prog_fd, map_name, &map_fd), 3) << out[0];
    EXPECT_GE(prog_fd, 3);
    EXPECT_STREQ(map_name, "stats");
    EXPECT_NE(map_fd, prog_fd);
    EXPECT_NE(out[1].find("-> anon_inode:bpf-prog"), std::string::npos) << out[1];
    EXPECT_NE(out[2].find("-> anon_inode:bpf-map"), std::string::npos) << out[2];
    EXPECT_EQ(out[3], "65534");
    EXPECT_EQ(out[4], "udp_stats");

    // Denials: the command never runs, and the tool says why.
    auto not_approved = exec_as_nobody("src_allow", "echo RAN");
    EXPECT_FALSE(not_approved.ok());
    EXPECT_EQ(not_approved.out.find("RAN"), std::string::npos);
    EXPECT_NE(not_approved.err.find("PermissionDenied"), std::string::npos) << not_approved.err;

    auto unknown = exec_as_nobody("no_such_program", "echo RAN");
    EXPECT_FALSE(unknown.ok());
    EXPECT_EQ(unknown.out.find("RAN"), std::string::npos);
    EXPECT_NE(unknown.err.find("ProgramNotFound"), std::string::npos) << unknown.err;

    {
        auto admin = connect_client();
        ASSERT_TRUE(admin) << admin.error().describe();
        ASSERT_TRUE(admin->revoke("udp_stats"));
    }
    auto revoked = exec_as_nobody("udp_stats", "echo RAN");
    EXPECT_FALSE(revoked.ok());
    EXPECT_EQ(revoked.out.find("RAN"), std::string::npos);
    EXPECT_NE(revoked.err.find("revoked"), std::string::npos) << revoked.err;

    // The audit log, record by record.
    auto records = audit_records();
    std::vector<AuditFields> allows, denies;
    for (const auto& r : records) {
        ASSERT_TRUE(r.count("action") && r.count("decision") && r.count("reason") && r.count("uid"));
        if (r.at("action") != "acquire")
            continue;
        (r.at("decision") == "allow" ? allows : denies).push_back(r);
    }
    ASSERT_EQ(allows.size(), 1u) << "exactly one hand-out happened";
    EXPECT_EQ(allows[0].at("program"), "udp_stats");
    EXPECT_EQ(allows[0].at("uid"), "65534");
    EXPECT_EQ(allows[0].at("transport"), "socket");
    EXPECT_TRUE(allows[0].count("prog_id") && allows[0].at("prog_id") != "0");
    EXPECT_TRUE(allows[0].count("tag") && allows[0].at("tag").size() == 16) << "tag: " << allows[0]["tag"];
    EXPECT_NE(allows[0].at("reason").find("granted by"), std::string::npos) << allows[0].at("reason");
    // The manifest and signer the decision was made on, and the record kind's MESSAGE_ID.
    EXPECT_EQ(allows[0].count("manifest_sha256") ? allows[0].at("manifest_sha256").size() : 0u, 64u);
    EXPECT_EQ(allows[0].count("signer") ? allows[0].at("signer").size() : 0u, 64u);
    EXPECT_EQ(allows[0].count("message_id") ? allows[0].at("message_id") : "", "5a7803f0a3a34a6096babfcfb590a200");

    auto find_deny = [&](const std::string& program) -> const AuditFields* {
        for (const auto& d : denies)
            if (d.at("program") == program)
                return &d;
        return nullptr;
    };
    ASSERT_EQ(denies.size(), 3u);
    const auto* d1 = find_deny("src_allow");
    ASSERT_NE(d1, nullptr);
    EXPECT_EQ(d1->at("uid"), "65534");
    EXPECT_EQ(d1->count("code") ? d1->at("code") : "", "PermissionDenied");
    EXPECT_NE(d1->at("reason").find("\"src_allow\""), std::string::npos) << d1->at("reason");
    EXPECT_EQ(d1->count("prog_id"), 0u) << "a denial names a program id";
    EXPECT_EQ(d1->count("signer") ? d1->at("signer").size() : 0u, 64u) << "a denial of a catalog entry names its signer";

    const auto* d2 = find_deny("no_such_program");
    ASSERT_NE(d2, nullptr);
    EXPECT_EQ(d2->count("code") ? d2->at("code") : "", "ProgramNotFound");
    EXPECT_NE(d2->at("reason").find("no_such_program"), std::string::npos) << d2->at("reason");
    EXPECT_EQ(d2->count("manifest_sha256"), 0u) << "a program not in the catalog has no manifest";

    const auto* d3 = find_deny("udp_stats");
    ASSERT_NE(d3, nullptr);
    EXPECT_EQ(d3->count("code") ? d3->at("code") : "", "PermissionDenied");
    EXPECT_NE(d3->at("reason").find("revoked"), std::string::npos) << d3->at("reason");

    // The admin actions are there too, as root's.
    std::size_t approvals = 0, revocations = 0;
    for (const auto& r : records) {
        if (r.at("action") == "approve" && r.at("decision") == "allow" && r.at("uid") == "0")
            ++approvals;
        if (r.at("action") == "revoke" && r.at("decision") == "allow" && r.at("uid") == "0")
            ++revocations;
    }
    EXPECT_EQ(approvals, 1u);
    EXPECT_EQ(revocations, 1u);
}

// A broker-attached program: the command gets the links (no program fd)
// and is itself the caller they count, as exec keeps the process.
TEST_F(CtlExecTest, ExecOfABrokerAttachedProgramPassesLinksAndNoProgramFd)
{
    ASSERT_TRUE(approve("uring_stats", for_users({"nobody"})));
    auto ran = exec_as_nobody("uring_stats",
                              "echo \"[$BPFBROKER_PROGRAM_FD]\"; echo $BPFBROKER_LINK_FDS | tr , '\\n' | "
                              "while IFS=: read name fd; do echo \"$name $(readlink /proc/self/fd/$fd)\"; done");
    ASSERT_TRUE(ran.ok()) << "exit " << ran.exit_code << "\nstdout: " << ran.out << "\nstderr: " << ran.err;
    auto out = lines_of(ran.out);
    ASSERT_EQ(out.size(), 4u) << ran.out;
    EXPECT_EQ(out[0], "[]") << "a program fd was passed on";
    for (std::size_t i = 1; i < out.size(); ++i)
        EXPECT_NE(out[i].find("anon_inode:bpf_link"), std::string::npos) << out[i];
}

}  // namespace
}  // namespace bpfbroker::e2e
