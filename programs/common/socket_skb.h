/* Reading packet headers from a socket-attached BPF program (SEC("socket")),
 * identically on a real socket and under BPF_PROG_TEST_RUN.
 *
 * Where skb->data points differs between the two (measured on kernel 6.18):
 *
 *   real UDP socket   the filter runs in udp_queue_rcv_one_skb() via
 *                     sk_filter_trim_cap(), after the IP layer pulled its
 *                     header: skb->data is the UDP header and skb->len is
 *                     8 + payload (10-byte datagram -> len 18, v4 and v6).
 *   BPF_PROG_TEST_RUN the input is an Ethernet frame; eth_type_trans() pulls
 *                     the 14-byte MAC header: skb->data is the IP header and
 *                     skb->len is the frame length - 14.
 *
 * In both, the network header is the IP header and skb->protocol is the
 * ethertype (network byte order). So every read here is relative to the
 * network header with bpf_skb_load_bytes_relative(BPF_HDR_START_NET), never
 * relative to skb->data. Note that bpf_skb_load_bytes() does NOT accept
 * SKF_NET_OFF (-0x100000) offsets: it returns -EFAULT for any offset above
 * INT_MAX; only LD_ABS/LD_IND understand SKF_NET_OFF.
 *
 * A socket filter keeps the datagram when it returns a value >= skb->len
 * (smaller non-zero values truncate it) and drops it when it returns 0.
 */
#ifndef BPFBROKER_PROGRAMS_SOCKET_SKB_H
#define BPFBROKER_PROGRAMS_SOCKET_SKB_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SOCKET_FILTER_DROP 0

#define IPV4_MIN_HEADER_LEN 20
#define IPV6_HEADER_LEN 40
#define UDP_HEADER_LEN 8

/* Extension headers between the IPv6 header and UDP that we step over. The
 * fragment header needs no handling: reassembly removes it before a socket
 * sees the datagram. The bound keeps the walk verifiable. */
#define IPV6_MAX_EXTENSION_HEADERS 6

static __always_inline int load_from_network_header(struct __sk_buff *skb, __u32 offset,
                                                    void *to, __u32 len)
{
	return bpf_skb_load_bytes_relative(skb, offset, to, len, BPF_HDR_START_NET);
}

/* Offset of the UDP header from the network header, or -1 when the packet is
 * not UDP over IPv4/IPv6 (which a UDP socket never delivers). */
static __always_inline int udp_header_offset(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u8 version_ihl, protocol;

		if (load_from_network_header(skb, 0, &version_ihl, 1) ||
		    load_from_network_header(skb, 9, &protocol, 1))
			return -1;
		if ((version_ihl >> 4) != 4 || protocol != IPPROTO_UDP)
			return -1;
		int header_len = (version_ihl & 0x0f) * 4;
		return header_len >= IPV4_MIN_HEADER_LEN ? header_len : -1;
	}

	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		__u8 next_header;
		int offset = IPV6_HEADER_LEN;

		if (load_from_network_header(skb, 6, &next_header, 1))
			return -1;
		for (int i = 0; i < IPV6_MAX_EXTENSION_HEADERS; i++) {
			if (next_header == IPPROTO_UDP)
				return offset;
			if (next_header != IPPROTO_HOPOPTS && next_header != IPPROTO_ROUTING &&
			    next_header != IPPROTO_DSTOPTS)
				return -1;
			/* [next header, length in 8-octet units not counting the first] */
			__u8 extension[2];
			if (load_from_network_header(skb, offset, extension, sizeof(extension)))
				return -1;
			next_header = extension[0];
			offset += (extension[1] + 1) * 8;
		}
		return next_header == IPPROTO_UDP ? offset : -1;
	}

	return -1;
}

/* The UDP payload length (what recv() returns), from the UDP header's length
 * field, or -1 when it cannot be read. Using the header rather than skb->len
 * gives the same answer under test runs and on real sockets. */
static __always_inline int udp_payload_len(struct __sk_buff *skb)
{
	int offset = udp_header_offset(skb);
	__be16 udp_len;

	if (offset < 0 || load_from_network_header(skb, offset + 4, &udp_len, sizeof(udp_len)))
		return -1;
	int len = bpf_ntohs(udp_len);
	return len >= UDP_HEADER_LEN ? len - UDP_HEADER_LEN : -1;
}

#endif
