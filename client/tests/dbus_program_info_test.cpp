// The D-Bus acquire reply's info a{sv}, read in place: every field the
// daemon sends, both shapes of parameters, and fields a newer daemon might
// add (an unknown name, a known name of another type) skipped without
// disturbing the rest. Messages are real sd-bus messages (the one inside an
// sdbus::Variant), sealed and read back as a reply would be.
#include "dbus_program_info.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>

using bpfbroker::DbusProgramInfo;

namespace {

using Fields = std::map<std::string, sdbus::Variant>;

// Writes `fields` as the a{sv} a daemon sends, then an int after it that
// must still read back: the reader leaves the message where it should.
DbusProgramInfo read_back(const Fields& fields, std::int32_t& after)
{
    const sdbus::Variant written(sdbus::Struct<Fields, std::int32_t>(fields, 42));
    auto read = written.get<sdbus::Struct<DbusProgramInfo, std::int32_t>>();
    after = std::get<1>(read);
    return std::get<0>(read);
}

}  // namespace

TEST(DbusProgramInfo, ReadsEveryFieldTheDaemonSends)
{
    Fields fields{{"name", sdbus::Variant(std::string("udp_stats"))},
                  {"version", sdbus::Variant(std::string("1.0.0"))},
                  {"type", sdbus::Variant(std::string("socket_filter"))},
                  {"instance", sdbus::Variant(std::string("per-client"))},
                  {"id", sdbus::Variant(std::uint32_t{1234})},
                  {"tag", sdbus::Variant(std::string("00112233aabbccdd"))},
                  {"map_access", sdbus::Variant(std::map<std::string, std::string>{{"stats", "read"}})},
                  {"attach", sdbus::Variant(std::string("io_uring/io_uring_complete"))},
                  {"parameters", sdbus::Variant(std::map<std::string, std::uint64_t>{{"min_payload_len", 8}})}};
    std::int32_t after = 0;
    auto info = read_back(fields, after).info;
    EXPECT_EQ(info.name, "udp_stats");
    EXPECT_EQ(info.version, "1.0.0");
    EXPECT_EQ(info.type, "socket_filter");
    EXPECT_EQ(info.instance, "per-client");
    EXPECT_EQ(info.id, 1234u);
    EXPECT_EQ(info.tag, "00112233aabbccdd");
    EXPECT_EQ(info.map_access, (std::map<std::string, std::string>{{"stats", "read"}}));
    EXPECT_EQ(info.attach, "io_uring/io_uring_complete");
    EXPECT_EQ(info.parameters, (std::map<std::string, std::uint64_t>{{"min_payload_len", 8}}));
    EXPECT_EQ(after, 42);
}

TEST(DbusProgramInfo, ParametersAsVariantsTakeNumbersAndBooleans)
{
    Fields values{{"a", sdbus::Variant(std::uint64_t{7})},
                  {"b", sdbus::Variant(std::uint32_t{9})},
                  {"c", sdbus::Variant(true)},
                  {"d", sdbus::Variant(std::string("not a number"))}};
    std::int32_t after = 0;
    auto info = read_back({{"parameters", sdbus::Variant(values)}}, after).info;
    EXPECT_EQ(info.parameters, (std::map<std::string, std::uint64_t>{{"a", 7}, {"b", 9}, {"c", 1}}));
    EXPECT_EQ(after, 42);
}

TEST(DbusProgramInfo, UnknownFieldsAndOtherTypesAreSkipped)
{
    Fields fields{{"name", sdbus::Variant(std::string("drop_small"))},
                  {"added_later", sdbus::Variant(std::map<std::string, std::string>{{"x", "y"}})},
                  {"id", sdbus::Variant(std::string("not a u"))},
                  {"tag", sdbus::Variant(std::uint64_t{5})},
                  {"version", sdbus::Variant(std::string("2.0.0"))}};
    std::int32_t after = 0;
    auto info = read_back(fields, after).info;
    EXPECT_EQ(info.name, "drop_small");
    EXPECT_EQ(info.version, "2.0.0");
    EXPECT_EQ(info.id, 0u);
    EXPECT_EQ(info.tag, "");
    EXPECT_EQ(after, 42);
}

TEST(DbusProgramInfo, AnEmptyInfoIsAnEmptyProgramInfo)
{
    std::int32_t after = 0;
    auto info = read_back({}, after).info;
    EXPECT_EQ(info, bpfbroker::ProgramInfo{});
    EXPECT_EQ(after, 42);
}
