// The Broker's state across a restart or a crash: restore_state()
// re-registers, from the state journal, every live per-client instance the
// kernel still has, with its guard and its uid's accounting, checking by tag
// that an id was not reused, and re-adopts every client-attached shared
// instance under its key, so that its program id stays and a revocation
// still reaches it. What the service manager's fd store handed back is used
// where it is the object the journal recorded (fd_store.h); without it, or
// for what it did not keep, objects are re-opened by id. See state_journal.h.
#include "brokerd/broker.h"

#include "brokerd/log.h"

#include <bpf/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

namespace bpfbroker::brokerd {

namespace {

// A pidfd of the broker-attached caller, when `pid` is still the process
// that acquired (same start time); empty when it exited meanwhile or the
// start time was unknown at the acquire.
UniqueFd caller_pidfd_if_same(pid_t pid, std::uint64_t start_time)
{
    if (pid <= 0 || start_time == 0)
        return {};
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    // Read after opening: a pid reused in between shows another start time.
    if (!pidfd || process_start_time(pid) != start_time)
        return {};
    return pidfd;
}

// The fds the store handed back for one journal record: each taken by
// name and checked to be the recorded object, then kept (the instance is in
// use) or, by default, refused (removed from the store).
class HandedBack {
public:
    explicit HandedBack(PassedFds& passed) : passed_(passed) {}
    HandedBack(const HandedBack&) = delete;
    HandedBack& operator=(const HandedBack&) = delete;
    ~HandedBack() { refuse(); }

    // The fd `name` when it is the `kind` object `id`; else invalid, and a
    // mismatch is refused at once.
    UniqueFd take(const std::string& name, BpfFdKind kind, std::uint32_t id)
    {
        UniqueFd fd = passed_.take(name);
        if (!fd)
            return {};
        if (bpf_fd_id(fd.get(), kind) != id) {
            log_warning("fd store: " + name + " is not the object the state journal recorded; removed from the store");
            passed_.refuse(name);
            return {};
        }
        taken_.push_back(name);
        return fd;
    }
    // Keeps what was taken; true when anything was.
    bool keep()
    {
        const bool any = !taken_.empty();
        for (auto& name : taken_)
            passed_.keep(name);
        taken_.clear();
        return any;
    }
    void refuse()
    {
        for (auto& name : taken_)
            passed_.refuse(name);
        taken_.clear();
    }

private:
    PassedFds& passed_;
    std::vector<std::string> taken_;
};

// The program `id` while it has tag `tag`: the store's fd of it when that
// is the program, else opened by id (root); and its map ids. The tag is read
// through the fd kept, so a reused id cannot slip in between check and use.
std::optional<std::pair<UniqueFd, std::vector<std::uint32_t>>> open_program_if_tagged(std::uint32_t id,
                                                                                     const std::string& tag,
                                                                                     HandedBack& back)
{
    UniqueFd fd = back.take(shared_program_fd_name(id), BpfFdKind::Program, id);
    if (!fd)
        fd = UniqueFd(bpf_prog_get_fd_by_id(id));  // the kernel makes every bpf fd CLOEXEC
    if (!fd)
        return std::nullopt;
    auto map_ids = map_ids_if_tagged(fd, tag);
    if (!map_ids)
        return std::nullopt;
    return std::pair{std::move(fd), std::move(*map_ids)};
}

// Rebuilds the LoadedInstance of `s` from the kernel, or says why not. What
// a client may do with each map comes from the manifest, never the file.
Result<LoadedInstance> readopt_shared(const SavedShared& s, const policy::CatalogEntry& entry, HandedBack& back)
{
    const auto& manifest = *entry.manifest;
    if (policy::is_broker_attached(manifest.programs.front().type))
        return fail(ErrorCode::Unsupported, "a broker-attached shared instance is not re-adopted");
    auto prog = open_program_if_tagged(s.prog_id, s.tag, back);
    if (!prog)
        return fail(ErrorCode::ProgramNotFound, "program " + std::to_string(s.prog_id) + " is gone");
    auto& [prog_fd, map_ids] = *prog;
    LoadedInstance inst;
    inst.parameters.insert(s.parameters.begin(), s.parameters.end());
    for (const auto& m : s.maps) {
        auto spec = std::find_if(manifest.maps.begin(), manifest.maps.end(),
                                 [&](const policy::MapSpec& x) { return x.name == m.name; });
        if (spec == manifest.maps.end() || std::find(map_ids.begin(), map_ids.end(), m.id) == map_ids.end())
            return fail(ErrorCode::ProgramNotFound, "map \"" + m.name + "\" is not one of the program's");
        UniqueFd fd = back.take(shared_map_fd_name(s.prog_id, m.id), BpfFdKind::Map, m.id);
        if (!fd)
            fd = UniqueFd(bpf_map_get_fd_by_id(m.id));
        if (!fd)
            return fail(make_system_error("re-opening map \"" + m.name + "\" by id failed", errno));
        inst.maps.push_back(LoadedMap{m.name, spec->client_access, std::move(fd), m.id});
    }
    if (inst.maps.size() != manifest.maps.size())
        return fail(ErrorCode::ProgramNotFound, "the journal does not name every map of the manifest");
    if (s.guard) {
        auto guard = RevocationGuard::reopen(s.guard->name, s.guard->map_id, s.guard->offset, map_ids);
        if (!guard)
            return fail(std::move(guard).error());
        inst.guard = std::move(*guard);
    } else if (!manifest.revocation_guard.empty()) {
        return fail(ErrorCode::ProgramNotFound, "the journal lacks the guard the manifest declares");
    }
    const auto& spec = manifest.programs.front();
    inst.programs.push_back(LoadedProgram{s.prog_name, spec.type, std::move(prog_fd), s.prog_id, s.tag, spec.attach});
    return inst;
}

}  // namespace

void Broker::restore_shared(StateJournal& journal, const PolicySnapshot& snap, const RequestContext& restart,
                            PassedFds& passed, RestoreSummary& summary)
{
    std::size_t skipped = 0;
    auto saved = journal.replay_shared(skipped);
    summary.skipped_lines += skipped;
    std::lock_guard lock(shared_mutex_);
    for (auto& s : saved) {
        auto entry = std::find_if(snap.catalog.entries.begin(), snap.catalog.entries.end(),
                                  [&](const policy::CatalogEntry& e) {
                                      return e.valid() && e.manifest_sha256 == s.manifest_sha256 &&
                                             e.manifest->instance == policy::InstanceMode::Shared;
                                  });
        // Its version gone from the catalog, or the kernel's objects not the
        // recorded ones: not re-adopted, and cut (fail closed) so that no
        // holder keeps a program nobody judges.
        HandedBack back(passed);
        auto inst = entry == snap.catalog.entries.end()
                        ? Result<LoadedInstance>(fail(ErrorCode::ProgramNotFound, "its manifest is gone"))
                        : readopt_shared(s, *entry, back);
        if (!inst && !program_map_ids_if_tagged(s.prog_id, s.tag)) {
            // Every holder closed it while the daemon was down: nothing runs.
            journal.record_shared_forgotten(s.key);
            ++summary.shared_gone;
            continue;
        }
        if (!inst) {
            LiveInstances::Entry e;
            if (!s.holders.empty())
                e.held = s.holders.begin()->second;
            e.prog_id = s.prog_id;
            e.tag = s.tag;
            e.guard = s.guard;
            const std::string why_not = cut_registered(e);
            audit_cut(restart, LiveInstances::Judged{e.held.program, e.held.peer.uid, s.prog_id, why_not.empty(),
                                                     "shared instance not re-adopted after a restart: " +
                                                         inst.error().describe(),
                                                     why_not});
            journal.record_shared_forgotten(s.key);
            ++summary.shared_gone;
            continue;
        }
        auto& gauge = metrics_.program(snap.metric_slots.get(), entry->name);
        gauge.live_instances.fetch_add(1, std::memory_order_relaxed);
        shared_instances_.insert_or_assign(s.key, SharedInstance{std::move(*inst), &gauge, std::move(s.holders),
                                                                 s.overflowed, nullptr});
        ++summary.shared_restored;
        if (back.keep())
            ++summary.from_fd_store;
    }
}

Result<RestoreSummary> Broker::restore_state(const std::string& runtime_dir, PassedFds passed)
{
    // On every way out: the store keeps what is in use and forgets the rest
    // (handed back for no record, or for an instance gone since).
    struct FinishStore {
        Broker& broker;
        PassedFds& passed;
        RestoreSummary* summary = nullptr;
        ~FinishStore()
        {
            for (auto& [name, fd] : passed.stored)
                passed.refused.push_back(name);
            passed.stored.clear();
            for (const auto& name : passed.kept)
                std::erase(passed.refused, name);
            if (summary)
                summary->store_refused = passed.refused.size();
            broker.fd_store_ = FdStore::from_environment(passed.kept);
            if (broker.fd_store_)
                for (const auto& name : passed.refused)
                    broker.fd_store_->remove(name);
            broker.live_.set_fd_store(broker.fd_store_.get());
        }
    };
    std::optional<FinishStore> finish_store(std::in_place, *this, passed);
    auto journal = StateJournal::open(runtime_dir, config_.trust.owner);
    if (!journal)
        return fail(std::move(journal).error());
    RestoreSummary summary;
    finish_store->summary = &summary;
    summary.distrusted = journal->distrusted();
    auto saved = journal->replay(summary.skipped_lines);
    auto snap = snapshot();
    RequestContext restart{TransportKind::Signal, {}, {}, false};
    restart.peer.uid = 0;
    for (auto& s : saved) {
        auto map_ids = program_map_ids_if_tagged(s.prog_id, s.tag);
        if (!map_ids) {
            ++summary.gone;
            continue;
        }
        LiveInstances::Entry e;
        static_cast<SavedInstance&>(e) = s;  // without a stored guard, it is re-opened by id, tag checked, when cut
        HandedBack back(passed);
        UniqueFd guard_fd = s.guard ? back.take(guard_fd_name(s.prog_id), BpfFdKind::Map, s.guard->map_id) : UniqueFd();
        if (guard_fd) {
            auto guard = RevocationGuard::adopt_stored(s.guard->name, std::move(guard_fd), s.guard->map_id,
                                                       s.guard->offset, *map_ids);
            if (guard)
                e.stored_guard = std::move(*guard);
            else
                back.refuse();
        }
        if (s.link_id != 0)
            e.link_to_detach = back.take(link_fd_name(s.prog_id), BpfFdKind::Link, s.link_id);
        UniqueFd pidfd;
        if (s.broker_attached) {
            pidfd = caller_pidfd_if_same(s.caller_pid, s.caller_start_time);
            if (!pidfd) {
                // Its caller is gone (or cannot be told from a reused pid):
                // what the caller would have had cut on exit is cut now.
                const std::string why_not = cut_registered(e);
                audit_cut(restart, LiveInstances::Judged{s.held.program, s.held.peer.uid, s.prog_id, why_not.empty(),
                                                         "its caller exited while the daemon was down", why_not});
                ++summary.cut;
                (why_not.empty() ? metrics_.revoked_instances : metrics_.uncut_instances)
                    .fetch_add(1, std::memory_order_relaxed);
                continue;
            }
        }
        // The uid's count is what it was: its limit holds across the restart.
        auto slot = instances_.reserve(s.held.peer.uid, std::numeric_limits<unsigned>::max());
        if (!slot) {
            ++summary.gone;
            continue;
        }
        if (auto added = live_.add(std::move(e), std::move(pidfd)); !added) {
            log_warning("restoring \"" + s.held.program + "\": " + added.error().describe());
            continue;
        }
        slot.commit(s.prog_id, s.map_ids, &metrics_.program(snap->metric_slots.get(), s.held.program).live_instances);
        ++summary.restored;
        if (back.keep())
            ++summary.from_fd_store;
    }
    restore_shared(*journal, *snap, restart, passed, summary);
    journal_.emplace(std::move(*journal));
    live_.set_journal(&*journal_);
    if (auto rewritten = live_.rewrite_journal(true); !rewritten)
        log_warning("state journal: " + rewritten.error().describe());
    finish_store.reset();  // the store is set before the policy is judged: a cut removes its fds
    // The policy may have changed while the daemon was down.
    std::lock_guard admin(admin_mutex_);
    summary.cut += cut_ungranted(restart).cut;
    return summary;
}

}  // namespace bpfbroker::brokerd
