// Metrics: counters only the catalog can name, exact under concurrency, and
// OpenMetrics text a scraper can read.
#include "brokerd/metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace bpfbroker::brokerd {
namespace {

bool contains(const std::string& text, const std::string& line)
{
    return text.find(line) != std::string::npos;
}

TEST(metrics, a_name_outside_the_catalog_counts_under_the_empty_program)
{
    Metrics m;
    auto slots = m.slots_for({"udp_stats"});
    m.program(slots.get(), "udp_stats").count_acquire(MetricTransport::Socket, true);
    m.program(slots.get(), "no-such-program").count_acquire(MetricTransport::Dbus, false);
    m.program(slots.get(), std::string(4096, 'x')).count_acquire(MetricTransport::Dbus, false);
    auto text = m.render({});
    EXPECT_TRUE(contains(text, "bpfbroker_acquires_total{program=\"udp_stats\",transport=\"socket\",decision=\"allowed\"} 1\n")) << text;
    EXPECT_TRUE(contains(text, "bpfbroker_acquires_total{program=\"\",transport=\"dbus\",decision=\"denied\"} 2\n")) << text;
    EXPECT_FALSE(contains(text, "no-such-program")) << text;
    EXPECT_FALSE(contains(text, "xxxx")) << text;
}

TEST(metrics, counters_survive_a_reload_that_drops_the_program)
{
    Metrics m;
    auto before = m.slots_for({"a", "b"});
    m.program(before.get(), "a").count_acquire(MetricTransport::Socket, true);
    auto after = m.slots_for({"b"});
    m.program(after.get(), "a").count_acquire(MetricTransport::Socket, true);  // now unnamed
    auto text = m.render({});
    EXPECT_TRUE(contains(text, "{program=\"a\",transport=\"socket\",decision=\"allowed\"} 1\n")) << text;
    EXPECT_TRUE(contains(text, "{program=\"\",transport=\"socket\",decision=\"allowed\"} 1\n")) << text;
}

TEST(metrics, concurrent_increments_are_exact)
{
    Metrics m;
    auto slots = m.slots_for({"p"});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 10000; ++i) {
                m.program(slots.get(), "p").count_acquire(MetricTransport::Socket, true);
                m.acquire_duration.observe(std::chrono::microseconds(30));
            }
        });
    for (auto& t : threads)
        t.join();
    auto text = m.render({});
    EXPECT_TRUE(contains(text, "{program=\"p\",transport=\"socket\",decision=\"allowed\"} 40000\n")) << text;
    EXPECT_TRUE(contains(text, "bpfbroker_acquire_duration_seconds_count 40000\n")) << text;
}

TEST(metrics, histogram_buckets_are_cumulative)
{
    Metrics m;
    m.acquire_duration.observe(std::chrono::microseconds(10));   // <= 25us
    m.acquire_duration.observe(std::chrono::microseconds(300));  // <= 500us
    m.acquire_duration.observe(std::chrono::seconds(3));         // +Inf only
    auto text = m.render({});
    EXPECT_TRUE(contains(text, "bpfbroker_acquire_duration_seconds_bucket{le=\"2.5e-05\"} 1\n")) << text;
    EXPECT_TRUE(contains(text, "bpfbroker_acquire_duration_seconds_bucket{le=\"0.0005\"} 2\n")) << text;
    EXPECT_TRUE(contains(text, "bpfbroker_acquire_duration_seconds_bucket{le=\"1\"} 2\n")) << text;
    EXPECT_TRUE(contains(text, "bpfbroker_acquire_duration_seconds_bucket{le=\"+Inf\"} 3\n")) << text;
    EXPECT_TRUE(contains(text, "bpfbroker_acquire_duration_seconds_sum 3.00031\n")) << text;
}

TEST(metrics, text_has_types_catalog_states_and_ends_with_eof)
{
    Metrics m;
    m.revoked_instances += 2;
    m.uncut_instances += 1;
    auto slots = m.slots_for({"udp_stats"});
    m.program(slots.get(), "udp_stats").live_instances += 3;
    auto text = m.render({{"valid", 4}, {"untrusted-signer", 1}});
    for (const char* line : {"# TYPE bpfbroker_acquires counter\n", "# TYPE bpfbroker_live_instances gauge\n",
                             "# TYPE bpfbroker_acquire_duration_seconds histogram\n",
                             "bpfbroker_live_instances{program=\"udp_stats\"} 3\n",
                             "bpfbroker_catalog_programs{state=\"valid\"} 4\n",
                             "bpfbroker_catalog_programs{state=\"untrusted-signer\"} 1\n",
                             "bpfbroker_revoked_instances_total 2\n", "bpfbroker_uncut_instances_total 1\n"})
        EXPECT_TRUE(contains(text, line)) << line << "\n" << text;
    ASSERT_GE(text.size(), 6u);
    EXPECT_EQ(text.substr(text.size() - 6), "# EOF\n");
}

TEST(metrics, slots_are_bounded)
{
    Metrics m;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < kMaxProgramSlots + 10; ++i)
        names.push_back("p" + std::to_string(i));
    auto slots = m.slots_for(names);
    EXPECT_EQ(slots->size(), kMaxProgramSlots);
    auto last = "p" + std::to_string(kMaxProgramSlots + 5);
    EXPECT_EQ(&m.program(slots.get(), last), &m.program(nullptr, ""));
}

}  // namespace
}  // namespace bpfbroker::brokerd
