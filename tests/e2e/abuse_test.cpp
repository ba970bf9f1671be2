// Protocol abuse on the direct socket. Each case checks the abuser gets the
// documented error (and, where the stream cannot continue, loses its
// connection), and that a well-behaved client on another connection is
// served meanwhile: one hostile peer never stalls the daemon.
#include "support/drop_small_for_anyone.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace bpfbroker::e2e {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kAcquire = "org.bpfbroker.Broker.AcquireProgram";

std::string frame_of(const std::string& method, const nlohmann::json& params)
{
    std::string f = nlohmann::json{{"method", method}, {"parameters", params}}.dump();
    f.push_back('\0');
    return f;
}

class AbuseTest : public DropSmallForAnyoneFixture {
protected:
    void SetUp() override
    {
        DropSmallForAnyoneFixture::SetUp();
        if (IsSkipped() || HasFatalFailure())
            return;
        auto c = connect_client(5s);
        ASSERT_TRUE(c) << c.error().describe();
        good_.emplace(std::move(*c));
    }

    void TearDown() override
    {
        good_.reset();
        DropSmallForAnyoneFixture::TearDown();
    }

    // The well-behaved client, connected before the abuse began, acquires
    // promptly on its own connection.
    void expect_good_client_served(const char* while_what)
    {
        ASSERT_TRUE(good_.has_value());
        auto start = Clock::now();
        auto p = good_->acquire("drop_small");
        auto took = Clock::now() - start;
        ASSERT_TRUE(p) << "the well-behaved client was not served " << while_what << ": " << p.error().describe();
        EXPECT_TRUE(p->fd().valid());
        EXPECT_LT(took, 2s) << "the well-behaved client waited " << while_what;
    }

    std::optional<Client> good_;
};

TEST_F(AbuseTest, UnknownProgramIsProgramNotFoundAndConnectionStays)
{
    auto conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(conn.valid());
    auto reply = conn.call(kAcquire, {{"name", "no_such_program"}});
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(error_name(*reply), "org.bpfbroker.Broker.ProgramNotFound") << reply->frame;
    EXPECT_NE(error_reason(*reply).find("no_such_program"), std::string::npos) << reply->frame;
    EXPECT_TRUE(reply->fds.empty());
    expect_good_client_served("after an unknown program was asked for");
    // An ordinary error does not end the conversation.
    auto again = conn.call("org.bpfbroker.Broker.GetFeatures");
    ASSERT_TRUE(again.has_value()) << "the connection was dropped after ProgramNotFound";
    EXPECT_EQ(error_name(*again), "") << again->frame;
    // Names the manifest rules would refuse are refused before any lookup.
    auto bad_name = conn.call(kAcquire, {{"name", std::string(100, 'a')}});
    ASSERT_TRUE(bad_name.has_value());
    EXPECT_EQ(error_name(*bad_name), "org.varlink.service.InvalidParameter") << bad_name->frame;
    EXPECT_EQ(conn.fds_received(), 0u);
}

TEST_F(AbuseTest, MalformedJsonGetsErrorThenClose)
{
    auto conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(conn.valid());
    std::string bad = std::string(R"({"method":"org.bpfbroker.Broker.AcquireProgram","parameters":{"name":}})") + '\0';
    ASSERT_TRUE(conn.send_bytes(bad));
    auto reply = conn.read_message();
    ASSERT_TRUE(reply.has_value()) << "no error reply to malformed JSON";
    EXPECT_EQ(error_name(*reply), "org.bpfbroker.Broker.ProtocolError") << reply->frame;
    EXPECT_TRUE(conn.wait_closed()) << "the connection stayed open after malformed JSON";
    expect_good_client_served("after malformed JSON");

    // Valid JSON that is not a call is the same kind of violation.
    for (std::string not_a_call : {std::string(R"([1,2,3])"), std::string(R"({"method":"x.Y","bogus":1})"),
                                   std::string(R"({"method":42})")}) {
        auto c = RawConnection::connect(socket_path());
        ASSERT_TRUE(c.valid());
        ASSERT_TRUE(c.send_bytes(not_a_call + '\0'));
        auto r = c.read_message();
        ASSERT_TRUE(r.has_value()) << "no reply to " << not_a_call;
        EXPECT_FALSE(error_name(*r).empty()) << not_a_call << " -> " << r->frame;
        EXPECT_TRUE(c.wait_closed()) << not_a_call;
    }
}

TEST_F(AbuseTest, OversizedMessageIsLimitExceededThenClose)
{
    constexpr std::size_t kLimit = 64 * 1024;
    // An unterminated frame one byte over the limit: the daemon must read all
    // of it to know, so the close comes with nothing of ours left unread.
    std::string head = std::string(R"({"method":"org.bpfbroker.Broker.AcquireProgram","parameters":{"name":")");
    std::string big = head + std::string(kLimit + 1 - head.size(), 'a');
    ASSERT_EQ(big.size(), kLimit + 1);

    auto conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(conn.valid());
    ASSERT_TRUE(conn.send_bytes(std::string_view(big).substr(0, 40000)));
    expect_good_client_served("while a large message was half sent");
    ASSERT_TRUE(conn.send_bytes(std::string_view(big).substr(40000)));
    auto reply = conn.read_message();
    ASSERT_TRUE(reply.has_value()) << "no reply to an oversized message";
    EXPECT_EQ(error_name(*reply), "org.bpfbroker.Broker.LimitExceeded") << reply->frame.substr(0, 300);
    EXPECT_TRUE(conn.wait_closed()) << "the connection stayed open after an oversized message";
    expect_good_client_served("after an oversized message");

    // Exactly at the limit is still a message (here an invalid parameter, not a size error).
    std::string tail = R"("}})";
    std::string at_limit = head + std::string(kLimit - head.size() - tail.size(), 'b') + tail;
    ASSERT_EQ(at_limit.size(), kLimit);
    auto ok_conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(ok_conn.send_bytes(at_limit + '\0'));
    auto at = ok_conn.read_message();
    ASSERT_TRUE(at.has_value());
    EXPECT_NE(error_name(*at), "org.bpfbroker.Broker.LimitExceeded") << "a message of exactly 64 KiB was refused";
}

TEST_F(AbuseTest, MessageCarryingFdsIsProtocolErrorAndLeaksNothing)
{
    // The first acquire loads drop_small's shared instance, which the daemon
    // then keeps: do it before measuring.
    expect_good_client_served("before fds were sent");
    const auto baseline = settled_daemon_fd_count();
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd pr(p[0]), pw(p[1]);
    UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(devnull);
    const int fds[] = {pr.get(), pw.get(), devnull.get()};
    const std::string call = frame_of("org.bpfbroker.Broker.GetFeatures", nlohmann::json::object());

    for (int round = 0; round < 10; ++round) {
        auto conn = RawConnection::connect(socket_path());
        ASSERT_TRUE(conn.valid());
        ASSERT_TRUE(conn.send_with_fds(call, fds));
        auto reply = conn.read_message();
        ASSERT_TRUE(reply.has_value()) << "no reply to a message carrying fds (round " << round << ")";
        EXPECT_EQ(error_name(*reply), "org.bpfbroker.Broker.ProtocolError") << reply->frame;
        EXPECT_TRUE(conn.wait_closed()) << "the connection stayed open after fds were sent";
        if (round == 5)
            expect_good_client_served("while fds were being pushed at the daemon");
    }
    // One fd with a message that is otherwise fine, on a connection already in use.
    {
        auto conn = RawConnection::connect(socket_path());
        auto first = conn.call("org.bpfbroker.Broker.GetFeatures");
        ASSERT_TRUE(first.has_value());
        EXPECT_EQ(error_name(*first), "");
        const int one[] = {devnull.get()};
        ASSERT_TRUE(conn.send_with_fds(call, one));
        auto reply = conn.read_message();
        ASSERT_TRUE(reply.has_value());
        EXPECT_EQ(error_name(*reply), "org.bpfbroker.Broker.ProtocolError") << reply->frame;
        EXPECT_TRUE(conn.wait_closed());
    }
    auto after = wait_daemon_fd_count_at_most(baseline);
    EXPECT_EQ(after, baseline) << "the daemon holds more fds than before fds were sent to it";
    expect_good_client_served("after fds were sent");
}

TEST_F(AbuseTest, StalledHalfMessageDoesNotBlockOthers)
{
    const std::string call = frame_of(kAcquire, {{"name", "drop_small"}});
    auto staller = RawConnection::connect(socket_path());
    ASSERT_TRUE(staller.valid());
    ASSERT_TRUE(staller.send_bytes(std::string_view(call).substr(0, call.size() / 2)));
    std::this_thread::sleep_for(100ms);  // let the daemon buffer the half
    expect_good_client_served("while another client stalls mid-message");
    // A second stalled peer, from uid 65534, does not change that either.
    const std::string sock_path = socket_path();
    auto other_staller = spawn_as(kNobodyUid, kNobodyGid, [&](ChildChannel& parent) -> std::string {
        auto c = RawConnection::connect(sock_path);
        require(c.valid(), "connect");
        require(c.send_bytes(std::string_view(call).substr(0, 10)), "send");
        parent.tell_parent("stalling");
        parent.wait_parent();
        return "ok";
    });
    ASSERT_EQ(other_staller.wait_message(), std::optional<std::string>("stalling"));
    expect_good_client_served("while two clients stall");
    other_staller.tell_child("done");
    EXPECT_TRUE(other_staller.wait().ok());

    // The stalled message is still whole when it finally completes.
    ASSERT_TRUE(staller.send_bytes(std::string_view(call).substr(call.size() / 2)));
    auto reply = staller.read_message();
    ASSERT_TRUE(reply.has_value()) << "no reply once the stalled message was completed";
    EXPECT_EQ(error_name(*reply), "") << reply->frame;
    EXPECT_EQ(reply->fds.size(), 1u) << "drop_small has no maps: exactly one fd expected";
}

TEST_F(AbuseTest, RequestThenHalfCloseIsStillAnswered)
{
    // A peer may send its call and shut down its side at once (like `echo |
    // socat`): complete calls are answered before the daemon closes.
    auto conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(conn.valid());
    ASSERT_TRUE(conn.send_bytes(frame_of(kAcquire, {{"name", "drop_small"}}) +
                                frame_of("org.bpfbroker.Broker.GetFeatures", nlohmann::json::object())));
    ASSERT_EQ(::shutdown(conn.fd(), SHUT_WR), 0);
    auto first = conn.read_message();
    ASSERT_TRUE(first.has_value()) << "no reply after the peer shut down its write side";
    EXPECT_EQ(error_name(*first), "") << first->frame;
    EXPECT_EQ(first->fds.size(), 1u);
    auto second = conn.read_message();
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(error_name(*second), "") << second->frame;
    EXPECT_TRUE(conn.wait_closed());

    // A half message before the shutdown gets no reply, and no crash.
    auto partial = RawConnection::connect(socket_path());
    ASSERT_TRUE(partial.send_bytes(R"({"method":"org.bpfbroker.Broker.Acq)"));
    ASSERT_EQ(::shutdown(partial.fd(), SHUT_WR), 0);
    EXPECT_TRUE(partial.wait_closed());
    expect_good_client_served("after half-closed connections");
}

// The Varlink spec's names: an unknown method of a known interface is
// MethodNotFound, a method of an interface this service lacks InterfaceNotFound.
TEST_F(AbuseTest, UnknownMethodIsMethodNotFound)
{
    auto conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(conn.valid());
    const std::pair<const char*, const char*> cases[] = {
        {"org.bpfbroker.Broker.Frobnicate", "org.varlink.service.MethodNotFound"},
        {"org.varlink.service.Frobnicate", "org.varlink.service.MethodNotFound"},
        {"com.example.Other.Method", "org.varlink.service.InterfaceNotFound"},
        {"org.bpfbroker.Broker", "org.varlink.service.InterfaceNotFound"},
    };
    for (const auto& [method, expected] : cases) {
        auto reply = conn.call(method);
        ASSERT_TRUE(reply.has_value()) << method;
        EXPECT_EQ(error_name(*reply), expected) << method << " -> " << reply->frame;
    }
    expect_good_client_served("after unknown methods");
    // The spec's introspection entry point answers.
    auto info = conn.call("org.varlink.service.GetInfo");
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(error_name(*info), "") << info->frame;
    EXPECT_EQ(conn.fds_received(), 0u);
}

TEST_F(AbuseTest, MoreAndUpgradeAreRefusedWithoutSideEffects)
{
    auto conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(conn.valid());
    for (const char* flag : {"more", "upgrade"}) {
        std::string f = nlohmann::json{{"method", kAcquire}, {"parameters", {{"name", "drop_small"}}}, {flag, true}}.dump();
        ASSERT_TRUE(conn.send_bytes(f + '\0'));
        auto reply = conn.read_message();
        ASSERT_TRUE(reply.has_value()) << flag;
        EXPECT_EQ(error_name(*reply), "org.varlink.service.InvalidParameter") << flag << " -> " << reply->frame;
        EXPECT_TRUE(reply->fds.empty()) << flag;
    }
    // oneway: no reply and no fds, ever.
    std::string oneway = nlohmann::json{{"method", kAcquire}, {"parameters", {{"name", "drop_small"}}}, {"oneway", true}}.dump();
    ASSERT_TRUE(conn.send_bytes(oneway + '\0'));
    auto after = conn.call("org.bpfbroker.Broker.GetFeatures");
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(error_name(*after), "") << "the reply after a oneway call: " << after->frame;
    EXPECT_EQ(conn.fds_received(), 0u) << "a oneway acquire still sent fds";
    // ...and no program was loaded for it: the audit log has no acquire.
    for (const auto& r : audit_records())
        EXPECT_FALSE(r.at("action") == "acquire" && r.count("program") && r.at("program") == "drop_small")
            << "a oneway AcquireProgram was acted on";
}

TEST_F(AbuseTest, RequestFloodIsRateLimitedOthersServed)
{
    // 300 pipelined calls in one write: more than the default budget of 200
    // per second per connection.
    constexpr int kCalls = 300;
    std::string burst;
    for (int i = 0; i < kCalls; ++i)
        burst += frame_of("org.varlink.service.GetInfo", nlohmann::json::object());
    auto conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(conn.valid());
    ASSERT_TRUE(conn.send_bytes(burst));
    int ok = 0, limited = 0, other = 0;
    for (int i = 0; i < kCalls; ++i) {
        auto reply = conn.read_message();
        ASSERT_TRUE(reply.has_value()) << "reply " << i << " missing";
        auto name = error_name(*reply);
        (name.empty() ? ok : name == "org.bpfbroker.Broker.LimitExceeded" ? limited : other)++;
    }
    EXPECT_EQ(other, 0);
    EXPECT_GE(ok, 200) << "the burst allowance is 200";
    EXPECT_GE(limited, 1) << "300 calls at once were not rate limited";
    EXPECT_LT(ok, 260) << "the rate limit let through " << ok << " of " << kCalls;
    expect_good_client_served("after a request flood on another connection");
}

TEST_F(AbuseTest, ConnectionFloodFromOneUidIsCapped)
{
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        // The default cap is 32 connections per uid.
        std::vector<RawConnection> held;
        for (int i = 0; i < 32; ++i) {
            held.push_back(RawConnection::connect(sock_path));
            require(held.back().valid(), "connect " + std::to_string(i));
        }
        // Each of them is live.
        auto probe = held.back().call("org.varlink.service.GetInfo");
        require(probe.has_value() && error_name(*probe).empty(), "the 32nd connection is not served");
        auto extra = RawConnection::connect(sock_path);
        require(extra.valid(), "connect 33");
        auto refused = extra.read_message();
        require(refused.has_value(), "the 33rd connection got no refusal");
        require(error_name(*refused) == "org.bpfbroker.Broker.LimitExceeded", "33rd: " + refused->frame);
        require(extra.wait_closed(), "the 33rd connection was not closed");
        return "ok";
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    // Another uid is unaffected, and uid 65534's slots come back once closed.
    expect_good_client_served("after another uid hit its connection cap");
    auto again = run_as_nobody([&]() -> std::string {
        for (int attempt = 0; attempt < 100; ++attempt) {
            auto c = RawConnection::connect(sock_path);
            auto r = c.call("org.varlink.service.GetInfo", nlohmann::json::object(), 2s);
            if (r && error_name(*r).empty())
                return "ok";
            std::this_thread::sleep_for(20ms);
        }
        throw ChildFailure("uid 65534 could not connect again after closing its connections");
    });
    EXPECT_TRUE(again.ok()) << again.describe();
}

TEST_F(AbuseTest, NobodyCannotAdminister)
{
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect");
        auto approved = client->approve("src_allow", for_users({"nobody"}));
        require(!approved, "uid 65534 approved a program");
        require(approved.error().code == ErrorCode::PermissionDenied, "Approve: " + approved.error().describe());
        auto revoked = client->revoke("drop_small");
        require(!revoked && revoked.error().code == ErrorCode::PermissionDenied, "Revoke by uid 65534 was not denied");
        auto reloaded = client->reload();
        require(!reloaded && reloaded.error().code == ErrorCode::PermissionDenied, "Reload by uid 65534 was not denied");

        auto raw = RawConnection::connect(sock_path);
        auto reply = raw.call("org.bpfbroker.Broker.Approve", {{"program", "src_allow"}, {"anyone", true}});
        require(reply.has_value(), "no reply to a raw Approve");
        require(error_name(*reply) == "org.bpfbroker.Broker.PermissionDenied", "raw Approve: " + reply->frame);

        // Nothing changed: src_allow is still not acquirable, drop_small still is.
        auto acquired = client->acquire("src_allow");
        require(!acquired && acquired.error().code == ErrorCode::PermissionDenied,
                "src_allow became acquirable after a refused Approve");
        require(bool(client->acquire("drop_small")), "drop_small was revoked by a refused Revoke");
        return approved.error().message;
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    expect_good_client_served("after uid 65534 tried to administer");
}

// DESIGN.md: "Every decision, allow or deny, goes to the audit log with its
// reason." Refusing an admin call is such a decision, recorded under the same
// action name and program as the admin call it refused (the D-Bus transport
// and Broker::approve write action=approve program=NAME).
TEST_F(AbuseTest, RefusedAdminCallIsAudited)
{
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect");
        auto approved = client->approve("src_allow", for_users({"nobody"}));
        require(!approved && approved.error().code == ErrorCode::PermissionDenied, "Approve was not denied");
        return "ok";
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    bool found = false;
    for (const auto& r : audit_records())
        if (r.at("uid") == "65534" && r.at("decision") == "deny") {
            found = true;
            EXPECT_EQ(r.at("action"), "approve") << "refused Approve audited under another action name";
            EXPECT_EQ(r.at("program"), "src_allow") << "refused Approve audited without the program it named";
            EXPECT_EQ(r.count("code") ? r.at("code") : "", "PermissionDenied");
            EXPECT_FALSE(r.at("reason").empty());
        }
    EXPECT_TRUE(found) << "no audit record of uid 65534's refused Approve";
}

// A client that keeps asking (within the rate limit) but never reads its
// replies. The daemon stops reading it once 1 MiB of replies is queued, but
// every queued AcquireProgram reply also holds an fd in the daemon, and at
// ~250 bytes a reply 1 MiB is thousands of fds per connection. With the
// RLIMIT_NOFILE a service gets from systemd by default (1024) a single uid
// can thus exhaust the daemon's fd table and deny every other client.
class NonReadingClientTest : public AbuseTest {
protected:
    std::optional<unsigned long> daemon_nofile_limit() const override { return 1024; }
};

TEST_F(NonReadingClientTest, QueuedReplyFdsAreBoundedOthersServed)
{
    expect_good_client_served("before the attack");  // loads drop_small's shared instance
    const auto baseline = settled_daemon_fd_count();
    const std::string sock_path = socket_path();
    constexpr int kConnections = 6;
    auto attacker = spawn_as(kNobodyUid, kNobodyGid, [&](ChildChannel& parent) -> std::string {
        std::string batch;
        for (int i = 0; i < 40; ++i)
            batch += frame_of(kAcquire, {{"name", "drop_small"}});
        std::vector<RawConnection> conns;
        for (int i = 0; i < kConnections; ++i) {
            conns.push_back(RawConnection::connect(sock_path));
            require(conns.back().valid(), "connect");
        }
        parent.tell_parent("attacking");
        // 40 calls every 200 ms: exactly the default 200 requests per second.
        for (int round = 0; round < 25; ++round) {
            for (auto& c : conns)
                (void)::send(c.fd(), batch.data(), batch.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            std::this_thread::sleep_for(200ms);
        }
        return "done";
    });
    ASSERT_EQ(attacker.wait_message(), std::optional<std::string>("attacking"));
    std::this_thread::sleep_for(3s);
    const auto during = daemon_fd_count();
    expect_good_client_served("while another uid leaves its replies unread");
    auto r = attacker.wait(30s);
    EXPECT_TRUE(r.ok()) << r.describe();
    // Whatever the bound, one uid must leave the daemon headroom below its limit.
    EXPECT_LT(during, 1024u - 32u) << "the daemon held " << during << " fds (" << baseline
                                   << " before) for one uid's unread replies";
    // Once the attacker is gone everything it cost is given back.
    EXPECT_EQ(wait_daemon_fd_count_at_most(baseline), baseline);
    expect_good_client_served("after the attack");
}

// limits.stalled_client_timeout_ms: a peer that stops in the middle of a
// message, or stops reading its replies, loses its connection once that long
// has passed (the daemon checks at least once a second), and no one else
// waits for it meanwhile. 300 ms here, against the default 10 s, so the
// bounded waits below (5 s) can only pass through the setting.
class StalledClientTimeoutTest : public AbuseTest {
protected:
    static constexpr Millis kTimeout{300};

    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"stalled_client_timeout_ms":300}})";
    }

    // Waits, without reading, until the daemon has closed `conn` (the kernel
    // reports the hang-up); false after `timeout`.
    static bool wait_hangup_unread(const RawConnection& conn, Millis timeout)
    {
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            pollfd p{conn.fd(), POLLRDHUP, 0};
            int n = ::poll(&p, 1, test_support::remaining_ms(deadline));
            if (n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
                return true;
            if (n < 0 && errno != EINTR)
                return false;
            if (Clock::now() >= deadline)
                return false;
        }
    }
};

TEST_F(StalledClientTimeoutTest, HalfMessageIsClosedAfterTheTimeoutOthersServed)
{
    const std::string call = frame_of(kAcquire, {{"name", "drop_small"}});
    auto staller = RawConnection::connect(socket_path());
    ASSERT_TRUE(staller.valid());
    // An idle connection with nothing unfinished is not a stalled one.
    auto idle = RawConnection::connect(socket_path());
    ASSERT_TRUE(idle.valid());

    const auto sent = Clock::now();
    ASSERT_TRUE(staller.send_bytes(std::string_view(call).substr(0, call.size() / 2)));
    expect_good_client_served("while another client stalls mid-message");

    // The daemon closes the staller without a reply: read returns 0 (or ECONNRESET).
    auto reply = staller.read_message(5s);
    const auto took = Clock::now() - sent;
    EXPECT_FALSE(reply.has_value()) << "the stalled half message got a reply: " << reply->frame;
    ASSERT_TRUE(staller.closed()) << "the connection stalled mid-message was still open after 5 s";
    EXPECT_GE(took, kTimeout) << "the stalled connection was closed before the timeout";

    // Everyone else is still served, on new connections and on the idle one.
    expect_good_client_served("after a stalled connection was closed");
    auto again = idle.call("org.varlink.service.GetInfo");
    ASSERT_TRUE(again.has_value()) << "an idle connection was closed along with the stalled one";
    EXPECT_EQ(error_name(*again), "") << again->frame;
    auto fresh = RawConnection::connect(socket_path());
    auto info = fresh.call("org.varlink.service.GetInfo");
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(error_name(*info), "") << info->frame;
}

TEST_F(StalledClientTimeoutTest, ClientThatNeverReadsIsClosedAfterTheTimeoutOthersServed)
{
    expect_good_client_served("before the test");  // loads drop_small's shared instance
    const auto baseline = settled_daemon_fd_count();
    std::string batch;
    for (int i = 0; i < 100; ++i)
        batch += frame_of("org.varlink.service.GetInfo", nlohmann::json::object());

    auto hog = RawConnection::connect(socket_path());
    ASSERT_TRUE(hog.valid());
    // Calls as fast as the socket takes them, never reading a reply, until a
    // send would block. By then at least a socket buffer's worth of calls
    // (thousands) waits for the daemon, and their replies are more than its
    // side of the socket holds: the rest wait in its queue, which is then
    // stuck, and the timeout runs. (Once the daemon has closed the
    // connection, the send fails too.)
    const auto started = Clock::now();
    std::size_t sent = 0;
    for (std::size_t offset = 0; Clock::now() - started < 10s;) {
        ssize_t n = ::send(hog.fd(), batch.data() + offset, batch.size() - offset, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;  // EAGAIN; or EPIPE/ECONNRESET: closed already
        sent += static_cast<std::size_t>(n);
        offset = (offset + static_cast<std::size_t>(n)) % batch.size();
    }
    ASSERT_GT(sent, 0u);
    expect_good_client_served("while another client leaves its replies unread");

    ASSERT_TRUE(wait_hangup_unread(hog, 5s))
        << "a client that never reads was still connected 5 s after its replies stopped flowing (" << sent
        << " bytes of calls sent)";
    const auto took = Clock::now() - started;
    EXPECT_GE(took, kTimeout) << "the connection was closed before the timeout";
    // What the kernel still holds is read, then EOF or ECONNRESET.
    EXPECT_TRUE(hog.wait_closed(5s));

    // The daemon let go of the connection and everything queued for it.
    EXPECT_EQ(wait_daemon_fd_count_at_most(baseline), baseline);
    expect_good_client_served("after the client that never read was closed");
}

}  // namespace
}  // namespace bpfbroker::e2e
