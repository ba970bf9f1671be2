// Per-uid accounting of live per-client instances; see instance_tracker.h.
#include "brokerd/instance_tracker.h"

#include <bpfbroker/unique_fd.h>

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <thread>
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

InstanceTracker::InstanceTracker(std::size_t capacity, ProgramLiveness alive, MapLiveness map_alive,
                                 SettlePolicy settle)
    : capacity_(capacity), alive_(std::move(alive)), map_alive_(std::move(map_alive)), settle_(settle)
{
}

bool InstanceTracker::present(const Instance& instance, bool program) const
{
    return program || std::any_of(instance.map_ids.begin(), instance.map_ids.end(),
                                  [this](std::uint32_t m) { return map_alive_(m); });
}

InstanceTracker::Millis InstanceTracker::SettleBudget::level(const SettlePolicy& policy, Clock::time_point now) const
{
    const double seconds = std::chrono::duration<double>(std::max(now - at, Clock::duration::zero())).count();
    return std::min(Millis(policy.budget_cap), left + Millis(policy.budget_per_second) * seconds);
}

InstanceTracker::Millis InstanceTracker::take_settle_budget(uid_t uid, Clock::time_point now)
{
    auto it = settle_budgets_.find(uid);
    if (it == settle_budgets_.end()) {
        // A uid without an entry has a whole budget. The table is bounded
        // like the tracker: budgets refilled to the cap say nothing and go.
        if (settle_budgets_.size() >= capacity_)
            std::erase_if(settle_budgets_, [&](const auto& kv) {
                return kv.second.level(settle_, now) >= Millis(settle_.budget_cap);
            });
        if (settle_budgets_.size() >= capacity_)
            return Millis::zero();
        it = settle_budgets_.emplace(uid, SettleBudget{Millis(settle_.budget_cap), now}).first;
    }
    const Millis all = it->second.level(settle_, now);
    it->second = SettleBudget{Millis::zero(), std::max(it->second.at, now)};
    return all;
}

void InstanceTracker::give_back_settle_budget(uid_t uid, Millis unused)
{
    if (auto it = settle_budgets_.find(uid); it != settle_budgets_.end())
        it->second.left += unused;
}

InstanceTracker::Judged InstanceTracker::judge(const std::vector<Instance>& seen, bool settle, Millis may_wait,
                                               std::size_t enough) const
{
    using Held = Instance::Held;
    Judged judged;
    auto& verdicts = judged.verdicts;
    struct Lingering {
        const Instance* instance;
        bool program;  // at the last probe
    };
    std::vector<Lingering> lingering;
    std::size_t gone = 0;
    for (const auto& instance : seen) {
        const bool program = alive_(instance.prog_id);
        const bool there = present(instance, program);
        verdicts[instance.prog_id] = there ? Verdict::Live : Verdict::Gone;
        gone += there ? 0 : 1;
        // Held as it was: no wait. Held with its program, which is now
        // gone: the client closed it, a release under way.
        const bool held = instance.held == Held::MapsOnly || (instance.held == Held::WithProgram && program);
        if (there && settle && !held)
            lingering.push_back({&instance, program});
    }
    // Still there: held by the client, or a release the kernel has not
    // finished (a deferred fput or map free). Only the second ends within
    // the window; all lingering instances share one window.
    // The waits double: most releases end within the first few ms, and a
    // backlog of RCU callbacks under churn gets the window's long tail.
    bool whole_window = true;
    for (unsigned n = 0; n < settle_.reprobes && !lingering.empty(); ++n) {
        if (gone >= enough) {
            whole_window = false;  // the uid is under its limit: nothing more to learn
            break;
        }
        const Millis step = settle_.interval * (1u << n);
        if (judged.waited + step > may_wait) {
            whole_window = false;  // the uid's budget of waiting is spent
            break;
        }
        std::this_thread::sleep_for(step);
        judged.waited += step;
        std::erase_if(lingering, [&](Lingering& l) {
            l.program = alive_(l.instance->prog_id);
            if (present(*l.instance, l.program))
                return false;
            verdicts[l.instance->prog_id] = Verdict::Gone;
            ++gone;
            return true;
        });
    }
    // Held only after a whole window; cut short, still there counts as live.
    for (const auto& l : lingering)
        verdicts[l.instance->prog_id] =
            !whole_window ? Verdict::Live : l.program ? Verdict::HeldWithProgram : Verdict::HeldByMaps;
    return judged;
}

void InstanceTracker::forget_released(std::unique_lock<std::mutex>& lock, uid_t uid, std::optional<unsigned> limit)
{
    auto it = by_uid_.find(uid);
    if (it == by_uid_.end())
        return;
    const bool settle = limit.has_value();
    // Instances that must go for the uid to be under its limit.
    const std::size_t enough = settle && it->second.used() >= *limit ? it->second.used() - *limit + 1 : 0;
    // Probed on a copy, unlocked: the settle window sleeps, and other uids'
    // requests must not wait for it. The uid's whole budget of waiting is
    // taken first, so that two of its requests at once cannot each spend it.
    const std::vector<Instance> seen = it->second.instances;
    const Millis may_wait = settle ? take_settle_budget(uid, Clock::now()) : Millis::zero();
    lock.unlock();
    const auto judged = judge(seen, settle, may_wait, enough);
    const auto& verdicts = judged.verdicts;
    lock.lock();

    // Another request may have changed the table meanwhile: apply the
    // verdicts by program id to whatever is there now.
    give_back_settle_budget(uid, may_wait - judged.waited);
    it = by_uid_.find(uid);
    if (it == by_uid_.end())
        return;
    auto verdict_of = [&](std::uint32_t prog_id) {
        auto v = verdicts.find(prog_id);
        return v == verdicts.end() ? Verdict::Live : v->second;  // committed meanwhile
    };
    auto& instances = it->second.instances;
    const auto before = instances.size();
    std::erase_if(instances, [&](Instance& i) {
        const auto v = verdict_of(i.prog_id);
        if (v == Verdict::HeldWithProgram)
            i.held = Instance::Held::WithProgram;
        else if (v == Verdict::HeldByMaps)
            i.held = Instance::Held::MapsOnly;
        if (v != Verdict::Gone)
            return false;
        if (i.live)
            i.live->fetch_sub(1, std::memory_order_relaxed);
        if (on_forget_)
            on_forget_(uid, i.prog_id);
        return true;
    });
    total_ -= before - instances.size();
    drop_if_empty_locked(uid);
}

void InstanceTracker::forget_released_everywhere(std::unique_lock<std::mutex>& lock)
{
    // Only when the whole table is full or metrics are read: rare, so the
    // cost of probing every id is paid rarely. No settle waits here; a
    // lingering map counts.
    std::vector<uid_t> uids;
    uids.reserve(by_uid_.size());
    for (const auto& [uid, _] : by_uid_)
        uids.push_back(uid);
    for (uid_t uid : uids)
        forget_released(lock, uid, std::nullopt);
}

void InstanceTracker::forget_released_now()
{
    std::unique_lock lock(mutex_);
    forget_released_everywhere(lock);
}

void InstanceTracker::drop_if_empty_locked(uid_t uid)
{
    auto it = by_uid_.find(uid);
    if (it != by_uid_.end() && it->second.used() == 0)
        by_uid_.erase(it);
}

InstanceTracker::Reservation InstanceTracker::reserve(uid_t uid, unsigned limit)
{
    if (limit == 0)
        return {};
    std::unique_lock lock(mutex_);
    auto used = [&] {
        auto it = by_uid_.find(uid);
        return it == by_uid_.end() ? 0u : it->second.used();
    };
    if (used() >= limit)
        forget_released(lock, uid, limit);
    if (used() >= limit)
        return {};
    if (total_ >= capacity_)
        forget_released_everywhere(lock);
    if (total_ >= capacity_)
        return {};
    ++by_uid_[uid].reserved;
    ++total_;
    return Reservation(this, uid);
}

unsigned InstanceTracker::count(uid_t uid, unsigned limit)
{
    std::unique_lock lock(mutex_);
    auto it = by_uid_.find(uid);
    if (it == by_uid_.end())
        return 0;
    if (it->second.used() >= limit)
        forget_released(lock, uid, limit);
    it = by_uid_.find(uid);
    return it == by_uid_.end() ? 0u : it->second.used();
}

std::size_t InstanceTracker::size() const
{
    std::lock_guard lock(mutex_);
    return total_;
}

void InstanceTracker::commit(uid_t uid, std::uint32_t prog_id, std::vector<std::uint32_t> map_ids,
                             std::atomic<std::int64_t>* live)
{
    std::lock_guard lock(mutex_);
    auto& slots = by_uid_[uid];  // present: the reservation keeps it
    --slots.reserved;
    slots.instances.push_back(Instance{prog_id, std::move(map_ids), Instance::Held::No, live});
    if (live)
        live->fetch_add(1, std::memory_order_relaxed);
}

void InstanceTracker::release(uid_t uid) noexcept
{
    std::lock_guard lock(mutex_);
    auto it = by_uid_.find(uid);
    if (it == by_uid_.end() || it->second.reserved == 0)
        return;
    --it->second.reserved;
    --total_;
    drop_if_empty_locked(uid);
}

InstanceTracker::Reservation::Reservation(Reservation&& other) noexcept
    : tracker_(std::exchange(other.tracker_, nullptr)), uid_(other.uid_)
{
}

InstanceTracker::Reservation& InstanceTracker::Reservation::operator=(Reservation&& other) noexcept
{
    if (this != &other) {
        release();
        tracker_ = std::exchange(other.tracker_, nullptr);
        uid_ = other.uid_;
    }
    return *this;
}

InstanceTracker::Reservation::~Reservation()
{
    release();
}

void InstanceTracker::Reservation::commit(std::uint32_t prog_id, std::vector<std::uint32_t> map_ids,
                                          std::atomic<std::int64_t>* live)
{
    if (!tracker_)
        return;
    std::exchange(tracker_, nullptr)->commit(uid_, prog_id, std::move(map_ids), live);
}

void InstanceTracker::Reservation::release() noexcept
{
    if (tracker_)
        std::exchange(tracker_, nullptr)->release(uid_);
}

}  // namespace bpfbroker::brokerd
