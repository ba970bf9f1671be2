// The registry of live per-client instances; see live_instances.h.
#include "brokerd/live_instances.h"

#include "brokerd/log.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>

namespace bpfbroker::brokerd {

namespace {

// Whether the kernel still has program `id` (a link or a socket holds it).
// The probe fd is closed at once so it never keeps the program alive.
bool program_exists(std::uint32_t id)
{
    UniqueFd probe(bpf_prog_get_fd_by_id(id));
    return probe || errno != ENOENT;
}

}  // namespace

std::string cut_instance(const std::optional<RevocationGuard>& guard, const UniqueFd& link)
{
    std::string why_not;
    if (link.valid()) {
        if (bpf_link_detach(link.get()) == 0)
            return {};
        why_not = std::string("BPF_LINK_DETACH failed: ") + std::strerror(errno);
    }
    if (!guard)
        return why_not.empty() ? "the manifest declares no revocation guard" : why_not;
    if (auto set = guard->set(true); !set)
        return set.error().describe();
    return {};
}

std::string cut_registered(const LiveInstances::Entry& e)
{
    std::string why_not;
    if (e.link_to_detach.valid()) {
        why_not = cut_instance(std::nullopt, e.link_to_detach);
        if (why_not.empty())
            return {};
    }
    if (e.stored_guard)
        return cut_instance(e.stored_guard, UniqueFd());
    if (!e.guard)
        return why_not.empty() ? "the manifest declares no revocation guard" : why_not;
    auto guard = RevocationGuard::reopen_of_program(e.prog_id, e.tag, e.guard->name, e.guard->map_id, e.guard->offset);
    if (!guard)
        return guard.error().code == ErrorCode::ProgramNotFound ? std::string() : guard.error().describe();
    return cut_instance(std::move(*guard), UniqueFd());
}

LiveInstances::LiveInstances(std::size_t max_entries) : max_entries_(max_entries)
{
    // One watch per entry at most: the watch is bounded by the registry.
    auto watch = CallerWatch::create(max_entries);
    if (watch)
        watch_.emplace(std::move(*watch));
    else
        watch_error_ = std::move(watch).error();
}

Result<void> LiveInstances::add(Entry entry, UniqueFd caller_pidfd)
{
    if (caller_pidfd && !watch_)
        return fail(watch_error_);
    std::unique_lock lock(mutex_);
    if (entries_.size() >= max_entries_ && forget_freed(lock) == 0)
        return fail(ErrorCode::LimitExceeded,
                    "the broker already tracks " + std::to_string(max_entries_) + " live instances");
    const Key key{entry.prog_id, entry.uid()};
    if (entries_.contains(key))
        return fail(ErrorCode::Internal, "program id " + std::to_string(entry.prog_id) + " is registered already");
    entry.watch.reset();
    if (caller_pidfd) {
        auto id = watch_->watch(std::move(caller_pidfd), [this, key] { on_caller_exit(key); });
        if (!id)
            return fail(std::move(id).error());
        entry.watch = *id;
    }
    auto [it, _] = entries_.emplace(key, std::move(entry));
    // Fail closed: an instance a restart would not find could not be cut
    // after it, so it is not handed out.
    if (journal_)
        if (auto recorded = journal_->record_added(it->second); !recorded) {  // its SavedInstance part
            if (it->second.watch && watch_)
                watch_->unwatch(*it->second.watch);
            entries_.erase(it);
            return fail(ErrorCode::SystemError, "the broker cannot write this instance to its state journal (" +
                                                    std::string(std::strerror(recorded.error().sys_errno)) +
                                                    "), so it hands nothing out");
        }
    return {};
}

void LiveInstances::set_journal(StateJournal* journal)
{
    std::lock_guard lock(mutex_);
    journal_ = journal;
}

void LiveInstances::set_fd_store(FdStore* store)
{
    std::lock_guard lock(mutex_);
    fd_store_ = store;
}

Result<void> LiveInstances::rewrite_journal(bool force)
{
    std::lock_guard lock(mutex_);
    if (!journal_ || (!force && !journal_->wants_rewrite(entries_.size())))
        return {};
    std::vector<SavedInstance> live;
    live.reserve(entries_.size());
    for (const auto& [key, e] : entries_)
        live.push_back(e);  // its SavedInstance part
    return journal_->rewrite(live);
}

void LiveInstances::forget(uid_t uid, std::uint32_t prog_id)
{
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(Key{prog_id, uid}); it != entries_.end())
        erase(it);
}

void LiveInstances::withdraw(uid_t uid, std::uint32_t prog_id)
{
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(Key{prog_id, uid}); it != entries_.end()) {
        (void)cut_registered(it->second);  // nothing to report: it was never handed out
        erase(it);
    }
}

std::vector<LiveInstances::Judged>
LiveInstances::cut_where(const std::function<std::optional<std::string>(const Entry&)>& gone)
{
    std::vector<Judged> out;
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
        auto why = gone(it->second);
        if (!why) {
            ++it;
            continue;
        }
        const Entry& e = it->second;
        std::string why_not = cut_registered(e);
        out.push_back(Judged{e.program(), e.uid(), e.prog_id, why_not.empty(), std::move(*why), std::move(why_not)});
        // Cut or not, it is reported once: a later change of policy does
        // not count it again.
        it = erase(it);
    }
    return out;
}

void LiveInstances::for_each(std::string_view program, std::optional<uid_t> uid,
                             const std::function<void(const Entry&)>& f) const
{
    std::lock_guard lock(mutex_);
    for (const auto& [key, e] : entries_)
        if (e.program() == program && (!uid || e.uid() == *uid))
            f(e);
}

int LiveInstances::exits_fd() const noexcept
{
    return watch_ ? watch_->fd() : -1;
}

void LiveInstances::dispatch_exits()
{
    if (!watch_)
        return;
    if (auto ran = watch_->dispatch(); !ran)
        log_warning("caller watch: " + ran.error().describe());
}

std::size_t LiveInstances::size() const
{
    std::lock_guard lock(mutex_);
    return entries_.size();
}

void LiveInstances::on_caller_exit(Key key)
{
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end())
        return;
    it->second.watch.reset();  // it ran: nothing to unwatch
    // The caller is gone: whoever holds its links now must count nothing.
    if (auto why_not = cut_registered(it->second); !why_not.empty())
        log_error("could not cut \"" + it->second.program() + "\" (program id " + std::to_string(it->second.prog_id) +
                  ") after its caller exited: " + why_not);
    erase(it);
}

std::map<LiveInstances::Key, LiveInstances::Entry>::iterator
LiveInstances::erase(std::map<Key, Entry>::iterator it)
{
    if (it->second.watch && watch_)
        watch_->unwatch(*it->second.watch);
    if (journal_)
        journal_->record_forgotten(it->second.uid(), it->second.prog_id);
    if (fd_store_)
        fd_store_->drop_instance(it->second.prog_id);
    return entries_.erase(it);
}

std::size_t LiveInstances::forget_freed(std::unique_lock<std::mutex>& /*lock*/)
{
    std::size_t forgotten = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (program_exists(it->second.prog_id)) {
            ++it;
            continue;
        }
        it = erase(it);
        ++forgotten;
    }
    return forgotten;
}

}  // namespace bpfbroker::brokerd
