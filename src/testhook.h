/*
 * Test-build hooks: schedule perturbation and failure injection, in the
 * manner of ck's ck_pr_stall points in its validate tests and liburcu's
 * rcutorture reader delays.
 *
 * The library that tests link (ebus_testing, built with EBUS_TEST_HOOKS)
 * calls the installed hook at each named point, so a test can hold one
 * thread exactly inside a narrow window (or yield at random there) and
 * hit an interleaving on every run. In every other build both macros
 * compile to nothing: the shipped library has no hook, no load, no branch.
 *
 *  EBUS_TEST_STALL(point, arg)  a window worth widening; arg says who (an
 *                               executor index, or -1 for other threads)
 *  EBUS_TEST_FAIL(point)        true when the test wants this step to fail
 *                               (an allocation or system call that would)
 */
#ifndef EBUS_TESTHOOK_H
#define EBUS_TESTHOOK_H

enum ebus_test_point {
	/* executor waits for a serial subscription's guard (each pass after the
	 * first spins; the first call comes before it announces itself) */
	EBUS_TP_SERIAL_WAIT = 1,
	/* executor took a serial subscription's guard, before the dead check */
	EBUS_TP_SERIAL_ACQUIRED,
	/* a blocking publish from an executor found the lane full (each pass) */
	EBUS_TP_FULL_WAIT,
	/* a blocking publish read the progress word and is about to re-check
	 * and sleep */
	EBUS_TP_FULL_SLEEP,
	/* a flush has taken its targets (lane positions), before it first looks */
	EBUS_TP_FLUSH_TARGET,
	/* a flush waiter has announced itself and is about to re-check and sleep */
	EBUS_TP_FLUSH_ANNOUNCED,
	/* an executor is about to wake its flush waiters, and has woken them
	 * (arg: 2 * executor index + 1 when it does so because it ran out of
	 * work, + 0 when a waiter's target was reached) */
	EBUS_TP_EXEC_WAKING,
	EBUS_TP_EXEC_NOTIFY,
	/* an executor released one lane batch (c_head and `finished` stored) */
	EBUS_TP_LANE_DRAINED,
	/* an executor ended a pass that took events, before it tells waiters */
	EBUS_TP_EXEC_PASS,
	/* a synchronous outermost publish released its stripe, before its
	 * deferred work (queued publishes, released callbacks) */
	EBUS_TP_SYNC_PUBLISH_END,
	/* a handler blocked on a full pull-consumer queue is about to sleep */
	EBUS_TP_CONSUMER_FULL_SLEEP,
	/* failure injection */
	EBUS_TP_FAIL_PRODUCER_ALLOC, /* calloc of a thread's producer record */
	EBUS_TP_FAIL_SETSPECIFIC,    /* pthread_setspecific of the producer list */
	EBUS_TP_FAIL_MEMBARRIER,     /* membarrier(PRIVATE_EXPEDITED) at run time */
	EBUS_TP_FAIL_SEQ_ALLOC,      /* realloc of a thread's sequence table */
};

#ifdef EBUS_TEST_HOOKS
#include <stdatomic.h>
#include <stdbool.h>

/* Returns non-zero at a FAIL point to make that step fail; ignored at
 * STALL points. Called on library threads: it must not call ebus. */
typedef int (*ebus_test_hook_fn)(int point, long arg);
extern _Atomic(ebus_test_hook_fn) ebus_test_hook;

static inline int ebus_test_call_(int point, long arg)
{
	ebus_test_hook_fn f = atomic_load_explicit(&ebus_test_hook, memory_order_acquire);
	return f ? f(point, arg) : 0;
}
#define EBUS_TEST_STALL(point, arg) ((void)ebus_test_call_((point), (long)(arg)))
#define EBUS_TEST_FAIL(point) (ebus_test_call_((point), 0) != 0)

/* Installs (or with NULL removes) the hook for the whole process. */
void ebus_test_set_hook(ebus_test_hook_fn fn);
/* Whether publishers currently rely on membarrier (platform.c). */
bool ebus_test_membarrier_active(void);
#else
#define EBUS_TEST_STALL(point, arg) ((void)0)
#define EBUS_TEST_FAIL(point) 0
#endif

#endif
