// The service manager's fd store; see fd_store.h.
#include "brokerd/fd_store.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>

#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace bpfbroker::brokerd {

namespace {

constexpr std::string_view kGuard = "guard-";
constexpr std::string_view kLink = "link-";
constexpr std::string_view kShared = "shared-";
constexpr std::string_view kMap = "-map-";

// A decimal program or map id without sign or leading zero.
bool is_id(std::string_view s)
{
    if (s.empty() || s.size() > 10 || s.front() == '0')
        return false;
    for (char c : s)
        if (c < '0' || c > '9')
            return false;
    return std::strtoull(std::string(s).c_str(), nullptr, 10) <= 0xffffffffull;
}

void send_remove(const std::string& name)
{
    const std::string message = "FDSTOREREMOVE=1\nFDNAME=" + name;
    sd_pid_notify(0, 0, message.c_str());
}

}  // namespace

std::uint32_t bpf_fd_id(int fd, BpfFdKind kind)
{
    const char* expected = kind == BpfFdKind::Program ? "anon_inode:bpf-prog"
                           : kind == BpfFdKind::Map   ? "anon_inode:bpf-map"
                                                      : "anon_inode:bpf_link";
    char target[64] = {};
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 0 || std::string_view(target, static_cast<std::size_t>(n)) != expected)
        return 0;
    // Each info struct starts with the object's type and id.
    union {
        bpf_prog_info prog;
        bpf_map_info map;
        bpf_link_info link;
    } info;
    std::memset(&info, 0, sizeof(info));
    __u32 len = kind == BpfFdKind::Program ? sizeof(info.prog)
                : kind == BpfFdKind::Map   ? sizeof(info.map)
                                           : sizeof(info.link);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
        return 0;
    return kind == BpfFdKind::Program ? info.prog.id : kind == BpfFdKind::Map ? info.map.id : info.link.id;
}

std::string guard_fd_name(std::uint32_t prog_id)
{
    return std::string(kGuard) + std::to_string(prog_id);
}

std::string link_fd_name(std::uint32_t prog_id)
{
    return std::string(kLink) + std::to_string(prog_id);
}

std::string shared_program_fd_name(std::uint32_t prog_id)
{
    return std::string(kShared) + std::to_string(prog_id);
}

std::string shared_map_fd_name(std::uint32_t prog_id, std::uint32_t map_id)
{
    return shared_program_fd_name(prog_id) + std::string(kMap) + std::to_string(map_id);
}

bool is_store_fd_name(std::string_view name)
{
    for (auto prefix : {kGuard, kLink})
        if (name.starts_with(prefix))
            return is_id(name.substr(prefix.size()));
    if (!name.starts_with(kShared))
        return false;
    name.remove_prefix(kShared.size());
    auto map = name.find(kMap);
    if (map == std::string_view::npos)
        return is_id(name);
    return is_id(name.substr(0, map)) && is_id(name.substr(map + kMap.size()));
}

UniqueFd PassedFds::take(std::string_view name)
{
    auto it = stored.find(name);
    if (it == stored.end())
        return {};
    UniqueFd fd = std::move(it->second);
    stored.erase(it);
    return fd;
}

Result<PassedFds> take_passed_fds()
{
    char** names = nullptr;
    const int n = sd_listen_fds_with_names(1, &names);
    if (n < 0)
        return fail(make_system_error("sd_listen_fds_with_names", -n));
    PassedFds out;
    std::set<std::string> repeated;
    Result<PassedFds> result = std::move(out);
    for (int i = 0; i < n; ++i) {
        UniqueFd fd(SD_LISTEN_FDS_START + i);
        ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
        std::string name = names && names[i] ? names[i] : "";
        if (!result)
            continue;  // the rest is closed
        if (is_store_fd_name(name)) {
            if (repeated.contains(name) || result->stored.contains(name)) {
                // Which copy is the recorded one cannot be told: neither.
                result->stored.erase(name);
                if (repeated.insert(name).second)
                    result->refused.push_back(name);
                continue;
            }
            result->stored.emplace(std::move(name), std::move(fd));
        } else if (sd_is_socket_unix(fd.get(), SOCK_STREAM, 1, nullptr, 0) > 0) {
            if (result->listening_socket)
                result = fail(ErrorCode::InvalidParameter, "the service manager passed two listening sockets");
            else
                result->listening_socket = std::move(fd);
        } else {
            result->refused.push_back(std::move(name));
        }
    }
    if (names) {
        for (int i = 0; i < n; ++i)
            std::free(names[i]);
        std::free(names);
    }
    return result;
}

std::unique_ptr<FdStore> FdStore::from_environment(std::set<std::string> held)
{
    const char* socket = std::getenv("NOTIFY_SOCKET");
    if (!socket || !*socket)
        return nullptr;
    return std::unique_ptr<FdStore>(new FdStore(std::move(held)));
}

bool FdStore::keep(const std::string& name, int fd)
{
    std::lock_guard lock(mutex_);
    if (names_.contains(name)) {
        // A dead instance's fds under a reused id, not yet removed.
        send_remove(name);
        names_.erase(name);
    }
    if (names_.size() >= kFdStoreMax)
        return false;
    const std::string store = "FDSTORE=1\nFDNAME=" + name;
    if (sd_pid_notify_with_fds(0, 0, store.c_str(), &fd, 1) <= 0)
        return false;
    names_.insert(name);
    return true;
}

void FdStore::drop(const std::string& name)
{
    std::lock_guard lock(mutex_);
    if (names_.erase(name) != 0)
        send_remove(name);
}

void FdStore::drop_instance(std::uint32_t prog_id)
{
    drop(guard_fd_name(prog_id));
    drop(link_fd_name(prog_id));
}

void FdStore::drop_shared(std::uint32_t prog_id, const std::vector<std::uint32_t>& map_ids)
{
    drop(shared_program_fd_name(prog_id));
    for (auto map_id : map_ids)
        drop(shared_map_fd_name(prog_id, map_id));
}

void FdStore::remove(const std::string& name)
{
    std::lock_guard lock(mutex_);
    names_.erase(name);
    send_remove(name);
}

bool FdStore::full() const
{
    std::lock_guard lock(mutex_);
    return names_.size() >= kFdStoreMax;
}

std::size_t FdStore::size() const
{
    std::lock_guard lock(mutex_);
    return names_.size();
}

}  // namespace bpfbroker::brokerd
