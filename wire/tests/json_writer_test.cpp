// JsonWriter against nlohmann-json's dump(): the same bytes for the same
// value (keys given sorted), separators in nested objects and arrays, the
// number range, escapes, and a string that is not UTF-8.
#include "wire/json_writer.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace bpfbroker::varlink {
namespace {

TEST(json_writer, nested_objects_and_arrays_are_what_dump_writes)
{
    const std::vector<std::uint32_t> none, ids = {0, 7, 4294967295u};
    const std::vector<std::string> names = {"a", "", "b c"};
    JsonWriter w;
    w.open().key("a").open().key("empty").array(none, [&w](std::uint32_t n) { w.number(n); });
    w.key("ids").array(ids, [&w](std::uint32_t n) { w.number(n); }).close();
    w.key("b").boolean(false).key("c").open().close().key("d").array(names, [&w](const std::string& s) { w.string(s); });
    w.key("e").u64_object({{"x", 1}, {"y", 2}}).key("f").boolean(true).close();
    ASSERT_TRUE(w.ok());
    const nlohmann::json expected = {{"a", {{"empty", nlohmann::json::array()}, {"ids", ids}}},
                                     {"b", false},
                                     {"c", nlohmann::json::object()},
                                     {"d", names},
                                     {"e", {{"x", 1}, {"y", 2}}},
                                     {"f", true}};
    EXPECT_EQ(std::move(w).take(), expected.dump());
}

TEST(json_writer, numbers_at_their_limits_are_what_dump_writes)
{
    constexpr auto u_max = std::numeric_limits<std::uint64_t>::max();
    constexpr auto s_min = std::numeric_limits<std::int64_t>::min();
    JsonWriter w;
    w.open().key("max").number(u_max).key("min").signed_number(s_min).key("minus_one").signed_number(-1);
    w.key("zero").number(0).close();
    const nlohmann::json expected = {{"max", u_max}, {"min", s_min}, {"minus_one", -1}, {"zero", 0}};
    EXPECT_EQ(std::move(w).take(), expected.dump());
}

TEST(json_writer, escapes_are_what_dump_writes)
{
    const std::string text = "quote\" backslash\\ nl\n tab\t cr\r bs\b ff\f nul" + std::string(1, '\0') +
                             " esc\x1b del\x7f utf8 \xc3\xa9 \xf0\x9f\x98\x80 slash/";
    JsonWriter w;
    w.string(text);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(std::move(w).take(), nlohmann::json(text).dump());
}

TEST(json_writer, a_string_that_is_not_utf8_makes_it_not_ok_and_no_frame)
{
    for (const std::string bad : {"\xff", "a\xc3", "\xed\xa0\x80" /* a surrogate */, "\xc0\xaf" /* overlong */}) {
        JsonWriter w;
        w.open().key("s").string(bad).close();
        EXPECT_FALSE(w.ok()) << bad;
        auto frame = std::move(w).finish_frame(1024);
        ASSERT_FALSE(frame);
        EXPECT_EQ(frame.error().code, ErrorCode::InvalidParameter);
    }
}

TEST(json_writer, a_frame_ends_in_its_nul_and_keeps_its_bound)
{
    JsonWriter small;
    small.open().key("k").string("v").close();
    auto frame = std::move(small).finish_frame(9);
    ASSERT_TRUE(frame);
    EXPECT_EQ(*frame, std::string(R"({"k":"v"})") + '\0');
    JsonWriter big;
    big.open().key("k").string("v").close();
    auto refused = std::move(big).finish_frame(8);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, ErrorCode::LimitExceeded);
}

}  // namespace
}  // namespace bpfbroker::varlink
