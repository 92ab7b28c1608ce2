/* Platform layer: futex, asymmetric fences (membarrier), clocks, affinity.
 * Linux only for now; everything OS-specific lives behind these calls. */
#ifndef EBUS_PLATFORM_H
#define EBUS_PLATFORM_H

#include <ck_pr.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Sleeps while *word == expected, up to timeout_ns (0 = forever). Spurious
 * returns are allowed; callers re-check their condition. */
void ebus_futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns);
void ebus_futex_wake(_Atomic uint32_t *word, int count);

/*
 * Asymmetric Dekker fences. The fast side (publishers) pays a compiler
 * barrier; the slow side (an executor about to park, a shutdown) pays one
 * membarrier(PRIVATE_EXPEDITED) system call, which runs a full barrier on
 * every CPU currently running a thread of this process. Together they order
 * "fast: store A; load B" against "slow: store B; load A" exactly as two
 * full fences would. Where membarrier is unavailable both sides fall back to
 * a seq_cst fence.
 */
extern bool ebus_have_membarrier;
void ebus_platform_init(void); /* idempotent; registers for membarrier */

static inline void ebus_fence_light(void)
{
	/* ck's fences are asm (mfence / compiler barrier); GCC's TSan refuses
	 * atomic_thread_fence, and TSan does not model reordering anyway. */
	if (__builtin_expect(ebus_have_membarrier, 1))
		ck_pr_barrier();
	else
		ck_pr_fence_memory();
}
void ebus_fence_heavy(void);

uint64_t ebus_now_ns(void); /* CLOCK_MONOTONIC */

/* EBUS_OK if cpu may be used by this process, else EBUS_ERR_CPU. */
int ebus_cpu_check(int cpu);
/* Pins the calling thread; 0 or errno. */
int ebus_pin_self(int cpu);

void ebus_cpu_relax(void);

#endif
