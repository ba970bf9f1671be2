// The Broker's state across a restart or a crash without systemd's fd
// store: restore_state() re-registers, from the state journal, every live
// per-client instance the kernel still has, with its guard and its uid's
// accounting, checking by tag that an id was not reused. See state_journal.h.
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

}  // namespace

Result<RestoreSummary> Broker::restore_state(const std::string& runtime_dir)
{
    auto journal = StateJournal::open(runtime_dir, config_.trust.owner);
    if (!journal)
        return fail(std::move(journal).error());
    RestoreSummary summary;
    summary.distrusted = journal->distrusted();
    auto saved = journal->replay(summary.skipped_lines);
    auto snap = snapshot();
    RequestContext restart{TransportKind::Signal, {}, {}, false};
    restart.peer.uid = 0;
    for (auto& s : saved) {
        if (!program_map_ids_if_tagged(s.prog_id, s.tag)) {
            ++summary.gone;
            continue;
        }
        LiveInstances::Entry e;
        static_cast<SavedInstance&>(e) = s;  // the guard is re-opened by id, tag checked, when it is cut
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
    }
    journal_.emplace(std::move(*journal));
    live_.set_journal(&*journal_);
    if (auto rewritten = live_.rewrite_journal(true); !rewritten)
        log_warning("state journal: " + rewritten.error().describe());
    // The policy may have changed while the daemon was down.
    std::lock_guard admin(admin_mutex_);
    summary.cut += cut_ungranted(restart).cut;
    return summary;
}

}  // namespace bpfbroker::brokerd
