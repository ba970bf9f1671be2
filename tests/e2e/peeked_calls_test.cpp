// The daemon peeks each call and takes it off the socket later, in batches
// (VarlinkServer::on_readable): a caller blocked in recvmsg is not woken
// when its call is read, and a caller whose send buffer the waiting calls
// fill is still served, without reading a reply first.
#include "support/drop_small_for_anyone.h"
#include "support/ring_echo_loop.h"

#include <sys/socket.h>

#include <csignal>

namespace bpfbroker::e2e {
namespace {

constexpr const char* kAcquire = "org.bpfbroker.Broker.AcquireProgram";

class PeekedCallsTest : public DropSmallForAnyoneFixture {};

// Before: reading a call freed send space on the caller's socket and the
// kernel woke the caller, asleep in recvmsg for the reply, for nothing:
// about two sleeps per call. Now one per call, and one more per batch.
TEST_F(PeekedCallsTest, ACallerBlockedInRecvmsgSleepsAboutOncePerCall)
{
    auto conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(conn.valid());
    conn.wait_in_recvmsg();
    const nlohmann::json params = {{"name", "drop_small"}};
    // The first call pays for the load; the count starts after it.
    auto first = conn.call(kAcquire, params);
    ASSERT_TRUE(first.has_value());
    ASSERT_EQ(error_name(*first), "") << first->frame;
    constexpr int kCalls = 150;  // under the 200 per second a connection may ask
    const long before = test_support::voluntary_switches();
    ASSERT_GE(before, 0);
    for (int i = 0; i < kCalls; ++i) {
        auto reply = conn.call(kAcquire, params);
        ASSERT_TRUE(reply.has_value()) << "reply " << i << ": " << errno_text(errno);
        ASSERT_EQ(reply->fds.size(), 1u) << reply->frame;
    }
    const long slept = test_support::voluntary_switches() - before;
    EXPECT_LE(slept, kCalls * 13 / 10) << "a caller blocked in recvmsg slept " << slept << " times in " << kCalls
                                       << " calls";
}

// Calls wait on the socket until a batch is full or kPeekedConsumeAfter has
// passed. With the smallest send buffer a handful of waiting calls fill it,
// well under a batch: the caller, which sends each call on its own and
// reads no reply until all are sent, is served once time takes them off.
TEST_F(PeekedCallsTest, ACallerWithATinySendBufferIsStillServed)
{
    auto conn = RawConnection::connect(socket_path());
    ASSERT_TRUE(conn.valid());
    const int smallest = 1;  // the kernel raises it to its minimum
    ASSERT_EQ(::setsockopt(conn.fd(), SOL_SOCKET, SO_SNDBUF, &smallest, sizeof smallest), 0);
    timeval five_seconds{5, 0};  // a send that waits for good fails the test instead
    ASSERT_EQ(::setsockopt(conn.fd(), SOL_SOCKET, SO_SNDTIMEO, &five_seconds, sizeof five_seconds), 0);
    constexpr int kCalls = 24;
    for (int i = 0; i < kCalls; ++i)
        ASSERT_TRUE(conn.send_call(kAcquire, {{"name", "drop_small"}}))
            << "call " << i << " could not be sent: " << errno_text(errno);
    for (int i = 0; i < kCalls; ++i) {
        auto reply = conn.read_message();
        ASSERT_TRUE(reply.has_value()) << "reply " << i;
        EXPECT_EQ(reply->fds.size(), 1u) << reply->frame;
    }
    // Still one conversation: the stream was neither cut nor garbled.
    auto after = conn.call("org.bpfbroker.Broker.GetFeatures");
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(error_name(*after), "") << after->frame;
}

// More calls waiting at once than two turns read (8 reads of 16 KiB each):
// the daemon is stopped while they are written, so it finds them all behind
// a single edge. They ask for no reply (oneway), so no reply's backpressure
// brings the loop back; only the last one does. An edge-triggered loop that
// stopped reading before the socket was empty must come back to it
// unasked, or the last call is never answered.
TEST_F(PeekedCallsTest, CallsBeyondOneTurnsReadsAreAllRead)
{
    auto frame = [](bool oneway) {
        nlohmann::json call = {{"method", "org.varlink.service.GetInfo"}, {"parameters", nlohmann::json::object()}};
        if (oneway)
            call["oneway"] = true;
        std::string f = call.dump();
        f.push_back('\0');
        return f;
    };
    std::string burst;
    while (burst.size() < 3u * 8u * 16384u)
        burst += frame(true);
    burst += frame(false);

    ASSERT_EQ(::kill(daemon_pid(), SIGSTOP), 0);
    auto conn = RawConnection::connect(socket_path());  // the listen backlog takes it
    const int room = 4 << 20;
    const bool sized = conn.valid() && ::setsockopt(conn.fd(), SOL_SOCKET, SO_SNDBUFFORCE, &room, sizeof room) == 0;
    const bool sent = sized && conn.send_bytes(burst);  // all of it sits on the socket
    ASSERT_EQ(::kill(daemon_pid(), SIGCONT), 0);
    ASSERT_TRUE(sent) << "the burst could not be written while the daemon was stopped: " << errno_text(errno);

    // The last call is answered: with the rate limit's error when the burst
    // spent every token, or with GetInfo's reply when the loop took long
    // enough over the burst (a loaded machine) for the bucket to refill one.
    auto reply = conn.read_message();
    ASSERT_TRUE(reply.has_value()) << "the last of " << burst.size() << " bytes of calls was never answered";
    const std::string error = error_name(*reply);
    const bool info = error.empty() && reply->json.contains("parameters") && reply->json["parameters"].contains("interfaces");
    EXPECT_TRUE(error == "org.bpfbroker.Broker.LimitExceeded" || info) << reply->frame;
}

}  // namespace
}  // namespace bpfbroker::e2e
