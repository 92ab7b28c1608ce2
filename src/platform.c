/* Linux implementation of platform.h, and base.h's allocation functions. */
#include "base.h" /* platform.h, and the allocation functions defined here */

#include "ebus/ebus.h"
#include "testhook.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

bool ebus_have_membarrier;
static pthread_once_t platform_once = PTHREAD_ONCE_INIT;

static void platform_init_once(void)
{
	long q = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	    syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
		__atomic_store_n(&ebus_have_membarrier, true, __ATOMIC_RELEASE);
}

void ebus_platform_init(void)
{
	pthread_once(&platform_once, platform_init_once);
}

/*
 * A membarrier that fails at run time (registration succeeded, so it
 * should not) must not leave the light side on a bare compiler barrier:
 * the flag is cleared, and from then on both sides use mfence, for the
 * life of the process. Returns false for that call: a light side that read
 * the flag just before it was cleared is not covered by this one fence, so
 * the caller treats the Dekker check as inconclusive (park does not sleep
 * on it and tries again, now with mfence on both sides). liburcu aborts
 * here instead (urcu_die); a bus keeps running.
 */
bool ebus_fence_heavy(void)
{
	bool ok = true;
	ck_pr_fence_memory();
	if (__atomic_load_n(&ebus_have_membarrier, __ATOMIC_RELAXED)) {
		long rc = EBUS_TEST_FAIL(EBUS_TP_FAIL_MEMBARRIER)
		              ? -1
		              : syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
		if (rc != 0) {
			__atomic_store_n(&ebus_have_membarrier, false, __ATOMIC_RELEASE);
			ok = false;
		}
	}
	ck_pr_fence_memory();
	return ok;
}

void ebus_futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
	struct timespec ts, *tp = NULL;
	if (timeout_ns) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
		ts.tv_nsec = (long)(timeout_ns % 1000000000u);
		tp = &ts;
	}
	/* EAGAIN (value changed), EINTR and ETIMEDOUT all mean "re-check". */
	(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, tp, NULL, 0);
}

void ebus_futex_wake(_Atomic uint32_t *word, int count)
{
	(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}

#ifdef EBUS_TEST_HOOKS
_Atomic(ebus_test_hook_fn) ebus_test_hook;

void ebus_test_set_hook(ebus_test_hook_fn fn)
{
	atomic_store_explicit(&ebus_test_hook, fn, memory_order_release);
}

bool ebus_test_membarrier_active(void)
{
	ebus_platform_init();
	return __atomic_load_n(&ebus_have_membarrier, __ATOMIC_ACQUIRE);
}
#endif

bool ebus_backoff(unsigned step)
{
	if (step < EBUS_BACKOFF_SPINS) {
		ebus_cpu_relax();
		return false;
	}
	if (step < EBUS_BACKOFF_SPINS + EBUS_BACKOFF_YIELDS) {
		sched_yield();
		return false;
	}
	return true;
}

int ebus_wait_for(struct ebus_waiter *w)
{
	for (unsigned step = 0;; step++) {
		uint64_t left;
		uint32_t v;
		int r = w->check(w);
		if (r != EBUS_WAIT_AGAIN)
			return r;
		if (!ebus_time_left(w->deadline, &left))
			return EBUS_ERR_TIMEOUT;
		if (!ebus_backoff(step))
			continue;
		v = w->announce(w);
		if (!w->word) {
			sched_yield();
			continue;
		}
		if (ebus_fence_heavy() && (r = w->check(w)) == EBUS_WAIT_AGAIN)
			ebus_futex_wait(w->word, v, left);
		if (w->retract)
			w->retract(w);
		if (r != EBUS_WAIT_AGAIN)
			return r;
	}
}

/* ---- allocation (base.h) ----------------------------------------------------- */

void *ebus_alloc(const ebus_allocator_t *a, size_t size, size_t align)
{
	void *p = NULL;
	if (align < sizeof(void *))
		align = sizeof(void *);
	if (a->alloc)
		return a->alloc(size, align, a->ctx);
	if (posix_memalign(&p, align, size ? size : 1) != 0)
		return NULL;
	return p;
}

void *ebus_zalloc(const ebus_allocator_t *a, size_t size, size_t align)
{
	void *p = ebus_alloc(a, size, align);
	if (p)
		memset(p, 0, size);
	return p;
}

void ebus_free(const ebus_allocator_t *a, void *p, size_t size)
{
	if (!p)
		return;
	if (a->free)
		a->free(p, size, a->ctx);
	else
		free(p);
}

uint64_t ebus_clock_ns(void)
{
	return ebus_now_ns();
}

uint64_t ebus_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int ebus_cpu_check(int cpu)
{
	cpu_set_t set;
	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return EBUS_ERR_CPU;
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return EBUS_ERR_CPU;
	return CPU_ISSET(cpu, &set) ? EBUS_OK : EBUS_ERR_CPU;
}

int ebus_pin_self(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void ebus_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}
