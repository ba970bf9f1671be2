/* The map layouts of uring_stats, for the BPF program and for anyone reading
 * the maps (C, C++, or any language that can do a BPF_MAP_LOOKUP_ELEM on an
 * array: every key is a __u32 index, every value a fixed little struct).
 *
 *   ops      ARRAY[URING_STATS_MAX_OPCODES]  key = io_uring opcode (IORING_OP_*)
 *            value = struct uring_op_counts
 *   errors   ARRAY[URING_STATS_MAX_ERRNO]    key = errno (a CQE's -res)
 *            value = __u64 completions that failed with it
 *   latency  ARRAY[URING_STATS_LATENCY_BUCKETS] key = b
 *            value = __u64 requests whose first completion came
 *            [2^b, 2^(b+1)) ns after submission (b = 0 also holds 0 ns)
 *
 * Only the calling process's rings are counted: submissions made by its
 * threads (io-wq workers and an SQPOLL thread are threads of it too), and
 * completions posted to a ring it submitted on, whichever task posts them.
 * Counters only grow; a reader takes differences. */
#ifndef BPFBROKER_PROGRAMS_URING_STATS_H
#define BPFBROKER_PROGRAMS_URING_STATS_H

#include <linux/types.h>

#define URING_STATS_MAX_OPCODES 256
#define URING_STATS_MAX_ERRNO 4096
#define URING_STATS_LATENCY_BUCKETS 64

struct uring_op_counts {
	__u64 submitted;
	__u64 completed; /* every CQE of a request of this opcode, errors included */
};

#endif
