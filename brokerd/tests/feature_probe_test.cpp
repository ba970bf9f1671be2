// The kernel feature probes on the development kernel (6.18, root):
// program types and the ring's socket commands are there, the io_uring
// struct_ops are not, every known feature is reported, and probing leaves
// no fd behind.
#include "brokerd/feature_probe.h"

#include "policy/manifest.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <iostream>
#include <string>

namespace bpfbroker::brokerd {
namespace {

std::size_t open_fd_count()
{
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

class FeatureProbeTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (::geteuid() != 0)
            GTEST_SKIP() << "the BPF probes need root";
    }
};

TEST_F(FeatureProbeTest, finds_what_the_development_kernel_has)
{
    const FeatureReport report = probe_kernel_features();
    std::cout << "[ features ] " << report.to_json().dump(2) << "\n";

    const auto available = report.available();
    for (const auto name : {kFeatureProgTypeSocketFilter, kFeatureProgTypeSkReuseport,
                            std::string_view("uring_cmd_setsockopt")}) {
        const FeatureProbe* probe = report.find(name);
        ASSERT_NE(probe, nullptr) << name;
        EXPECT_TRUE(probe->available) << name << ": " << probe->detail;
        EXPECT_TRUE(available.contains(name));
    }
    const FeatureProbe* struct_ops = report.find("io_uring_bpf_ops");
    ASSERT_NE(struct_ops, nullptr);
    EXPECT_FALSE(struct_ops->available) << struct_ops->detail;
    EXPECT_FALSE(available.contains("io_uring_bpf_ops"));

    for (const auto& probe : report.probes)
        EXPECT_FALSE(probe.detail.empty()) << probe.name << " says nothing about how it was found";
}

TEST_F(FeatureProbeTest, json_lists_every_known_feature)
{
    const auto json = probe_kernel_features().to_json();
    ASSERT_TRUE(json.is_object());
    for (std::string_view name : policy::kKnownFeatures) {
        const std::string key(name);
        ASSERT_TRUE(json.contains(key)) << name;
        EXPECT_TRUE(json[key]["available"].is_boolean()) << name;
        EXPECT_TRUE(json[key]["detail"].is_string()) << name;
    }
    EXPECT_TRUE(json.contains(std::string(kFeatureProgTypeSocketFilter)));
    EXPECT_TRUE(json.contains(std::string(kFeatureProgTypeSkReuseport)));
}

TEST_F(FeatureProbeTest, leaves_no_fd_behind)
{
    const std::size_t before = open_fd_count();
    (void)probe_kernel_features();
    EXPECT_EQ(open_fd_count(), before);
    for (int i = 0; i < 3; ++i)
        (void)probe_kernel_features();
    EXPECT_EQ(open_fd_count(), before);
}

TEST_F(FeatureProbeTest, answers_the_same_each_time)
{
    const auto first = probe_kernel_features().available();
    const auto second = probe_kernel_features().available();
    EXPECT_EQ(first, second);
}

}  // namespace
}  // namespace bpfbroker::brokerd
