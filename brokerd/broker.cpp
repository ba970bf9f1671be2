// The broker core; see broker.h.
#include "brokerd/broker.h"

#include "policy/approvals_store.h"
#include "policy/paths.h"
#include "policy/strict_json.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
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
            return fail(ErrorCode::InvalidParameter, std::string(what) + " \"" + item + "\" is not a valid name");
        if (!nss_knows(what, item))
            return fail(ErrorCode::InvalidParameter, std::string("no ") + what + " named \"" + item + "\" is known on this system");
        names.push_back(item);
    }
    return {};
}

}  // namespace

Broker::Broker(BrokerConfig config, FeatureReport features, AuditLog& audit)
    : config_(std::move(config)), features_(std::move(features)), available_features_(features_.available()),
      audit_(audit), snapshot_(std::make_shared<PolicySnapshot>())
{
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
    auto catalog = policy::scan_catalog(config_.root, config_.trust);
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
    {
        std::lock_guard lock(snapshot_mutex_);
        snapshot_ = std::move(*snap);
    }
    // Shared instances of manifests no longer in the catalog are dropped;
    // clients keep the fds they already hold.
    auto current = snapshot();
    std::lock_guard lock(shared_mutex_);
    for (auto it = shared_instances_.begin(); it != shared_instances_.end();) {
        bool still_there = std::any_of(current->catalog.entries.begin(), current->catalog.entries.end(),
                                       [&](const policy::CatalogEntry& e) {
                                           return e.valid() && e.manifest_sha256 == it->first;
                                       });
        it = still_there ? std::next(it) : shared_instances_.erase(it);
    }
    return {};
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

void Broker::audit(const std::string& action, const std::string& transport, const std::string& program,
                   const policy::Peer& peer, bool allowed, const std::string& code, const std::string& reason,
                   std::uint32_t prog_id, const std::string& tag)
{
    AuditRecord r;
    r.action = action;
    r.transport = transport;
    r.program = program;
    r.uid = peer.uid;
    r.pid = peer.pid;
    r.allowed = allowed;
    r.code = code;
    r.reason = reason;
    r.prog_id = prog_id;
    r.tag = tag;
    audit_.record(r);
}

Authorization Broker::authorize(const policy::Peer& peer, const std::string& name, const std::string& transport)
{
    Authorization auth;
    auth.snapshot = snapshot();
    if (!policy::is_valid_program_name(name)) {
        // Checked before anything else: a name from D-Bus can be megabytes.
        auth.decision = policy::Decision::deny(ErrorCode::InvalidParameter, "not a valid program name");
        audit("acquire", transport, name.substr(0, 64), peer, false, "InvalidParameter", auth.decision.reason);
        return auth;
    }
    auth.entry = auth.snapshot->catalog.find(name);
    if (!rate_.allow(peer.uid, auth.snapshot->settings.max_requests_per_second)) {
        auth.entry = nullptr;
        auth.decision = policy::Decision::deny(
            ErrorCode::LimitExceeded, "uid " + std::to_string(peer.uid) + " asked for more than " +
                                          std::to_string(auth.snapshot->settings.max_requests_per_second) +
                                          " programs per second");
    } else if (!auth.entry) {
        auth.decision = policy::Decision::deny(ErrorCode::ProgramNotFound, "no program named \"" + name + "\" in the catalog");
    } else {
        // Counting asks the kernel about each tracked id: only per-client
        // programs are limited, so shared acquires skip it.
        bool per_client = auth.entry->manifest && auth.entry->manifest->instance == policy::InstanceMode::PerClient;
        policy::Usage usage{per_client ? instances_.live_count(peer.uid) : 0u};
        auth.decision = policy::decide(*auth.entry, auth.snapshot->grants, peer, available_features_, usage,
                                       auth.snapshot->settings.limits);
    }
    if (!auth.decision.allowed)
        audit("acquire", transport, name, peer, false, std::string(error_code_name(auth.decision.code)),
              auth.decision.reason);
    return auth;
}

Result<LoadedInstance*> Broker::shared_instance(const policy::CatalogEntry& entry)
{
    // Held across the load so that concurrent first acquires load once.
    auto it = shared_instances_.find(entry.manifest_sha256);
    if (it != shared_instances_.end())
        return &it->second;
    auto loaded = load_instance(entry);
    if (!loaded)
        return fail(std::move(loaded).error());
    auto [inserted, _] = shared_instances_.emplace(entry.manifest_sha256, std::move(*loaded));
    return &inserted->second;
}

Result<Handout> Broker::hand_out(const policy::Peer& peer, const Authorization& auth, const std::string& transport,
                                 bool polkit_ok)
{
    const auto& name = auth.entry ? auth.entry->name : std::string();
    if (!auth.decision.allowed)
        return fail(auth.decision.code, auth.decision.reason);
    if (auth.decision.needs_polkit && !polkit_ok) {
        std::string reason = "the grant for \"" + name + "\" requires polkit authorization (org.bpfbroker.acquire), which was not given";
        audit("acquire", transport, name, peer, false, "PermissionDenied", reason);
        return fail(ErrorCode::PermissionDenied, reason);
    }
    const auto& entry = *auth.entry;
    const auto& manifest = *entry.manifest;
    auto deny_with = [&](Error err) -> Result<Handout> {
        audit("acquire", transport, name, peer, false, std::string(error_code_name(err.code)), err.message);
        return fail(std::move(err));
    };

    Handout h;
    h.name = entry.name;
    h.version = manifest.version;
    h.type = std::string(policy::program_type_name(manifest.programs.front().type));
    h.instance = std::string(policy::instance_mode_name(manifest.instance));

    auto add_maps = [&](const LoadedInstance& inst) -> Result<void> {
        for (const auto& m : inst.maps) {
            if (m.access == policy::ClientAccess::None)
                continue;
            auto fd = client_map_fd(m);
            if (!fd)
                return fail(std::move(fd).error());
            h.maps.emplace_back(m.name, std::move(*fd));
            h.map_access.emplace_back(m.name, std::string(policy::client_access_name(m.access)));
        }
        return {};
    };

    if (manifest.instance == policy::InstanceMode::Shared) {
        std::lock_guard lock(shared_mutex_);
        auto inst = shared_instance(entry);
        if (!inst)
            return deny_with(std::move(inst).error());
        const auto& prog = (*inst)->programs.front();
        auto fd = duplicate_for_client(prog.fd);
        if (!fd)
            return deny_with(std::move(fd).error());
        h.program = std::move(*fd);
        h.prog_id = prog.id;
        h.tag = prog.tag;
        if (auto ok = add_maps(**inst); !ok)
            return deny_with(std::move(ok).error());
    } else {
        auto inst = load_instance(entry);
        if (!inst)
            return deny_with(std::move(inst).error());
        auto& prog = inst->programs.front();
        h.prog_id = prog.id;
        h.tag = prog.tag;
        if (auto ok = add_maps(*inst); !ok)
            return deny_with(std::move(ok).error());
        // Counted and recorded under one lock: two concurrent requests that
        // both passed authorize() cannot both exceed the limit. The loser's
        // fresh instance closes with `inst`.
        std::vector<std::uint32_t> handed_map_ids;
        for (const auto& m : inst->maps)
            if (m.access != policy::ClientAccess::None)
                handed_map_ids.push_back(m.id);
        if (!instances_.record_within_limit(peer.uid, h.prog_id, auth.snapshot->settings.limits.max_instances_per_uid,
                                            std::move(handed_map_ids)))
            return deny_with(make_error(ErrorCode::LimitExceeded,
                                        "uid " + std::to_string(peer.uid) + " reached its limit of live per-client instances"));
        h.program = std::move(prog.fd);
    }
    audit("acquire", transport, name, peer, true, "", auth.decision.reason, h.prog_id, h.tag);
    return h;
}

Result<Handout> Broker::acquire(const policy::Peer& peer, const std::string& name, const std::string& transport)
{
    auto auth = authorize(peer, name, transport);
    return hand_out(peer, auth, transport, false);
}

std::vector<ProgramListing> Broker::list(const policy::Peer& peer)
{
    auto snap = snapshot();
    policy::Usage usage{instances_.live_count(peer.uid)};
    std::vector<ProgramListing> out;
    for (const auto& e : snap->catalog.entries) {
        ProgramListing l;
        l.name = e.name;
        l.state = std::string(policy::entry_state_name(e.state));
        if (e.manifest) {
            l.version = e.manifest->version;
            l.description = e.manifest->description;
            l.instance = std::string(policy::instance_mode_name(e.manifest->instance));
        }
        auto d = policy::decide(e, snap->grants, peer, available_features_, usage, snap->settings.limits);
        l.allowed = d.allowed;
        l.needs_polkit = d.needs_polkit;
        if (!d.allowed) {
            l.code = std::string(error_code_name(d.code));
            l.reason = d.reason;
        }
        out.push_back(std::move(l));
    }
    return out;
}

Result<policy::Grant> Broker::approve(const policy::Peer& peer, const ApproveRequest& request, const std::string& transport)
{
    std::lock_guard admin(admin_mutex_);
    auto fail_audited = [&](Error err) -> Result<policy::Grant> {
        audit("approve", transport, request.program, peer, false, std::string(error_code_name(err.code)), err.message);
        return fail(std::move(err));
    };
    // Approve what is on disk now, not what the last reload saw.
    if (auto r = reload(); !r)
        return fail_audited(std::move(r).error());
    auto snap = snapshot();
    const auto* entry = snap->catalog.find(request.program);
    if (!entry)
        return fail_audited(make_error(ErrorCode::ProgramNotFound, "no program named \"" + request.program + "\""));
    if (!entry->valid())
        return fail_audited(make_error(entry->error.code, "cannot approve \"" + request.program +
                                                              "\" as it is not valid: " + entry->error.message));
    policy::Grant g;
    g.program = entry->name;
    g.match = policy::MatchKind::ManifestSha256;
    g.match_value = entry->manifest_sha256;
    if (!request.signer.empty()) {
        // A grant by signer covers later versions too: only for the key that
        // signed the program now, so a mistyped id cannot grant nothing (or another key).
        if (!policy::is_sha256_hex(request.signer))
            return fail_audited(make_error(ErrorCode::InvalidParameter, "signer must be a key id: 64 lower-case hex digits"));
        if (request.signer != entry->signer_key_id)
            return fail_audited(make_error(ErrorCode::InvalidParameter, "\"" + request.program + "\" is signed by " +
                                                                         entry->signer_key_id + ", not " + request.signer));
        g.match = policy::MatchKind::Signer;
        g.match_value = request.signer;
    }
    g.polkit = request.polkit;
    g.source = std::string(policy::paths::kStateDir) + "/" + std::string(policy::paths::kApprovalsFile);
    if (auto ok = add_principals(request.users, g.principals.user_names, g.principals.uids, "user"); !ok)
        return fail_audited(std::move(ok).error());
    if (auto ok = add_principals(request.groups, g.principals.group_names, g.principals.gids, "group"); !ok)
        return fail_audited(std::move(ok).error());
    g.principals.anyone = request.anyone;
    if (g.principals.empty())
        return fail_audited(make_error(ErrorCode::InvalidParameter, "approve needs users, groups or anyone"));

    auto rootfd = policy::open_trusted_root(config_.root, config_.trust);
    if (!rootfd)
        return fail_audited(std::move(rootfd).error());
    auto stored = policy::ApprovalsStore::update(rootfd->get(), config_.trust, [&](policy::Approvals& a) -> Result<void> {
        a.approve(g);
        return {};
    });
    if (!stored)
        return fail_audited(std::move(stored).error());
    if (auto r = reload(); !r)
        return fail_audited(std::move(r).error());
    audit("approve", transport, request.program, peer, true, "",
          std::string(g.match == policy::MatchKind::Signer ? "approved signer " : "approved manifest ") + g.match_value);
    if (auto* events = events_.load())
        events->program_approved(g.program, g.match_value);
    return g;
}

Result<std::size_t> Broker::revoke(const policy::Peer& peer, const std::string& program, const std::string& transport)
{
    std::lock_guard admin(admin_mutex_);
    auto fail_audited = [&](Error err) -> Result<std::size_t> {
        audit("revoke", transport, program, peer, false, std::string(error_code_name(err.code)), err.message);
        return fail(std::move(err));
    };
    if (!policy::is_valid_program_name(program))
        return fail_audited(make_error(ErrorCode::InvalidParameter, "not a valid program name"));
    auto rootfd = policy::open_trusted_root(config_.root, config_.trust);
    if (!rootfd)
        return fail_audited(std::move(rootfd).error());
    std::size_t removed = 0;
    auto stored = policy::ApprovalsStore::update(rootfd->get(), config_.trust, [&](policy::Approvals& a) -> Result<void> {
        removed = a.revoke(program);
        return {};
    });
    if (!stored)
        return fail_audited(std::move(stored).error());
    if (auto r = reload(); !r)
        return fail_audited(std::move(r).error());
    audit("revoke", transport, program, peer, true, "", "removed " + std::to_string(removed) + " approvals");
    if (auto* events = events_.load())
        events->program_revoked(program);
    return removed;
}

Result<void> Broker::reload_as(const policy::Peer& peer, const std::string& transport)
{
    std::lock_guard admin(admin_mutex_);
    auto r = reload();
    audit("reload", transport, "", peer, bool(r), r ? "" : std::string(error_code_name(r.error().code)),
          r ? "catalog reloaded" : r.error().message);
    if (auto* events = events_.load(); r && events)
        events->catalog_reloaded(snapshot()->catalog.entries.size());
    return r;
}

}  // namespace bpfbroker::brokerd
