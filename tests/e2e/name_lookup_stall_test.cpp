// A user database that stalls must not stall the socket (issue 7): the
// daemon looks names up off its event loop. bpfbrokerd runs with
// tests/support/nss_stall_preload.c, whose getpwuid_r blocks for uid 1
// until the test releases it. While a uid-1 caller waits for its names, a
// caller whose names are cached connects and is answered; the stalled
// caller is answered once the lookup returns. (The 30 s read limits below
// only keep a broken daemon from hanging the test; nothing is timed.)
#include "daemon_fixture.h"

#include <sys/stat.h>
#include <unistd.h>

#include <thread>

namespace bpfbroker::e2e {
namespace {

constexpr uid_t kStalledUid = 1;  // Debian's "daemon": has a passwd entry
constexpr const char* kList = "org.bpfbroker.Broker.ListPrograms";

class NameLookupStall : public DaemonFixture {
protected:
    std::map<std::string, std::string> daemon_env() const override
    {
        return {{"LD_PRELOAD", test_support::nss_stall_preload()},
                {"BPFBROKER_TEST_STALL_UID", std::to_string(kStalledUid)},
                {"BPFBROKER_TEST_STALL_MARK", mark()},
                {"BPFBROKER_TEST_STALL_RELEASE", release()}};
    }
    [[nodiscard]] std::string mark() const { return root() + "/../nss-stall-begun"; }
    [[nodiscard]] std::string release() const { return root() + "/../nss-stall-release"; }

    void TearDown() override
    {
        release_stall();  // whatever happened, let the daemon stop
        DaemonFixture::TearDown();
        ::unlink(mark().c_str());
        ::unlink(release().c_str());
    }
    void release_stall() const { EXPECT_TRUE(test_support::write_text_file(release(), "", 0644)); }

    // Whether the stall has begun, waiting for it up to `timeout`.
    bool stall_begun(Millis timeout) const
    {
        for (auto waited = Millis(0); waited < timeout; waited += 20ms) {
            struct stat st {};
            if (::stat(mark().c_str(), &st) == 0)
                return true;
            std::this_thread::sleep_for(20ms);
        }
        return false;
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
    ASSERT_TRUE(stall_begun(30s)) << "the daemon never looked uid " << kStalledUid << " up";

    // A new connection of a caller with cached names is served meanwhile.
    auto during = RawConnection::connect(socket_path());
    ASSERT_TRUE(during.valid());
    auto reply = during.call(kList, nlohmann::json::object(), 30s);
    ASSERT_TRUE(reply.has_value()) << "the socket stalled with the user database";
    EXPECT_EQ(error_name(*reply), "");
    EXPECT_FALSE(stalled.wait_message(0ms).has_value()) << "the stalled caller was answered before its names were known";

    release_stall();
    EXPECT_EQ(stalled.wait_message(60s).value_or("nothing"), "answered");
    auto result = stalled.wait();
    EXPECT_TRUE(result.ok()) << result.describe();
}

}  // namespace
}  // namespace bpfbroker::e2e
