/*
 * What every layer of src/ needs, and nothing else: macros, the list walk,
 * TSan annotations, single-writer counters, the latency histogram block,
 * allocation through the bus's allocator, and the calling thread's role.
 * Each module's own state and contract are in its own header (the module
 * map is in docs/design.md; scripts/check-layers.sh enforces it). Nothing
 * here is API.
 *
 * Memory-ordering conventions:
 *  - Our own shared words are C11 atomics (so TSan sees them).
 *  - ck_ring's indices are updated by ck's inline assembly, which TSan
 *    cannot see; the EBUS_TSAN_* annotations next to each ring operation
 *    state the happens-before edge the ring provides, so TSan still checks
 *    every other access.
 *  - Counters have one writer each (ctr_add: relaxed load + store, no RMW).
 */
#ifndef EBUS_BASE_H
#define EBUS_BASE_H

#include "ebus/ebus.h"
#include "hist.h"
#include "platform.h"
#include "testhook.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <urcu/list.h>

#define EBUS_CL 64
#define EBUS_LIKELY(x) __builtin_expect(!!(x), 1)
#define EBUS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define EBUS_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/*
 * Walks a cds_list_head list of `type` entries linked through `member`.
 * Unlike cds_list_for_each_entry it never forms an entry pointer from the
 * list head itself (UBSan rightly flags that: our entries are 64-byte
 * aligned, the head inside struct ebus is not). _SAFE allows removing the
 * current entry.
 */
#define EBUS_LIST_FOR_EACH(pos, head, type, member)                                 \
	for (struct cds_list_head *pos##_n_ = (head)->next;                          \
	     pos##_n_ != (head) && ((pos) = cds_list_entry(pos##_n_, type, member), 1); \
	     pos##_n_ = pos##_n_->next)
#define EBUS_LIST_FOR_EACH_SAFE(pos, head, type, member)                            \
	for (struct cds_list_head *pos##_n_ = (head)->next, *pos##_x_ = pos##_n_->next; \
	     pos##_n_ != (head) && ((pos) = cds_list_entry(pos##_n_, type, member), 1); \
	     pos##_n_ = pos##_x_, pos##_x_ = pos##_n_->next)

/* ---- TSan annotations for edges made by ck's / liburcu's inline asm ---- */
#if defined(__SANITIZE_THREAD__)
#define EBUS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EBUS_TSAN 1
#endif
#endif
#ifdef EBUS_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define EBUS_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define EBUS_TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define EBUS_TSAN_ACQUIRE(p) ((void)0)
#define EBUS_TSAN_RELEASE(p) ((void)0)
#endif

/* ---- single-writer counters ------------------------------------------ */
typedef _Atomic uint64_t ebus_ctr;
static inline void ctr_add(ebus_ctr *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	                      memory_order_relaxed);
}
/* For counters that publish progress (flush waits on them): release, so a
 * reader that acquires the new value also sees the handlers' effects. */
static inline void ctr_add_release(ebus_ctr *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	                      memory_order_release);
}
static inline uint64_t ctr_get_acquire(ebus_ctr *c)
{
	return atomic_load_explicit(c, memory_order_acquire);
}
static inline uint64_t ctr_get(ebus_ctr *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- latency histogram: one writer, the executor or stripe; read by stats.c ---- */
struct ebus_hist {
	ebus_ctr bucket[EBUS_HIST_BUCKETS]; /* see hist.h for the bucket layout */
	ebus_ctr sum;                       /* exact sum of the recorded ns */
};

/* Records the time since `ts` (publish) in h. Caller: the only writer. */
static inline void ebus_hist_record(struct ebus_hist *h, uint64_t ts)
{
	uint64_t now = ebus_now_ns();
	uint64_t d = now > ts ? now - ts : 0;
	ctr_add(&h->bucket[ebus_hist_bucket(d)], 1);
	ctr_add(&h->sum, d);
}

/* TSan: executors release this before each quiescent state; frees after a
 * grace period acquire it (the edge liburcu's asm makes invisible). Defined
 * in subs.c. */
extern char ebus_tsan_gp_token;
extern char ebus_tsan_cb_token; /* released by every call_rcu callback */

/* ---- allocation: the bus's allocator (zero: posix_memalign/free) -------- */
void *ebus_alloc(const ebus_allocator_t *a, size_t size, size_t align);
void *ebus_zalloc(const ebus_allocator_t *a, size_t size, size_t align);
void ebus_free(const ebus_allocator_t *a, void *p, size_t size);

/* ---- the calling thread's role ------------------------------------------
 * ebus_tls_exec is set by executor.c on its threads (and only there);
 * ebus_tls_sync_depth by sync.c around synchronous handlers. Read by every
 * layer that must know whether it runs inside a handler. */
struct ebus_exec;
extern _Thread_local struct ebus_exec *ebus_tls_exec;
extern _Thread_local unsigned ebus_tls_sync_depth; /* >0 inside a sync handler */

static inline bool in_handler(void)
{
	return ebus_tls_exec != NULL || ebus_tls_sync_depth > 0;
}

#endif
