// Per-uid accounting of live per-client instances; see instance_tracker.h.
#include "brokerd/instance_tracker.h"

#include <bpfbroker/unique_fd.h>

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace bpfbroker::brokerd {

bool kernel_has_program(std::uint32_t id)
{
    // Taking an fd by id is the one question the kernel answers about an id;
    // the fd is closed at once so the probe never keeps the program alive.
    UniqueFd probe(bpf_prog_get_fd_by_id(id));
    if (probe)
        return true;
    return errno != ENOENT;  // EPERM, EMFILE, ENOMEM...: unknown, keep counting it
}

InstanceTracker::InstanceTracker(std::size_t capacity, ProgramLiveness alive)
    : capacity_(capacity), alive_(std::move(alive))
{
}

void InstanceTracker::prune_locked(std::vector<std::uint32_t>& ids)
{
    const auto before = ids.size();
    std::erase_if(ids, [this](std::uint32_t id) { return !alive_(id); });
    total_ -= before - ids.size();
}

void InstanceTracker::prune_all_locked()
{
    for (auto it = by_uid_.begin(); it != by_uid_.end();) {
        prune_locked(it->second);
        if (it->second.empty())
            it = by_uid_.erase(it);
        else
            ++it;
    }
}

bool InstanceTracker::record_locked(uid_t uid, std::uint32_t prog_id)
{
    if (auto it = by_uid_.find(uid); it != by_uid_.end() &&
                                      std::find(it->second.begin(), it->second.end(), prog_id) != it->second.end())
        return true;
    if (total_ >= capacity_)
        prune_all_locked();
    if (total_ >= capacity_)
        return false;
    by_uid_[uid].push_back(prog_id);
    ++total_;
    return true;
}

bool InstanceTracker::record(uid_t uid, std::uint32_t prog_id)
{
    std::lock_guard lock(mutex_);
    return record_locked(uid, prog_id);
}

bool InstanceTracker::record_within_limit(uid_t uid, std::uint32_t prog_id, unsigned limit)
{
    std::lock_guard lock(mutex_);
    if (auto it = by_uid_.find(uid); it != by_uid_.end()) {
        prune_locked(it->second);
        const auto& ids = it->second;
        if (std::find(ids.begin(), ids.end(), prog_id) != ids.end())
            return true;
        if (ids.size() >= limit)
            return false;
    } else if (limit == 0) {
        return false;
    }
    return record_locked(uid, prog_id);
}

unsigned InstanceTracker::live_count(uid_t uid)
{
    std::lock_guard lock(mutex_);
    auto it = by_uid_.find(uid);
    if (it == by_uid_.end())
        return 0;
    prune_locked(it->second);
    const auto count = static_cast<unsigned>(it->second.size());
    if (count == 0)
        by_uid_.erase(it);
    return count;
}

std::size_t InstanceTracker::size() const
{
    std::lock_guard lock(mutex_);
    return total_;
}

}  // namespace bpfbroker::brokerd
