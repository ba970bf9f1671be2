/* ring_nops's map layout, for readers in any language: one array entry
 * (key 0) that the program updates and the client reads after its
 * io_uring_enter. */
#ifndef BPFBROKER_PROGRAMS_RING_NOPS_H
#define BPFBROKER_PROGRAMS_RING_NOPS_H

#include <linux/types.h>

struct ring_nops_stats {
	__u64 completions;   /* NOP CQEs the program reaped */
	__u64 submitted;     /* NOPs bpf_io_uring_submit_sqes accepted */
	__u64 steps;         /* loop_step calls */
	__u64 submit_errors; /* calls that returned < 0 */
};

#endif
