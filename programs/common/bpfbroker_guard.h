/* The revocation guard: one global a BPF program checks on every run and
 * only the broker writes. A manifest names it in
 *   "revocation": { "guard": "bpfbroker_revoked" }
 * and the broker sets it to 1 in every live instance when the program's
 * grant goes away (revoke, a masked key, a removed approval, or the caller's
 * exit for broker-attached programs). From then on the program returns its
 * pass-through verdict: the verdict the kernel would have reached without it
 * (keep the packet, no socket selection, count nothing).
 *
 * Third-party programs use it the same way:
 *
 *   #include "bpfbroker_guard.h"
 *   SEC("socket") int f(struct __sk_buff *skb)
 *   {
 *       BPFBROKER_PASS_IF_REVOKED(skb->len);
 *       ...
 *   }
 *
 * It lives in .bss (zero at load: not revoked) rather than .rodata, which
 * libbpf freezes, and is volatile so that the compiler reads it on every run
 * instead of folding it. Clients never receive the fd of the map behind it. */
#ifndef BPFBROKER_PROGRAMS_GUARD_H
#define BPFBROKER_PROGRAMS_GUARD_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

volatile __u32 bpfbroker_revoked SEC(".bss");

/* Returns `verdict` from the calling program when the broker revoked it. */
#define BPFBROKER_PASS_IF_REVOKED(verdict)      \
	do {                                    \
		if (bpfbroker_revoked)          \
			return (verdict);       \
	} while (0)

#endif
