// The socket's handlers without a socket or BPF: handle_varlink_call on a
// Broker with the fake program source. The reply references its fds by
// index, a oneway acquire acts not at all, admin calls from non-root are
// refused by the core (and audited), and the table's checks come first.
#include "brokerd/varlink_methods.h"

#include "support/core_fixture.h"

#include <gtest/gtest.h>

namespace bpfbroker::brokerd {
namespace {

using VarlinkHandlers = test_support::CoreFixture;

policy::Peer peer_of(uid_t uid)
{
    policy::Peer p;
    p.uid = uid;
    p.gid = uid;
    p.pid = 4242;
    return p;
}

TEST_F(VarlinkHandlers, acquire_reply_references_its_fds_by_index)
{
    approve("udp_stats", false);
    auto resp = handle_varlink_call(*broker_, peer_of(65534), "org.bpfbroker.Broker.AcquireProgram",
                                    {{"name", "udp_stats"}});
    ASSERT_TRUE(resp.reply);
    ASSERT_FALSE(resp.message.contains("error")) << resp.message;
    const auto& p = resp.message["parameters"];
    ASSERT_TRUE(p.contains("program"));
    EXPECT_FALSE(p.contains("links")) << "a client-attached program came with links";
    ASSERT_EQ(resp.fds.size(), 1u + p["maps"].size());
    EXPECT_TRUE(resp.fds.at(p["program"].get<std::size_t>()).valid());
    EXPECT_EQ(p["maps"]["stats"], 1);
    EXPECT_EQ(p["info"]["type"], "socket_filter");
    EXPECT_EQ(p["info"]["instance"], "per-client");
    EXPECT_EQ(p["info"]["map_access"]["stats"], "read");
}

TEST_F(VarlinkHandlers, oneway_acquire_is_dropped_without_loading)
{
    approve("udp_stats", false);
    auto resp = handle_varlink_call(*broker_, peer_of(65534), "org.bpfbroker.Broker.AcquireProgram",
                                    {{"name", "udp_stats"}}, true);
    EXPECT_FALSE(resp.reply);
    EXPECT_TRUE(resp.fds.empty());
    EXPECT_EQ(source_->loads(), 0u);
}

TEST_F(VarlinkHandlers, admin_call_from_non_root_is_refused_and_audited_by_the_core)
{
    auto resp = handle_varlink_call(*broker_, peer_of(65534), "org.bpfbroker.Broker.Approve",
                                    {{"program", "udp_stats"}, {"anyone", true}});
    EXPECT_EQ(resp.message["error"], "org.bpfbroker.Broker.PermissionDenied") << resp.message;
    auto lines = audit_lines();
    ASSERT_FALSE(lines.empty());
    EXPECT_NE(lines.back().find("action=approve transport=socket program=udp_stats uid=65534 pid=4242 decision=deny"),
              std::string::npos)
        << lines.back();
}

TEST_F(VarlinkHandlers, table_checks_come_before_the_core)
{
    auto resp = handle_varlink_call(*broker_, peer_of(65534), "org.bpfbroker.Broker.AcquireProgram",
                                    {{"name", "udp_stats"}, {"verbose", true}});
    EXPECT_EQ(resp.message["error"], "org.varlink.service.InvalidParameter");
    EXPECT_EQ(resp.message["parameters"]["parameter"], "verbose");
    EXPECT_TRUE(audit_lines().empty()) << "a malformed call reached the core";
}

TEST_F(VarlinkHandlers, listing_row_on_the_socket)
{
    approve("drop_small", true);
    auto resp = handle_varlink_call(*broker_, peer_of(65534), "org.bpfbroker.Broker.ListPrograms", nlohmann::json::object());
    ASSERT_FALSE(resp.message.contains("error")) << resp.message;
    bool seen = false;
    for (const auto& row : resp.message["parameters"]["programs"])
        if (row["name"] == "drop_small") {
            seen = true;
            EXPECT_EQ(row["allowed"], false);
            EXPECT_EQ(row["needs_polkit"], true);
            EXPECT_EQ(row["error"], "PermissionDenied");
            EXPECT_EQ(row["state"], "valid");
        }
    EXPECT_TRUE(seen);
}

}  // namespace
}  // namespace bpfbroker::brokerd
