// D-Bus calls parked until their caller's names are known; see
// pending_name_lookups.h.
#include "brokerd/pending_name_lookups.h"

#include "brokerd/limits.h"
#include "brokerd/peer_identity.h"

#include <string>
#include <utility>

namespace bpfbroker::brokerd {

PendingNameLookups::PendingNameLookups(PeerNameResolver::Lookup lookup) : resolver_(std::move(lookup)) {}

Result<void> PendingNameLookups::with_names(policy::Peer peer, Continuation then)
{
    if (resolve_peer_names_cached(peer)) {
        then(std::move(peer));
        return {};
    }
    auto& per_uid = parked_per_uid_[peer.uid];
    if (per_uid >= Limits::kNameWaitsPerUid || parked_total_ >= Limits::kNameWaitsTotal) {
        const std::size_t waiting = per_uid;  // read before the entry may go
        if (waiting == 0)
            parked_per_uid_.erase(peer.uid);
        return fail(ErrorCode::LimitExceeded,
                    waiting >= Limits::kNameWaitsPerUid
                        ? "uid " + std::to_string(peer.uid) + " already has " + std::to_string(waiting) +
                              " calls waiting for the user database; try again when they are answered"
                        : "too many calls are waiting for the user database; try again later");
    }
    ++per_uid;
    ++parked_total_;
    Ids ids{peer.uid, peer.gid, peer.gids};
    if (auto known = ticket_of_.find(ids); known != ticket_of_.end()) {
        lookups_[known->second].calls.push_back(Parked{std::move(peer), std::move(then)});
        return {};
    }
    auto ticket = ++next_ticket_;
    ticket_of_.emplace(ids, ticket);
    auto& lookup = lookups_[ticket];
    lookup.ids = std::move(ids);
    resolver_.submit(ticket, peer);
    lookup.calls.push_back(Parked{std::move(peer), std::move(then)});
    return {};
}

void PendingNameLookups::dispatch_ready()
{
    for (auto& [ticket, named] : resolver_.take_done()) {
        auto it = lookups_.find(ticket);
        if (it == lookups_.end())
            continue;
        auto lookup = std::move(it->second);
        lookups_.erase(it);
        ticket_of_.erase(lookup.ids);
        // Unparked before any continues: a continuation that throws
        // leaves the counts right.
        for (auto& call : lookup.calls) {
            if (--parked_per_uid_[call.peer.uid] == 0)
                parked_per_uid_.erase(call.peer.uid);
            --parked_total_;
        }
        for (auto& call : lookup.calls) {
            // The same ids give the same names (and the same gids, which
            // the lookup completes with the primary group).
            call.peer.user_name = named.user_name;
            call.peer.group_names = named.group_names;
            call.peer.gids = named.gids;
            call.then(std::move(call.peer));
        }
    }
}

}  // namespace bpfbroker::brokerd
