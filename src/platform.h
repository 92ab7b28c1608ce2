/*
 * Platform layer: futex, asymmetric fences (membarrier), clocks, deadlines,
 * the library's one wait loop, affinity. Linux only for now; everything
 * OS-specific lives behind these calls. Every function is safe from any
 * thread; none allocates. Nothing here knows about buses.
 */
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

/* The two wakes of the library. Edge: a sleeper set `word` to 1 before
 * sleeping on it; take it back to 0 and wake that one thread only if it
 * was set (no system call otherwise). Broadcast: bump a sequence word that
 * waiters read before they sleep on it, and wake them all. */
static inline void ebus_wake_edge(_Atomic uint32_t *word)
{
	if (atomic_exchange_explicit(word, 0, memory_order_seq_cst))
		ebus_futex_wake(word, 1);
}
static inline void ebus_wake_all(_Atomic uint32_t *seq)
{
	atomic_fetch_add_explicit(seq, 1, memory_order_seq_cst);
	ebus_futex_wake(seq, INT32_MAX);
}

/* The library's backoff before sleeping, one step per failed check:
 * EBUS_BACKOFF_SPINS pauses, then EBUS_BACKOFF_YIELDS yields; then it
 * returns true and the caller sleeps (ebus_wait_for) or yields. */
#define EBUS_BACKOFF_SPINS 64u
#define EBUS_BACKOFF_YIELDS 16u
bool ebus_backoff(unsigned step);

/*
 * Asymmetric Dekker fences. The fast side (publishers) pays a compiler
 * barrier; the slow side (an executor about to park, a shutdown) pays one
 * membarrier(PRIVATE_EXPEDITED) system call, which runs a full barrier on
 * every CPU currently running a thread of this process. Together they order
 * "fast: store A; load B" against "slow: store B; load A" exactly as two
 * full fences would. Where membarrier is unavailable both sides fall back to
 * a seq_cst fence.
 */
/* Set once at init and, if membarrier ever fails, cleared once (__atomic
 * stores, platform.c). Read plainly on the publish path: an atomic load of
 * a bool costs an extra instruction per fence (movzbl + test, not cmpb).
 * The clearing store races with those reads by design (a reader still
 * seeing true at that instant is the window platform.c describes); under
 * TSan the reads are atomic so that it checks everything else. */
extern bool ebus_have_membarrier;
#if defined(__SANITIZE_THREAD__)
#define EBUS_MEMBARRIER_FLAG_ATOMIC 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EBUS_MEMBARRIER_FLAG_ATOMIC 1
#endif
#endif
#ifdef EBUS_MEMBARRIER_FLAG_ATOMIC
#define ebus_membarrier_flag_() __atomic_load_n(&ebus_have_membarrier, __ATOMIC_RELAXED)
#else
#define ebus_membarrier_flag_() (ebus_have_membarrier)
#endif
void ebus_platform_init(void); /* idempotent; registers for membarrier */

static inline void ebus_fence_light(void)
{
	/* ck's fences are asm (mfence / compiler barrier); GCC's TSan refuses
	 * atomic_thread_fence, and TSan does not model reordering anyway. */
	if (__builtin_expect(ebus_membarrier_flag_(), 1))
		ck_pr_barrier();
	else
		ck_pr_fence_memory();
}
/* False only in the call that found membarrier failing (see platform.c). */
bool ebus_fence_heavy(void);

uint64_t ebus_now_ns(void); /* CLOCK_MONOTONIC */

/*
 * Deadlines: the one way every wait in the library turns a relative
 * timeout into an absolute CLOCK_MONOTONIC time. EBUS_DEADLINE_NONE means
 * "never"; a sum that would pass it saturates to it, so EBUS_FOREVER (or
 * any huge timeout) never wraps into the past. A timeout of 0 means no
 * limit, as for ebus_flush and block_timeout_ns; ebus_consume, where 0
 * polls, handles 0 before it asks for a deadline.
 */
#define EBUS_DEADLINE_NONE UINT64_MAX
static inline uint64_t ebus_deadline_after(uint64_t timeout_ns)
{
	uint64_t now;
	if (timeout_ns == 0)
		return EBUS_DEADLINE_NONE;
	now = ebus_now_ns();
	return timeout_ns >= EBUS_DEADLINE_NONE - now ? EBUS_DEADLINE_NONE : now + timeout_ns;
}
/* False once `deadline` has passed; else *left is the time to sleep (0:
 * no limit, the futex convention). */
static inline bool ebus_time_left(uint64_t deadline, uint64_t *left)
{
	uint64_t now;
	*left = 0;
	if (deadline == EBUS_DEADLINE_NONE)
		return true;
	now = ebus_now_ns();
	if (now >= deadline)
		return false;
	*left = deadline - now;
	return true;
}
static inline bool ebus_past(uint64_t deadline)
{
	uint64_t left;
	return !ebus_time_left(deadline, &left);
}

/*
 * The one wait loop of the library: spin, then yield (ebus_backoff), then
 * sleep on a futex word, until check() ends the wait or the deadline
 * passes. Every blocking call (flush, a publish on a full lane, a handler
 * on a full pull-consumer queue, ebus_consume, a serial subscription's
 * guard) is one of these.
 *
 *  check     returns EBUS_WAIT_AGAIN to go on waiting; anything else ends
 *            the wait and is returned.
 *  announce  before each sleep: tells the waking side that someone sleeps
 *            (a flag, a counter) and returns the value of *word to sleep
 *            on, read BEFORE the announcement; the waker changes *word
 *            after the event and after reading the announcement.
 *  retract   after each sleep (may be NULL).
 *  word      the futex word; NULL: no sleeping (the event has no waker),
 *            announce is called and the thread yields.
 * Lost-wakeup-safe: announce; heavy fence; check again; futex wait. A
 * failed heavy fence (platform.c) proves nothing, so no sleep follows it.
 * Returns check's value, or EBUS_ERR_TIMEOUT once the deadline has passed
 * (EBUS_DEADLINE_NONE: never).
 */
#define EBUS_WAIT_AGAIN (-1)
struct ebus_waiter {
	int (*check)(struct ebus_waiter *w);
	uint32_t (*announce)(struct ebus_waiter *w);
	void (*retract)(struct ebus_waiter *w);
	_Atomic uint32_t *word;
	uint64_t deadline;
};
int ebus_wait_for(struct ebus_waiter *w);

/* EBUS_OK if cpu may be used by this process, else EBUS_ERR_CPU. */
int ebus_cpu_check(int cpu);
/* Pins the calling thread; 0 or errno. */
int ebus_pin_self(int cpu);

void ebus_cpu_relax(void);

#endif
