// fd passing over a real AF_UNIX socketpair: CLOEXEC on arrival, limits that
// close every fd they refuse, MSG_CTRUNC, non-blocking behaviour.
#include "wire/fd_passing.h"

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <string>
#include <vector>

namespace bpfbroker {
namespace {

std::size_t open_fd_count()
{
    std::size_t n = 0;
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr)
        return 0;
    while (const dirent* entry = ::readdir(dir))
        if (entry->d_name[0] != '.')
            ++n;
    ::closedir(dir);
    return n - 1;  // the directory stream's own fd
}

struct SocketPair {
    UniqueFd a, b;
};

SocketPair make_pair(int extra_flags = 0)
{
    int sv[2] = {-1, -1};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | extra_flags, 0, sv), 0);
    return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

// Distinct fds to send: pipe ends, opened CLOEXEC on our side.
std::vector<UniqueFd> make_fds(std::size_t count)
{
    std::vector<UniqueFd> fds;
    while (fds.size() < count) {
        int p[2];
        EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
        fds.emplace_back(p[0]);
        fds.emplace_back(p[1]);
    }
    fds.resize(count);
    return fds;
}

std::vector<int> raw(const std::vector<UniqueFd>& fds)
{
    std::vector<int> out;
    for (const auto& fd : fds)
        out.push_back(fd.get());
    return out;
}

bool same_file(int a, int b)
{
    struct stat sa {}, sb {};
    return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

TEST(fd_passing, bytes_and_fds_arrive_cloexec_in_order)
{
    auto [a, b] = make_pair();
    auto sent = make_fds(3);
    auto r = send_with_fds(a.get(), "hello", raw(sent));
    ASSERT_TRUE(r) << r.error().describe();
    EXPECT_EQ(*r, 5u);

    std::array<char, 64> buf{};
    auto got = recv_with_fds(b.get(), buf, 4);
    ASSERT_TRUE(got) << got.error().describe();
    EXPECT_EQ(std::string(buf.data(), got->bytes), "hello");
    ASSERT_EQ(got->fds.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        const int flags = ::fcntl(got->fds[i].get(), F_GETFD);
        ASSERT_GE(flags, 0);
        EXPECT_TRUE(flags & FD_CLOEXEC) << "fd " << i << " arrived without FD_CLOEXEC";
        EXPECT_TRUE(same_file(got->fds[i].get(), sent[i].get())) << "fd " << i << " out of order";
        EXPECT_NE(got->fds[i].get(), sent[i].get());
    }
}

TEST(fd_passing, bytes_without_fds)
{
    auto [a, b] = make_pair();
    ASSERT_TRUE(send_all_with_fds(a.get(), "{}", {}));
    std::array<char, 8> buf{};
    auto got = recv_with_fds(b.get(), buf, 0);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->bytes, 2u);
    EXPECT_TRUE(got->fds.empty());
}

TEST(fd_passing, eof_is_zero_bytes)
{
    auto [a, b] = make_pair();
    a.reset();
    std::array<char, 8> buf{};
    auto got = recv_with_fds(b.get(), buf);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->bytes, 0u);
    EXPECT_TRUE(got->fds.empty());
}

TEST(fd_passing, too_many_fds_refused_and_all_closed)
{
    auto [a, b] = make_pair();
    {
        // 2 fds against a limit of 1: CMSG_SPACE rounding lets both in
        // without MSG_CTRUNC; the count check must refuse them.
        auto sent = make_fds(2);
        ASSERT_TRUE(send_with_fds(a.get(), "x", raw(sent)));
    }
    const std::size_t before = open_fd_count();
    std::array<char, 8> buf{};
    auto got = recv_with_fds(b.get(), buf, 1);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().code, ErrorCode::ProtocolError);
    EXPECT_EQ(open_fd_count(), before) << "received fds leaked";
}

TEST(fd_passing, ctrunc_refused_and_all_closed)
{
    auto [a, b] = make_pair();
    {
        auto sent = make_fds(8);  // far more than the control buffer holds
        ASSERT_TRUE(send_with_fds(a.get(), "x", raw(sent)));
    }
    const std::size_t before = open_fd_count();
    std::array<char, 8> buf{};
    auto got = recv_with_fds(b.get(), buf, 1);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().code, ErrorCode::ProtocolError);
    EXPECT_NE(got.error().message.find("truncated"), std::string::npos) << got.error().message;
    EXPECT_EQ(open_fd_count(), before) << "received fds leaked";
}

TEST(fd_passing, fds_when_none_allowed_refused)
{
    auto [a, b] = make_pair();
    {
        auto sent = make_fds(1);
        ASSERT_TRUE(send_with_fds(a.get(), "x", raw(sent)));
    }
    const std::size_t before = open_fd_count();
    std::array<char, 8> buf{};
    auto got = recv_with_fds(b.get(), buf, 0);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().code, ErrorCode::ProtocolError);
    EXPECT_EQ(open_fd_count(), before);
}

TEST(fd_passing, send_argument_checks)
{
    auto [a, b] = make_pair();
    auto one = make_fds(1);
    auto empty = send_with_fds(a.get(), "", raw(one));
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code, ErrorCode::InvalidParameter);

    std::vector<int> too_many(uapi::kScmMaxFd + 1, one[0].get());
    auto many = send_with_fds(a.get(), "x", too_many);
    ASSERT_FALSE(many);
    EXPECT_EQ(many.error().code, ErrorCode::InvalidParameter);

    std::array<char, 8> buf{};
    auto bad_max = recv_with_fds(b.get(), buf, uapi::kScmMaxFd + 1);
    ASSERT_FALSE(bad_max);
    EXPECT_EQ(bad_max.error().code, ErrorCode::InvalidParameter);
}

TEST(fd_passing, nonblocking_empty_socket_would_block)
{
    auto [a, b] = make_pair(SOCK_NONBLOCK);
    std::array<char, 8> buf{};
    auto got = recv_with_fds(b.get(), buf);
    ASSERT_FALSE(got);
    EXPECT_TRUE(would_block(got.error())) << got.error().describe();
}

TEST(fd_passing, send_to_closed_peer_is_epipe_not_sigpipe)
{
    auto [a, b] = make_pair();
    b.reset();
    auto r = send_with_fds(a.get(), "x", {});
    ASSERT_FALSE(r);  // had MSG_NOSIGNAL been missing, SIGPIPE would have killed us
    EXPECT_EQ(r.error().sys_errno, EPIPE);
}

}  // namespace
}  // namespace bpfbroker
