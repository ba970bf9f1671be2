/* ring_echo's map layout, for readers in any language: one array entry
 * (key 0) that the program updates. */
#ifndef BPFBROKER_PROGRAMS_RING_ECHO_H
#define BPFBROKER_PROGRAMS_RING_ECHO_H

#include <linux/types.h>

struct ring_echo_stats {
	__u64 echoed;  /* replies fully sent */
	__u64 bytes;   /* bytes echoed */
	__u64 steps;   /* loop_step calls */
	__u64 errors;  /* a receive or send that failed, or a short send */
};

#endif
