// A caller's cgroup v2 id; see caller_cgroup.h.
#include "brokerd/caller_cgroup.h"

#include <bpfbroker/unique_fd.h>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace bpfbroker::brokerd {

namespace {

// The path of the unified ("0::") line of /proc/PID/cgroup.
Result<std::string> unified_path(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
    if (!in)
        return fail(make_system_error("reading /proc/" + std::to_string(pid) + "/cgroup failed", errno));
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("0::/"))
            return line.substr(3);
    return fail(ErrorCode::Unsupported, "process " + std::to_string(pid) + " has no cgroup v2 path");
}

bool is_cgroup2(const std::string& path)
{
    struct statfs fs {};
    return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

}  // namespace

Result<std::uint64_t> caller_cgroup_id(int pidfd, pid_t pid, const std::vector<std::string>& roots)
{
    const std::string* root = nullptr;
    for (const auto& r : roots)
        if (is_cgroup2(r)) {
            root = &r;
            break;
        }
    if (root == nullptr)
        return fail(ErrorCode::Unsupported, "no cgroup2 hierarchy is mounted, so caller.cgroup_id has no value");
    auto path = unified_path(pid);
    if (!path)
        return fail(std::move(path).error());
    // The kernel writes the path; ".." cannot appear in a cgroup name.
    UniqueFd dir(::open((*root + *path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!dir)
        return fail(make_system_error("opening cgroup " + *path + " failed", errno));
    // A file_handle header followed by its bytes: a cgroup2 handle is 8.
    std::uint64_t id = 0;
    alignas(file_handle) unsigned char buffer[sizeof(file_handle) + sizeof(id)] = {};
    auto* handle = reinterpret_cast<file_handle*>(buffer);
    handle->handle_bytes = sizeof(id);
    int mount_id = 0;
    if (::name_to_handle_at(dir.get(), "", handle, &mount_id, AT_EMPTY_PATH) != 0 || handle->handle_bytes != sizeof(id))
        return fail(make_system_error("the file handle of cgroup " + *path + " is not a cgroup id", errno));
    std::memcpy(&id, buffer + sizeof(file_handle), sizeof(id));
    // Alive now means PID still named this process while we read (a pid is
    // reused only after its process was reaped).
    if (::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) != 0)
        return fail(Error{ErrorCode::InvalidParameter, "the caller exited while its cgroup was read", errno, {}});
    return id;
}

}  // namespace bpfbroker::brokerd
