/* What an io_uring_bpf_ops program (Linux 7.1, io_uring/bpf-ops.c) needs
 * and Debian 12's headers lack: the struct_ops type, the loop parameters,
 * the two kfuncs and their constants, as the 7.1 kernel declares them.
 * CO-RE relocates the structs against the running kernel at load.
 *
 *   SEC("struct_ops/loop_step")
 *   int my_step(unsigned long long *args)  // args[0]: struct io_ring_ctx *, args[1]: struct iou_loop_params *
 *   SEC(".struct_ops") struct io_uring_bpf_ops my_ops = { .loop_step = (void *)my_step };
 *
 * loop_step runs inside the ring owner's io_uring_enter, with the ring's
 * lock held; it returns IOU_LOOP_CONTINUE to run again once the CQ tail
 * reaches lp->cq_wait_idx (a hint: it may run earlier) or IOU_LOOP_STOP to
 * return to user space. The broker loads it sleepable (the submit kfunc
 * sleeps) and fills ring_fd itself: leave it 0. */
#ifndef BPFBROKER_PROGRAMS_IO_URING_OPS_H
#define BPFBROKER_PROGRAMS_IO_URING_OPS_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* A complete (empty) struct, not a forward declaration: libbpf matches the
 * kfunc prototypes below against vmlinux's by kind. */
struct io_ring_ctx {
	int unused;
} __attribute__((preserve_access_index));

struct iou_loop_params {
	__u32 cq_wait_idx; /* the CQ tail to sleep until */
} __attribute__((preserve_access_index));

struct io_uring_bpf_ops {
	int (*loop_step)(struct io_ring_ctx *ctx, struct iou_loop_params *lp);
	__u32 ring_fd;
	void *priv;
};

enum {
	IOU_LOOP_CONTINUE = 0,
	IOU_LOOP_STOP = 1,
};

/* Region ids of bpf_io_uring_get_region. */
enum {
	IOU_REGION_MEM = 0, /* the registered parameter region */
	IOU_REGION_CQ = 1,  /* struct io_rings: SQ/CQ heads and tails, the CQEs */
	IOU_REGION_SQ = 2,  /* the SQE array */
};

/* Submits up to nr SQEs (sleepable); returns how many, or -errno. */
extern int bpf_io_uring_submit_sqes(struct io_ring_ctx *ctx, __u32 nr) __ksym;
/* The region, or NULL when it is smaller than size (a constant). */
extern __u8 *bpf_io_uring_get_region(struct io_ring_ctx *ctx, __u32 region_id, const __u64 rdwr_buf_size) __ksym;

/* io_uring_setup flags the programs check (include/uapi/linux/io_uring.h). */
#define BPFBROKER_IORING_SETUP_SQE128 (1U << 10)
#define BPFBROKER_IORING_SETUP_CQE32 (1U << 11)
#define BPFBROKER_IORING_SETUP_NO_SQARRAY (1U << 16)
#define BPFBROKER_IORING_SETUP_SQ_REWIND (1U << 20) /* 7.1: SQEs from index 0 at every submit */

#define BPFBROKER_SQE_BYTES 64
#define BPFBROKER_CQE_BYTES 16
#define BPFBROKER_CQE_RES_OFFSET 8 /* struct io_uring_cqe { __u64 user_data; __s32 res; __u32 flags; } */
#define BPFBROKER_SQE_USER_DATA_OFFSET 32

#endif
