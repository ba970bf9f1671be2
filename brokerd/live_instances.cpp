// The registry of live broker-attached instances; see live_instances.h.
#include "brokerd/live_instances.h"

#include "brokerd/log.h"
#include "brokerd/ring_attach.h"

#include <bpf/bpf.h>

#include <cerrno>

namespace bpfbroker::brokerd {

namespace {

// Whether the kernel still has program `id` (a link holds it). The probe fd
// is closed at once so it never keeps the program alive.
bool program_exists(std::uint32_t id)
{
    UniqueFd probe(bpf_prog_get_fd_by_id(id));
    return probe || errno != ENOENT;
}

}  // namespace

LiveInstances::LiveInstances(std::size_t max_entries) : max_entries_(max_entries)
{
    // One watch per entry at most: the watch is bounded by the registry.
    auto watch = CallerWatch::create(max_entries);
    if (watch)
        watch_.emplace(std::move(*watch));
    else
        watch_error_ = std::move(watch).error();
}

Result<void> LiveInstances::Entry::detach() const
{
    if (!link)
        return fail(ErrorCode::Unsupported, "\"" + program + "\" holds no detachable link");
    return detach_link(link.get());
}

Result<void> LiveInstances::add(std::string program, uid_t uid, std::uint32_t prog_id, RevocationGuard guard,
                                UniqueFd caller_pidfd, UniqueFd link)
{
    if (!watch_)
        return fail(watch_error_);
    std::unique_lock lock(mutex_);
    if (entries_.size() >= max_entries_ && forget_freed(lock) == 0)
        return fail(ErrorCode::LimitExceeded, "the broker already tracks " + std::to_string(max_entries_) +
                                                  " live broker-attached instances");
    const Key key = next_key_++;
    Entry entry{std::move(program), uid, prog_id, std::move(guard), std::nullopt, std::move(link)};
    if (caller_pidfd) {
        auto id = watch_->watch(std::move(caller_pidfd), [this, key] { on_caller_exit(key); });
        if (!id)
            return fail(std::move(id).error());
        entry.watch = *id;
    }
    entries_.emplace(key, std::move(entry));
    return {};
}

void LiveInstances::for_each(std::string_view program, std::optional<uid_t> uid,
                             const std::function<void(const Entry&)>& f) const
{
    std::lock_guard lock(mutex_);
    for (const auto& [key, e] : entries_)
        if (e.program == program && (!uid || e.uid == *uid))
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
    // The caller is gone: whoever holds its links now must count nothing.
    // Erasing the entry closes a ring link's duplicate; the ring's own exit
    // ejects the program from it.
    if (auto set = it->second.guard.set(true); !set)
        log_error("could not set the revocation guard of \"" + it->second.program + "\" (program id " +
                  std::to_string(it->second.prog_id) + ") after its caller exited: " + set.error().describe());
    entries_.erase(it);
}

std::size_t LiveInstances::forget_freed(std::unique_lock<std::mutex>& /*lock*/)
{
    std::size_t forgotten = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (program_exists(it->second.prog_id)) {
            ++it;
            continue;
        }
        if (it->second.watch)
            watch_->unwatch(*it->second.watch);
        it = entries_.erase(it);
        ++forgotten;
    }
    return forgotten;
}

}  // namespace bpfbroker::brokerd
