/* ring_nops: keeps `in_flight` NOPs in flight on the caller's ring until
 * `total` have completed, all inside one io_uring_enter of the caller,
 * counting completions and loop steps (ring_nops.h). For tests, and to
 * measure what one loop step costs.
 *
 * The ring: see rewind_ring.h (any other ring stops at the first step). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfbroker_guard.h"
#include "rewind_ring.h"
#include "ring_nops.h"

#define RING_NOPS_MAX_BATCH 64   /* NOPs written per step at most */
#define RING_NOPS_MAX_REAP 1024  /* CQEs reaped per step at most */

/* Choices of the caller. */
const volatile __u32 in_flight = 4;
const volatile __u32 total = 100;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ring_nops_stats);
} stats SEC(".maps");

/* args: loop_step's (struct io_ring_ctx *, struct iou_loop_params *), as
 * struct_ops programs receive them. */
SEC("struct_ops/loop_step")
int loop_step(unsigned long long *args)
{
	struct io_ring_ctx *ring = (struct io_ring_ctx *)args[0];
	struct iou_loop_params *lp = (struct iou_loop_params *)args[1];
	const __u32 zero = 0;
	struct ring_nops_stats *s = bpf_map_lookup_elem(&stats, &zero);
	if (!s)
		return IOU_LOOP_STOP;
	s->steps++;
	BPFBROKER_PASS_IF_REVOKED(IOU_LOOP_STOP);
	struct rewind_ring r;
	if (!rewind_ring_open(ring, &r))
		return IOU_LOOP_STOP;
	__u8 *cq = r.cq, *sq = r.sq;

	/* Reap what completed: every CQE here is one of our NOPs. */
	__u32 head = *(volatile __u32 *)(cq + cq_head_off);
	const __u32 tail = *(volatile __u32 *)(cq + cq_tail_off);
	for (int i = 0; i < RING_NOPS_MAX_REAP && head != tail; i++) {
		head++;
		s->completions++;
	}
	*(volatile __u32 *)(cq + cq_head_off) = head;
	if (s->completions >= total)
		return IOU_LOOP_STOP;

	/* Top the ring up to in_flight outstanding NOPs, never past total. */
	__u64 outstanding = s->submitted - s->completions;
	__u64 want = in_flight > outstanding ? in_flight - outstanding : 0;
	if (want > total - s->submitted)
		want = total - s->submitted;
	__u32 batch = 0;
	for (__u32 i = 0; i < RING_NOPS_MAX_BATCH && i < sq_entries && i < want; i++) {
		__u8 *sqe = sq + i * BPFBROKER_SQE_BYTES;
		__builtin_memset(sqe, 0, BPFBROKER_SQE_BYTES); /* opcode 0 is IORING_OP_NOP */
		*(__u64 *)(sqe + BPFBROKER_SQE_USER_DATA_OFFSET) = s->submitted + i;
		batch++;
	}
	if (batch > 0) {
		int submitted = bpf_io_uring_submit_sqes(ring, batch);
		if (submitted < 0)
			s->submit_errors++;
		else
			s->submitted += submitted;
	}
	/* Sleep until at least one more CQE is posted. */
	lp->cq_wait_idx = head + 1;
	return IOU_LOOP_CONTINUE;
}

SEC(".struct_ops")
struct io_uring_bpf_ops ring_nops_ops = {
	.loop_step = (void *)loop_step,
};

char LICENSE[] SEC("license") = "GPL";
