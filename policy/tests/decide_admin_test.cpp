// Who may administer: root always; anyone else only through polkit, and
// not at all where polkit cannot be asked.
#include "policy/decide.h"

#include <gtest/gtest.h>

using bpfbroker::ErrorCode;
using bpfbroker::policy::decide_admin;
using bpfbroker::policy::Peer;

TEST(decide_admin, root_may_without_polkit)
{
    Peer root;
    root.uid = 0;
    for (bool reachable : {false, true}) {
        auto d = decide_admin(root, reachable);
        EXPECT_TRUE(d.allowed);
        EXPECT_FALSE(d.needs_polkit);
    }
}

TEST(decide_admin, others_need_polkit_where_it_can_be_asked)
{
    Peer nobody;
    nobody.uid = 65534;
    auto d = decide_admin(nobody, true);
    EXPECT_TRUE(d.allowed);
    EXPECT_TRUE(d.needs_polkit);
}

TEST(decide_admin, others_are_refused_where_polkit_cannot_be_asked)
{
    Peer nobody;
    nobody.uid = 65534;
    auto d = decide_admin(nobody, false);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.code, ErrorCode::PermissionDenied);
    EXPECT_FALSE(d.reason.empty());
}
