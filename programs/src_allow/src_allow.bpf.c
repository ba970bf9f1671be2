/* src_allow: a socket filter that accepts a datagram only when its source
 * address falls in a prefix the client allowed, and drops everything else,
 * including every packet while the tries are empty (fail closed).
 *
 * The address is read from the IP header relative to the network header
 * (see socket_skb.h). The family comes from skb->protocol, not from the
 * socket: an IPv6 socket that also accepts IPv4 sees v4 packets as ETH_P_IP,
 * so those are judged by allowed_v4. */
#include "bpfbroker_guard.h"
#include "socket_skb.h"
#include "src_allow.h"

/* BPF_F_NO_PREALLOC is mandatory for LPM tries; it also means an empty
 * per-client instance costs no memory. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SRC_ALLOW_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct src_allow_v4_key);
	__type(value, __u8);
} allowed_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SRC_ALLOW_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct src_allow_v6_key);
	__type(value, __u8);
} allowed_v6 SEC(".maps");

#define IPV4_SOURCE_OFFSET 12
#define IPV6_SOURCE_OFFSET 8

/* Keys are filled field by field, not with an initializer: clang keeps a
 * mostly-zero initializer as a constant in .rodata, which would give the object
 * an extra map that the manifest does not list. The address bytes come from
 * the helper, which writes (or on failure zeroes) the whole buffer. */
static __always_inline int source_allowed(struct __sk_buff *skb)
{
	__u8 *verdict = NULL;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct src_allow_v4_key key;

		key.prefixlen = 32;
		if (load_from_network_header(skb, IPV4_SOURCE_OFFSET, key.addr, sizeof(key.addr)))
			return 0;
		verdict = bpf_map_lookup_elem(&allowed_v4, &key);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct src_allow_v6_key key;

		key.prefixlen = 128;
		if (load_from_network_header(skb, IPV6_SOURCE_OFFSET, key.addr, sizeof(key.addr)))
			return 0;
		verdict = bpf_map_lookup_elem(&allowed_v6, &key);
	}
	return verdict && *verdict == SRC_ALLOW_ALLOW;
}

SEC("socket")
int src_allow(struct __sk_buff *skb)
{
	/* Revoked: the filter stops filtering (its fail-closed default would
	 * turn a revocation into a blackhole the administrator did not ask for). */
	BPFBROKER_PASS_IF_REVOKED(skb->len);
	return source_allowed(skb) ? skb->len : SOCKET_FILTER_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
