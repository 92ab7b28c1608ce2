/*
 * Internal structures shared by the modules in src/. Nothing here is API.
 *
 * Memory-ordering conventions:
 *  - Our own shared words are C11 atomics (so TSan sees them).
 *  - ck_ring's indices are updated by ck's inline assembly, which TSan
 *    cannot see; the EBUS_TSAN_* annotations next to each ring operation
 *    state the happens-before edge the ring provides, so TSan still checks
 *    every other access.
 *  - Counters have one writer each (ctr_add: relaxed load + store, no RMW).
 */
#ifndef EBUS_INTERNAL_H
#define EBUS_INTERNAL_H

#include "ebus/ebus.h"
#include "platform.h"
#include "stats.h"
#include "testhook.h"

#include <ck_ring.h>
#include <ck_spinlock.h>
#include <ck_stack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <urcu/list.h>
#include <urcu/urcu-qsbr.h>
#include <urcu/rculfhash.h>

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

/* ---- latency histogram (stats.c): one writer, the executor or stripe ---- */
struct ebus_hist {
	ebus_ctr bucket[EBUS_HIST_BUCKETS]; /* see stats.h for the bucket layout */
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

/* ---- the slot: one cache line, stored inline in the ring ---------------- */
enum { SLOT_INLINE = 0, SLOT_OWNED = 1, SLOT_REF = 2 };

struct ebus_slot {
	struct ebus_topic_s *topic;
	uint64_t ts; /* ebus_now_ns() at publish, when bus->timestamps */
	uint32_t len;
	uint32_t kind;
	union {
		unsigned char data[EBUS_INLINE_MAX];
		struct {
			void *ptr;
			ebus_release_fn release; /* SLOT_REF only */
			void *arg;
		} ref;
	} u;
} __attribute__((aligned(EBUS_CL)));
_Static_assert(sizeof(struct ebus_slot) == EBUS_CL, "a slot is one cache line");

CK_RING_PROTOTYPE(ebus_slot, ebus_slot)

/* ---- deferred frees ----------------------------------------------------- */
struct ebus;
struct retire {
	struct rcu_head rcu; /* urcu_qsbr_call_rcu */
	struct retire *next; /* bus->retired list */
	struct ebus *bus;
	void (*free)(struct retire *);
};

/* ---- subscribers ------------------------------------------------------- */
/*
 * One subscription. A literal one sits in one topic's array; a pattern one
 * (pattern != NULL) sits in the array of every matching topic, and on
 * bus->patterns. `serial` subscriptions (a pattern without
 * EBUS_SUB_CONCURRENT on a bus with several executors or stripes) take
 * `guard` around each call, so they never run on two threads at once.
 */
struct ebus_sub {
	ebus_handler_fn fn;
	void *ctx;
	/* Cached on the line dispatch reads for every subscriber: a pattern
	 * without EBUS_SUB_CONCURRENT on a bus with several executors/stripes */
	bool serial;
	unsigned flags; /* EBUS_SUB_* */
	_Atomic int dead;
	ebus_sub_id id;
	struct ebus_topic_s *topic; /* literal subscriptions */
	char *pattern;              /* pattern subscriptions: NUL-terminated, after the struct */
	size_t patlen;
	struct cds_list_head pat_node; /* bus->patterns, under ctl_lock */
	ebus_released_fn released;
	_Atomic uint64_t errors; /* fetch_add on the error path: concurrent subs have many writers */
	struct retire retire;
	/* serial subscriptions only */
	ck_spinlock_fas_t guard __attribute__((aligned(EBUS_CL)));
	_Atomic(struct ebus_exec *) owner; /* executor holding guard (cycle detection) */
};

/* Immutable once published: copy-on-write under bus->ctl_lock. */
struct subarr {
	struct retire retire;
	uint32_t n;
	struct ebus_sub *items[];
};

/* ---- topics: immortal until ebus_destroy --------------------------------- */

/* Dispatch counters of a topic. One writer: the executor that dispatches
 * (sync: the thread holding the stripe lock). dispatched is derived:
 * delivered + dropped_no_sub + dropped_shutdown. */
struct topic_ctrs {
	ebus_ctr delivered, handler_calls, handler_errors, dropped_no_sub, dropped_shutdown;
} __attribute__((aligned(EBUS_CL)));

struct ebus_topic_s {
	_Atomic(struct subarr *) subs; /* read per event by the executor */
	struct ebus *bus;
	unsigned executor;
	unsigned flags; /* EBUS_TOPIC_* | TOPIC_RESERVED */
	uint64_t hash;
	struct cds_lfht_node node; /* bus->topics, bp flavor */
	ck_stack_entry_t all; /* bus->all_topics, for destroy */
	size_t namelen;
	/* Statistics, away from the line publishers read on every publish. An
	 * ordered topic's counters are on their own line; an unordered topic
	 * (dispatched by every executor) has one block per executor instead,
	 * and this line then only holds the (read-only) pointer. */
	union {
		struct topic_ctrs one;
		struct topic_ctrs *per_exec; /* [nexec], EBUS_TOPIC_UNORDERED */
	} ctrs;
	/* Publisher-side losses on a full lane: slow path only, atomic RMW. */
	_Atomic uint64_t dropped_full, rejected_full, rejected_timeout;
	char name[];
};

/* Internal topic flag: the name is under EBUS_META_PREFIX. */
#define TOPIC_RESERVED 0x100u
/* ebus_registry_intern: return an existing topic whatever its ordering. */
#define TOPIC_ANY_ORDER 0x200u

/* The counter block that executor (or stripe) `who` writes for topic t. */
static inline struct topic_ctrs *topic_ctrs_of(struct ebus_topic_s *t, unsigned who)
{
	if (EBUS_UNLIKELY(t->flags & EBUS_TOPIC_UNORDERED))
		return &t->ctrs.per_exec[who];
	return &t->ctrs.one;
}

/* ---- lanes: one SPSC ring per (publishing thread, executor) ------------- */
struct lane {
	struct ck_ring ring __attribute__((aligned(EBUS_CL)));
	/* producer-written counters, own line */
	ebus_ctr published __attribute__((aligned(EBUS_CL)));
	ebus_ctr dropped_full;
	ebus_ctr rejected_full;
	ebus_ctr rejected_timeout;
	/* cold */
	struct ebus_slot *buf __attribute__((aligned(EBUS_CL)));
	/* = bus->exec[exec], cached: the publisher reads it after every commit
	 * (to wake a parked executor), one load less than going through the bus */
	struct ebus_exec *ex;
	_Atomic int closed; /* the owning thread exited; set after its last commit */
	_Atomic int space_wait; /* the producer sleeps until this lane is half empty */
	unsigned exec;
	/* Unique in the bus, from bus->lane_ids under lanes_lock. bus->lanes
	 * is kept newest first, so ids decrease along it: flush finds its
	 * lanes again by id, and a missing id means reclaimed (drained). */
	uint64_t id;
	ck_stack_entry_t link; /* announcement to the executor */
	struct cds_list_head bus_node; /* bus->lanes, under lanes_lock */
};

/* Per (thread, bus) publisher state. Owned by the thread (plain malloc),
 * because a thread may outlive the bus; reached from the bus only under
 * the global registry lock (see lane.c). */
struct producer {
	_Atomic int busy; /* inside a publish call: shutdown waits for 0 */
	unsigned spread;  /* next executor for unordered topics */
	uint64_t bus_id; /* never reused: a record of a destroyed bus matches no live one */
	struct producer *tls_next;
	struct cds_list_head bus_node; /* bus->producers, under lanes_lock */
	struct lane *lanes[]; /* [bus->nexec] */
};

/* ---- executors ---------------------------------------------------------- */
enum { STOP_NONE = 0, STOP_DRAIN = 1, STOP_DISCARD = 2 };

struct ebus_exec {
	/* executor-private, hot */
	uint64_t idle_work; /* ordinary events handled at the last idle event */
	struct lane **lanes;
	unsigned nlanes, cap_lanes;
	unsigned rr;
	ebus_ctr delivered, handler_calls, handler_errors;
	ebus_ctr dropped_no_sub, dropped_shutdown;
	ebus_ctr finished; /* events taken out of lanes and fully processed */
	ebus_ctr parks, wakeups;
	ebus_ctr lanes_reclaimed;
	ebus_ctr lane_high_water; /* most events found in one lane at a drain */
	struct ebus_hist *hist;   /* latency histogram; NULL unless timestamps */
	/* signals from other threads */
	_Atomic uint32_t sleeping __attribute__((aligned(EBUS_CL))); /* futex word */
	_Atomic int stop;
	_Atomic uint32_t closed_pending; /* closed lanes not yet reclaimed */
	ck_stack_t incoming; /* new lanes */
	_Atomic(struct retire *) retire_in; /* lists handed over by retire_collect (subs.c) */
	/* waiters for progress (flush, blocked publishers) */
	_Atomic uint32_t progress __attribute__((aligned(EBUS_CL))); /* futex word */
	_Atomic uint32_t waiters;  /* flush waiters */
	_Atomic uint64_t wake_at;  /* smallest `finished` a flush waiter needs */
	/* Deadlock detection (bus.c full_block): what this executor's thread
	 * waits for. blocked_on: space in a lane of that executor. wait_sub:
	 * the guard of that serial subscription, whose holder is read afresh
	 * (wait_sub->owner) on every step of a walk, never cached. */
	_Atomic(struct ebus_exec *) blocked_on;
	_Atomic(struct ebus_sub *) wait_sub;
	/* cold */
	struct ebus *bus __attribute__((aligned(EBUS_CL)));
	unsigned index;
	int cpu;
	pthread_t thread;
	bool started;
	/* totals of reclaimed lanes, under bus->lanes_lock */
	uint64_t ret_published, ret_dropped_full, ret_rejected_full, ret_rejected_timeout;
	uint64_t lanes_created;
};

/* ---- synchronous mode: one mutex per stripe replaces the executor ------- */
struct sync_stripe {
	pthread_mutex_t lock;
	ebus_ctr published, delivered, handler_calls, handler_errors, dropped_no_sub, dropped_shutdown;
	struct ebus_hist *hist; /* under lock; NULL unless timestamps */
} __attribute__((aligned(EBUS_CL)));

/* ---- subscription id table (generational), under ctl_lock -------------- */
struct idslot {
	struct ebus_sub *sub; /* NULL when free */
	uint32_t gen;
	uint32_t next_free;
};

enum { BUS_OPEN = 0, BUS_CLOSING = 1, BUS_CLOSED = 2 };

enum { META_SUB_ADDED, META_SUB_REMOVED, META_STARTED, META_STOPPED, META_IDLE, META_ERROR, META_N };

struct ebus {
	/* read on every publish */
	_Atomic int state;
	int sync;
	int timestamps; /* config.timestamps: stamp slots at publish */
	/* ebus_publish's fast path takes payloads of 1..fast_max bytes; 0
	 * sends every publish through the general path (synchronous buses, and
	 * any per-bus feature the fast path does not implement). One compare
	 * stands for the length, max_payload and mode checks. */
	uint32_t fast_max;
	unsigned nexec;
	ebus_full_policy policy;
	uint64_t block_timeout_ns;
	size_t max_payload;
	uint64_t id;
	struct ebus_exec **exec;
	struct sync_stripe *stripes;
	ebus_allocator_t alloc;
	ebus_error_hook_fn error_hook;
	void *error_hook_arg;
	unsigned lane_capacity;
	ebus_wait wait;
	unsigned spin_iterations;
	int shutdown_mode;

	struct cds_lfht *topics;
	ck_stack_t all_topics;

	/* control plane: topics, subscriptions, the id table, retire list */
	pthread_mutex_t ctl_lock;
	struct idslot *ids;
	uint32_t ids_cap, free_head, free_tail;
	uint32_t tag;
	struct retire *retired;
	unsigned nretired; /* length of retired, kept so a control call need not walk it */
	struct cds_list_head patterns; /* pattern subscriptions (pat_node), oldest first */
	/* Length of patterns, kept for ebus_publish_name: one lock-free load
	 * decides that a never-interned name needs no ctl_lock. Written under
	 * ctl_lock. */
	_Atomic unsigned npatterns;
	_Atomic int sync_retire_pending;

	/* lanes and producers, for flush/stats/shutdown/reclaim */
	pthread_mutex_t lanes_lock;
	struct cds_list_head lanes; /* struct lane (bus_node), newest first */
	uint64_t lane_ids;  /* last lane id handed out */
	struct cds_list_head producers; /* struct producer (bus_node) */
	bool emit_stopped;  /* ebus_shutdown: the last executor emits executor.stopped */

	struct ebus *reg_next; /* global registry of live buses (lane.c) */
	_Atomic uint64_t rejected_shutdown;
	_Atomic uint64_t unknown_name_drops;
	_Atomic uint64_t sync_deferred_pending;
	pthread_mutex_t shutdown_lock;

	struct ebus_topic_s *meta[META_N]; /* all NULL unless config.meta_events */
	struct cds_list_head consumers; /* pull consumers, under ctl_lock (consumer.c) */
};

/* TSan: executors release this before each quiescent state; frees after a
 * grace period acquire it (the edge liburcu's asm makes invisible). */
extern char ebus_tsan_gp_token;
extern char ebus_tsan_cb_token; /* released by every call_rcu callback */

/* ---- thread-local identity --------------------------------------------- */
extern _Thread_local struct ebus_exec *ebus_tls_exec; /* set on executor threads */
extern _Thread_local unsigned ebus_tls_sync_depth;    /* >0 inside a sync handler */

static inline bool in_handler(void)
{
	return ebus_tls_exec != NULL || ebus_tls_sync_depth > 0;
}

/* ---- allocation --------------------------------------------------------- */
void *ebus_alloc(struct ebus *bus, size_t size, size_t align);
void *ebus_zalloc(struct ebus *bus, size_t size, size_t align);
void ebus_free(struct ebus *bus, void *p, size_t size);

/* ---- module entry points ------------------------------------------------ */
/* topic.c */
int ebus_topic_check(const char *name, size_t *len_out);
uint64_t ebus_hash(const char *s, size_t n);
int ebus_registry_init(struct ebus *bus);
void ebus_registry_destroy(struct ebus *bus);
struct ebus_topic_s *ebus_registry_find(struct ebus *bus, const char *name, size_t len, uint64_t hash);
int ebus_registry_intern(struct ebus *bus, const char *name, int executor, unsigned flags,
                         struct ebus_topic_s **out);
int ebus_registry_intern_matched(struct ebus *bus, const char *name, size_t len, uint64_t hash,
                                 struct ebus_topic_s **out);

/* pattern.c: NATS subject patterns ('*' one token, '>' one or more trailing
 * tokens). ebus_pattern_check validates (same rules and codes as
 * ebus_topic_check, plus whole-token wildcards; *len_out = strlen on
 * success). The other two take valid strings and their lengths (no NUL
 * needed). A pattern whose first token is a wildcard does not match names
 * under EBUS_META_PREFIX. */
int ebus_pattern_check(const char *pattern, size_t *len_out);
bool ebus_pattern_has_wildcard(const char *pattern, size_t len);
bool ebus_pattern_matches(const char *pattern, size_t plen, const char *name, size_t nlen);

/* subs.c */
void ebus_subs_destroy(struct ebus *bus);
int ebus_subs_for_new_topic(struct ebus *bus, struct ebus_topic_s *t, struct subarr **out);
/* Calls a serial subscription under its guard; *ran = false when it was
 * unsubscribed while this thread waited for the guard (not called). */
int ebus_call_serial(struct ebus *bus, struct ebus_sub *sub, const ebus_event_t *ev, bool *ran);
void ebus_retire(struct ebus *bus, struct retire *r);
void ebus_retire_call_rcu(struct retire *list);
void ebus_sync_retire_run(struct ebus *bus);

/* lane.c */
/* One-entry cache of the calling thread's producer record. initial-exec:
 * no __tls_get_addr call per publish in the shared library. */
extern _Thread_local struct producer *ebus_tls_last __attribute__((tls_model("initial-exec")));
struct producer *ebus_producer_get_slow(struct ebus *bus);
static inline struct producer *ebus_producer_get(struct ebus *bus)
{
	struct producer *p = ebus_tls_last;
	if (EBUS_LIKELY(p && p->bus_id == bus->id))
		return p;
	return ebus_producer_get_slow(bus);
}
struct lane *ebus_lane_create(struct ebus *bus, struct producer *p, unsigned exec);
void ebus_lane_free(struct ebus *bus, struct lane *l);
void ebus_registry_add_bus(struct ebus *bus);
void ebus_registry_remove_bus(struct ebus *bus);

/* executor.c */
int ebus_exec_start(struct ebus_exec *ex);
/* Any thread: the executor passes `list` (newest first) to call_rcu on its
 * next pass; what is left when it has exited, ebus_destroy frees. */
void ebus_exec_retire(struct ebus_exec *ex, struct retire *list);
struct retire *ebus_exec_retire_leftover(struct ebus_exec *ex);
void ebus_exec_wake(struct ebus_exec *ex);
void ebus_exec_notify_progress(struct ebus_exec *ex, bool idle);
void ebus_exec_notify_all(struct ebus_exec *ex);
void ebus_release_payload(struct ebus *bus, struct ebus_slot *s);
void ebus_dispatch_slot(struct ebus *bus, struct ebus_slot *s, unsigned who, ebus_ctr *delivered,
                        ebus_ctr *calls, ebus_ctr *errors, ebus_ctr *no_sub);

/* consumer.c: wakes every pull consumer and every handler blocked on a
 * consumer's full queue, so they re-check the bus state (ebus_shutdown). */
void ebus_consumers_notify(struct ebus *bus);

/* meta.c */
int ebus_meta_init(struct ebus *bus, const ebus_config_t *cfg);
void ebus_meta_emit(struct ebus *bus, int which, int executor, ebus_sub_id sub, uint64_t count,
                    int rc, const char *name, size_t namelen);
/* The executor.stopped events, on the topic's own executor after every
 * other executor has stopped (executor.c, at its exit). */
void ebus_meta_stopped(struct ebus_exec *home);
uint64_t ebus_meta_handled(struct ebus_exec *ex);
int ebus_publish_internal(struct ebus_topic_s *t, const void *data, size_t len);

/* stats.c */
int ebus_stats_init(struct ebus *bus, const ebus_config_t *cfg); /* histograms */
void ebus_stats_fini(struct ebus *bus);
int ebus_topic_stats_init(struct ebus *bus, struct ebus_topic_s *t);
void ebus_topic_stats_fini(struct ebus *bus, struct ebus_topic_s *t);
/* Counts a publish refused on a full lane against its topic (slow path):
 * EBUS_ERR_FULL / EBUS_ERR_DEADLOCK, EBUS_DROPPED, EBUS_ERR_TIMEOUT. */
void ebus_topic_count_refused(struct ebus_topic_s *t, int rc);

/* sync.c */
int ebus_sync_publish(struct ebus_topic_s *t, const void *data, size_t len, int kind,
                      ebus_release_fn release, void *arg);
void ebus_sync_grace_period(struct ebus *bus);
bool ebus_sync_try_grace_period(struct ebus *bus); /* never waits; false if a stripe is busy */
int ebus_sync_flush(struct ebus *bus, uint64_t timeout_ns);
void ebus_sync_shutdown(struct ebus *bus);

#endif
