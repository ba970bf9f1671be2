// The socket's acquire reply cache: a stored reply is found only for a
// hand-out its reply would say exactly the same of (any field that the
// reply carries differing is a miss), and the fds a reused reply carries
// are in the order the encoder numbers them.
#include "brokerd/acquire_reply_cache.h"
#include "brokerd/varlink_methods.h"

#include <fcntl.h>

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace bpfbroker::brokerd {
namespace {

UniqueFd devnull()
{
    return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

Handout sample(std::uint32_t prog_id = 7)
{
    Handout h;
    h.name = "drop_small";
    h.version = "1.0.0";
    h.type = policy::ProgramType::SocketFilter;
    h.instance = policy::InstanceMode::Shared;
    h.prog_id = prog_id;
    h.tag = "4ad409b4e2482a1c";
    h.parameters = {{"min_payload_len", 8}};
    h.program = HandedFd(devnull());
    h.maps.push_back({"stats", policy::ClientAccess::Read, devnull()});
    h.maps.push_back({"config", policy::ClientAccess::Write, devnull()});
    return h;
}

std::string encoded(Handout h)
{
    auto answer = to_wire(h);
    auto bytes = varlink::encode_acquire_reply(answer.reply);
    EXPECT_TRUE(bytes);
    return bytes ? *bytes : std::string();
}

TEST(acquire_reply_cache, a_stored_reply_is_found_for_the_same_hand_out_only)
{
    AcquireReplyCache cache;
    EXPECT_EQ(cache.find(sample()), nullptr);
    cache.remember(HandoutShape::of(sample()), encoded(sample()));
    const std::string* hit = cache.find(sample());
    ASSERT_NE(hit, nullptr);
    EXPECT_EQ(*hit, encoded(sample()));

    // Each field the reply carries, changed: a miss.
    const std::vector<std::pair<const char*, std::function<void(Handout&)>>> changes = {
        {"prog_id", [](Handout& h) { h.prog_id = 7 + AcquireReplyCache::kSlots; }},
        {"name", [](Handout& h) { h.name = "drop_smalL"; }},
        {"version", [](Handout& h) { h.version = "1.0.1"; }},
        {"type", [](Handout& h) { h.type = policy::ProgramType::SkReuseport; }},
        {"instance", [](Handout& h) { h.instance = policy::InstanceMode::PerClient; }},
        {"tag", [](Handout& h) { h.tag = "4ad409b4e2482a1d"; }},
        {"attach", [](Handout& h) { h.attach = "io_uring/io_uring_complete"; }},
        {"a value", [](Handout& h) { h.parameters["min_payload_len"] = 9; }},
        {"another value", [](Handout& h) { h.parameters["max_payload_len"] = 9; }},
        {"no program", [](Handout& h) { h.program = HandedFd(); }},
        {"a link", [](Handout& h) { h.links.push_back({"prog", devnull()}); }},
        {"a map's access", [](Handout& h) { h.maps[0].access = policy::ClientAccess::Write; }},
        {"a map's name", [](Handout& h) { h.maps[1].name = "config2"; }},
        {"the maps' order", [](Handout& h) { std::swap(h.maps[0], h.maps[1]); }},
        {"one map fewer", [](Handout& h) { h.maps.pop_back(); }},
    };
    for (const auto& [what, change] : changes) {
        Handout h = sample();
        change(h);
        EXPECT_EQ(cache.find(h), nullptr) << what;
    }
}

TEST(acquire_reply_cache, a_reused_reply_carries_its_fds_in_the_encoders_order)
{
    // Role by role (program, then the maps in the hand-out's order), each
    // hand-out's own fd numbers: what reply_fds gives is what to_wire gives.
    auto roles = [](const Handout& h) {
        return std::vector<int>{h.program.get(), h.maps[0].fd.get(), h.maps[1].fd.get()};
    };
    auto numbers = [](const std::vector<HandedFd>& fds) {
        std::vector<int> out;
        for (const auto& fd : fds)
            out.push_back(fd.get());
        return out;
    };
    Handout encoded_one = sample(), reused_one = sample();
    const auto encoded_roles = roles(encoded_one), reused_roles = roles(reused_one);
    EXPECT_EQ(numbers(to_wire(encoded_one).fds), encoded_roles);
    EXPECT_EQ(numbers(reply_fds(reused_one)), reused_roles);
}

TEST(acquire_reply_cache, a_slot_holds_the_last_program_that_fell_in_it)
{
    AcquireReplyCache cache;
    cache.remember(HandoutShape::of(sample(1)), encoded(sample(1)));
    cache.remember(HandoutShape::of(sample(2)), encoded(sample(2)));
    EXPECT_NE(cache.find(sample(1)), nullptr);
    EXPECT_NE(cache.find(sample(2)), nullptr);
    cache.remember(HandoutShape::of(sample(1 + AcquireReplyCache::kSlots)), encoded(sample(1 + AcquireReplyCache::kSlots)));
    EXPECT_EQ(cache.find(sample(1)), nullptr);
    EXPECT_NE(cache.find(sample(1 + AcquireReplyCache::kSlots)), nullptr);
    EXPECT_NE(cache.find(sample(2)), nullptr);
}

}  // namespace
}  // namespace bpfbroker::brokerd
