// The state journal on a scratch directory: what is replayed (adds minus
// forgets, a torn last line dropped, garbage skipped and counted), the
// hand-written lines against the general encoder, the rewrite, and the
// refusal of a file that is not the daemon's own 0600 one.
#include "brokerd/state_journal.h"

#include "support/scratch_root.h"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <string>
#include <vector>

namespace bpfbroker::brokerd {
namespace {

SavedInstance instance(std::uint32_t prog_id, uid_t uid)
{
    SavedInstance s;
    s.held.program = "udp_stats";
    s.held.peer.uid = uid;
    s.held.peer.gid = uid;
    s.held.peer.gids = {uid, 110};
    s.held.peer.user_name = "u" + std::to_string(uid);
    s.held.manifest_sha256 = std::string(64, 'a');
    s.held.signer_key_id = std::string(64, 'b');
    s.prog_id = prog_id;
    s.tag = "0011223344556677";
    s.map_ids = {prog_id + 1};
    s.guard = SavedGuard{"bpfbroker_revoked", prog_id + 2, 8};
    return s;
}

class StateJournalTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(scratch_.create("state-journal"), ""); }
    std::string path() const { return scratch_.base() + "/state.journal"; }
    StateJournal open_journal()
    {
        auto j = StateJournal::open(scratch_.base(), ::geteuid());
        EXPECT_TRUE(j) << (j ? "" : j.error().describe());
        return std::move(*j);
    }
    test_support::ScratchRoot scratch_;
};

TEST_F(StateJournalTest, replays_adds_minus_forgets_with_every_field)
{
    {
        auto j = open_journal();
        ASSERT_TRUE(j.record_added(instance(10, 65534)));
        ASSERT_TRUE(j.record_added(instance(11, 65534)));
        ASSERT_TRUE(j.record_added(instance(12, 1000)));
        j.record_forgotten(65534, 10);
    }
    struct stat st {};
    ASSERT_EQ(::stat(path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto j = open_journal();
    EXPECT_TRUE(j.distrusted().empty());
    std::size_t skipped = 1;
    auto live = j.replay(skipped);
    EXPECT_EQ(skipped, 0u);
    ASSERT_EQ(live.size(), 2u);
    EXPECT_EQ(live[0].prog_id, 11u);
    EXPECT_EQ(live[0].held.peer.gids, (std::vector<gid_t>{65534, 110}));
    EXPECT_EQ(live[0].held.peer.user_name, "u65534");
    ASSERT_TRUE(live[0].guard);
    EXPECT_EQ(live[0].guard->map_id, 13u);
    EXPECT_EQ(live[0].guard->offset, 8u);
    EXPECT_EQ(live[1].held.peer.uid, 1000u);
}

// The general encoder the journal used before its lines were written by
// hand: the reference they must match byte for byte.
nlohmann::json reference_add(const SavedInstance& s)
{
    const auto& p = s.held.peer;
    nlohmann::json j = {{"prog_id", s.prog_id},
                        {"tag", s.tag},
                        {"map_ids", s.map_ids},
                        {"broker_attached", s.broker_attached},
                        {"caller_pid", s.caller_pid},
                        {"caller_start_time", s.caller_start_time},
                        {"program", s.held.program},
                        {"peer", {{"uid", p.uid}, {"gid", p.gid}, {"gids", p.gids}, {"user", p.user_name}, {"groups", p.group_names}}},
                        {"manifest_sha256", s.held.manifest_sha256},
                        {"signer", s.held.signer_key_id}};
    if (s.link_id != 0)
        j["link_id"] = s.link_id;
    if (s.guard)
        j["guard"] = {{"name", s.guard->name}, {"map_id", s.guard->map_id}, {"offset", s.guard->offset}};
    return {{"add", j}};
}

std::vector<std::string> lines_of(const std::string& path)
{
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

TEST_F(StateJournalTest, hand_written_lines_are_what_the_general_encoder_writes)
{
    std::vector<SavedInstance> cases;
    cases.push_back(instance(10, 65534));
    SavedInstance bare = instance(11, 0);
    bare.guard.reset();
    bare.map_ids.clear();
    bare.held.peer.gids.clear();
    bare.held.peer.user_name.clear();
    cases.push_back(bare);
    SavedInstance attached = instance(12, 1000);
    attached.broker_attached = true;
    attached.caller_pid = 4194304;
    attached.caller_start_time = 18446744073709551615ull;
    attached.link_id = 4294967295u;
    attached.map_ids = {1, 2, 3};
    attached.held.peer.group_names = {"wheel", "caf\xc3\xa9 \"q\" back\\slash", std::string("nul\0tab\t", 8)};
    attached.held.peer.user_name = "\xf0\x9f\x98\x80 ctl\x01";
    cases.push_back(attached);
    {
        auto j = open_journal();
        for (const auto& c : cases)
            ASSERT_TRUE(j.record_added(c));
        j.record_forgotten(4294967294u, 4294967295u);
    }
    auto lines = lines_of(path());
    ASSERT_EQ(lines.size(), cases.size() + 1);
    for (std::size_t i = 0; i < cases.size(); ++i)
        EXPECT_EQ(lines[i], reference_add(cases[i]).dump()) << "case " << i;
    EXPECT_EQ(lines.back(), nlohmann::json({{"forget", {{"prog_id", 4294967295u}, {"uid", 4294967294u}}}}).dump());

    // A rewrite writes the same lines.
    auto j = open_journal();
    ASSERT_TRUE(j.rewrite(cases));
    lines = lines_of(path());
    ASSERT_EQ(lines.size(), cases.size());
    for (std::size_t i = 0; i < cases.size(); ++i)
        EXPECT_EQ(lines[i], reference_add(cases[i]).dump()) << "rewritten case " << i;
}

TEST_F(StateJournalTest, a_name_that_is_not_utf8_is_written_replaced_and_replays)
{
    SavedInstance odd = instance(20, 1001);
    odd.held.peer.user_name = "bad\xff";
    {
        auto j = open_journal();
        ASSERT_TRUE(j.record_added(odd));
    }
    auto j = open_journal();
    std::size_t skipped = 1;
    auto live = j.replay(skipped);
    EXPECT_EQ(skipped, 0u);
    ASSERT_EQ(live.size(), 1u);
    EXPECT_EQ(live[0].prog_id, 20u);
    EXPECT_EQ(live[0].held.peer.user_name, "bad\xef\xbf\xbd");
}

// A full disk, for real: RLIMIT_FSIZE lets the file grow only a few bytes
// more, so the next add is a short write (a fragment) and refused; once the
// file may grow again, the next add starts on a line of its own.
TEST_F(StateJournalTest, a_failed_append_is_refused_and_the_next_record_survives_its_fragment)
{
    auto j = open_journal();
    ASSERT_TRUE(j.record_added(instance(10, 1000)));
    struct stat st {};
    ASSERT_EQ(::stat(path().c_str(), &st), 0);
    rlimit before{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
    auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of the signal
    rlimit tight = before;
    tight.rlim_cur = static_cast<rlim_t>(st.st_size) + 10;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
    auto torn = j.record_added(instance(20, 1000));
    auto refused = j.record_added(instance(30, 1000));
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &before), 0);
    ::signal(SIGXFSZ, old_handler);
    EXPECT_FALSE(torn) << "a short write was taken for a record";
    EXPECT_FALSE(refused) << "a write past the limit was taken for a record";
    ASSERT_TRUE(j.record_added(instance(40, 1000)));

    std::size_t skipped = 0;
    auto live = j.replay(skipped);
    ASSERT_EQ(live.size(), 2u) << "the record after the fragment was lost with it";
    EXPECT_EQ(live[0].prog_id, 10u);
    EXPECT_EQ(live[1].prog_id, 40u);
    EXPECT_EQ(skipped, 1u) << "the fragment is one skipped line";
}

TEST_F(StateJournalTest, garbage_is_skipped_and_a_torn_last_line_dropped)
{
    {
        auto j = open_journal();
        ASSERT_TRUE(j.record_added(instance(10, 1)));
    }
    {
        std::ofstream out(path(), std::ios::app);
        out << "not json\n" << R"({"add": {"prog_id": "x"}})" << "\n" << R"({"forget": {"prog_id": 10)";
    }
    auto j = open_journal();
    std::size_t skipped = 0;
    auto live = j.replay(skipped);
    EXPECT_EQ(skipped, 2u);
    ASSERT_EQ(live.size(), 1u) << "the torn forget was applied";
}

TEST_F(StateJournalTest, rewrite_keeps_exactly_the_live_set_and_is_wanted_past_its_bound)
{
    auto j = open_journal();
    for (std::uint32_t i = 0; i < 2 * 1 + kJournalSlackLines + 1; ++i)
        ASSERT_TRUE(j.record_added(instance(100 + i, 7)));
    EXPECT_TRUE(j.wants_rewrite(1));
    EXPECT_FALSE(j.wants_rewrite(2000));
    ASSERT_TRUE(j.rewrite({instance(5, 7)}));
    EXPECT_FALSE(j.wants_rewrite(1));
    std::size_t skipped = 0;
    auto live = j.replay(skipped);
    ASSERT_EQ(live.size(), 1u);
    EXPECT_EQ(live[0].prog_id, 5u);
}

TEST_F(StateJournalTest, a_file_others_may_read_is_not_read_but_replaced)
{
    {
        auto j = open_journal();
        ASSERT_TRUE(j.record_added(instance(10, 1)));
    }
    ASSERT_EQ(::chmod(path().c_str(), 0644), 0);
    auto j = open_journal();
    EXPECT_NE(j.distrusted().find("0600"), std::string::npos) << j.distrusted();
    std::size_t skipped = 0;
    EXPECT_TRUE(j.replay(skipped).empty());
    struct stat st {};
    ASSERT_EQ(::stat(path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

SavedShared shared(const std::string& key, std::uint32_t prog_id)
{
    SavedShared s;
    s.key = key;
    s.manifest_sha256 = std::string(64, 'c');
    s.parameters = {{"min_len", 8}};
    s.prog_name = "drop_small";
    s.prog_id = prog_id;
    s.tag = "8899aabbccddeeff";
    s.maps = {{"drop_small.bss", prog_id + 1}};
    s.guard = SavedGuard{"bpfbroker_revoked", prog_id + 1, 4};
    return s;
}

TEST_F(StateJournalTest, shared_records_replay_with_their_holders_minus_forgets_and_survive_a_rewrite)
{
    {
        auto j = open_journal();
        j.record_shared_added(shared("k1", 20));
        j.record_shared_holder("k1", instance(0, 65534).held);
        j.record_shared_holder("k1", instance(0, 1000).held);
        j.record_shared_added(shared("k2", 30));
        j.record_shared_overflowed("k2");
        j.record_shared_forgotten("k2");
        ASSERT_TRUE(j.record_added(instance(10, 65534)));
    }
    auto j = open_journal();
    std::size_t skipped = 1;
    auto saved = j.replay_shared(skipped);
    EXPECT_EQ(skipped, 0u);
    ASSERT_EQ(saved.size(), 1u) << "the forgotten shared instance came back";
    EXPECT_EQ(saved[0].prog_id, 20u);
    EXPECT_EQ(saved[0].parameters.at("min_len"), 8u);
    ASSERT_EQ(saved[0].maps.size(), 1u);
    EXPECT_EQ(saved[0].maps[0].id, 21u);
    ASSERT_TRUE(saved[0].guard);
    EXPECT_EQ(saved[0].guard->offset, 4u);
    ASSERT_EQ(saved[0].holders.size(), 2u);
    EXPECT_EQ(saved[0].holders.at(65534).peer.user_name, "u65534");
    EXPECT_FALSE(saved[0].overflowed);
    EXPECT_EQ(j.replay(skipped).size(), 1u) << "shared lines disturbed the per-client replay";
    EXPECT_EQ(skipped, 0u) << "replay() counted shared lines as unreadable";

    ASSERT_TRUE(j.rewrite({}));  // the live per-client set only: the shared ones are the journal's to keep
    auto again = j.replay_shared(skipped);
    ASSERT_EQ(again.size(), 1u) << "a rewrite lost the shared instance";
    EXPECT_EQ(again[0].holders.size(), 2u);
}

TEST_F(StateJournalTest, a_shared_holder_whose_names_are_not_utf8_is_written_replaced_and_replays)
{
    HeldGrant odd = instance(0, 1001).held;
    odd.peer.user_name = "bad\xff";
    odd.peer.group_names = {"gr\xc3"};
    {
        auto j = open_journal();
        j.record_shared_added(shared("k1", 20));
        j.record_shared_holder("k1", odd);  // threw type_error.316 before
        ASSERT_TRUE(j.rewrite({}));         // the rewrite writes the holder again
    }
    auto j = open_journal();
    std::size_t skipped = 1;
    auto saved = j.replay_shared(skipped);
    EXPECT_EQ(skipped, 0u);
    ASSERT_EQ(saved.size(), 1u);
    ASSERT_EQ(saved[0].holders.count(1001), 1u);
    EXPECT_EQ(saved[0].holders.at(1001).peer.user_name, "bad\xef\xbf\xbd");
    ASSERT_EQ(saved[0].holders.at(1001).peer.group_names.size(), 1u);
    EXPECT_EQ(saved[0].holders.at(1001).peer.group_names[0], "gr\xef\xbf\xbd");
}

TEST_F(StateJournalTest, malformed_shared_lines_are_skipped_and_counted)
{
    {
        auto j = open_journal();
        j.record_shared_added(shared("k1", 20));
    }
    {
        std::ofstream out(path(), std::ios::app);
        out << R"({"shared_add": {"key": "k2", "prog_id": -1}})" << "\n"
            << R"({"shared_hold": {"key": "k1", "peer": 5}})" << "\n"
            << R"({"shared_forget": {"key": 7}})" << "\n"
            << R"({"shared_what": {"key": "k1"}})" << "\n";
    }
    auto j = open_journal();
    std::size_t skipped = 0;
    auto saved = j.replay_shared(skipped);
    EXPECT_EQ(skipped, 4u);
    ASSERT_EQ(saved.size(), 1u);
    EXPECT_TRUE(saved[0].holders.empty());
}

TEST_F(StateJournalTest, process_start_time_tells_this_process_from_none)
{
    EXPECT_NE(process_start_time(::getpid()), 0u);
    EXPECT_EQ(process_start_time(-1), 0u);
}

}  // namespace
}  // namespace bpfbroker::brokerd
