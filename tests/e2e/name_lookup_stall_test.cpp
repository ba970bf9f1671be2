// A user database that stalls must not stall the socket (issue 7): the
// daemon looks names up off its event loop. bpfbrokerd runs with
// tests/support/nss_stall_preload.c, whose getpwuid_r blocks for uid 1
// until the test releases it. While a uid-1 caller waits for its names, a
// caller whose names are cached connects and is answered; the stalled
// caller is answered once the lookup returns. (The 30 s read limits below
// only keep a broken daemon from hanging the test; nothing is timed.)
#include "support/daemon_fixture.h"
#include "support/nss_stall.h"

namespace bpfbroker::e2e {
namespace {

constexpr uid_t kStalledUid = 1;  // Debian's "daemon": has a passwd entry
constexpr const char* kList = "org.bpfbroker.Broker.ListPrograms";

class NameLookupStall : public DaemonFixture {
protected:
    [[nodiscard]] test_support::NssStall stall() const { return {kStalledUid, root() + "/.."}; }
    std::map<std::string, std::string> daemon_env() const override { return stall().daemon_env(); }

    void TearDown() override
    {
        if (root().empty()) {  // skipped before a root was made
            DaemonFixture::TearDown();
            return;
        }
        EXPECT_TRUE(stall().release());  // whatever happened, let the daemon stop
        DaemonFixture::TearDown();
        stall().remove();
    }
};

TEST_F(NameLookupStall, a_stalled_lookup_holds_up_only_its_own_caller)
{
    // Root's names are looked up (and cached) before the stall.
    auto before = RawConnection::connect(socket_path());
    ASSERT_TRUE(before.valid());
    auto first = before.call(kList, nlohmann::json::object(), 30s);
    ASSERT_TRUE(first && error_name(*first).empty());

    auto stalled = spawn_as(kStalledUid, kStalledUid, [this](ChildChannel& ch) {
        auto conn = RawConnection::connect(socket_path());
        require(conn.valid(), "cannot connect");
        auto reply = conn.call(kList, nlohmann::json::object(), 60s);
        require(reply.has_value(), "no reply once the lookup returned");
        ch.tell_parent(error_name(*reply).empty() ? "answered" : "refused: " + error_name(*reply));
        return std::string("ok");
    });
    ASSERT_TRUE(stall().begun(30s)) << "the daemon never looked uid " << kStalledUid << " up";

    // A new connection of a caller with cached names is served meanwhile.
    auto during = RawConnection::connect(socket_path());
    ASSERT_TRUE(during.valid());
    auto reply = during.call(kList, nlohmann::json::object(), 30s);
    ASSERT_TRUE(reply.has_value()) << "the socket stalled with the user database";
    EXPECT_EQ(error_name(*reply), "");
    EXPECT_FALSE(stalled.wait_message(0ms).has_value()) << "the stalled caller was answered before its names were known";

    ASSERT_TRUE(stall().release());
    EXPECT_EQ(stalled.wait_message(60s).value_or("nothing"), "answered");
    auto result = stalled.wait();
    EXPECT_TRUE(result.ok()) << result.describe();
}

}  // namespace
}  // namespace bpfbroker::e2e
