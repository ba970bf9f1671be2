// What the end-to-end tests do with an acquired udp_stats (a counting
// socket filter): attach it to a socket through the caller's own io_uring,
// and read how many datagrams it counted.
#pragma once

#include "support/client_ring.h"
#include "support/loopback_socket.h"

#include "udp_stats/udp_stats.h"

#include <bpfbroker/client.h>
#include <bpfbroker/uring_attach.h>

#include <bpf/bpf.h>

#include <cstdint>

namespace bpfbroker::e2e {

inline void attach_through_ring(test_support::LoopbackSocket& socket, const UniqueFd& prog)
{
    Ring ring(8);
    auto attached = attach_via_ring(ring.get(), socket.fd.get(), prog.get(), AttachKind::SocketFilter);
    test_support::require(bool(attached), "attach: " + (attached ? "" : attached.error().describe()));
}

inline std::uint64_t packets_counted(const Program& p)
{
    const UniqueFd* stats = p.map("stats");
    test_support::require(stats != nullptr, "no stats map");
    __u32 key = 0;
    udp_stats totals{};
    test_support::require(bpf_map_lookup_elem(stats->get(), &key, &totals) == 0,
                          "lookup stats: " + test_support::errno_text(errno));
    return totals.packets;
}

}  // namespace bpfbroker::e2e
