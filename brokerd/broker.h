// The broker core, shared by every transport: it holds the verified policy
// (catalog, grants, settings) and the kernel's features, decides, loads and
// hands out fds. Transports translate requests into these calls and replies
// out of their results; they never decide anything themselves.
//
// Thread-safe: the socket server and the D-Bus service call it from
// different threads. The policy is an immutable snapshot swapped on reload,
// so a request sees one consistent policy from decision to hand-out.
#pragma once

#include "brokerd/acquire_rate_limiter.h"
#include "brokerd/audit_log.h"
#include "brokerd/broker_events.h"
#include "brokerd/feature_probe.h"
#include "brokerd/instance_tracker.h"
#include "brokerd/program_loader.h"
#include "policy/catalog.h"
#include "policy/decide.h"
#include "policy/grants.h"
#include "policy/settings.h"

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bpfbroker::brokerd {

struct BrokerConfig {
    std::string root = "/";
    policy::FileTrust trust;  // owner of policy files: root unless testing
    std::string settings_file;  // empty: etc/bpfbroker/bpfbroker.json under root
};

// What a caller receives for one acquire.
struct Handout {
    std::string name;
    std::string version;
    std::string type;      // "socket_filter", ...
    std::string instance;  // "shared" or "per-client"
    std::uint32_t prog_id = 0;
    std::string tag;
    UniqueFd program;
    std::vector<std::pair<std::string, UniqueFd>> maps;  // only maps with client access
    std::vector<std::pair<std::string, std::string>> map_access;  // name -> "read"/"write"
};

// One row of ListPrograms, from the caller's point of view.
struct ProgramListing {
    std::string name;
    std::string version;
    std::string description;
    std::string state;     // catalog state
    std::string instance;
    bool allowed = false;  // whether this caller may acquire it now
    bool needs_polkit = false;
    std::string code;      // why not, as an ErrorCode name
    std::string reason;
};

struct ApproveRequest {
    std::string program;
    std::vector<std::string> users;   // names or decimal uids
    std::vector<std::string> groups;  // names or decimal gids
    bool anyone = false;
    bool polkit = false;
    std::string signer;  // key id: a grant by signer (empty: by this manifest's hash)
};

struct PolicySnapshot {
    policy::Catalog catalog;
    policy::GrantSet grants;
    policy::Settings settings;
};

// The decision for one acquire before anything is loaded; a transport that
// can ask polkit does so between authorize() and hand_out().
struct Authorization {
    std::shared_ptr<const PolicySnapshot> snapshot;
    const policy::CatalogEntry* entry = nullptr;
    policy::Decision decision;
};

class Broker {
public:
    Broker(BrokerConfig config, FeatureReport features, AuditLog& audit);

    // Rescans catalog, grants and settings. On failure the old policy stays.
    Result<void> reload();

    [[nodiscard]] std::shared_ptr<const PolicySnapshot> snapshot() const;
    [[nodiscard]] const FeatureReport& features() const { return features_; }
    [[nodiscard]] const policy::Settings& settings() const { return snapshot()->settings; }

    // Decide only. Denials are audited here; allowed ones when handed out.
    Authorization authorize(const policy::Peer& peer, const std::string& name, const std::string& transport);
    // Load (or reuse) and hand out. `polkit_ok` says polkit agreed where the grant asked.
    Result<Handout> hand_out(const policy::Peer& peer, const Authorization& auth, const std::string& transport,
                             bool polkit_ok);
    // authorize + hand_out for transports without polkit: grants needing it are refused.
    Result<Handout> acquire(const policy::Peer& peer, const std::string& name, const std::string& transport);

    std::vector<ProgramListing> list(const policy::Peer& peer);

    // Admin operations; the transport has checked the caller may administer.
    Result<policy::Grant> approve(const policy::Peer& peer, const ApproveRequest& request, const std::string& transport);
    Result<std::size_t> revoke(const policy::Peer& peer, const std::string& program, const std::string& transport);
    Result<void> reload_as(const policy::Peer& peer, const std::string& transport);

    // Receives approve/revoke/reload notifications (may be null).
    void set_events(BrokerEvents* events) { events_ = events; }

    // One audit record; transports use it for refusals they make themselves
    // (an admin call from a non-admin).
    void audit(const std::string& action, const std::string& transport, const std::string& program,
               const policy::Peer& peer, bool allowed, const std::string& code, const std::string& reason,
               std::uint32_t prog_id = 0, const std::string& tag = {});

    // Problems found by the last reload, for the daemon to log.
    [[nodiscard]] std::vector<policy::PolicyProblem> problems() const;

private:
    Result<std::shared_ptr<PolicySnapshot>> load_snapshot() const;
    Result<LoadedInstance*> shared_instance(const policy::CatalogEntry& entry);

    BrokerConfig config_;
    FeatureReport features_;
    std::set<std::string, std::less<>> available_features_;
    AuditLog& audit_;
    std::atomic<BrokerEvents*> events_{nullptr};  // set by the main thread, read by either
    InstanceTracker instances_;
    AcquireRateLimiter rate_;

    mutable std::mutex snapshot_mutex_;
    std::shared_ptr<const PolicySnapshot> snapshot_;

    std::mutex shared_mutex_;
    std::map<std::string, LoadedInstance> shared_instances_;  // by manifest sha256

    std::mutex admin_mutex_;  // one approve/revoke/reload at a time
};

}  // namespace bpfbroker::brokerd
