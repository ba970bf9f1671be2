// What a caller refused over and over makes the core write: acquires past
// the per-uid rate and admin calls refused at the gate are recorded within
// the uid's budget of refusal records and counted past it (the count rides
// on the uid's next such record and in the metric); an invalid name costs an
// acquire token like any other request.
#include "support/core_fixture.h"
#include "support/openmetrics_text.h"

#include <chrono>
#include <thread>

namespace bpfbroker::brokerd {
namespace {

using RefusalRecordsCore = test_support::CoreFixture;
using test_support::count_lines_containing;

// The records a budget allows over `elapsed`: its burst and its refill.
std::size_t budget_over(std::chrono::steady_clock::duration elapsed)
{
    const double seconds = std::chrono::duration<double>(elapsed).count();
    return RefusalRecordThrottle::kPerSecond + 1 +
           static_cast<std::size_t>(seconds * RefusalRecordThrottle::kPerSecond);
}

double suppressed_metric(Broker& broker)
{
    return test_support::metric_or_zero(broker.metrics_text(), "bpfbroker_audit_refusals_suppressed_total");
}

TEST_F(RefusalRecordsCore, acquires_past_the_rate_write_a_bounded_number_of_records_and_count_the_rest)
{
    const auto start = std::chrono::steady_clock::now();
    std::size_t limited = 0;
    for (int i = 0; i < 2000; ++i) {
        auto o = broker_->acquire(socket_as(1000), AcquireRequest{"drop_small", {}});  // not approved
        ASSERT_TRUE(o.denied());
        if (o.error().code == ErrorCode::LimitExceeded)
            ++limited;
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_GE(limited, 1000u) << "the per-uid acquire rate (200/s) let most of 2,000 calls through";
    const auto lines = audit_lines();
    const std::size_t written = count_lines_containing(lines, {"uid=1000", "code=LimitExceeded"});
    EXPECT_GE(written, 1u) << "the first refusal by the rate limit is recorded";
    EXPECT_LE(written, budget_over(elapsed)) << "refusals by the rate limit were recorded one by one";
    EXPECT_EQ(static_cast<double>(written) + suppressed_metric(*broker_), static_cast<double>(limited))
        << "every refusal is either recorded or counted";
    EXPECT_EQ(count_lines_containing(lines, {"uid=1000", "code=PermissionDenied"}), 2000u - limited)
        << "refusals that cost a token are each recorded";

    // What was not recorded rides on the uid's next throttled refusal
    // record (here an admin call's): the counts add up to every refusal
    // not written.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(broker_->reload(socket_as(1000)).denied());
    const auto after = audit_lines();
    ASSERT_FALSE(after.empty());
    EXPECT_NE(after.back().find("action=reload"), std::string::npos) << after.back();
    EXPECT_NE(after.back().find(" suppressed="), std::string::npos) << after.back();
    std::uint64_t carried = 0;
    for (const auto& l : after)
        if (auto at = l.find(" suppressed="); at != std::string::npos && l.find("uid=1000") != std::string::npos)
            carried += std::stoull(l.substr(at + 12));
    EXPECT_EQ(carried, limited - written);
}

TEST_F(RefusalRecordsCore, an_invalid_name_costs_an_acquire_token)
{
    std::size_t invalid = 0, limited = 0;
    for (int i = 0; i < 1000; ++i) {
        auto o = broker_->acquire(socket_as(1001), AcquireRequest{"no such/name", {}});
        ASSERT_TRUE(o.denied());
        (o.error().code == ErrorCode::LimitExceeded ? limited : invalid)++;
    }
    EXPECT_GE(limited, 500u) << "invalid names were refused, and recorded, without the rate limit";
    EXPECT_EQ(count_lines_containing(audit_lines(), {"uid=1001", "code=InvalidParameter"}), invalid);
}

TEST_F(RefusalRecordsCore, admin_calls_refused_at_the_gate_write_a_bounded_number_of_records)
{
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 500; ++i)
        ASSERT_TRUE(broker_->reload(socket_as(65534)).denied());
    const auto elapsed = std::chrono::steady_clock::now() - start;
    const std::size_t written = count_lines_containing(audit_lines(), {"action=reload", "uid=65534", "decision=deny"});
    EXPECT_GE(written, 1u);
    EXPECT_LE(written, budget_over(elapsed));
    EXPECT_EQ(static_cast<double>(written) + suppressed_metric(*broker_), 500.0);
    ASSERT_TRUE(broker_->reload(socket_as(0)).ok()) << "root is not held back by another uid's flood";
    EXPECT_EQ(count_lines_containing(audit_lines(), {"action=reload", "uid=0", "decision=allow"}), 1u);
}

}  // namespace
}  // namespace bpfbroker::brokerd
