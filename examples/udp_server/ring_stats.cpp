// The server's own io_uring statistics; see ring_stats.h.
#include "ring_stats.h"

#include <bpf/bpf.h>
#include <fcntl.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace bpfbroker::example {

namespace {

constexpr const char* kProgram = "uring_stats";
constexpr const char* kMaps[] = {"ops", "errors", "latency"};

// The fd `name:N` in a "name:N,name:N" list, if it is a BPF map of that
// name: the environment is only a hint, the kernel says what the fd is.
UniqueFd inherited_map(std::string_view list, std::string_view name)
{
    for (std::size_t at = 0; at <= list.size();) {
        std::size_t end = list.find(',', at);
        if (end == std::string_view::npos)
            end = list.size();
        const std::string_view item = list.substr(at, end - at);
        at = end + 1;
        if (!item.starts_with(name) || item.size() <= name.size() || item[name.size()] != ':')
            continue;
        int fd = -1;
        const auto digits = item.substr(name.size() + 1);
        if (std::from_chars(digits.data(), digits.data() + digits.size(), fd).ec != std::errc() || fd < 3)
            return {};
        bpf_map_info info{};
        __u32 length = sizeof info;
        if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0 || name != info.name)
            return {};
        // Ours now: not passed on to anything this server might run.
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        return UniqueFd(fd);
    }
    return {};
}

}  // namespace

RingStats RingStats::open(Client& client)
{
    RingStats s;
    const char* program = std::getenv("BPFBROKER_PROGRAM");
    const char* maps = std::getenv("BPFBROKER_MAP_FDS");
    if (program != nullptr && maps != nullptr && std::strcmp(program, kProgram) == 0) {
        for (std::size_t i = 0; i < std::size(kMaps); ++i)
            s.inherited_[i] = inherited_map(maps, kMaps[i]);
        if (s.inherited_[0] && s.inherited_[1] && s.inherited_[2]) {
            s.ops_ = s.inherited_[0].get();
            s.errors_ = s.inherited_[1].get();
            s.latency_ = s.inherited_[2].get();
            s.description_ = "uring_stats's maps inherited from the process that started this server";
            return s;
        }
    }
    auto acquired = client.acquire(kProgram, AcquireOptions{});
    if (!acquired) {
        s.description_ = "not available: " + acquired.error().describe();
        return s;
    }
    const UniqueFd* fds[] = {acquired->map("ops"), acquired->map("errors"), acquired->map("latency")};
    if (!fds[0] || !fds[1] || !fds[2]) {
        s.description_ = "not available: uring_stats came without its ops, errors and latency maps";
        return s;
    }
    s.ops_ = fds[0]->get();
    s.errors_ = fds[1]->get();
    s.latency_ = fds[2]->get();
    s.description_ = "uring_stats acquired, prog id " + std::to_string(acquired->info().id) + ", " +
                     std::to_string(acquired->links().size()) + " links held by this server";
    s.acquired_ = std::move(*acquired);
    return s;
}

Result<uring_stats::Snapshot> RingStats::read() const
{
    if (!available())
        return fail(ErrorCode::Unsupported, "ring statistics " + description_);
    return uring_stats::read_snapshot(ops_, errors_, latency_);
}

}  // namespace bpfbroker::example
