// The broker core, shared by every transport: it holds the verified policy
// (catalog, grants, settings) and the kernel's features, and decides every
// request: acquire, list and the admin methods, one entry point each. It
// writes every audit record (allow and deny, every transport), spends one
// rate token per acquire request, and loads and hands out fds through an
// injected ProgramSource. Transports translate requests into these calls
// and the outcomes into replies; where an outcome asks for polkit they ask
// it and call again with the PolkitVerdict.
//
// Thread-safe: the socket server and the D-Bus service call it from
// different threads. The policy is an immutable snapshot swapped on reload,
// so a request sees one consistent policy from decision to hand-out.
#pragma once

#include "brokerd/acquire_rate_limiter.h"
#include "brokerd/audit_log.h"
#include "brokerd/broker_events.h"
#include "brokerd/fd_store.h"
#include "brokerd/feature_probe.h"
#include "brokerd/handout.h"
#include "brokerd/held_grant.h"
#include "brokerd/instance_tracker.h"
#include "brokerd/live_instances.h"
#include "brokerd/refusal_record_throttle.h"
#include "brokerd/metrics.h"
#include "brokerd/outcome.h"
#include "brokerd/polkit_verdict.h"
#include "brokerd/program_source.h"
#include "brokerd/state_journal.h"
#include "brokerd/request_context.h"
#include "policy/catalog.h"
#include "policy/decide.h"
#include "policy/grants.h"
#include "policy/settings.h"

#include <bpfbroker/result.h>

#include <atomic>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bpfbroker::brokerd {

// Distinct parameter value sets a shared manifest may have instances for:
// the values come from callers, and each set is a kernel load kept until reload.
inline constexpr std::size_t kMaxSharedInstancesPerManifest = 64;
// Of those, how many one uid's acquires may have loaded: one caller
// choosing value after value cannot take every set from everyone else.
inline constexpr std::size_t kMaxSharedInstancesPerUid = 8;
// Distinct uids recorded per shared instance, to judge their grants again
// after a policy change. Past it, the holders beyond are unknown, so every
// policy change cuts that instance (and the next acquire loads a fresh one).
inline constexpr std::size_t kMaxSharedHoldersPerInstance = kMaxSavedSharedHolders;

struct BrokerConfig {
    std::string root = "/";
    policy::FileTrust trust;  // owner of policy files: root unless testing
    std::string settings_file;  // empty: etc/bpfbroker/bpfbroker.json under root
};

// What restore_state() found in the state journal.
struct RestoreSummary {
    std::size_t restored = 0;   // re-registered, with their uid's accounting
    std::size_t gone = 0;       // released while the daemon was down, or an id now naming another program
    std::size_t cut = 0;        // cut at once: the caller exited meanwhile, or the policy changed
    std::size_t shared_restored = 0;  // shared instances re-adopted under their key (same program id)
    std::size_t shared_gone = 0;      // shared instances freed meanwhile, changed, or not re-adoptable
    std::size_t skipped_lines = 0;
    // The service manager's fd store (fd_store.h): instances whose fds it
    // handed back and that matched their records, and fds it handed back
    // that matched none (removed from the store, closed).
    std::size_t from_fd_store = 0;
    std::size_t store_refused = 0;
    std::string distrusted;     // why the journal file found was not trusted (it was replaced)
};

struct PolicySnapshot {
    policy::Catalog catalog;
    policy::GrantSet grants;
    policy::Settings settings;
    // This catalog's metric slots, made from its names at load.
    std::shared_ptr<const Metrics::Slots> metric_slots;
};

class Broker {
public:
    Broker(BrokerConfig config, FeatureReport features, AuditLog& audit,
           std::unique_ptr<ProgramSource> programs = make_kernel_program_source());

    // Rescans catalog, grants and settings (at start-up: not audited). On
    // failure the old policy stays.
    Result<void> reload();

    [[nodiscard]] std::shared_ptr<const PolicySnapshot> snapshot() const;
    [[nodiscard]] const FeatureReport& features() const { return features_; }
    [[nodiscard]] const policy::Settings& settings() const { return snapshot()->settings; }

    // The request entry points. `verdict` is polkit's answer to the
    // question an earlier call with the same request returned (null on the
    // first call).
    Outcome<Handout> acquire(const RequestContext& ctx, const AcquireRequest& request,
                             const PolkitVerdict* verdict = nullptr);
    // Every program, as this caller would fare on this transport: a grant
    // that needs polkit is not "allowed" where polkit cannot be asked.
    // Each call judges the whole catalog (up to 10,000 entries) on the
    // transport's thread, so a uid other than root may list
    // Limits::kListingsPerSecond times a second (LimitExceeded past it).
    Result<std::vector<ProgramListing>> list(const RequestContext& ctx);
    Outcome<policy::Grant> approve(const RequestContext& ctx, const ApproveRequest& request,
                                   const PolkitVerdict* verdict = nullptr);
    Outcome<RevokeSummary> revoke(const RequestContext& ctx, const RevokeRequest& request,
                                  const PolkitVerdict* verdict = nullptr);
    Outcome<ReloadSummary> reload(const RequestContext& ctx, const PolkitVerdict* verdict = nullptr);

    // After a restart or a crash: re-registers the live per-client
    // instances the state journal in `runtime_dir` names and the kernel
    // still has (tag checked), and re-adopts its shared instances, then
    // keeps that journal. What the service manager's fd store handed back
    // (`passed`) is used where it is what the journal recorded; from then on
    // the daemon keeps its fds in that store when there is one (NOTIFY_SOCKET).
    // Call once, after reload(), before serving.
    Result<RestoreSummary> restore_state(const std::string& runtime_dir, PassedFds passed = {});

    // Receives approve/revoke/reload notifications (may be null).
    void set_events(BrokerEvents* events) { events_ = events; }

    // The daemon's metrics as OpenMetrics text. Anyone may read them: they
    // hold counts per catalog name, nothing a caller wrote.
    [[nodiscard]] std::string metrics_text();
    [[nodiscard]] Metrics& metrics() { return metrics_; }

    // Callers' exits, for the daemon's loop: poll the fd (-1: none) and call
    // dispatch_caller_exits() when it is readable; that sets the revocation
    // guards of the exited callers' broker-attached instances.
    [[nodiscard]] int caller_exits_fd() const noexcept { return live_.exits_fd(); }
    void dispatch_caller_exits() { live_.dispatch_exits(); }
    [[nodiscard]] const LiveInstances& live_instances() const noexcept { return live_; }

    // Problems found by the last reload, for the daemon to log.
    [[nodiscard]] std::vector<policy::PolicyProblem> problems() const;

private:
    // Everything the broker keeps of one shared instance, in one record so
    // a warm acquire finds it with one lookup and dropping it forgets all.
    struct SharedInstance {
        LoadedInstance loaded;
        ProgramMetrics* gauge = nullptr;  // its program's metrics slot
        std::map<uid_t, HeldGrant> holders;  // at most kMaxSharedHoldersPerInstance
        bool holders_overflowed = false;     // some holder was not recorded
        // Client-attached: the fd every holder is handed (see handed_fd.h),
        // made at the first acquire.
        std::shared_ptr<const UniqueFd> for_clients;
        // Whose acquire loaded it (kMaxSharedInstancesPerUid); none for an
        // instance restored from the journal.
        std::optional<uid_t> loaded_for{};
    };

    // The admin gate: empty to go on, else the denial (audited) or question.
    struct AdminGate;
    AdminGate admit_admin(const RequestContext& ctx, std::string_view action, const std::string& program,
                          const PolkitVerdict* verdict);
    // One audit record, every field capped by AuditLog. An acquire's names
    // the manifest and signer of `decided_on`, else of the catalog's entry.
    // An error when a sink refused it (AuditLog has logged it): a hand-out
    // is refused then; a denial or an admin action already done stands.
    [[nodiscard]] Result<void> audit(std::string_view action, const RequestContext& ctx, const std::string& program, const Error* denial,
               std::string reason, const Handout* handout = nullptr,
               const policy::CatalogEntry* decided_on = nullptr, std::uint64_t suppressed = 0);
    // AuditLog::record, counting a lost record in the metrics.
    [[nodiscard]] Result<void> record_counting_losses(const AuditRecord& r);
    Error deny(std::string_view action, const RequestContext& ctx, const std::string& program, Error error);
    // deny() for a refusal a caller can repeat at no cost (the rate limit's
    // own, the admin gate's): recorded within the uid's budget of refusal
    // records, counted past it (refusal_record_throttle.h).
    Error deny_repeatable(std::string_view action, const RequestContext& ctx, const std::string& program, Error error);
    // Whether `verdict` is polkit's answer about this caller and action.
    [[nodiscard]] static bool verdict_matches(const PolkitVerdict& verdict, const RequestContext& ctx,
                                              std::string_view action);

    Outcome<Handout> decide_acquire(const RequestContext& ctx, const PolicySnapshot& snap,
                                    const AcquireRequest& request, const PolkitVerdict* verdict);
    Result<std::shared_ptr<PolicySnapshot>> load_snapshot() const;
    // reload(), then cuts every live instance whose grant the new policy
    // no longer holds (audited per instance, counted in the metrics), and
    // drops shared instances the catalog no longer offers.
    Result<CutCounts> reload_and_cut(const RequestContext& cause);
    CutCounts cut_ungranted(const RequestContext& cause);
    void audit_cut(const RequestContext& cause, const LiveInstances::Judged& judged);
    // Drops shared instance `it` (its gauge, holders and journal record); under shared_mutex_.
    std::map<std::string, SharedInstance>::iterator drop_shared(std::map<std::string, SharedInstance>::iterator it);
    // Journals a newly loaded client-attached shared instance; under shared_mutex_.
    void journal_shared(const std::string& key, const policy::CatalogEntry& entry, const LoadedInstance& instance);
    // restore_state()'s half for shared instances: re-adopts each one the
    // journal names by id (tag checked) under its key, or forgets it.
    void restore_shared(StateJournal& journal, const PolicySnapshot& snap, const RequestContext& restart,
                        PassedFds& passed, RestoreSummary& summary);
    // Gives the fd store (when there is one) a copy of `fd` as `name`;
    // false (logged, throttled) when there is none or it did not take it.
    bool keep_in_store(const std::string& name, int fd);
    void store_instance_fds(LiveInstances::Entry& live, std::optional<RevocationGuard>& guard);
    // `key` is shared_key() of the entry and values.
    Result<SharedInstance*> shared_instance(const std::string& key, const policy::CatalogEntry& entry,
                                            const ParameterValues& values, const Metrics::Slots* slots, uid_t caller);
    // Writes a hand-out's allow record (`allow_reason` with its summary);
    // an error refuses the hand-out.
    Result<void> record_hand_out(const RequestContext& ctx, const policy::CatalogEntry& entry, std::string allow_reason,
                                 const Handout& h);
    // Loads (or reuses) and attaches, then records the finished hand-out
    // (record_hand_out) before it counts anywhere for the caller (a shared
    // holder, the uid's slot) and withdraws a registered per-client one
    // when that fails: a hand-out the audit log cannot hold leaves
    // nothing behind, its links detached.
    Result<Handout> hand_out(const RequestContext& ctx, const PolicySnapshot& snap, const policy::CatalogEntry& entry,
                             const ParameterValues& values, const CallerRing* ring, std::string allow_reason);
    Result<void> add_client_maps(const LoadedInstance& instance, Handout& h);
    // Refuses a hand-out decided on `decided_on` when a newer policy has
    // been published since and no longer grants it (see hand_out()).
    Result<void> still_granted(const PolicySnapshot& decided_on, const policy::CatalogEntry& entry,
                               const policy::Peer& peer) const;
    // Broker-attached: attaches the instance's programs for the caller and
    // puts the links (their only fds) in the hand-out.
    Result<void> add_links(const LoadedInstance& instance, Handout& h);
    // io_uring_ops: registers the instance on the caller's ring, puts the
    // link in the hand-out and returns the daemon's duplicate of it.
    Result<UniqueFd> add_ring_link(const LoadedInstance& instance, const CallerRing& ring, Handout& h);

    BrokerConfig config_;
    FeatureReport features_;
    std::set<std::string, std::less<>> available_features_;
    AuditLog& audit_;
    std::unique_ptr<ProgramSource> programs_;
    std::atomic<BrokerEvents*> events_{nullptr};  // set by the main thread, read by either
    Metrics metrics_;  // before instances_: tracked instances point at its gauges
    static constexpr std::int64_t kMetricsSweepIntervalNs = 100'000'000;
    std::atomic<std::int64_t> last_metrics_sweep_ns_{std::numeric_limits<std::int64_t>::min() / 2};
    InstanceTracker instances_;
    AcquireRateLimiter rate_;
    AcquireRateLimiter list_rate_;  // the same per-uid bucket, for listings
    RefusalRecordThrottle refusal_records_;

    mutable std::mutex snapshot_mutex_;
    std::shared_ptr<const PolicySnapshot> snapshot_;

    std::mutex shared_mutex_;
    // By manifest sha256, then the chosen and bound values (one instance
    // per distinct set, at most kMaxSharedInstancesPerManifest each).
    std::map<std::string, SharedInstance> shared_instances_;
    std::string shared_key_buffer_;  // an acquire's key is built here, under shared_mutex_: no allocation per call
    std::unique_ptr<FdStore> fd_store_;    // null without a service manager; before live_, which uses it
    std::optional<StateJournal> journal_;  // before live_, which writes to it
    LiveInstances live_{kMaxTrackedInstances};

    std::mutex admin_mutex_;  // one approve/revoke/reload at a time
};

}  // namespace bpfbroker::brokerd
