/* reuseport_cpu: an SO_REUSEPORT selector that steers each datagram to the
 * socket the client registered for the CPU receiving it, so a thread pinned
 * to CPU n that reads socket n keeps the flow CPU-local.
 *
 * When the CPU's slot is empty (or the CPU number is past the array, or the
 * socket left the group), bpf_sk_select_reuseport() fails and we still return
 * SK_PASS without a selection: the kernel then falls back to its usual hash
 * over the group. A half-filled array thus degrades to plain SO_REUSEPORT
 * rather than dropping traffic; SK_DROP would make every gap a blackhole. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfbroker_guard.h"
#include "reuseport_cpu.h"

/* REUSEPORT_SOCKARRAY takes sizes, not BTF types: its value is an fd on
 * update and a cookie on lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, REUSEPORT_CPU_MAX_SOCKETS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
} sockets SEC(".maps");

SEC("sk_reuseport")
int select_by_cpu(struct sk_reuseport_md *md)
{
	__u32 cpu = bpf_get_smp_processor_id();

	/* Revoked: no selection, the kernel's own hash over the group. */
	BPFBROKER_PASS_IF_REVOKED(SK_PASS);
	bpf_sk_select_reuseport(md, &sockets, &cpu, 0);
	return SK_PASS;
}

/* Neither helper is GPL-only (checked: it loads under a proprietary
 * license); dual licensing keeps every helper available regardless. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
