// open_layered_dir at and past its entry cap: the first names in name order
// are used, the rest refused one by one, never the whole directory; masks
// that could not be read never unmask a vendor entry.
#include "policy/layered_dir.h"

#include "policy/paths.h"
#include "test_root.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

using namespace bpfbroker;
using namespace bpfbroker::policy;
using namespace bpfbroker::policy::testing;

namespace {

class LayeredDirTest : public ::testing::Test {
protected:
    void add(std::string_view layer, const std::string& name) { root_.mkdirs(std::string(layer) + "/programs.d/" + name); }
    void mask(const std::string& name)
    {
        root_.mkdirs("etc/bpfbroker/programs.d");
        ASSERT_EQ(::symlink("/dev/null", root_.at("etc/bpfbroker/programs.d/" + name).c_str()), 0);
    }
    LayeredDir open(std::size_t max_entries)
    {
        problems_.clear();
        UniqueFd rootfd(::open(root_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        EXPECT_TRUE(rootfd);
        return open_layered_dir(rootfd.get(), paths::kProgramsSubdir, max_entries, root_.trust(), problems_);
    }
    static std::vector<std::string> names_of(const LayeredDir& d)
    {
        std::vector<std::string> out;
        for (const auto& [n, _] : d.names)
            out.push_back(n);
        return out;
    }

    TempRoot root_;
    std::vector<PolicyProblem> problems_;
};

TEST_F(LayeredDirTest, entries_past_the_cap_are_refused_one_by_one)
{
    for (auto n : {"e", "a", "d", "b", "c"})
        add("usr/lib/bpfbroker", n);
    auto d = open(3);
    EXPECT_EQ(names_of(d), (std::vector<std::string>{"a", "b", "c"})) << "the first names in name order are kept";
    ASSERT_EQ(problems_.size(), 2u);
    EXPECT_EQ(problems_[0].path, "usr/lib/bpfbroker/programs.d/d");
    EXPECT_EQ(problems_[1].path, "usr/lib/bpfbroker/programs.d/e");
    EXPECT_EQ(problems_[0].error.code, ErrorCode::LimitExceeded);
    EXPECT_NE(problems_[0].error.message.find("past the limit of 3 entries"), std::string::npos)
        << problems_[0].error.message;

    EXPECT_EQ(open(5).names.size(), 5u);
    EXPECT_TRUE(problems_.empty()) << "exactly at the cap nothing is refused";
}

TEST_F(LayeredDirTest, the_cap_counts_both_layers_after_masking)
{
    for (auto n : {"a", "b", "c", "d"})
        add("usr/lib/bpfbroker", n);
    add("etc/bpfbroker", "e");
    mask("a");
    auto d = open(3);
    EXPECT_EQ(names_of(d), (std::vector<std::string>{"b", "c", "d"}));
    ASSERT_EQ(problems_.size(), 1u);
    EXPECT_EQ(problems_[0].path, "etc/bpfbroker/programs.d/e");
}

TEST_F(LayeredDirTest, refusals_past_the_named_ones_are_counted)
{
    const std::size_t extra = kMaxNamedRefusals + 40;
    for (std::size_t i = 0; i < 2 + extra; ++i)
        add("usr/lib/bpfbroker", "p" + std::to_string(10000 + i));
    auto d = open(2);
    EXPECT_EQ(d.names.size(), 2u);
    ASSERT_EQ(problems_.size(), kMaxNamedRefusals + 1);
    EXPECT_NE(problems_.back().error.message.find(std::to_string(extra - kMaxNamedRefusals) + " more entries"),
              std::string::npos)
        << problems_.back().error.message;
}

TEST_F(LayeredDirTest, an_admin_layer_too_large_to_read_whole_never_unmasks_a_vendor_entry)
{
    // Admin names z000..: more than the listing keeps, so "zzz"'s mask may be
    // among those never read. Vendor "zzz" must not be used unmasked.
    add("usr/lib/bpfbroker", "zzz");
    add("usr/lib/bpfbroker", "a");
    for (std::size_t i = 0; i < 1 + kMaxNamedRefusals + 2; ++i)
        mask("m" + std::to_string(1000 + i));
    mask("zzz");
    auto d = open(1);
    EXPECT_EQ(names_of(d), (std::vector<std::string>{"a"}));
    EXPECT_FALSE(d.names.contains("zzz"));
}

}  // namespace
