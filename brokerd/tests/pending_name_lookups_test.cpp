// D-Bus calls parked until their caller's names are known
// (brokerd/pending_name_lookups.h), with a user database that stalls for
// chosen uids until released: a stalled uid holds up only its own calls
// and one worker however often it calls; what one uid and everyone may
// park is bounded, and a call past a bound is refused, never queued.
#include "brokerd/pending_name_lookups.h"

#include "brokerd/limits.h"

#include <gtest/gtest.h>

#include <poll.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

namespace bpfbroker::brokerd {
namespace {

// Uids nobody has looked up in this process: never in the names cache.
constexpr uid_t kStalled = 4100001;
constexpr uid_t kPrompt = 4100002;

// A user database in which lookups of uids >= `stall_from` block until
// release(). Shared with the workers, which may outlive the test.
struct StallingDatabase {
    uid_t stall_from = kStalled;
    std::mutex mutex;
    std::condition_variable released_cv;
    bool released = false;
    unsigned lookups = 0;

    void release()
    {
        std::lock_guard lock(mutex);
        released = true;
        released_cv.notify_all();
    }
};

PeerNameResolver::Lookup lookup_in(std::shared_ptr<StallingDatabase> db)
{
    return [db](policy::Peer& peer) {
        std::unique_lock lock(db->mutex);
        ++db->lookups;
        if (peer.uid >= db->stall_from && peer.uid != kPrompt)
            db->released_cv.wait(lock, [&] { return db->released; });
        peer.user_name = "user" + std::to_string(peer.uid);
    };
}

policy::Peer peer_of(uid_t uid, pid_t pid = 1)
{
    policy::Peer p;
    p.uid = uid;
    p.pid = pid;
    return p;
}

// Waits (up to 10 s) for names to arrive and continues their calls.
bool dispatch_when_ready(PendingNameLookups& waits)
{
    pollfd p{waits.ready_fd(), POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1)
        return false;
    waits.dispatch_ready();
    return true;
}

class PendingNameLookupsTest : public ::testing::Test {
protected:
    void TearDown() override { db->release(); }  // the workers finish

    std::shared_ptr<StallingDatabase> db = std::make_shared<StallingDatabase>();
    PendingNameLookups waits{lookup_in(db)};
};

TEST_F(PendingNameLookupsTest, a_stalled_uid_holds_up_only_its_own_calls)
{
    std::vector<std::string> continued;
    for (pid_t pid = 1; pid <= 3; ++pid)
        ASSERT_TRUE(waits.with_names(peer_of(kStalled, pid), [&](policy::Peer p) {
            continued.push_back(p.user_name + " pid " + std::to_string(p.pid));
        }));
    EXPECT_EQ(waits.lookups(), 1u) << "calls of the same ids each took a worker";
    ASSERT_TRUE(waits.with_names(peer_of(kPrompt), [&](policy::Peer p) { continued.push_back(p.user_name); }));
    EXPECT_EQ(waits.parked(), 4u);
    EXPECT_TRUE(continued.empty()) << "a call continued before its names were known";

    ASSERT_TRUE(dispatch_when_ready(waits));
    EXPECT_EQ(continued, std::vector<std::string>{"user4100002"}) << "the prompt uid waited behind the stalled one";
    EXPECT_EQ(waits.parked(), 3u);

    db->release();
    ASSERT_TRUE(dispatch_when_ready(waits));
    EXPECT_EQ(continued, (std::vector<std::string>{"user4100002", "user4100001 pid 1", "user4100001 pid 2",
                                                   "user4100001 pid 3"}));
    EXPECT_EQ(waits.parked(), 0u);
    EXPECT_EQ(waits.lookups(), 0u);
    EXPECT_EQ(db->lookups, 2u);
}

TEST_F(PendingNameLookupsTest, one_uid_may_park_only_so_many_calls)
{
    unsigned continued = 0;
    auto count = [&](policy::Peer) { ++continued; };
    for (std::size_t i = 0; i < Limits::kNameWaitsPerUid; ++i)
        ASSERT_TRUE(waits.with_names(peer_of(kStalled), count));
    auto refused = waits.with_names(peer_of(kStalled), count);
    ASSERT_FALSE(refused) << "one uid parked more calls than its bound";
    EXPECT_EQ(refused.error().code, ErrorCode::LimitExceeded);
    EXPECT_NE(refused.error().message.find("uid 4100001"), std::string::npos) << refused.error().message;
    EXPECT_TRUE(waits.with_names(peer_of(kPrompt), count)) << "another uid paid for the stalled uid's calls";

    db->release();
    while (waits.parked() > 0)
        ASSERT_TRUE(dispatch_when_ready(waits));
    EXPECT_EQ(continued, Limits::kNameWaitsPerUid + 1);
    EXPECT_TRUE(waits.with_names(peer_of(kStalled + 100), count)) << "the bound stayed after the calls went";
}

TEST_F(PendingNameLookupsTest, all_uids_together_may_park_only_so_many_calls)
{
    auto ignore = [](policy::Peer) {};
    uid_t uid = kStalled + 1000;
    for (std::size_t parked = 0; parked < Limits::kNameWaitsTotal; ++uid)
        for (std::size_t i = 0; i < Limits::kNameWaitsPerUid && parked < Limits::kNameWaitsTotal; ++i, ++parked)
            ASSERT_TRUE(waits.with_names(peer_of(uid), ignore));
    auto refused = waits.with_names(peer_of(uid + 1), ignore);
    ASSERT_FALSE(refused) << "more calls parked than the total bound";
    EXPECT_EQ(refused.error().code, ErrorCode::LimitExceeded);
    EXPECT_EQ(waits.parked(), Limits::kNameWaitsTotal);
}

}  // namespace
}  // namespace bpfbroker::brokerd
