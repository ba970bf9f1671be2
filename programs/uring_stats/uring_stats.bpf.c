/* uring_stats: io_uring statistics of one process (target_tgid, bound by the
 * broker to the caller's tgid): submissions and completions per opcode,
 * failed completions per errno, and a log2 histogram of submit -> first
 * completion latency. Layouts in uring_stats.h.
 *
 * Three raw tracepoints (no tracefs needed), argument layouts as in 6.18's
 * include/trace/events/io_uring.h (checked against vmlinux BTF):
 *   io_uring_create(int fd, void *ctx, u32 sq_entries, u32 cq_entries, u32 flags)
 *   io_uring_submit_req(struct io_kiocb *req)
 *   io_uring_complete(struct io_ring_ctx *ctx, void *req, struct io_uring_cqe *cqe)
 *
 * Why rings and not tasks for completions: a CQE may be posted by another
 * task than the submitter (io-wq workers are ours, but a MSG_RING from
 * another process, or a completion run from another context, is not), so
 * the program remembers the rings the target submits on and counts the
 * completions of those rings. A ring freed and its memory reused for a new
 * ring is forgotten when io_uring_create reports the new ring, so another
 * process's ring at a recycled address is not counted. */
#include <linux/bpf.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "bpfbroker_guard.h"
#include "uring_stats.h"

/* Only the fields read here, relocated by libbpf against the kernel's BTF. */
struct io_ring_ctx;
struct io_kiocb {
	__u8 opcode;
	struct io_ring_ctx *ctx;
} __attribute__((preserve_access_index));
struct io_uring_cqe {
	__u64 user_data;
	__s32 res;
	__u32 flags;
} __attribute__((preserve_access_index));

#define URING_STATS_MAX_RINGS 256
#define URING_STATS_MAX_INFLIGHT 16384

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, URING_STATS_MAX_OPCODES);
	__type(key, __u32);
	__type(value, struct uring_op_counts);
} ops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, URING_STATS_MAX_ERRNO);
	__type(key, __u32);
	__type(value, __u64);
} errors SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, URING_STATS_LATENCY_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} latency SEC(".maps");

/* Rings the target submitted on (ctx address -> 1). LRU: a process with
 * more rings than this loses the completions of its oldest ones, never
 * makes the map refuse a new one. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, URING_STATS_MAX_RINGS);
	__type(key, __u64);
	__type(value, __u8);
} rings SEC(".maps");

/* Submission time of each request in flight (req address -> ns). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, URING_STATS_MAX_INFLIGHT);
	__type(key, __u64);
	__type(value, __u64);
} inflight SEC(".maps");

static __always_inline void add(void *map, __u32 key)
{
	__u64 *value = bpf_map_lookup_elem(map, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
}

static __always_inline __u32 log2_bucket(__u64 v)
{
	__u32 b = 0;

	/* Binary search over 64 bits, without loops for the verifier. */
	if (v >> 32) { v >>= 32; b += 32; }
	if (v >> 16) { v >>= 16; b += 16; }
	if (v >> 8) { v >>= 8; b += 8; }
	if (v >> 4) { v >>= 4; b += 4; }
	if (v >> 2) { v >>= 2; b += 2; }
	if (v >> 1) { b += 1; }
	return b;
}

SEC("raw_tracepoint/io_uring_create")
int on_create(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 ring = ctx->args[1];

	BPFBROKER_PASS_IF_REVOKED(0);
	/* A new ring at this address is not one the target submitted on. */
	bpf_map_delete_elem(&rings, &ring);
	return 0;
}

SEC("raw_tracepoint/io_uring_submit_req")
int on_submit(struct bpf_raw_tracepoint_args *ctx)
{
	struct io_kiocb *req = (struct io_kiocb *)ctx->args[0];
	struct uring_op_counts *counts;
	__u64 ring, key, now;
	__u8 one = 1;
	__u32 opcode;

	BPFBROKER_PASS_IF_REVOKED(0);
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	opcode = BPF_CORE_READ(req, opcode);
	ring = (__u64)BPF_CORE_READ(req, ctx);
	/* Look before writing: an LRU update on every submission costs far
	 * more than the lookup that almost always finds the ring. */
	if (!bpf_map_lookup_elem(&rings, &ring))
		bpf_map_update_elem(&rings, &ring, &one, BPF_ANY);
	key = (__u64)req;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&inflight, &key, &now, BPF_ANY);
	counts = bpf_map_lookup_elem(&ops, &opcode);
	if (counts)
		__sync_fetch_and_add(&counts->submitted, 1);
	return 0;
}

SEC("raw_tracepoint/io_uring_complete")
int on_complete(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 ring = ctx->args[0];
	struct io_kiocb *req = (struct io_kiocb *)ctx->args[1];
	struct io_uring_cqe *cqe = (struct io_uring_cqe *)ctx->args[2];
	struct uring_op_counts *counts;
	__u64 key = (__u64)req, *submitted;
	__u32 opcode;
	__s32 res;

	BPFBROKER_PASS_IF_REVOKED(0);
	if (!bpf_map_lookup_elem(&rings, &ring))
		return 0;
	res = BPF_CORE_READ(cqe, res);
	if (res < 0 && res > -URING_STATS_MAX_ERRNO)
		add(&errors, (__u32)-res);
	/* CQEs without a request (posted by the kernel for the ring) have no opcode. */
	if (!req)
		return 0;
	opcode = BPF_CORE_READ(req, opcode);
	counts = bpf_map_lookup_elem(&ops, &opcode);
	if (counts)
		__sync_fetch_and_add(&counts->completed, 1);
	submitted = bpf_map_lookup_elem(&inflight, &key);
	if (submitted) {
		add(&latency, log2_bucket(bpf_ktime_get_ns() - *submitted));
		bpf_map_delete_elem(&inflight, &key);
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
