/* Key and value layouts of src_allow's LPM tries, shared by the BPF program
 * and the C/C++ code that fills them (tests, clients). */
#ifndef BPFBROKER_PROGRAMS_SRC_ALLOW_H
#define BPFBROKER_PROGRAMS_SRC_ALLOW_H

#include <linux/types.h>

/* LPM trie keys: prefix length in bits (host byte order), then the address
 * in network byte order, as BPF_MAP_TYPE_LPM_TRIE requires. */
struct src_allow_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct src_allow_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* The value of a prefix. The longest matching prefix decides, so a client can
 * allow 10.0.0.0/8 yet deny 10.1.0.0/16 inside it. Anything but ALLOW denies. */
#define SRC_ALLOW_DENY 0
#define SRC_ALLOW_ALLOW 1

#define SRC_ALLOW_MAX_PREFIXES 1024

#endif
