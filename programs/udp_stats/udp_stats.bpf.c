/* udp_stats: a socket filter that counts the datagrams and payload bytes
 * offered to the UDP socket it is attached to, and accepts them all.
 *
 * The counters sit in a one-entry ARRAY rather than a PERCPU_ARRAY so that a
 * client holding only a read-only map fd reads the totals with one lookup,
 * without knowing the CPU count; atomic adds keep them exact. */
#include "bpfbroker_guard.h"
#include "socket_skb.h"
#include "udp_stats.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct udp_stats);
} stats SEC(".maps");

SEC("socket")
int count(struct __sk_buff *skb)
{
	__u32 key = 0;
	struct udp_stats *totals;

	/* Revoked: keep the datagram, count nothing. */
	BPFBROKER_PASS_IF_REVOKED(skb->len);
	totals = bpf_map_lookup_elem(&stats, &key);

	if (totals) {
		/* A UDP socket only ever sees UDP; if the header cannot be read the
		 * datagram is still counted, with no bytes, rather than guessed. */
		int payload = udp_payload_len(skb);

		__sync_fetch_and_add(&totals->packets, 1);
		if (payload > 0)
			__sync_fetch_and_add(&totals->bytes, payload);
	}
	return skb->len;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
