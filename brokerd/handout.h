// The core's typed requests and answers, shared by every transport: what a
// caller asks for (AcquireRequest, ApproveRequest, ...) and what it gets (a
// Handout, ProgramListing rows). Each transport has one to_wire() per type;
// names for the enums come from policy/manifest.h and policy/catalog.h.
#pragma once

#include "brokerd/handed_fd.h"
#include "brokerd/ring_layout.h"
#include "policy/catalog.h"
#include "policy/manifest.h"

#include <bpfbroker/error.h>
#include <bpfbroker/unique_fd.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bpfbroker::brokerd {

struct AcquireRequest {
    std::string name;
    // Values the caller chooses within the manifest's bounds (issue 9);
    // a program without choices takes none.
    std::map<std::string, std::uint64_t> parameters;
    // False where the method's reply has no place for links (D-Bus
    // AcquireProgram): broker-attached programs are refused before loading.
    bool links_accepted = true;
    // AttachRing (io_uring_ops programs only): the caller's ring to run in.
    std::optional<RingRequest> ring{};
};

struct ApproveRequest {
    std::string program;
    std::vector<std::string> users;   // names or decimal uids
    std::vector<std::string> groups;  // names or decimal gids
    bool anyone = false;
    bool polkit = false;
    std::string signer;  // key id: a grant by signer (empty: by this manifest's hash)
};

struct RevokeRequest {
    std::string program;
};

// Live instances a policy change reached: cut (guard set or link
// detached), or not cut (no guard, or the kernel refused).
struct CutCounts {
    std::size_t cut = 0;
    std::size_t uncut = 0;
    CutCounts& operator+=(const CutCounts& o)
    {
        cut += o.cut;
        uncut += o.uncut;
        return *this;
    }
};

struct RevokeSummary {
    std::size_t removed_approvals = 0;
    CutCounts instances;
};

struct ReloadSummary {
    std::size_t programs = 0;
    std::size_t grants = 0;
    CutCounts instances;  // live instances whose grant the reloaded policy no longer holds
};

struct HandedMap {
    std::string name;
    policy::ClientAccess access = policy::ClientAccess::Read;
    UniqueFd fd;
};

// A link the broker attached on the caller's behalf: closing it detaches.
struct HandedLink {
    std::string program;
    UniqueFd fd;
};

// What a hand-out's reply says of the program, on either transport (its
// info): comparable, so a reply written before can be known to say it.
struct HandoutInfo {
    std::string name;
    std::string version;
    policy::ProgramType type = policy::ProgramType::SocketFilter;
    policy::InstanceMode instance = policy::InstanceMode::Shared;
    std::uint32_t prog_id = 0;
    std::string tag;
    std::string attach;                               // broker-attached: the attach point
    std::map<std::string, std::uint64_t> parameters;  // values written into .rodata

    bool operator==(const HandoutInfo&) const = default;
};

// What a caller receives for one acquire.
struct Handout : HandoutInfo {
    std::string program_name;        // the program's function name (manifest)
    HandedFd program;                // client-attached programs only (shared: see handed_fd.h)
    std::vector<HandedLink> links;   // broker-attached programs only
    std::vector<HandedMap> maps;     // only maps with client access
};

// One row of ListPrograms, from the caller's point of view on its transport.
struct ProgramListing {
    std::string name;
    std::string version;
    std::string description;
    policy::EntryState state = policy::EntryState::Invalid;
    std::optional<policy::InstanceMode> instance;  // none without a manifest
    bool allowed = false;  // whether this caller may acquire it now, here
    bool needs_polkit = false;
    bool cut_live = false;  // the manifest declares a revocation guard: revoke reaches live instances
    std::optional<ErrorCode> code;  // why not
    std::string reason;
};

}  // namespace bpfbroker::brokerd
