// VerifiedObjects: an object read and checked once is not read again; what
// is kept is keyed by the signed pin, so a file changed on disk afterwards
// is never what a load gets; the byte bound holds, least recently used out
// first. Entries come from a real catalog scanned from a scratch root laid
// out by scripts/make-demo-root.sh (the built, signed programs).
#include "brokerd/verified_objects.h"

#include "support/scratch_root.h"

#include <gtest/gtest.h>

#include <fstream>

using bpfbroker::brokerd::VerifiedObjects;
using bpfbroker::policy::Catalog;
using bpfbroker::policy::CatalogEntry;

namespace {

class VerifiedObjectsTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        ASSERT_EQ(scratch_.create("bpfbroker-verified-objects"), "");
        ASSERT_EQ(scratch_.make_demo_root(), "");
        auto scanned = bpfbroker::policy::scan_catalog(scratch_.root(), bpfbroker::policy::FileTrust{});
        ASSERT_TRUE(scanned) << scanned.error().describe();
        catalog_ = std::move(*scanned);
    }

    const CatalogEntry& entry(const std::string& name)
    {
        const auto* e = catalog_.find(name);
        EXPECT_TRUE(e && e->valid()) << name;
        static const CatalogEntry none;
        return e ? *e : none;
    }

    // Overwrites the object file of `e` on disk with other bytes.
    void tamper(const CatalogEntry& e)
    {
        std::ofstream(scratch_.root() + "/usr/lib/bpfbroker/programs.d/" + e.name + "/" + e.manifest->object,
                      std::ios::binary | std::ios::trunc)
            << "not the signed object";
    }

    bpfbroker::test_support::ScratchRoot scratch_;
    Catalog catalog_;
};

}  // namespace

TEST_F(VerifiedObjectsTest, AnObjectReadOnceIsNotReadAgainAndStaysTheSignedOne)
{
    const auto& udp = entry("udp_stats");
    ASSERT_TRUE(udp.manifest);
    VerifiedObjects objects(4 << 20);
    auto first = objects.object_of(udp);
    ASSERT_TRUE(first) << first.error().describe();
    EXPECT_EQ(objects.objects(), 1u);
    EXPECT_EQ(objects.bytes(), (*first)->size());

    // Without the cache this read fails: the file no longer hashes to the pin.
    tamper(udp);
    ASSERT_FALSE(udp.read_object());
    auto second = objects.object_of(udp);
    ASSERT_TRUE(second) << second.error().describe();
    EXPECT_EQ(second->get(), first->get()) << "the kept bytes, not the file";
    EXPECT_EQ(**second, **first);
}

TEST_F(VerifiedObjectsTest, NothingIsKeptWhenTheReadFails)
{
    const auto& udp = entry("udp_stats");
    ASSERT_TRUE(udp.manifest);
    tamper(udp);
    VerifiedObjects objects(4 << 20);
    auto read = objects.object_of(udp);
    ASSERT_FALSE(read);
    EXPECT_EQ(read.error().code, bpfbroker::ErrorCode::ObjectHashMismatch);
    EXPECT_EQ(objects.objects(), 0u);
}

TEST_F(VerifiedObjectsTest, TheByteBoundHoldsAndTheLeastRecentlyUsedGoesFirst)
{
    const auto& udp = entry("udp_stats");
    const auto& drop = entry("drop_small");
    ASSERT_TRUE(udp.manifest && drop.manifest);
    const auto udp_size = udp.read_object()->size();
    const auto drop_size = drop.read_object()->size();
    // Room for the larger of the two, not for both.
    VerifiedObjects objects(std::max(udp_size, drop_size));
    ASSERT_TRUE(objects.object_of(udp));
    ASSERT_TRUE(objects.object_of(drop));
    EXPECT_EQ(objects.objects(), 1u);
    EXPECT_LE(objects.bytes(), std::max(udp_size, drop_size));
    // drop_small is the one kept: udp_stats, used before it, went out, so
    // a tampered udp_stats is read (and refused) again.
    tamper(udp);
    EXPECT_FALSE(objects.object_of(udp));
    tamper(drop);
    EXPECT_TRUE(objects.object_of(drop));

    VerifiedObjects tiny(16);
    const auto& other = entry("reuseport_cpu");
    ASSERT_TRUE(other.manifest);
    ASSERT_TRUE(tiny.object_of(other));
    EXPECT_EQ(tiny.objects(), 0u) << "an object larger than the bound is never kept";
}
