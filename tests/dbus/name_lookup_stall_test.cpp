// A user database that stalls must not stall the bus (issue 7): bpfbrokerd
// looks a D-Bus caller's names up off its bus thread and answers the call
// once they arrive. It runs with tests/support/nss_stall_preload.c, whose
// getpwuid_r blocks for uid 1 until the test releases it. While a uid-1
// call waits for its names, uid 65534 acquires and lists; the stalled calls
// are answered once the lookup returns. The calls one uid may have waiting
// are bounded: one more is refused at once with LimitExceeded, and logged.
// (The 10 s call timeouts only keep a stalled bus from hanging the test.)
#include "support/bus_fixture.h"
#include "support/nss_stall.h"

#include <bpfbroker/error_names.h>

namespace bpfbroker::dbus_test {
namespace {

constexpr uid_t kStalledUid = kOtherUid;
constexpr gid_t kStalledGid = kOtherGid;
// brokerd/limits.h: Limits::kNameWaitsPerUid.
constexpr unsigned kWaitsPerUid = 16;

using ProgramRows = std::vector<sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>>;

class BusNameLookupStall : public BusFixture {
protected:
    [[nodiscard]] test_support::NssStall stall() const { return {kStalledUid, scratch()}; }
    std::map<std::string, std::string> daemon_env() const override { return stall().daemon_env(); }

    void TearDown() override
    {
        if (!scratch().empty())
            stall().release();  // whatever happened, let the daemon stop
        BusFixture::TearDown();
    }
};

// ListPrograms on `bus`, waiting at most 10 s: the error name, "" when answered.
std::string list_programs(BrokerBus& bus)
{
    return dbus_error_of([&] {
        ProgramRows rows;
        bus.proxy().callMethod("ListPrograms").onInterface(kInterface).withTimeout(10s).storeResultsTo(rows);
    });
}

TEST_F(BusNameLookupStall, a_stalled_lookup_holds_up_only_its_own_callers)
{
    ASSERT_EQ(approve_for_nobody("drop_small").size(), 64u);

    // One uid-1 call waits for its names (a stall until released).
    auto stalled = spawn_as(kStalledUid, kStalledGid, [](ChildChannel& ch) {
        BrokerBus bus;
        ch.tell_parent("connected");
        ProgramRows rows;
        auto error = dbus_error_of([&] {
            bus.proxy().callMethod("ListPrograms").onInterface(kInterface).withTimeout(60s).storeResultsTo(rows);
        });
        ch.tell_parent(error.empty() ? "answered" : "refused: " + error);
        return std::string("ok");
    });
    ASSERT_EQ(stalled.wait_message(20s).value_or(""), "connected");
    ASSERT_TRUE(stall().begun(30s)) << "the daemon never looked uid " << kStalledUid << " up";

    // Meanwhile another uid is served, its names looked up on another worker.
    auto other = run_as(kNobodyUid, kNobodyGid, [] {
        BrokerBus bus;
        std::string message;
        AcquireReply reply;
        auto error = dbus_error_of(
            [&] {
                bus.proxy().callMethod("AcquireProgram").onInterface(kInterface).withTimeout(10s)
                    .withArguments(std::string("drop_small"))
                    .storeResultsTo(std::get<0>(reply), std::get<1>(reply), std::get<2>(reply));
            },
            &message);
        check(error.empty(), "AcquireProgram while uid 1's names stall: " + error + ": " + message);
        check(std::get<0>(reply).get() >= 0, "no program fd");
        error = list_programs(bus);
        check(error.empty(), "ListPrograms while uid 1's names stall: " + error);
        return std::string("ok");
    });
    EXPECT_TRUE(other.ok()) << "the bus stalled with the user database: " << other.describe();
    EXPECT_FALSE(stalled.wait_message(0ms).has_value()) << "uid 1 was answered before its names were known";

    // The stalled uid may have kWaitsPerUid calls waiting; one more is
    // refused at once. The waiting ones are answered after the release.
    auto flood = spawn_as(kStalledUid, kStalledGid, [](ChildChannel& ch) {
        BrokerBus bus;
        unsigned answered = 0, refused = 0;
        std::string refusal;
        for (unsigned i = 0; i < kWaitsPerUid; ++i)
            bus.proxy().callMethodAsync("ListPrograms").onInterface(kInterface).withTimeout(60s)
                .uponReplyInvoke([&](const sdbus::Error* e, const ProgramRows&) {
                    if (!e) {
                        ++answered;
                    } else {
                        ++refused;
                        refusal = e->getName();
                    }
                });
        check(bus.wait_for([&] { return refused > 0; }, 10s), "no call was refused");
        ch.tell_parent("refused " + std::to_string(refused) + " " + refusal + " answered " + std::to_string(answered));
        check(bus.wait_for([&] { return answered + refused == kWaitsPerUid; }, 60s),
              "answered " + std::to_string(answered) + " of " + std::to_string(kWaitsPerUid - refused));
        return "answered " + std::to_string(answered);
    });
    EXPECT_EQ(flood.wait_message(20s).value_or("nothing"),
              "refused 1 " + dbus_error_name(ErrorCode::LimitExceeded) + " answered 0");

    ASSERT_TRUE(stall().release());
    EXPECT_EQ(stalled.wait_message(60s).value_or("nothing"), "answered");
    auto stalled_result = stalled.wait();
    EXPECT_TRUE(stalled_result.ok()) << stalled_result.describe();
    auto flood_result = flood.wait(90s);
    EXPECT_TRUE(flood_result.ok()) << flood_result.describe();
    EXPECT_EQ(flood_result.report, "answered " + std::to_string(kWaitsPerUid - 1));
    EXPECT_NE(daemon_log().find("refused a D-Bus call from uid 1: uid 1 already has"), std::string::npos)
        << "the refusal was not logged";
}

}  // namespace
}  // namespace bpfbroker::dbus_test
