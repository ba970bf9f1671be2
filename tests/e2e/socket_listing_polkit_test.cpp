// ListPrograms on the socket says what the caller would actually get there:
// a program whose only grant needs polkit is not "allowed" on the socket,
// which never asks polkit, and the listing agrees with AcquireProgram.
#include "support/daemon_fixture.h"

namespace bpfbroker::e2e {
namespace {

TEST_F(DaemonFixture, socket_listing_says_a_polkit_only_grant_is_not_allowed_here)
{
    auto who = for_anyone();
    who.polkit = true;
    ASSERT_TRUE(approve("udp_stats", who));
    const std::string sock_path = socket_path();
    auto result = run_as_nobody([&]() -> std::string {
        auto client = Client::connect_socket(sock_path, 10s);
        require(bool(client), "connect");
        auto list = client->list_programs();
        require(bool(list), "ListPrograms failed");
        for (const auto& e : *list) {
            if (e.name != "udp_stats")
                continue;
            require(e.needs_polkit, "the listing no longer says the grant needs polkit");
            require(!e.allowed, "the socket lists udp_stats as allowed, but only D-Bus can ask polkit");
            require(e.error == "PermissionDenied", "error is \"" + e.error + "\"");
            require(e.reason.find("D-Bus") != std::string::npos, "the reason does not point to D-Bus: " + e.reason);
            auto acquired = client->acquire("udp_stats");
            require(!acquired && acquired.error().code == ErrorCode::PermissionDenied,
                    "the listing and AcquireProgram disagree");
            return "ok";
        }
        throw ChildFailure("udp_stats is not listed");
    });
    EXPECT_TRUE(result.ok()) << result.describe();
}

}  // namespace
}  // namespace bpfbroker::e2e
