// caller_cgroup_id against the real cgroup2 hierarchy: the id of our own
// cgroup is the one a BPF program sees (bpf_get_current_cgroup_id ==
// the cgroup directory's inode number on cgroup2), a dead caller is refused.
#include "brokerd/caller_cgroup.h"

#include <bpfbroker/unique_fd.h>

#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace bpfbroker::brokerd {
namespace {

std::string mounted_cgroup2_root()
{
    for (const auto& root : kCgroup2Roots) {
        struct statfs fs {};
        if (::statfs(root.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
            return root;
    }
    return {};
}

std::string own_unified_path()
{
    std::ifstream in("/proc/self/cgroup");
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("0::/"))
            return line.substr(3);
    return {};
}

TEST(caller_cgroup, the_id_is_the_cgroup_directorys_inode)
{
    const std::string root = mounted_cgroup2_root();
    if (root.empty())
        GTEST_SKIP() << "no cgroup2 hierarchy mounted here";
    UniqueFd self(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
    ASSERT_TRUE(self);
    auto id = caller_cgroup_id(self.get(), ::getpid());
    ASSERT_TRUE(id) << id.error().describe();
    struct stat st {};
    ASSERT_EQ(::stat((root + own_unified_path()).c_str(), &st), 0);
    EXPECT_EQ(*id, st.st_ino);
    EXPECT_NE(*id, 0u);
}

TEST(caller_cgroup, a_caller_that_exited_is_refused)
{
    if (mounted_cgroup2_root().empty())
        GTEST_SKIP() << "no cgroup2 hierarchy mounted here";
    const pid_t child = ::fork();
    if (child == 0)
        ::_exit(0);
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));
    ASSERT_TRUE(pidfd);
    ASSERT_EQ(::waitpid(child, nullptr, 0), child);
    auto id = caller_cgroup_id(pidfd.get(), child);
    ASSERT_FALSE(id);
    EXPECT_NE(id.error().code, ErrorCode::Internal) << id.error().describe();
}

TEST(caller_cgroup, no_cgroup2_mount_is_unsupported)
{
    UniqueFd self(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
    auto id = caller_cgroup_id(self.get(), ::getpid(), {"/proc"});
    ASSERT_FALSE(id);
    EXPECT_EQ(id.error().code, ErrorCode::Unsupported);
}

}  // namespace
}  // namespace bpfbroker::brokerd
