/* drop_small: a socket filter that drops UDP datagrams whose payload is
 * shorter than min_payload_len bytes. The caller chooses the minimum in its
 * request (the manifest's "choice", 0..65535); the broker writes it into
 * .rodata before load, so the verifier sees a constant. MIN_PAYLOAD_LEN (from
 * the build) is only the object's own initial value, the manifest's default,
 * which the verdict tests load as it is. It has no maps, so one loaded
 * instance per chosen minimum is shared by every client that chose it.
 *
 * The payload length comes from the UDP header's length field, read relative
 * to the network header (see socket_skb.h): skb->len would mean "UDP header +
 * payload" on a real socket but "IP + UDP + payload" under a test run.
 *
 * The revocation guard makes it the one .bss map of the object; that does
 * not stop sharing: only the broker writes it, for every holder at once. */
#include "bpfbroker_guard.h"
#include "socket_skb.h"

#ifndef MIN_PAYLOAD_LEN
#error "MIN_PAYLOAD_LEN must be defined by the build"
#endif

const volatile __u32 min_payload_len = MIN_PAYLOAD_LEN;

SEC("socket")
int drop_small(struct __sk_buff *skb)
{
	int payload;

	/* Revoked: the datagram is kept, as without the filter. */
	BPFBROKER_PASS_IF_REVOKED(skb->len);
	payload = udp_payload_len(skb);
	/* Something that is not a readable UDP datagram cannot be measured; this
	 * filter only judges sizes, so it lets such packets through. */
	if (payload < 0)
		return skb->len;
	return (__u32)payload < min_payload_len ? SOCKET_FILTER_DROP : skb->len;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
