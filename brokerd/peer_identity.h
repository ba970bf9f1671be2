// Who is on the other end of a connection, from the kernel (SO_PEERCRED,
// SO_PEERGROUPS) or from the bus's recorded credentials, never from anything
// the caller says. Names come from NSS, cached for 10 s (both transports
// look them up off their loops: peer_name_resolver.h, and for D-Bus
// pending_name_lookups.h); a D-Bus caller's groups come from the bus
// (bus_caller_cache.h), or from NSS when the bus does not say.
#pragma once

#include "policy/decide.h"

#include <bpfbroker/result.h>

#include <sys/types.h>

#include <vector>

namespace bpfbroker::brokerd {

// Fills user and group names for the ids in `peer`. Names are cached for a
// few seconds (bounded), so a caller repeating requests costs no NSS calls.
void resolve_peer_names(policy::Peer& peer);

// resolve_peer_names() from the cache alone, never asking NSS: false (and
// `peer`'s names untouched) when an answer is missing or stale. For the
// socket's event loop and the bus thread, which must never wait on the
// user database.
bool resolve_peer_names_cached(policy::Peer& peer);

// The identity of the process that connected an AF_UNIX socket, ids only:
// no user database lookup, so an accept never waits on NSS.
Result<policy::Peer> peer_credentials_from_socket(int fd);


}  // namespace bpfbroker::brokerd
