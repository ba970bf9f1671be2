/* What both shipped io_uring_ops programs share: the ring's layout as the
 * broker binds it (manifest parameters "bind": "ring.*", checked against the
 * kernel before load) and the two regions, for a ring set up with
 * DEFER_TASKRUN | SINGLE_ISSUER | NO_SQARRAY | SQ_REWIND and without SQE128
 * or CQE32: with SQ_REWIND every submit takes SQEs from index 0 of the SQ
 * region, so a program writes there and keeps no SQ tail.
 *
 * The layout lives in the frozen .rodata, so the verifier knows the region
 * sizes passed to bpf_io_uring_get_region as the constants it requires. */
#ifndef BPFBROKER_PROGRAMS_REWIND_RING_H
#define BPFBROKER_PROGRAMS_REWIND_RING_H

#include "io_uring_ops.h"

const volatile __u32 ring_flags = 0;  /* ring.flags */
const volatile __u32 sq_entries = 0;  /* ring.sq_entries */
const volatile __u32 cq_entries = 0;  /* ring.cq_entries */
const volatile __u32 cq_head_off = 0; /* ring.cq_head_off */
const volatile __u32 cq_tail_off = 0; /* ring.cq_tail_off */
const volatile __u32 cqes_off = 0;    /* ring.cqes_off */
/* caller.tgid: the loop runs, and the kernel resolves the fds and addresses
 * of its SQEs, in the ring's submitter task. The broker cannot see who that
 * is (a ring fd can be inherited from another process), so the program
 * runs only inside the caller's own io_uring_enter. */
const volatile __u32 caller_tgid = 0;

struct rewind_ring {
	__u8 *cq; /* struct io_rings: heads, tails, the CQEs */
	__u8 *sq; /* the SQE array */
};

/* The ring's regions, or 0 when the ring is not one these programs run on
 * or this is not the caller's process. */
static __always_inline int rewind_ring_open(struct io_ring_ctx *ctx, struct rewind_ring *r)
{
	const __u32 needed = BPFBROKER_IORING_SETUP_NO_SQARRAY | BPFBROKER_IORING_SETUP_SQ_REWIND;
	const __u32 refused = BPFBROKER_IORING_SETUP_SQE128 | BPFBROKER_IORING_SETUP_CQE32;
	if (caller_tgid == 0 || (__u32)(bpf_get_current_pid_tgid() >> 32) != caller_tgid)
		return 0;
	if ((ring_flags & needed) != needed || (ring_flags & refused) || sq_entries == 0 || cq_entries == 0 ||
	    (cq_entries & (cq_entries - 1)) || cq_head_off + 4 > cqes_off || cq_tail_off + 4 > cqes_off)
		return 0;
	r->cq = bpf_io_uring_get_region(ctx, IOU_REGION_CQ, cqes_off + cq_entries * BPFBROKER_CQE_BYTES);
	r->sq = bpf_io_uring_get_region(ctx, IOU_REGION_SQ, sq_entries * BPFBROKER_SQE_BYTES);
	return r->cq && r->sq;
}

#endif
