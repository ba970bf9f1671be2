// D-Bus calls waiting for their caller's user and group names. The bus
// thread must never wait on NSS (one uid's lookup stalled on a dead LDAP
// server would stall every D-Bus caller), so a call whose names are not in
// the names cache (resolve_peer_names_cached) is parked here while a
// PeerNameResolver worker looks them up, and continued on the bus thread
// once they arrive: the bus thread polls ready_fd() and calls
// dispatch_ready(). Calls for the same ids share one lookup, so a stalled
// uid holds up one worker however often it calls. What one uid, and all
// uids together, may park is bounded; past that a call is refused
// (LimitExceeded) rather than queued. Used on one thread only.
#pragma once

#include "brokerd/peer_name_resolver.h"
#include "policy/decide.h"

#include <bpfbroker/result.h>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <tuple>
#include <vector>

namespace bpfbroker::brokerd {

class PendingNameLookups {
public:
    // Receives the peer with its names filled in.
    using Continuation = std::function<void(policy::Peer)>;

    // `lookup` as for PeerNameResolver (resolve_peer_names by default).
    explicit PendingNameLookups(PeerNameResolver::Lookup lookup = {});

    // Calls `then` with `peer` named: before returning when the names
    // cache has the names, else from a later dispatch_ready(). Fails with
    // LimitExceeded, and never calls `then`, when the peer's uid or all
    // uids together have as many calls parked as they may.
    Result<void> with_names(policy::Peer peer, Continuation then);

    // Readable when dispatch_ready() has calls to continue.
    [[nodiscard]] int ready_fd() const { return resolver_.ready_fd(); }
    // Continues every parked call whose names have arrived.
    void dispatch_ready();

    // Calls parked now, and lookups running for them.
    [[nodiscard]] std::size_t parked() const { return parked_total_; }
    [[nodiscard]] std::size_t lookups() const { return lookups_.size(); }

private:
    // What the names depend on: two calls with the same ids share a lookup.
    using Ids = std::tuple<uid_t, gid_t, std::vector<gid_t>>;
    struct Parked {
        policy::Peer peer;  // the caller's own (pid differs between callers of one uid)
        Continuation then;
    };
    struct Lookup {
        Ids ids;
        std::vector<Parked> calls;
    };

    PeerNameResolver resolver_;
    std::map<std::uint64_t, Lookup> lookups_;  // by resolver ticket
    std::map<Ids, std::uint64_t> ticket_of_;
    std::map<uid_t, std::size_t> parked_per_uid_;
    std::size_t parked_total_ = 0;
    std::uint64_t next_ticket_ = 0;
};

}  // namespace bpfbroker::brokerd
