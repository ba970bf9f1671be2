// User and group names for socket peers, looked up off the event-loop
// thread. The loop asks the names cache first (resolve_peer_names_cached,
// no NSS); when an answer is missing it hands the peer to a worker thread
// and serves everyone else meanwhile. A worker that stalls in NSS (a slow
// LDAP server, say) holds up only the callers whose names it is fetching;
// with kWorkers workers, that many stalled lookups are needed before a new
// uid's lookup waits behind them. Callers whose names are cached never wait.
#pragma once

#include "policy/decide.h"

#include <bpfbroker/unique_fd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace bpfbroker::brokerd {

class PeerNameResolver {
public:
    static constexpr unsigned kWorkers = 2;
    using Lookup = std::function<void(policy::Peer&)>;

    // `lookup` fills a peer's names (may block); resolve_peer_names by default.
    explicit PeerNameResolver(Lookup lookup = {});
    // Stops the workers without waiting for one stuck in a lookup.
    ~PeerNameResolver();
    PeerNameResolver(const PeerNameResolver&) = delete;
    PeerNameResolver& operator=(const PeerNameResolver&) = delete;

    // Looks `peer` up on a worker; take_done() returns it with `ticket`.
    void submit(std::uint64_t ticket, policy::Peer peer);
    // Readable (an eventfd) when lookups are done.
    [[nodiscard]] int ready_fd() const;
    // The finished lookups since the last call.
    std::vector<std::pair<std::uint64_t, policy::Peer>> take_done();

private:
    struct State;
    std::shared_ptr<State> state_;  // shared with the workers, which may outlive this object
};

}  // namespace bpfbroker::brokerd
