/* Layout of reuseport_cpu's `sockets` map, shared by the BPF program and the
 * code that fills it (tests, clients). */
#ifndef BPFBROKER_PROGRAMS_REUSEPORT_CPU_H
#define BPFBROKER_PROGRAMS_REUSEPORT_CPU_H

#include <linux/types.h>

/* Key: CPU number (__u32). Value written by user space: the socket fd as a
 * __u64 (a lookup returns the socket cookie instead). CPUs at or above this
 * bound get the kernel's default choice. */
#define REUSEPORT_CPU_MAX_SOCKETS 128

#endif
