// The socket transport against a scripted peer on a socketpair-like unix
// socket: a timed-out call closes the connection for good, so a late reply
// can never be read as the answer to the next call; a reply for another
// program than the one asked for, or handing out a program and links (or
// neither), or with an unknown field, is refused; links arrive as links; a
// waiting call sleeps once, not woken when the daemon reads it.
#include <bpfbroker/client.h>

#include "wire/acquire_codec.h"
#include "wire/fd_passing.h"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

using namespace bpfbroker;
using namespace std::chrono_literals;

namespace {

// A listening unix socket in a private directory; the test plays the daemon.
class ScriptedDaemon {
public:
    ScriptedDaemon()
    {
        char tmpl[] = "/tmp/bpfbroker-transport-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        path_ = dir_ + "/sock";
        listen_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        EXPECT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        EXPECT_EQ(::listen(listen_.get(), 4), 0);
    }
    ~ScriptedDaemon() { std::filesystem::remove_all(dir_); }
    const std::string& path() const { return path_; }
    UniqueFd accept() { return UniqueFd(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC)); }

private:
    std::string dir_, path_;
    UniqueFd listen_;
};

// A well-formed AcquireProgram reply for `name`; `handout` is the part that
// says what the fds are ("program":0 or "links":{...}).
std::string acquire_reply(const std::string& name, const std::string& handout = R"("program":0)")
{
    return R"({"parameters":{)" + handout + R"(,"maps":{},"info":{"name":")" + name +
           R"(","id":7,"tag":"00","type":"tracepoint","instance":"per-client","version":"1","map_access":{}}}})";
}

// False when the client has gone (it closes a connection it gave up on).
bool send_reply(int fd, const std::string& json, int with_fd)
{
    std::string bytes = json;
    bytes.push_back('\0');
    return bool(send_all_with_fds(fd, bytes, std::span<const int>(&with_fd, 1)));
}

}  // namespace

TEST(socket_transport, a_timed_out_call_closes_the_connection_for_good)
{
    ScriptedDaemon daemon;
    std::thread peer([&] {
        auto conn = daemon.accept();
        char buf[4096];
        (void)::read(conn.get(), buf, sizeof buf);  // the first call...
        std::this_thread::sleep_for(400ms);          // ...answered too late
        UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        // The client closed the connection when it gave up: the late reply has nowhere to go.
        EXPECT_FALSE(send_reply(conn.get(), acquire_reply("src_allow"),
                                devnull.get()));
    });
    auto client = Client::connect_socket(daemon.path(), 150ms);
    ASSERT_TRUE(client) << client.error().describe();
    auto first = client->acquire("src_allow");
    ASSERT_FALSE(first);
    EXPECT_EQ(first.error().sys_errno, ETIMEDOUT) << first.error().describe();
    std::this_thread::sleep_for(500ms);  // the late reply is now waiting
    auto second = client->acquire("udp_stats");
    ASSERT_FALSE(second) << "the late src_allow reply was taken as the answer for udp_stats";
    EXPECT_EQ(second.error().code, ErrorCode::ProtocolError);
    EXPECT_NE(second.error().message.find("connect again"), std::string::npos) << second.error().describe();
    peer.join();
}

namespace {

// Serves one AcquireProgram call with `reply` and one fd, then returns the
// result of the client's acquire(name).
Result<Program> acquire_against(const std::string& reply, const std::string& name)
{
    ScriptedDaemon daemon;
    std::thread peer([&] {
        auto conn = daemon.accept();
        char buf[4096];
        (void)::read(conn.get(), buf, sizeof buf);
        UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        EXPECT_TRUE(send_reply(conn.get(), reply, devnull.get()));
    });
    auto client = Client::connect_socket(daemon.path(), 2s);
    EXPECT_TRUE(client);
    auto p = client->acquire(name, AcquireOptions{.parameters = {{"min_len", 64}}});
    peer.join();
    return p;
}

}  // namespace

TEST(socket_transport, a_reply_for_another_program_is_refused)
{
    auto p = acquire_against(acquire_reply("src_allow"), "udp_stats");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, ErrorCode::ProtocolError);
    EXPECT_NE(p.error().message.find("src_allow"), std::string::npos) << p.error().describe();
}

TEST(socket_transport, a_broker_attached_reply_gives_links_and_no_program)
{
    auto p = acquire_against(acquire_reply("uring_stats", R"("links":{"on_complete":0})"), "uring_stats");
    ASSERT_TRUE(p) << p.error().describe();
    EXPECT_FALSE(p->fd().valid());
    ASSERT_EQ(p->links().size(), 1u);
    EXPECT_TRUE(p->links().at("on_complete").valid());
    EXPECT_EQ(p->info().id, 7u);
}

TEST(socket_transport, a_reply_with_a_program_and_links_is_refused)
{
    auto p = acquire_against(acquire_reply("uring_stats", R"("program":0,"links":{"on_complete":0})"), "uring_stats");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, ErrorCode::ProtocolError) << p.error().describe();
}

TEST(socket_transport, a_reply_that_hands_out_nothing_is_refused)
{
    auto p = acquire_against(acquire_reply("uring_stats", R"("links":{})"), "uring_stats");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, ErrorCode::ProtocolError);
    EXPECT_NE(p.error().message.find("either a program or links"), std::string::npos) << p.error().describe();
}

TEST(socket_transport, a_reply_with_an_unknown_field_is_refused)
{
    auto p = acquire_against(acquire_reply("uring_stats", R"("program":0,"extra":1)"), "uring_stats");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, ErrorCode::ProtocolError);
    EXPECT_NE(p.error().message.find("extra"), std::string::npos) << p.error().describe();
}

TEST(socket_transport, an_error_reply_keeps_its_code)
{
    auto p = acquire_against(R"({"error":"org.bpfbroker.Broker.PermissionDenied","parameters":{"reason":"no grant"}})",
                             "uring_stats");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, ErrorCode::PermissionDenied);
    EXPECT_EQ(p.error().message, "no grant");
}

namespace {

long voluntary_switches_of_this_thread()
{
    std::ifstream in("/proc/thread-self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0)
            return std::stol(line.substr(line.find(':') + 1));
    return -1;
}

}  // namespace

// The kernel wakes whoever sleeps on a unix socket when its peer reads and
// so frees send space; a client blocked in recvmsg would wake for nothing
// when the daemon reads its call, and sleep again. The client waits in
// poll for input only: it sleeps once per call. Counted over several calls
// with some slack: a stray sleep of the thread (a malloc lock it shares with
// the scripted daemon's thread in this process, a fault; one in a few full
// parallel runs) is not what this is about, and a wake per read would make
// twice as many.
TEST(socket_transport, a_waiting_call_is_not_woken_when_the_daemon_reads_it)
{
    constexpr int kCalls = 8;
    ScriptedDaemon daemon;
    std::thread peer([&] {
        auto conn = daemon.accept();
        UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        for (int i = 0; i < kCalls; ++i) {
            std::this_thread::sleep_for(60ms);  // the client is asleep waiting now
            char buf[4096];
            (void)::read(conn.get(), buf, sizeof buf);
            std::this_thread::sleep_for(60ms);
            EXPECT_TRUE(send_reply(conn.get(), acquire_reply("src_allow"), devnull.get()));
        }
    });
    auto client = Client::connect_socket(daemon.path(), 10s);
    ASSERT_TRUE(client) << client.error().describe();
    const long before = voluntary_switches_of_this_thread();
    bool all = true;
    for (int i = 0; i < kCalls; ++i)
        all = client->acquire("src_allow").has_value() && all;
    const long slept = voluntary_switches_of_this_thread() - before;
    peer.join();
    ASSERT_TRUE(all);
    ASSERT_GE(before, 0);
    EXPECT_GE(slept, 1) << "the client did not wait for its replies";
    EXPECT_LE(slept, kCalls + 3) << "the client slept " << slept << " times for " << kCalls << " calls";
}

// A reply byte for byte the same as the last is not decoded again; every
// reply still yields its own program: the same info for the same bytes, the
// new info for new ones, and each its own fd.
TEST(socket_transport, repeated_replies_give_the_same_program_and_new_ones_their_own)
{
    const auto reply_for = [](const std::string& id) {
        return R"({"parameters":{"program":0,"maps":{},"info":{"name":"src_allow","id":)" + id +
               R"(,"tag":"00ff00ff00ff00ff","type":"socket_filter","instance":"shared","version":"1",)"
               R"("map_access":{},"parameters":{"min_len":64}}}})";
    };
    const std::vector<std::string> replies = {reply_for("7"), reply_for("7"), reply_for("8"), reply_for("7")};
    ScriptedDaemon daemon;
    std::thread peer([&] {
        auto conn = daemon.accept();
        for (const auto& reply : replies) {
            char buf[4096];
            (void)::read(conn.get(), buf, sizeof buf);
            UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
            EXPECT_TRUE(send_reply(conn.get(), reply, devnull.get()));
        }
    });
    auto client = Client::connect_socket(daemon.path(), 5s);
    ASSERT_TRUE(client) << client.error().describe();
    std::vector<Program> got;
    for (std::size_t i = 0; i < replies.size(); ++i) {
        auto p = client->acquire("src_allow");
        ASSERT_TRUE(p) << "call " << i << ": " << p.error().describe();
        got.push_back(std::move(*p));
    }
    peer.join();
    const std::vector<std::uint32_t> ids = {7, 7, 8, 7};
    for (std::size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].info().id, ids[i]) << "call " << i;
        EXPECT_EQ(got[i].info().tag, "00ff00ff00ff00ff");
        EXPECT_EQ(got[i].info().parameters.at("min_len"), 64u);
        EXPECT_TRUE(got[i].fd().valid());
        for (std::size_t j = 0; j < i; ++j)
            EXPECT_NE(got[i].fd().get(), got[j].fd().get()) << "calls " << j << " and " << i << " share an fd";
    }
    EXPECT_EQ(got[0].info(), got[1].info());
}

// A call the same as the last is sent as the bytes encoded then; every
// call still says what was asked: the same name and values, then other
// values, another name, and the first again.
TEST(socket_transport, repeated_calls_say_what_each_one_asks)
{
    struct Asked {
        std::string name;
        std::map<std::string, std::uint64_t> parameters;
    };
    const std::vector<Asked> asked = {
        {"src_allow", {}}, {"src_allow", {}}, {"src_allow", {{"min_len", 64}}}, {"udp_stats", {}}, {"src_allow", {}}};
    std::vector<std::string> calls;
    ScriptedDaemon daemon;
    std::thread peer([&] {
        auto conn = daemon.accept();
        UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        for (const auto& a : asked) {
            std::string call;
            char c = 1;
            while (::read(conn.get(), &c, 1) == 1 && c != '\0')
                call += c;
            calls.push_back(call);
            EXPECT_TRUE(send_reply(conn.get(), acquire_reply(a.name), devnull.get()));
        }
    });
    auto client = Client::connect_socket(daemon.path(), 5s);
    ASSERT_TRUE(client) << client.error().describe();
    for (std::size_t i = 0; i < asked.size(); ++i) {
        AcquireOptions options;
        options.parameters = asked[i].parameters;
        auto p = client->acquire(asked[i].name, options);
        ASSERT_TRUE(p) << "call " << i << ": " << p.error().describe();
        EXPECT_EQ(p->info().name, asked[i].name) << "call " << i;
    }
    peer.join();
    ASSERT_EQ(calls.size(), asked.size());
    for (std::size_t i = 0; i < asked.size(); ++i) {
        varlink::AcquireCall expected;
        expected.name = asked[i].name;
        expected.parameters = asked[i].parameters;
        auto encoded = varlink::encode_acquire_call(expected);
        ASSERT_TRUE(encoded);
        EXPECT_EQ(calls[i] + '\0', *encoded) << "call " << i;
    }
}
