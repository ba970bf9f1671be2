/* ring_echo: an in-kernel request/reply loop for one connected socket of
 * the caller's: receive into the caller's buffer, send back what came,
 * re-arm the receive, `total` times or until the peer closes, without
 * returning to user space between requests. Why this one: see README.md.
 *
 * One operation is in flight at a time (RECV, then SEND of what it got), so
 * a loop step reaps one CQE and submits one SQE. `sock_fd` and `buf_addr`
 * are the caller's own fd number and memory: the SQEs go through the
 * caller's ring, in the caller's io_uring_enter, so the kernel resolves
 * them in the caller's file table and address space, with the caller's
 * rights, exactly as if the caller had submitted them itself.
 *
 * The ring: see rewind_ring.h. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpfbroker_guard.h"
#include "rewind_ring.h"
#include "ring_echo.h"

#define RING_ECHO_OP_SEND 26 /* enum io_uring_op */
#define RING_ECHO_OP_RECV 27
#define RING_ECHO_TAG_RECV 1
#define RING_ECHO_TAG_SEND 2
#define RING_ECHO_MAX_REAP 64

/* Choices of the caller. */
const volatile __u32 sock_fd = 0;
const volatile __u64 buf_addr = 0;
const volatile __u32 buf_len = 2048;
const volatile __u32 total = 1;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ring_echo_stats);
} stats SEC(".maps");

/* The loop's own state (client_access none): whether the first receive
 * was armed, the length to send next, whether the loop ended. */
struct echo_state {
	__u32 started;
	__u32 send_len;
	__u32 finished;
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct echo_state);
} state SEC(".maps");

static __always_inline void prep(__u8 *sqe, __u8 opcode, __u32 len, __u64 tag)
{
	__builtin_memset(sqe, 0, BPFBROKER_SQE_BYTES);
	sqe[0] = opcode;
	*(__s32 *)(sqe + 4) = (__s32)sock_fd;
	*(__u64 *)(sqe + 16) = buf_addr;
	*(__u32 *)(sqe + 24) = len;
	*(__u64 *)(sqe + BPFBROKER_SQE_USER_DATA_OFFSET) = tag;
}

/* args: (struct io_ring_ctx *, struct iou_loop_params *). */
SEC("struct_ops/loop_step")
int echo_step(unsigned long long *args)
{
	struct io_ring_ctx *ring = (struct io_ring_ctx *)args[0];
	struct iou_loop_params *lp = (struct iou_loop_params *)args[1];
	const __u32 zero = 0;
	struct ring_echo_stats *s = bpf_map_lookup_elem(&stats, &zero);
	struct echo_state *st = bpf_map_lookup_elem(&state, &zero);
	if (!s || !st)
		return IOU_LOOP_STOP;
	s->steps++;
	BPFBROKER_PASS_IF_REVOKED(IOU_LOOP_STOP);
	struct rewind_ring r;
	if (st->finished || !rewind_ring_open(ring, &r))
		return IOU_LOOP_STOP;
	__u8 *cq = r.cq, *sq = r.sq;

	__u32 head = *(volatile __u32 *)(cq + cq_head_off);
	const __u32 tail = *(volatile __u32 *)(cq + cq_tail_off);
	int next = st->started ? 0 : RING_ECHO_TAG_RECV;
	st->started = 1;
	for (int i = 0; i < RING_ECHO_MAX_REAP && head != tail; i++) {
		__u8 *cqe = cq + cqes_off + (head & (cq_entries - 1)) * BPFBROKER_CQE_BYTES;
		const __u64 tag = *(__u64 *)cqe;
		const __s32 res = *(__s32 *)(cqe + BPFBROKER_CQE_RES_OFFSET);
		head++;
		if (tag == RING_ECHO_TAG_RECV) {
			if (res <= 0) { /* the peer closed, or the receive failed */
				if (res < 0)
					s->errors++;
				st->finished = 1;
			} else {
				st->send_len = (__u32)res;
				next = RING_ECHO_TAG_SEND;
			}
		} else if (tag == RING_ECHO_TAG_SEND) {
			if (res < 0 || (__u32)res != st->send_len) {
				s->errors++;
				st->finished = 1;
			} else {
				s->echoed++;
				s->bytes += (__u32)res;
				next = RING_ECHO_TAG_RECV;
			}
		}
	}
	*(volatile __u32 *)(cq + cq_head_off) = head;
	if (st->finished || s->echoed >= total) {
		st->finished = 1;
		return IOU_LOOP_STOP;
	}
	if (next == RING_ECHO_TAG_RECV)
		prep(sq, RING_ECHO_OP_RECV, buf_len, RING_ECHO_TAG_RECV);
	else if (next == RING_ECHO_TAG_SEND)
		prep(sq, RING_ECHO_OP_SEND, st->send_len, RING_ECHO_TAG_SEND);
	if (next && bpf_io_uring_submit_sqes(ring, 1) != 1) {
		s->errors++;
		st->finished = 1;
		return IOU_LOOP_STOP;
	}
	lp->cq_wait_idx = head + 1; /* sleep until the operation in flight completes */
	return IOU_LOOP_CONTINUE;
}

SEC(".struct_ops")
struct io_uring_bpf_ops ring_echo_ops = {
	.loop_step = (void *)echo_step,
};

char LICENSE[] SEC("license") = "GPL";
