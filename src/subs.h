/*
 * Subscription layer: the control plane of a bus. Copy-on-write subscriber
 * arrays (RCU), subscription ids, pattern subscriptions, topic interning
 * (a new topic gets its matching patterns), and deferred frees.
 *
 * Contract:
 *  - Every function here but the per-event reads is serialised on the
 *    layer's lock (`lock`, the bus's control lock), which it takes itself;
 *    none is called with it held. It is never held across a grace period
 *    or a call into user code.
 *  - Readers (the dispatcher, per event) load a topic's `subs` with acquire
 *    and may use the array and its subscriptions until their next quiescent
 *    state (executors) or until they drop their stripe lock (sync buses).
 *    Nothing they may hold is freed before that; see subs.c.
 *  - Freeing waits for a grace period in one place only, the blocking form
 *    of ebus_subs_remove (not from a handler). Everything else is handed on
 *    (ops.handoff to an executor's call_rcu; a sync bus tries its stripes).
 *  - Failure: every function that can fail (EBUS_ERR_NOMEM, _SHUTDOWN,
 *    _DUPLICATE, _NOT_FOUND) changes nothing.
 *  - Upward calls (to the executor and sync layers) go through `ops`,
 *    set once by the bus at create.
 */
#ifndef EBUS_SUBS_H
#define EBUS_SUBS_H

#include "base.h"
#include "topic.h"

#include <ck_spinlock.h>
#include <pthread.h>
#include <urcu/urcu-qsbr.h>

/* ---- deferred frees ---------------------------------------------------- */
struct ebus_subs;
struct retire {
	struct rcu_head rcu;       /* urcu_qsbr_call_rcu */
	struct retire *next;       /* a retired list, newest first */
	struct ebus_subs *owner;   /* whose allocator and grace period */
	void (*free)(struct retire *);
};

/* ---- subscriptions ----------------------------------------------------- */
/*
 * One subscription. A literal one sits in one topic's array; a pattern one
 * (pattern != NULL) sits in the array of every matching topic, and on the
 * layer's pattern list. `serial` subscriptions (a pattern without
 * EBUS_SUB_CONCURRENT on a bus with several executors or stripes) are
 * called under `guard`, so they never run on two threads at once.
 * Written here under the lock before the subscription is published, except
 * `state`'s SUB_DEAD (set once, by ebus_subs_remove), `errors` (the dispatcher, atomic
 * adds) and `guard`/`owner` (the dispatcher: call_serial in executor.c).
 */
enum { SUB_DEAD = 1u, SUB_SERIAL = 2u };

struct ebus_sub {
	ebus_handler_fn fn;
	void *ctx;
	/* What dispatch tests for every subscriber, in one word: SUB_DEAD (set
	 * once, by ebus_subs_remove) and SUB_SERIAL (cached at creation: follows
	 * from `pattern`, `flags` and the executor count). 0: call fn. */
	_Atomic uint32_t state;
	unsigned flags; /* EBUS_SUB_* */
	ebus_sub_id id;
	struct ebus_topic_s *topic; /* literal subscriptions */
	char *pattern;              /* pattern subscriptions: NUL-terminated, after the struct */
	size_t patlen;
	struct cds_list_head pat_node; /* ebus_subs.patterns, under lock */
	ebus_released_fn released;
	_Atomic uint64_t errors; /* fetch_add on the error path: concurrent subs have many writers */
	struct retire retire;
	/* serial subscriptions only */
	ck_spinlock_fas_t guard __attribute__((aligned(EBUS_CL)));
	_Atomic(struct ebus_exec *) owner; /* executor holding guard (cycle detection) */
};

/* Immutable once published: copy-on-write under the lock. */
struct subarr {
	struct retire retire;
	uint32_t n;
	struct ebus_sub *items[];
};

/* ---- the layer's state ------------------------------------------------- */
struct ebus_subs_ops {
	/* Async bus: `list` (newest first) goes to a thread that passes it to
	 * ebus_retire_call_rcu; it must not wait. */
	void (*handoff)(void *ctx, struct retire *list);
	/* Sync bus: waits until no handler holds what was unlinked before the
	 * call; the try form never waits and is false when one may. */
	void (*sync_grace_period)(void *ctx);
	bool (*sync_try_grace_period)(void *ctx);
	void *ctx;
};

struct idslot {
	struct ebus_sub *sub; /* NULL when free */
	uint32_t serial;      /* id >> 32 of the subscription in it */
	uint32_t next_free;
};

struct ebus_subs {
	pthread_mutex_t lock;
	struct ebus_registry *reg; /* topics are created under lock */
	const ebus_allocator_t *alloc;
	struct ebus_subs_ops ops;
	unsigned nexec;
	bool sync;
	bool closed; /* ebus_subs_close: no new topic or subscription */
	struct idslot *ids;
	uint32_t ids_cap, free_head, free_tail;
	struct retire *retired;
	/* Length of retired, kept so that a control call need not walk it. */
	unsigned nretired;
	struct cds_list_head patterns; /* pattern subscriptions (pat_node), oldest first */
	/* Length of patterns, kept for ebus_subs_intern_matched: one lock-free
	 * load decides that a never-interned name needs no lock. */
	_Atomic unsigned npatterns;
	_Atomic int sync_retire_pending;
};

int ebus_subs_init(struct ebus_subs *s, struct ebus_registry *reg, const ebus_allocator_t *a,
                   unsigned nexec, bool sync, const struct ebus_subs_ops *ops);
/* Destroy, alone (no executor, publisher or handler left): frees every
 * array, subscription and retired entry. */
void ebus_subs_destroy(struct ebus_subs *s);
/* Frees a list handed off but never passed to call_rcu (destroy). */
void ebus_subs_free_list(struct retire *list);
/* Shutdown: from now on interning a new name and subscribing return
 * EBUS_ERR_SHUTDOWN, and retired lists are no longer handed off. */
void ebus_subs_close(struct ebus_subs *s);

/* ---- topics ------------------------------------------------------------- */
/* The topic `name` (valid, len bytes), created if new with its matching
 * patterns; executor -1 places it by hash. EBUS_ERR_SHUTDOWN when closed. */
int ebus_subs_intern(struct ebus_subs *s, const char *name, size_t len, uint64_t hash,
                     int executor, unsigned flags, struct ebus_topic_s **out);
/* The same, but a name no pattern matches is not created: *out = NULL. */
int ebus_subs_intern_matched(struct ebus_subs *s, const char *name, size_t len, uint64_t hash,
                             struct ebus_topic_s **out);
/* Subscribers of t now. */
uint32_t ebus_subs_count(struct ebus_subs *s, struct ebus_topic_s *t);

/* ---- subscribe / unsubscribe -------------------------------------------- */
/* What a change did, for the bus's meta event (the name is copied: the
 * subscription may be gone once the call returns). */
struct sub_change {
	ebus_sub_id id;
	uint64_t count; /* subscriptions of that topic (pattern) after the change */
	size_t namelen;
	char name[EBUS_TOPIC_MAX + 1];
};

int ebus_subs_add(struct ebus_subs *s, struct ebus_topic_s *t, ebus_handler_fn fn, void *ctx,
                  unsigned flags, struct sub_change *out);
/* pattern: valid and with a wildcard, plen bytes. */
int ebus_subs_add_pattern(struct ebus_subs *s, const char *pattern, size_t plen,
                          ebus_handler_fn fn, void *ctx, unsigned flags, struct sub_change *out);
/* Marks the subscription dead and unlinks it. Outside a handler, returns
 * after a grace period with everything retired so far freed; inside one,
 * the free (and `released`) comes later. */
int ebus_subs_remove(struct ebus_subs *s, ebus_sub_id id, ebus_released_fn released,
                     struct sub_change *out);
/* Every subscription with this ctx, as ebus_subs_remove does for one, with
 * one grace period for all (outside handlers). `each` (may be NULL) gets
 * each change after the lock is dropped. EBUS_ERR_NOMEM: those removed
 * before stay removed (*removed says how many). */
int ebus_subs_remove_ctx(struct ebus_subs *s, void *ctx, size_t *removed,
                         void (*each)(void *arg, const struct sub_change *c), void *arg);
int ebus_subs_errors(struct ebus_subs *s, ebus_sub_id id, uint64_t *errors);

/* ---- deferred frees, from the layers above ----------------------------- */
/* Executor thread (online qsbr reader): queues a handed-off list for
 * freeing after a grace period, oldest first. */
void ebus_retire_call_rcu(struct retire *list);
/* Sync bus, at the end of an outermost publish (no stripe held): frees
 * what this thread's handlers retired, then tries the bus's own list. */
void ebus_subs_sync_retire_run(struct ebus_subs *s);

#endif
