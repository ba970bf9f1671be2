/* The value layout of udp_stats's `stats` map, shared by the BPF program and
 * the C/C++ code that reads it (tests, clients). */
#ifndef BPFBROKER_PROGRAMS_UDP_STATS_H
#define BPFBROKER_PROGRAMS_UDP_STATS_H

#include <linux/types.h>

/* One entry, key 0. `bytes` counts UDP payload bytes, i.e. what recv() would
 * return, not headers. */
struct udp_stats {
	__u64 packets;
	__u64 bytes;
};

#endif
