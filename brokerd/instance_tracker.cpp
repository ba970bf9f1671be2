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

bool kernel_has_map(std::uint32_t id)
{
    UniqueFd probe(bpf_map_get_fd_by_id(id));
    if (probe)
        return true;
    return errno != ENOENT;
}

InstanceTracker::InstanceTracker(std::size_t capacity, ProgramLiveness alive, MapLiveness map_alive)
    : capacity_(capacity), alive_(std::move(alive)), map_alive_(std::move(map_alive))
{
}

bool InstanceTracker::alive(const Instance& instance) const
{
    return alive_(instance.prog_id) ||
           std::any_of(instance.map_ids.begin(), instance.map_ids.end(), [this](std::uint32_t m) { return map_alive_(m); });
}

void InstanceTracker::prune_locked(std::vector<Instance>& instances)
{
    const auto before = instances.size();
    std::erase_if(instances, [this](const Instance& i) { return !alive(i); });
    total_ -= before - instances.size();
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

namespace {

template <typename Instances>
bool holds(const Instances& instances, std::uint32_t prog_id)
{
    return std::any_of(instances.begin(), instances.end(), [&](const auto& i) { return i.prog_id == prog_id; });
}

}  // namespace

bool InstanceTracker::record_locked(uid_t uid, std::uint32_t prog_id, std::vector<std::uint32_t>& map_ids)
{
    if (auto it = by_uid_.find(uid); it != by_uid_.end() && holds(it->second, prog_id))
        return true;
    if (total_ >= capacity_)
        prune_all_locked();
    if (total_ >= capacity_)
        return false;
    by_uid_[uid].push_back(Instance{prog_id, std::move(map_ids)});
    ++total_;
    return true;
}

bool InstanceTracker::record(uid_t uid, std::uint32_t prog_id, std::vector<std::uint32_t> map_ids)
{
    std::lock_guard lock(mutex_);
    return record_locked(uid, prog_id, map_ids);
}

bool InstanceTracker::record_within_limit(uid_t uid, std::uint32_t prog_id, unsigned limit,
                                          std::vector<std::uint32_t> map_ids)
{
    std::lock_guard lock(mutex_);
    if (auto it = by_uid_.find(uid); it != by_uid_.end()) {
        prune_locked(it->second);
        if (holds(it->second, prog_id))
            return true;
        if (it->second.size() >= limit)
            return false;
    } else if (limit == 0) {
        return false;
    }
    return record_locked(uid, prog_id, map_ids);
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
