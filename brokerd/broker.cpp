// The broker core; see broker.h.
#include "brokerd/broker.h"

#include "brokerd/caller_cgroup.h"
#include "brokerd/log.h"

#include "policy/approvals_store.h"
#include "policy/paths.h"
#include "base/hex.h"
#include "base/key_number.h"

#include <grp.h>
#include <pwd.h>

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstring>
#include <vector>

namespace bpfbroker::brokerd {

namespace {

bool parse_id(const std::string& s, std::uint32_t& out)
{
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

// True when NSS knows the user (what = "user") or group name. A grant naming
// nobody NSS knows would match no one today and whoever takes the name later.
bool nss_knows(const char* what, const std::string& name)
{
    std::vector<char> buf(16384);
    if (std::string_view(what) == "user") {
        passwd pw{}, *found = nullptr;
        return ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found;
    }
    group gr{}, *found = nullptr;
    return ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) == 0 && found;
}

// "alice" -> a name, "1001" -> an id; anything else is refused by the grant parser rules.
template <typename Id>
Result<void> add_principals(const std::vector<std::string>& items, std::vector<std::string>& names, std::vector<Id>& ids,
                            const char* what)
{
    for (const auto& item : items) {
        std::uint32_t id = 0;
        if (parse_id(item, id)) {
            if (id == 0xffffffffu)
                return fail(ErrorCode::InvalidParameter, std::string(what) + " id 4294967295 is not valid");
            ids.push_back(static_cast<Id>(id));
            continue;
        }
        if (item.empty() || item.size() > 32 || item[0] == '-' ||
            !std::all_of(item.begin(), item.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
            }))
            return fail(ErrorCode::InvalidParameter,
                        std::string(what) + " \"" + cap_for_record(item, 64) + "\" is not a valid name");
        if (!nss_knows(what, item))
            return fail(ErrorCode::InvalidParameter,
                        std::string("no ") + what + " named \"" + cap_for_record(item, 64) + "\" is known on this system");
        names.push_back(item);
    }
    return {};
}

// Why a grant that needs polkit is refused where polkit cannot be asked.
std::string polkit_unreachable_reason(const std::string& program, TransportKind transport)
{
    std::string why = "the grant for \"" + program + "\" requires polkit authorization (org.bpfbroker.acquire), ";
    return why + (transport == TransportKind::Socket ? "which the socket cannot ask: use D-Bus"
                                                     : "and polkit is not in use");
}

// Why a non-root caller may not administer where polkit cannot be asked.
std::string admin_unreachable_reason(std::string_view action, TransportKind transport)
{
    if (transport == TransportKind::Socket)
        return std::string(action) + " is for root on the direct socket; use D-Bus with polkit";
    return "only root may administer bpfbroker: polkit is not in use";
}

// The shared-instance key, written into `key`: the manifest's hash, then
// every parameter value (a manifest hash is 64 hex digits, so the key
// starts with exactly it).
const std::string& shared_key(std::string& key, const std::string& manifest_sha256, const ParameterValues& values)
{
    key.assign(manifest_sha256);
    for (const auto& [name, value] : values)
        append_key_number(key, name, value);
    return key;
}

bool binds_process(const policy::Manifest& m)
{
    return std::any_of(m.parameters.begin(), m.parameters.end(), [](const policy::ParameterSpec& p) {
        return p.bind == policy::ParameterBinding::CallerTgid || p.bind == policy::ParameterBinding::CallerCgroupId;
    });
}

// The caller as the kernel or the bus vouches for it: uid always; the
// process (tgid, cgroup) only when the manifest binds it, and only from
// the socket, where SO_PEERPIDFD's pidfd backs SO_PEERCRED's pid: while it
// is not readable, that pid is still the process that connected.
Result<CallerIdentity> caller_identity(const RequestContext& ctx, const policy::Manifest& m)
{
    CallerIdentity caller;
    caller.uid = ctx.peer.uid;
    if (!binds_process(m))
        return caller;
    if (ctx.transport != TransportKind::Socket)
        return fail(ErrorCode::Unsupported,
                    "program \"" + m.name + "\" binds a parameter to the calling process (caller.tgid or "
                    "caller.cgroup_id), which D-Bus cannot vouch for (the bus gives a pid but no pidfd): "
                    "acquire it on the socket (org.bpfbroker.Broker)");
    if (ctx.caller_pidfd < 0 || ctx.peer.pid <= 0)
        return fail(ErrorCode::Unsupported, "program \"" + m.name +
                                                "\" binds the calling process, and this kernel gave no pidfd "
                                                "for the connection (SO_PEERPIDFD needs Linux 6.5)");
    pollfd p{ctx.caller_pidfd, POLLIN, 0};
    if (::poll(&p, 1, 0) != 0)
        return fail(ErrorCode::PermissionDenied, "the process that opened this connection (pid " +
                                                     std::to_string(ctx.peer.pid) + ") has exited");
    caller.tgid = ctx.peer.pid;
    const bool wants_cgroup = std::any_of(m.parameters.begin(), m.parameters.end(), [](const policy::ParameterSpec& s) {
        return s.bind == policy::ParameterBinding::CallerCgroupId;
    });
    if (wants_cgroup) {
        auto id = caller_cgroup_id(ctx.caller_pidfd, ctx.peer.pid);
        if (!id)
            return fail(std::move(id).error());
        caller.cgroup_id = *id;
    }
    return caller;
}

// `reason` with the audit record's tail: where a broker-attached hand-out
// was attached (every program's attach point) and every value the program
// was loaded with, bound or chosen.
std::string with_handout_summary(std::string reason, const policy::Manifest& m, const Handout& h)
{
    if (!h.links.empty()) {
        reason += " attach=";
        for (std::size_t i = 0; i < m.programs.size(); ++i) {
            if (i > 0)
                reason += ',';
            reason += m.programs[i].attach;
        }
    }
    for (const auto& [name, value] : h.parameters)
        append_key_number(reason, name, value);
    return reason;
}

}  // namespace

struct Broker::AdminGate {
    std::optional<Error> denial;
    std::optional<PolkitQuestion> question;

    [[nodiscard]] bool go_on() const { return !denial && !question; }
    template <typename T>
    [[nodiscard]] Outcome<T> stop() const
    {
        if (denial)
            return *denial;
        return *question;
    }
};

Broker::Broker(BrokerConfig config, FeatureReport features, AuditLog& audit, std::unique_ptr<ProgramSource> programs)
    : config_(std::move(config)), features_(std::move(features)), available_features_(features_.available()),
      audit_(audit), programs_(std::move(programs)), snapshot_(std::make_shared<PolicySnapshot>())
{
    // The tracker learns when the kernel freed an instance (it probes at a
    // uid's limit and for metrics); the registry forgets it then, so
    // registering costs the hot path no probe.
    instances_.set_on_forget([this](uid_t uid, std::uint32_t prog_id) { live_.forget(uid, prog_id); });
}

Result<std::shared_ptr<PolicySnapshot>> Broker::load_snapshot() const
{
    auto snap = std::make_shared<PolicySnapshot>();
    auto rootfd = policy::open_trusted_root(config_.root, config_.trust);
    if (!rootfd)
        return fail(std::move(rootfd).error());
    auto settings = config_.settings_file.empty() ? policy::load_settings(rootfd->get(), config_.trust)
                                                  : policy::load_settings_file(config_.settings_file, config_.trust);
    if (!settings)
        return fail(std::move(settings).error());
    snap->settings = *settings;
    auto catalog = policy::scan_catalog(config_.root, config_.trust, snap->settings.attach_points);
    if (!catalog)
        return fail(std::move(catalog).error());
    snap->catalog = std::move(*catalog);
    snap->grants = policy::load_grants(rootfd->get(), config_.trust, snap->settings.vendor_allowlists);
    return snap;
}

Result<void> Broker::reload()
{
    auto snap = load_snapshot();
    if (!snap)
        return fail(std::move(snap).error());
    std::vector<std::string> names;
    names.reserve((*snap)->catalog.entries.size());
    for (const auto& e : (*snap)->catalog.entries)
        names.push_back(e.name);
    (*snap)->metric_slots = metrics_.slots_for(names);
    {
        std::lock_guard lock(snapshot_mutex_);
        snapshot_ = std::move(*snap);
    }
    // glibc keeps what the old catalog freed in the arena of each thread
    // that built or dropped it; without this RSS doubled over 20 reloads.
    ::malloc_trim(0);
    return {};
}

Result<CutCounts> Broker::reload_and_cut(const RequestContext& cause)
{
    if (auto r = reload(); !r)
        return fail(std::move(r).error());
    CutCounts counts = cut_ungranted(cause);
    // Shared instances of manifests no longer in the catalog are dropped;
    // holders whose grant still covers them keep the fds they hold.
    auto current = snapshot();
    std::lock_guard lock(shared_mutex_);
    for (auto it = shared_instances_.begin(); it != shared_instances_.end();) {
        bool still_there = std::any_of(current->catalog.entries.begin(), current->catalog.entries.end(),
                                       [&](const policy::CatalogEntry& e) {
                                           return e.valid() && it->first.starts_with(e.manifest_sha256);
                                       });
        it = still_there ? std::next(it) : drop_shared(it);
    }
    return counts;
}

CutCounts Broker::cut_ungranted(const RequestContext& cause)
{
    auto snap = snapshot();
    auto gone = [&](const HeldGrant& held) {
        return grant_gone(held, snap->catalog, snap->grants, available_features_);
    };
    CutCounts counts;
    auto tally = [&](const LiveInstances::Judged& j) {
        ++(j.cut ? counts.cut : counts.uncut);
        audit_cut(cause, j);
    };
    for (const auto& judged : live_.cut_where([&](const LiveInstances::Entry& e) { return gone(e.held); }))
        tally(judged);

    // A shared instance is one program for all its holders: when one holder's
    // grant is gone, that holder still has the fd, so the instance is cut for
    // everyone, and those still granted get a fresh one at their next acquire.
    std::lock_guard lock(shared_mutex_);
    for (auto it = shared_instances_.begin(); it != shared_instances_.end();) {
        const auto& holders = it->second.holders;
        std::vector<std::pair<uid_t, std::string>> lost;
        for (const auto& [uid, held] : holders)
            if (auto why = gone(held))
                lost.emplace_back(uid, std::move(*why));
        if (lost.empty() && it->second.holders_overflowed)
            lost.emplace_back(static_cast<uid_t>(-1), "more holders than the broker records (" +
                                                          std::to_string(kMaxSharedHoldersPerInstance) +
                                                          "): their grants cannot be judged");
        if (lost.empty()) {
            ++it;
            continue;
        }
        const auto& prog = it->second.loaded.programs.front();
        const std::string why_not = cut_instance(it->second.loaded.guard, UniqueFd());
        const std::string name = holders.empty() ? std::string() : holders.begin()->second.program;
        for (auto& [uid, why] : lost)
            audit_cut(cause, LiveInstances::Judged{name, uid, prog.id, why_not.empty(), "shared instance: " + why, why_not});
        ++(why_not.empty() ? counts.cut : counts.uncut);
        it = drop_shared(it);
    }
    metrics_.revoked_instances.fetch_add(counts.cut, std::memory_order_relaxed);
    metrics_.uncut_instances.fetch_add(counts.uncut, std::memory_order_relaxed);
    return counts;
}

void Broker::audit_cut(const RequestContext& cause, const LiveInstances::Judged& j)
{
    // One record per instance: whose it is, which program, cut or not and why.
    AuditRecord r;
    r.action = "cut";
    r.transport = std::string(transport_name(cause.transport));
    r.program = j.program;
    r.uid = j.uid;
    r.prog_id = j.prog_id;
    r.allowed = j.cut;
    if (!j.cut)
        r.code = ErrorCode::Unsupported;
    r.reason = j.cut ? "cut live: " + j.why_gone : "not cut (" + j.why_not_cut + "): " + j.why_gone;
    (void)record_counting_losses(r);  // the cut is done; a lost record is logged and counted
}

Result<void> Broker::record_counting_losses(const AuditRecord& r)
{
    auto recorded = audit_.record(r);
    if (!recorded)
        metrics_.audit_records_lost.fetch_add(1, std::memory_order_relaxed);
    return recorded;
}

std::string Broker::metrics_text()
{
    // Forgets released per-client instances first, so the gauges are exact
    // at the moment of reading; shared instances are counted at load/drop.
    // A sweep probes every tracked instance (up to kMaxTrackedInstances
    // bpf() calls) and anyone may ask for metrics, so it runs at most every
    // 100 ms: callers cannot turn GetMetrics into a flood of bpf() calls.
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    const std::int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
    std::int64_t last = last_metrics_sweep_ns_.load(std::memory_order_relaxed);
    if (now_ns - last >= kMetricsSweepIntervalNs &&
        last_metrics_sweep_ns_.compare_exchange_strong(last, now_ns, std::memory_order_relaxed))
        instances_.forget_released_now();
    auto snap = snapshot();
    std::map<std::string, std::size_t> states;
    for (const auto& e : snap->catalog.entries)
        ++states[std::string(policy::entry_state_name(e.state))];
    return metrics_.render(states);
}

std::shared_ptr<const PolicySnapshot> Broker::snapshot() const
{
    std::lock_guard lock(snapshot_mutex_);
    return snapshot_;
}

std::vector<policy::PolicyProblem> Broker::problems() const
{
    auto snap = snapshot();
    std::vector<policy::PolicyProblem> out = snap->catalog.problems;
    out.insert(out.end(), snap->catalog.keys.problems.begin(), snap->catalog.keys.problems.end());
    out.insert(out.end(), snap->grants.problems.begin(), snap->grants.problems.end());
    return out;
}

Result<void> Broker::audit(std::string_view action, const RequestContext& ctx, const std::string& program, const Error* denial,
                   std::string reason, const Handout* handout, const policy::CatalogEntry* decided_on,
                   std::uint64_t suppressed)
{
    AuditRecord r;
    r.suppressed = suppressed;
    r.action = std::string(action);
    r.transport = std::string(transport_name(ctx.transport));
    r.program = program;
    r.uid = ctx.peer.uid;
    r.pid = ctx.peer.pid;
    r.allowed = denial == nullptr;
    if (denial) {
        r.code = denial->code;
        r.reason = denial->message;
    } else {
        r.reason = std::move(reason);  // moved: a conditional with the const message would copy it
    }
    if (handout) {
        r.prog_id = handout->prog_id;
        r.tag = handout->tag;
    }
    // An acquire record names the manifest and signer of the entry it was
    // decided on, or, refused before that, of the catalog's now (a reload
    // racing the request may show the newer one).
    std::shared_ptr<const PolicySnapshot> now;  // held until recorded: the record views its entry
    if (action == "acquire") {
        const policy::CatalogEntry* entry = decided_on;
        if (!entry && policy::is_valid_program_name(program)) {
            now = snapshot();
            entry = now->catalog.find(program);
        }
        if (entry) {
            r.manifest_sha256 = entry->manifest_sha256;
            r.signer = entry->signer_key_id;
        }
    }
    return record_counting_losses(r);
}

Error Broker::deny(std::string_view action, const RequestContext& ctx, const std::string& program, Error error)
{
    (void)audit(action, ctx, program, &error, {});  // refused either way
    return error;
}

Error Broker::deny_repeatable(std::string_view action, const RequestContext& ctx, const std::string& program, Error error)
{
    auto suppressed_before = refusal_records_.admit(ctx.peer.uid);
    if (!suppressed_before) {
        metrics_.audit_refusals_suppressed.fetch_add(1, std::memory_order_relaxed);
        return error;
    }
    (void)audit(action, ctx, program, &error, {}, nullptr, nullptr, *suppressed_before);  // refused either way
    return error;
}

bool Broker::verdict_matches(const PolkitVerdict& verdict, const RequestContext& ctx, std::string_view action)
{
    return ctx.transport == TransportKind::Dbus && verdict.action() == action && verdict.uid() == ctx.peer.uid &&
           verdict.bus_name() == ctx.bus_name;
}

Outcome<Handout> Broker::acquire(const RequestContext& ctx, const AcquireRequest& request, const PolkitVerdict* verdict)
{
    // Every decided outcome counts once; a question for polkit is not one
    // (the call carrying the verdict is). The slot lookup hashes the name in
    // a read-only table: no lock, no allocation.
    const auto start = std::chrono::steady_clock::now();
    auto snap = snapshot();
    auto outcome = decide_acquire(ctx, *snap, request, verdict);
    if (outcome.needs_polkit())
        return outcome;
    auto transport = ctx.transport == TransportKind::Dbus ? MetricTransport::Dbus : MetricTransport::Socket;
    metrics_.program(snap->metric_slots.get(), request.name).count_acquire(transport, outcome.ok());
    if (outcome.ok())
        metrics_.acquire_duration.observe(std::chrono::steady_clock::now() - start);
    return outcome;
}

Outcome<Handout> Broker::decide_acquire(const RequestContext& ctx, const PolicySnapshot& current,
                                        const AcquireRequest& request, const PolkitVerdict* verdict)
{
    constexpr std::string_view kAction = "acquire";
    const auto& name = request.name;
    const auto* snap = &current;
    // One token per request, taken before anything else so that every
    // refusal recorded in full costs one (a name from D-Bus can be
    // megabytes: the record caps it); the call that carries polkit's
    // verdict is the same request as the one that asked for it.
    if (!verdict && !rate_.allow(ctx.peer.uid, snap->settings.max_requests_per_second))
        return deny_repeatable(kAction, ctx, name,
                               make_error(ErrorCode::LimitExceeded, "uid " + std::to_string(ctx.peer.uid) +
                                                                        " asked for more than " +
                                                                        std::to_string(snap->settings.max_requests_per_second) +
                                                                        " programs per second"));
    if (!policy::is_valid_program_name(name))
        return deny(kAction, ctx, name, make_error(ErrorCode::InvalidParameter, "not a valid program name"));
    const auto* entry = snap->catalog.find(name);
    if (!entry)
        return deny(kAction, ctx, name,
                    make_error(ErrorCode::ProgramNotFound, "no program named \"" + name + "\" in the catalog" +
                                                               snap->catalog.absence_reason(name)));
    // Only per-client programs are limited; counting probes the kernel only
    // for a uid at its limit.
    bool per_client = entry->manifest && entry->manifest->instance == policy::InstanceMode::PerClient;
    const unsigned limit = snap->settings.limits.max_instances_per_uid;
    policy::Usage usage{per_client ? instances_.count(ctx.peer.uid, limit) : 0u};
    auto decision = policy::decide(*entry, snap->grants, ctx.peer, available_features_, usage, snap->settings.limits);
    if (!decision.allowed)
        return deny(kAction, ctx, name, make_error(decision.code, decision.reason));
    // io_uring_ops programs run in a ring the caller names (AttachRing), and
    // only they take one.
    const bool ring_program = policy::is_ring_attached(entry->manifest->programs.front().type);
    if (ring_program && !request.ring)
        return deny(kAction, ctx, name,
                    make_error(ErrorCode::InvalidParameter,
                               "\"" + name + "\" runs inside the caller's io_uring ring: attach it with AttachRing "
                               "on the socket (org.bpfbroker.Broker), which names the ring; D-Bus cannot vouch "
                               "for the caller's pidfd"));
    if (!ring_program && request.ring)
        return deny(kAction, ctx, name,
                    make_error(ErrorCode::InvalidParameter,
                               "\"" + name + "\" is not an io_uring_ops program: AttachRing is for those only"));
    if (!request.links_accepted && policy::is_broker_attached(entry->manifest->programs.front().type))
        return deny(kAction, ctx, name,
                    make_error(ErrorCode::InvalidParameter, "\"" + name + "\" is attached by the broker and answered "
                                                            "with links, which this method cannot carry: use "
                                                            "AcquireProgramWithOptions"));
    // Every value the program gets, checked before polkit is asked: bound
    // ones from the kernel's word, chosen ones within the manifest's bounds.
    auto caller = caller_identity(ctx, *entry->manifest);
    if (!caller)
        return deny(kAction, ctx, name, std::move(caller).error());
    // The daemon's copy of the caller's ring, checked; closed when this
    // request ends (the registered program does not need it).
    std::optional<CallerRing> ring;
    if (request.ring) {
        auto taken = take_caller_ring(ctx, *request.ring);
        if (!taken)
            return deny(kAction, ctx, name, std::move(taken).error());
        ring = std::move(*taken);
        caller->ring = ring->layout;
    }
    auto values = resolve_parameters(*entry->manifest, *caller,
                                     ParameterValues(request.parameters.begin(), request.parameters.end()));
    if (!values)
        return deny(kAction, ctx, name, std::move(values).error());
    if (decision.needs_polkit) {
        if (!ctx.polkit_reachable)
            return deny(kAction, ctx, name,
                        make_error(ErrorCode::PermissionDenied, polkit_unreachable_reason(name, ctx.transport)));
        if (!verdict)
            return PolkitQuestion{kPolkitActionAcquire};
        if (!verdict_matches(*verdict, ctx, kPolkitActionAcquire))
            return deny(kAction, ctx, name,
                        make_error(ErrorCode::Internal, "a polkit verdict about another caller or action was offered"));
        if (!verdict->allowed())
            return deny(kAction, ctx, name,
                        make_error(ErrorCode::PermissionDenied,
                                   "the grant for \"" + name + "\" requires polkit authorization: " + verdict->why()));
    }
    // Fail closed: hand_out records the hand-out (record_hand_out) before
    // registering it, and a hand-out the audit log cannot hold is not made.
    // Its refusal is recorded like any other (a sink that took the allow
    // record holds the deny after it, naming the program id withdrawn).
    auto h = hand_out(ctx, *snap, *entry, *values, ring ? &*ring : nullptr, std::move(decision.reason));
    if (!h)
        return deny(kAction, ctx, name, std::move(h).error());
    return std::move(*h);
}

std::map<std::string, Broker::SharedInstance>::iterator Broker::drop_shared(
    std::map<std::string, SharedInstance>::iterator it)
{
    if (it->second.gauge)
        it->second.gauge->live_instances.fetch_sub(1, std::memory_order_relaxed);
    if (journal_)
        journal_->record_shared_forgotten(it->first);
    const LoadedInstance& loaded = it->second.loaded;
    if (fd_store_ && !loaded.programs.empty()) {
        std::vector<std::uint32_t> map_ids;
        for (const auto& m : loaded.maps)
            map_ids.push_back(m.id);
        fd_store_->drop_shared(loaded.programs.front().id, map_ids);
    }
    return shared_instances_.erase(it);  // replies still queued keep their fd open
}

void Broker::journal_shared(const std::string& key, const policy::CatalogEntry& entry, const LoadedInstance& instance)
{
    // Broker-attached shared instances are not journalled: a restart drops
    // them (their links hold them; see docs/architecture.md).
    if (!journal_ || policy::is_broker_attached(instance.programs.front().type))
        return;
    const auto& prog = instance.programs.front();
    SavedShared s;
    s.key = key;
    s.manifest_sha256 = entry.manifest_sha256;
    s.parameters.insert(instance.parameters.begin(), instance.parameters.end());
    s.prog_name = prog.name;
    s.prog_id = prog.id;
    s.tag = prog.tag;
    for (const auto& m : instance.maps)
        s.maps.push_back({m.name, m.id});
    if (instance.guard)
        s.guard = SavedGuard{instance.guard->name(), instance.guard->map_id(), instance.guard->offset()};
    journal_->record_shared_added(s);
    // The store keeps the program even while nobody holds it: its id stays.
    if (keep_in_store(shared_program_fd_name(prog.id), prog.fd.get()))
        for (const auto& m : instance.maps)
            keep_in_store(shared_map_fd_name(prog.id, m.id), m.fd.get());
}

bool Broker::keep_in_store(const std::string& name, int fd)
{
    if (!fd_store_)
        return false;
    if (fd_store_->keep(name, fd))
        return true;
    log_caller_warning("fd-store", "the service manager's fd store did not take " + name + " (" +
                                       std::to_string(fd_store_->size()) + " of at most " +
                                       std::to_string(kFdStoreMax) + " held); a restart re-opens it by id");
    return false;
}

// With a service manager's fd store, it keeps the guard's map and the
// ring's link of a new per-client instance, so that a restart finds them
// whatever happened to the daemon. Not a guard map that was handed out: the
// store would keep it past its program, and the tracker count it live.
void Broker::store_instance_fds(LiveInstances::Entry& live, std::optional<RevocationGuard>& guard)
{
    if (!fd_store_)
        return;
    if (guard && std::find(live.map_ids.begin(), live.map_ids.end(), guard->map_id()) == live.map_ids.end() &&
        keep_in_store(guard_fd_name(live.prog_id), guard->map_fd()))
        live.stored_guard = std::move(guard);
    if (live.link_to_detach)
        keep_in_store(link_fd_name(live.prog_id), live.link_to_detach.get());
}

Result<Broker::SharedInstance*> Broker::shared_instance(const std::string& key, const policy::CatalogEntry& entry,
                                                const ParameterValues& values, const Metrics::Slots* slots, uid_t caller)
{
    // Held across the load so that concurrent first acquires load once.
    auto it = shared_instances_.find(key);
    if (it != shared_instances_.end())
        return &it->second;
    std::size_t of_manifest = 0, of_caller = 0;
    for (const auto& [k, inst] : shared_instances_)
        if (k.starts_with(entry.manifest_sha256)) {
            ++of_manifest;
            // One whose hand-out failed (no holder) is nobody's doing.
            of_caller += inst.loaded_for == caller && !inst.holders.empty() ? 1 : 0;
        }
    if (of_manifest >= kMaxSharedInstancesPerManifest)
        return fail(ErrorCode::LimitExceeded, "\"" + entry.name + "\" already has shared instances for " +
                                                  std::to_string(kMaxSharedInstancesPerManifest) +
                                                  " distinct parameter values; choose values already in use");
    if (of_caller >= kMaxSharedInstancesPerUid)
        return fail(ErrorCode::LimitExceeded, "uid " + std::to_string(caller) + " has had shared instances of \"" +
                                                  entry.name + "\" loaded for " +
                                                  std::to_string(kMaxSharedInstancesPerUid) +
                                                  " distinct parameter values; choose values already in use");
    auto loaded = programs_->load(entry, values);
    if (!loaded)
        return fail(std::move(loaded).error());
    auto [inserted, _] =
        shared_instances_.emplace(key, SharedInstance{std::move(*loaded), nullptr, {}, false, nullptr, caller});
    journal_shared(key, entry, inserted->second.loaded);
    auto& gauge = metrics_.program(slots, entry.name);
    gauge.live_instances.fetch_add(1, std::memory_order_relaxed);
    inserted->second.gauge = &gauge;
    return &inserted->second;
}

Result<void> Broker::add_links(const LoadedInstance& instance, Handout& h)
{
    auto links = programs_->attach(instance);
    if (!links)
        return fail(std::move(links).error());
    for (auto& l : *links)
        h.links.push_back({std::move(l.program), std::move(l.fd)});
    return {};
}

Result<UniqueFd> Broker::add_ring_link(const LoadedInstance& instance, const CallerRing& ring, Handout& h)
{
    auto link = programs_->register_on_ring(instance, ring);
    if (!link)
        return fail(std::move(link).error());
    UniqueFd dup = UniqueFd::dup_cloexec(link->get());
    if (!dup)
        return fail(make_system_error("duplicating the ring's link failed", errno));
    h.links.push_back({instance.programs.front().name, std::move(*link)});
    h.attach = "io_uring_fd:" + std::to_string(ring.caller_fd);  // the caller's number for its ring
    return dup;
}

Result<void> Broker::add_client_maps(const LoadedInstance& instance, Handout& h)
{
    for (const auto& m : instance.maps) {
        if (m.access == policy::ClientAccess::None)
            continue;
        auto fd = programs_->map_fd_for_client(m);
        if (!fd)
            return fail(std::move(fd).error());
        h.maps.push_back({m.name, m.access, std::move(*fd)});
    }
    return {};
}

// A reload that publishes a newer policy cuts only what is registered when
// it looks (cut_ungranted). A hand-out decided on the older one and
// registered after that look would keep a grant a revoke just ended; so
// once registered, it is judged again on the newest policy. Either the
// cut sees the registration, or this sees the policy the cut acted on:
// both take the same lock (live_'s, or shared_mutex_ for shared holders)
// after the policy is published.
Result<void> Broker::still_granted(const PolicySnapshot& decided_on, const policy::CatalogEntry& entry,
                                   const policy::Peer& peer) const
{
    auto now = snapshot();
    if (now.get() == &decided_on)
        return {};
    auto why = grant_gone(HeldGrant{entry.name, peer, entry.manifest_sha256, entry.signer_key_id}, now->catalog, now->grants,
                          available_features_);
    if (!why)
        return {};
    return fail(ErrorCode::PermissionDenied,
                "the policy changed while \"" + entry.name + "\" was being loaded for this call: " + *why);
}

Result<void> Broker::record_hand_out(const RequestContext& ctx, const policy::CatalogEntry& entry,
                                     std::string allow_reason, const Handout& h)
{
    auto recorded = audit("acquire", ctx, entry.name, nullptr,
                          with_handout_summary(std::move(allow_reason), *entry.manifest, h), &h, &entry);
    if (!recorded)
        return fail(ErrorCode::SystemError, "the broker cannot write this hand-out to its audit log (" +
                                                std::string(std::strerror(recorded.error().sys_errno)) +
                                                "), so it hands nothing out (program id " + std::to_string(h.prog_id) +
                                                " withdrawn); the daemon's log says more");
    return {};
}

Result<Handout> Broker::hand_out(const RequestContext& ctx, const PolicySnapshot& snap, const policy::CatalogEntry& entry,
                                 const ParameterValues& values, const CallerRing* ring, std::string allow_reason)
{
    const auto& manifest = *entry.manifest;
    Handout h;
    h.name = entry.name;
    h.version = manifest.version;
    h.type = manifest.programs.front().type;
    h.program_name = manifest.programs.front().name;
    h.instance = manifest.instance;
    h.parameters.insert(values.begin(), values.end());
    // A broker-attached program's fd is never handed out: with it the holder
    // could attach it anywhere its type allows. Links and maps only.
    const bool broker_attached = policy::is_broker_attached(h.type);
    if (broker_attached)
        h.attach = manifest.programs.front().attach;

    if (manifest.instance == policy::InstanceMode::Shared) {
        std::lock_guard lock(shared_mutex_);
        const std::string& key = shared_key(shared_key_buffer_, entry.manifest_sha256, values);
        auto inst = shared_instance(key, entry, values, snap.metric_slots.get(), ctx.peer.uid);
        if (!inst)
            return fail(std::move(inst).error());
        SharedInstance& shared = **inst;
        const auto& prog = shared.loaded.programs.front();
        h.prog_id = prog.id;
        h.tag = prog.tag;
        if (broker_attached) {
            if (auto ok = add_links(shared.loaded, h); !ok)
                return fail(std::move(ok).error());
        } else {
            // One duplicate per shared instance, not per acquire: each
            // reply holds a reference to it until its fd is sent.
            auto& for_clients = shared.for_clients;
            if (!for_clients) {
                auto fd = programs_->program_fd_for_client(prog.fd);
                if (!fd)
                    return fail(std::move(fd).error());
                for_clients = std::make_shared<const UniqueFd>(std::move(*fd));
            }
            h.program = HandedFd(for_clients);
            // sd-bus adopts an fd of the reply's own: the copy is made here,
            // so a failure to make it is a refusal, audited as one.
            if (ctx.transport == TransportKind::Dbus) {
                UniqueFd own = h.program.take();
                if (!own)
                    return fail(make_system_error("duplicating the program fd for the reply failed", errno));
                h.program = HandedFd(std::move(own));
            }
        }
        if (auto ok = add_client_maps(shared.loaded, h); !ok)
            return fail(std::move(ok).error());
        // The shared instance stays loaded either way (it outlives its
        // holders); only a hand-out still granted and recorded makes the
        // caller one (judged under shared_mutex_, as a cut's holder walk is).
        if (auto granted = still_granted(snap, entry, ctx.peer); !granted)
            return fail(std::move(granted).error());
        if (auto recorded = record_hand_out(ctx, entry, std::move(allow_reason), h); !recorded)
            return fail(std::move(recorded).error());
        // Who holds it, to judge their grants again after a policy change.
        auto& holders = shared.holders;
        const bool journalled = journal_ && !broker_attached;
        if (auto at = holders.find(ctx.peer.uid); at != holders.end()) {
            // A repeat acquire writes nothing; the record follows the
            // newest (its peer, the version), copied only when it changed.
            if (!holds_as(at->second, entry, ctx.peer))
                at->second = HeldGrant{entry.name, ctx.peer, entry.manifest_sha256, entry.signer_key_id};
        } else if (holders.size() < kMaxSharedHoldersPerInstance) {
            // A new holder is journalled.
            auto& held = holders[ctx.peer.uid];
            held = HeldGrant{entry.name, ctx.peer, entry.manifest_sha256, entry.signer_key_id};
            if (journalled)
                journal_->record_shared_holder(key, held);
        } else if (!shared.holders_overflowed) {
            shared.holders_overflowed = true;
            if (journalled)
                journal_->record_shared_overflowed(key);
        }
        return h;
    }
    // The slot is taken before the load: two concurrent requests of one uid
    // cannot both pass the limit, and nothing is loaded for a uid at it. A
    // failed load releases the slot with `slot`. The one place the core uses
    // the tracker for a hand-out; broker-attached instances count the same.
    const unsigned limit = snap.settings.limits.max_instances_per_uid;
    auto slot = instances_.reserve(ctx.peer.uid, limit);
    if (!slot)
        return fail(ErrorCode::LimitExceeded, "uid " + std::to_string(ctx.peer.uid) + " already holds " +
                                                  std::to_string(limit) + " live per-client instances; close some first");
    auto inst = programs_->load(entry, values);
    if (!inst)
        return fail(std::move(inst).error());
    auto& prog = inst->programs.front();
    h.prog_id = prog.id;
    h.tag = prog.tag;
    if (auto ok = add_client_maps(*inst, h); !ok)
        return fail(std::move(ok).error());
    // Every per-client instance is registered with its guard (none when
    // the manifest declares none), so a revocation reaches it.
    LiveInstances::Entry live;
    live.held = HeldGrant{entry.name, ctx.peer, entry.manifest_sha256, entry.signer_key_id};
    live.prog_id = prog.id;
    if (inst->guard)  // by id: the loaded instance's fd of it closes with `inst`
        live.guard = SavedGuard{inst->guard->name(), inst->guard->map_id(), inst->guard->offset()};
    live.tag = prog.tag;
    for (const auto& m : inst->maps)
        if (m.access != policy::ClientAccess::None)
            live.map_ids.push_back(m.id);
    live.broker_attached = broker_attached;
    UniqueFd pidfd;
    if (broker_attached) {
        if (!live.guard)
            return fail(ErrorCode::Internal, "broker-attached \"" + entry.name + "\" loaded without its guard");
        UniqueFd ring_link;  // the daemon's duplicate, for BPF_LINK_DETACH
        if (ring) {
            auto link = add_ring_link(*inst, *ring, h);
            if (!link)
                return fail(std::move(link).error());
            ring_link = std::move(*link);
        } else if (auto ok = add_links(*inst, h); !ok) {
            return fail(std::move(ok).error());
        }
        live.link_to_detach = std::move(ring_link);  // revocation detaches it
        // The guard is set when the caller exits; without the caller's pidfd
        // (D-Bus: uid-bound programs only) it waits for revocation.
        if (ctx.caller_pidfd >= 0) {
            pidfd = UniqueFd(::fcntl(ctx.caller_pidfd, F_DUPFD_CLOEXEC, 0));
            if (!pidfd)
                return fail(make_system_error("F_DUPFD_CLOEXEC of the caller's pidfd", errno));
            // For a restart: the pid (backed by the pidfd, not readable
            // yet) and its start time tell the caller from a reused pid.
            live.caller_pid = ctx.peer.pid;
            live.caller_start_time = process_start_time(ctx.peer.pid);
        }
    }
    if (live.link_to_detach)
        live.link_id = bpf_fd_id(live.link_to_detach.get(), BpfFdKind::Link);
    store_instance_fds(live, inst->guard);
    // On failure the links close with `h`, which detaches them; an instance
    // that could not be registered is not handed out: revocation could not reach it.
    std::vector<std::uint32_t> handed_map_ids = live.map_ids;
    if (auto ok = live_.add(std::move(live), std::move(pidfd)); !ok) {
        if (fd_store_)
            fd_store_->drop_instance(prog.id);
        return fail(std::move(ok).error());
    }
    // Judged again and recorded once registered (the registry can still
    // refuse it), before the slot is committed: no longer granted or
    // unrecorded, the registry withdraws it (cut, so a copy of its link in
    // the fd store keeps nothing attached; then its journal record, stored
    // fds, caller watch and the daemon's link duplicate go), the slot is
    // released, and the links close with `h`.
    Result<void> recorded = still_granted(snap, entry, ctx.peer);
    if (recorded)
        recorded = record_hand_out(ctx, entry, std::move(allow_reason), h);
    if (!recorded) {
        live_.withdraw(ctx.peer.uid, prog.id);
        if (auto rewritten = live_.rewrite_journal(false); !rewritten)
            log_warning("state journal: " + rewritten.error().describe());
        return fail(std::move(recorded).error());
    }
    if (auto rewritten = live_.rewrite_journal(false); !rewritten)
        log_warning("state journal: " + rewritten.error().describe());
    slot.commit(h.prog_id, std::move(handed_map_ids),
                &metrics_.program(snap.metric_slots.get(), entry.name).live_instances);
    if (!broker_attached)
        h.program = std::move(prog.fd);
    return h;
}

Result<std::vector<ProgramListing>> Broker::list(const RequestContext& ctx)
{
    if (ctx.peer.uid != 0 && !list_rate_.allow(ctx.peer.uid, Limits::kListingsPerSecond))
        return fail(ErrorCode::LimitExceeded, "uid " + std::to_string(ctx.peer.uid) + " listed the programs more than " +
                                                  std::to_string(Limits::kListingsPerSecond) + " times a second");
    auto snap = snapshot();
    const unsigned limit = snap->settings.limits.max_instances_per_uid;
    policy::Usage usage{instances_.count(ctx.peer.uid, limit)};
    std::vector<ProgramListing> out;
    for (const auto& e : snap->catalog.entries) {
        ProgramListing l;
        l.name = e.name;
        l.state = e.state;
        if (e.manifest) {
            l.version = e.manifest->version;
            l.description = e.manifest->description;
            l.instance = e.manifest->instance;
        }
        auto d = policy::decide(e, snap->grants, ctx.peer, available_features_, usage, snap->settings.limits);
        l.needs_polkit = d.needs_polkit;
        l.cut_live = e.manifest && policy::can_be_cut_live(*e.manifest);
        l.allowed = d.allowed && !(d.needs_polkit && !ctx.polkit_reachable);
        if (d.allowed && !l.allowed) {
            l.code = ErrorCode::PermissionDenied;
            l.reason = polkit_unreachable_reason(e.name, ctx.transport);
        } else if (!d.allowed) {
            l.code = d.code;
            l.reason = d.reason;
        }
        out.push_back(std::move(l));
    }
    return out;
}

Broker::AdminGate Broker::admit_admin(const RequestContext& ctx, std::string_view action, const std::string& program,
                                      const PolkitVerdict* verdict)
{
    auto d = policy::decide_admin(ctx.peer, ctx.polkit_reachable);
    if (!d.allowed)
        return {deny_repeatable(action, ctx, program, make_error(d.code, admin_unreachable_reason(action, ctx.transport))),
                {}};
    if (!d.needs_polkit)
        return {};
    if (!verdict)
        return {{}, PolkitQuestion{kPolkitActionManage}};
    if (!verdict_matches(*verdict, ctx, kPolkitActionManage))
        return {deny(action, ctx, program,
                     make_error(ErrorCode::Internal, "a polkit verdict about another caller or action was offered")),
                {}};
    if (!verdict->allowed())
        return {deny_repeatable(action, ctx, program, make_error(ErrorCode::PermissionDenied, verdict->why())), {}};
    return {};
}

Outcome<policy::Grant> Broker::approve(const RequestContext& ctx, const ApproveRequest& request,
                                       const PolkitVerdict* verdict)
{
    constexpr std::string_view kAction = "approve";
    if (auto gate = admit_admin(ctx, kAction, request.program, verdict); !gate.go_on())
        return gate.stop<policy::Grant>();
    std::lock_guard admin(admin_mutex_);
    auto refuse = [&](Error err) { return deny(kAction, ctx, request.program, std::move(err)); };
    // Approve what is on disk now, not what the last reload saw.
    if (auto r = reload_and_cut(ctx); !r)
        return refuse(std::move(r).error());
    auto snap = snapshot();
    const auto* entry = snap->catalog.find(request.program);
    if (!entry)
        return refuse(make_error(ErrorCode::ProgramNotFound,
                                 "no program named \"" + cap_for_record(request.program, 64) + "\""));
    if (!entry->valid())
        return refuse(make_error(entry->error.code, "cannot approve \"" + request.program +
                                                        "\" as it is not valid: " + entry->error.message));
    policy::Grant g;
    g.program = entry->name;
    g.match = policy::MatchKind::ManifestSha256;
    g.match_value = entry->manifest_sha256;
    if (!request.signer.empty()) {
        // A grant by signer covers later versions too: only for the key that
        // signed the program now, so a mistyped id cannot grant nothing (or another key).
        if (!is_sha256_hex(request.signer))
            return refuse(make_error(ErrorCode::InvalidParameter, "signer must be a key id: 64 lower-case hex digits"));
        if (request.signer != entry->signer_key_id)
            return refuse(make_error(ErrorCode::InvalidParameter, "\"" + request.program + "\" is signed by " +
                                                                   entry->signer_key_id + ", not " +
                                                                   cap_for_record(request.signer, 64)));
        g.match = policy::MatchKind::Signer;
        g.match_value = request.signer;
    }
    g.polkit = request.polkit;
    g.source = std::string(policy::paths::kStateDir) + "/" + std::string(policy::paths::kApprovalsFile);
    if (auto ok = add_principals(request.users, g.principals.user_names, g.principals.uids, "user"); !ok)
        return refuse(std::move(ok).error());
    if (auto ok = add_principals(request.groups, g.principals.group_names, g.principals.gids, "group"); !ok)
        return refuse(std::move(ok).error());
    g.principals.anyone = request.anyone;
    if (g.principals.empty())
        return refuse(make_error(ErrorCode::InvalidParameter, "approve needs users, groups or anyone"));

    auto rootfd = policy::open_trusted_root(config_.root, config_.trust);
    if (!rootfd)
        return refuse(std::move(rootfd).error());
    auto stored = policy::ApprovalsStore::update(rootfd->get(), config_.trust, [&](policy::Approvals& a) -> Result<void> {
        a.approve(g);
        return {};
    });
    if (!stored)
        return refuse(std::move(stored).error());
    if (auto r = reload_and_cut(ctx); !r)
        return refuse(std::move(r).error());
    (void)audit(kAction, ctx, request.program, nullptr,
                std::string(g.match == policy::MatchKind::Signer ? "approved signer " : "approved manifest ") + g.match_value);
    if (auto* events = events_.load())
        events->program_approved(g.program, g.match_value);
    return g;
}

Outcome<RevokeSummary> Broker::revoke(const RequestContext& ctx, const RevokeRequest& request,
                                      const PolkitVerdict* verdict)
{
    constexpr std::string_view kAction = "revoke";
    const auto& program = request.program;
    if (auto gate = admit_admin(ctx, kAction, program, verdict); !gate.go_on())
        return gate.stop<RevokeSummary>();
    std::lock_guard admin(admin_mutex_);
    auto refuse = [&](Error err) { return deny(kAction, ctx, program, std::move(err)); };
    if (!policy::is_valid_program_name(program))
        return refuse(make_error(ErrorCode::InvalidParameter, "not a valid program name"));
    auto rootfd = policy::open_trusted_root(config_.root, config_.trust);
    if (!rootfd)
        return refuse(std::move(rootfd).error());
    std::size_t removed = 0;
    auto stored = policy::ApprovalsStore::update(rootfd->get(), config_.trust, [&](policy::Approvals& a) -> Result<void> {
        removed = a.revoke(program);
        return {};
    });
    if (!stored)
        return refuse(std::move(stored).error());
    // Every live instance whose grant is gone is cut here: this program's,
    // and any other a change on disk since the last reload ended.
    auto cut = reload_and_cut(ctx);
    if (!cut)
        return refuse(std::move(cut).error());
    (void)audit(kAction, ctx, program, nullptr,
                "removed " + std::to_string(removed) + " approvals; live instances cut " + std::to_string(cut->cut) +
                    ", not cut " + std::to_string(cut->uncut));
    if (auto* events = events_.load())
        events->program_revoked(program);
    return RevokeSummary{removed, *cut};
}

Outcome<ReloadSummary> Broker::reload(const RequestContext& ctx, const PolkitVerdict* verdict)
{
    constexpr std::string_view kAction = "reload";
    if (auto gate = admit_admin(ctx, kAction, {}, verdict); !gate.go_on())
        return gate.stop<ReloadSummary>();
    std::lock_guard admin(admin_mutex_);
    auto cut = reload_and_cut(ctx);
    if (!cut)
        return deny(kAction, ctx, {}, std::move(cut).error());
    (void)audit(kAction, ctx, {}, nullptr,
                "catalog reloaded; live instances cut " + std::to_string(cut->cut) + ", not cut " + std::to_string(cut->uncut));
    auto snap = snapshot();
    if (auto* events = events_.load())
        events->catalog_reloaded(snap->catalog.entries.size());
    return ReloadSummary{snap->catalog.entries.size(), snap->grants.grants.size(), *cut};
}

}  // namespace bpfbroker::brokerd
