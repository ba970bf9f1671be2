// What the fd store's checks rest on, on the real kernel: a handed-back fd
// is told by what it is (program, map or link, from its anon inode), never
// by its name, so a map whose id equals a recorded link id is not that
// link; and only names of the shapes the daemon gives are store names.
#include "brokerd/fd_store.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

namespace bpfbroker::brokerd {
namespace {

std::uint32_t id_by_info(int fd)
{
    bpf_link_info info;  // type and id lead every info struct
    std::memset(&info, 0, sizeof(info));
    __u32 len = sizeof(info);
    return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

TEST(FdStoreNames, OnlyTheDaemonsShapesAreStoreNames)
{
    EXPECT_EQ(guard_fd_name(7), "guard-7");
    EXPECT_EQ(link_fd_name(7), "link-7");
    EXPECT_EQ(shared_program_fd_name(7), "shared-7");
    EXPECT_EQ(shared_map_fd_name(7, 9), "shared-7-map-9");
    for (const char* name : {"guard-7", "link-4294967295", "shared-7", "shared-7-map-9"})
        EXPECT_TRUE(is_store_fd_name(name)) << name;
    for (const char* name : {"guard-", "guard-07", "guard-7x", "link-4294967296", "shared-7-map-", "shared--map-9",
                             "shared-7-map-9-map-1", "bpfbrokerd.socket", "stored", ""})
        EXPECT_FALSE(is_store_fd_name(name)) << name;
}

TEST(FdStoreKinds, AnFdIsToldByWhatItIsNotByItsId)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root: creates BPF maps, programs and links";
    UniqueFd map(bpf_map_create(BPF_MAP_TYPE_ARRAY, "kinds", 4, 8, 1, nullptr));
    ASSERT_TRUE(map) << std::strerror(errno);
    const bpf_insn ret0[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    UniqueFd prog(bpf_prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, "kinds", "GPL", ret0, 2, nullptr));
    ASSERT_TRUE(prog) << std::strerror(errno);
    UniqueFd link(bpf_raw_tracepoint_open("sys_enter", prog.get()));
    ASSERT_TRUE(link) << std::strerror(errno);
    UniqueFd other(::eventfd(0, EFD_CLOEXEC));

    EXPECT_EQ(bpf_fd_id(map.get(), BpfFdKind::Map), id_by_info(map.get()));
    EXPECT_EQ(bpf_fd_id(prog.get(), BpfFdKind::Program), id_by_info(prog.get()));
    EXPECT_EQ(bpf_fd_id(link.get(), BpfFdKind::Link), id_by_info(link.get()));
    EXPECT_NE(bpf_fd_id(link.get(), BpfFdKind::Link), 0u);
    for (auto kind : {BpfFdKind::Program, BpfFdKind::Link})
        EXPECT_EQ(bpf_fd_id(map.get(), kind), 0u) << "a map taken for another kind";
    for (auto kind : {BpfFdKind::Map, BpfFdKind::Program})
        EXPECT_EQ(bpf_fd_id(link.get(), kind), 0u) << "a link taken for another kind";
    for (auto kind : {BpfFdKind::Map, BpfFdKind::Program, BpfFdKind::Link})
        EXPECT_EQ(bpf_fd_id(other.get(), kind), 0u) << "an eventfd taken for a BPF object";
}

}  // namespace
}  // namespace bpfbroker::brokerd
