// pkt_count: a socket filter that counts the packets of the socket it is
// attached to and lets every one through; the example program of the
// packager's kit (examples/program_package).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

SEC("socket")
int count(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&packets, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
	return skb->len;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
