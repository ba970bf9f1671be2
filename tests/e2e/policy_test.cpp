// Denials end to end: no grant, a grant revoked while the client runs, and an
// object tampered with on disk after approval, picked up by a reload.
#include "support/daemon_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <thread>

namespace bpfbroker::e2e {
namespace {

class PolicyTest : public DaemonFixture {
protected:
    // Appends a byte to the installed object of `name`: its sha256 no longer
    // matches the signed manifest.
    void tamper_with_object(const std::string& name)
    {
        std::string path = program_dir(name) + "/" + name + ".bpf.o";
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW));
        ASSERT_TRUE(fd) << path << ": " << errno_text(errno);
        ASSERT_EQ(::write(fd.get(), "\0", 1), 1);
    }

    // The ListPrograms entry of `name` as the root client sees it.
    std::optional<ProgramEntry> listing(const std::string& name)
    {
        auto c = connect_client();
        if (!c)
            return std::nullopt;
        auto list = c->list_programs();
        if (!list)
            return std::nullopt;
        for (auto& e : *list)
            if (e.name == name)
                return e;
        return std::nullopt;
    }

    // After tampering with udp_stats and reloading: it is refused for what it
    // is, and drop_small (approved for anyone) is still handed out.
    void expect_tampered_refused_and_other_served()
    {
        auto entry = listing("udp_stats");
        ASSERT_TRUE(entry.has_value());
        EXPECT_EQ(entry->state, "object-hash-mismatch");
        EXPECT_FALSE(entry->allowed);
        EXPECT_EQ(entry->error, "ObjectHashMismatch");

        const std::string sock_path = socket_path();
        auto result = run_as_nobody([&]() -> std::string {
            auto conn = RawConnection::connect(sock_path);
            require(conn.valid(), "connect: " + errno_text(errno));
            auto reply = conn.call("org.bpfbroker.Broker.AcquireProgram", {{"name", "udp_stats"}});
            require(reply.has_value(), "no reply to AcquireProgram udp_stats");
            require(error_name(*reply) == "org.bpfbroker.Broker.ObjectHashMismatch",
                    "tampered udp_stats: expected ObjectHashMismatch, got " + reply->frame);
            require(reply->fds.empty(), "an error reply carried fds");

            auto client = Client::connect_socket(sock_path, 10s);
            require(bool(client), "connect");
            auto other = client->acquire("drop_small");
            require(bool(other), "drop_small after the reload: " + (other ? "" : other.error().describe()));
            require(other->fd().valid() && other->info().instance == "shared", "drop_small handout looks wrong");
            return error_reason(*reply);
        });
        ASSERT_TRUE(result.ok()) << result.describe();
        EXPECT_NE(result.report.find("udp_stats"), std::string::npos) << result.report;
    }
};

TEST_F(PolicyTest, NotApprovedIsDeniedWithReasonAndNoFds)
{
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        const auto fds_before = own_fd_count();
        auto conn = RawConnection::connect(sock_path);
        require(conn.valid(), "connect: " + errno_text(errno));
        auto reply = conn.call("org.bpfbroker.Broker.AcquireProgram", {{"name", "udp_stats"}});
        require(reply.has_value(), "no reply");
        require(error_name(*reply) == "org.bpfbroker.Broker.PermissionDenied", "expected PermissionDenied: " + reply->frame);
        require(reply->json.contains("parameters") && !reply->json["parameters"].contains("program"),
                "a denial carried a program index");
        require(conn.fds_received() == 0, "a denial carried " + std::to_string(conn.fds_received()) + " fds");
        // The only new fd is the connection itself.
        require(own_fd_count() == fds_before + 1, "fd count grew by " + std::to_string(own_fd_count() - fds_before));

        // The library reports the same denial as a typed error.
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect");
        auto acquired = client->acquire("udp_stats");
        require(!acquired && acquired.error().code == ErrorCode::PermissionDenied,
                "Client::acquire: expected PermissionDenied");
        return error_reason(*reply);
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_NE(result.report.find("\"udp_stats\""), std::string::npos) << "reason does not name the program: " << result.report;
    EXPECT_NE(result.report.find("65534"), std::string::npos) << "reason does not name the caller: " << result.report;
}

TEST_F(PolicyTest, RevokedWhileRunningDeniesTheNextAcquire)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    const std::string sock_path = socket_path();
    auto child = spawn_as(kNobodyUid, kNobodyGid, [&](ChildChannel& parent) -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect");
        auto first = client->acquire("udp_stats");
        require(bool(first), "acquire before revoke: " + (first ? "" : first.error().describe()));
        parent.tell_parent("acquired");
        require(parent.wait_parent() == "revoked", "unexpected word from the parent");
        // Same connection, same process: the policy changed under it.
        auto second = client->acquire("udp_stats");
        require(!second, "acquire after revoke succeeded");
        require(second.error().code == ErrorCode::PermissionDenied,
                "acquire after revoke: expected PermissionDenied, got " + second.error().describe());
        return second.error().message;
    });
    auto msg = child.wait_message();
    ASSERT_EQ(msg, std::optional<std::string>("acquired"));
    {
        auto admin = connect_client();
        ASSERT_TRUE(admin) << admin.error().describe();
        auto removed = admin->revoke("udp_stats");
        ASSERT_TRUE(removed) << removed.error().describe();
        EXPECT_EQ(removed->removed_approvals, 1u);
    }
    child.tell_child("revoked");
    auto result = child.wait();
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_NE(result.report.find("revoked"), std::string::npos) << result.report;
    EXPECT_NE(result.report.find("udp_stats"), std::string::npos) << result.report;
}

TEST_F(PolicyTest, TamperedObjectRefusedAfterSighupOthersStillServed)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    ASSERT_TRUE(approve("drop_small", for_anyone()));
    ASSERT_EQ(listing("udp_stats").value_or(ProgramEntry{}).state, "valid");
    tamper_with_object("udp_stats");
    // Nothing changes until the daemon is told to look again.
    EXPECT_EQ(listing("udp_stats").value_or(ProgramEntry{}).state, "valid");

    signal_daemon(SIGHUP);
    std::string state;
    for (int i = 0; i < 250 && state != "object-hash-mismatch"; ++i) {
        std::this_thread::sleep_for(20ms);
        state = listing("udp_stats").value_or(ProgramEntry{}).state;
    }
    ASSERT_EQ(state, "object-hash-mismatch") << "SIGHUP did not reload the catalog within 5 s";
    expect_tampered_refused_and_other_served();
}

TEST_F(PolicyTest, TamperedObjectRefusedAfterReloadMethod)
{
    ASSERT_TRUE(approve("udp_stats", for_users({"nobody"})));
    ASSERT_TRUE(approve("drop_small", for_anyone()));
    tamper_with_object("udp_stats");
    {
        auto admin = connect_client();
        ASSERT_TRUE(admin) << admin.error().describe();
        auto reloaded = admin->reload();
        ASSERT_TRUE(reloaded) << reloaded.error().describe();
    }
    expect_tampered_refused_and_other_served();
}

}  // namespace
}  // namespace bpfbroker::e2e
