/*
 * Bus layer: struct ebus and what the modules beside the bus (producer.c,
 * sync.c, consumer.c, meta.c, stats.c) share with bus.c. The layers below
 * never include this header: they get what they need from the bus as
 * their own structs embedded here (lane set, registry, subscriptions,
 * executor environment) and as explicit hooks.
 *
 * Contract:
 *  - Fields are written during ebus_create (alone) and then only by the
 *    owner named next to them. `state` moves OPEN -> CLOSING -> CLOSED,
 *    only in ebus_shutdown (under shutdown_lock).
 *  - Counters here are atomic adds (many writers, slow paths only).
 */
#ifndef EBUS_BUS_H
#define EBUS_BUS_H

#include "base.h"
#include "exec.h"
#include "lane.h"
#include "subs.h"
#include "topic.h"

#include <pthread.h>

enum { BUS_OPEN = 0, BUS_CLOSING = 1, BUS_CLOSED = 2 };

/* Per (thread, bus) publisher state (producer.c). Owned by the thread
 * (plain malloc), because a thread may outlive the bus; reached from the
 * bus only under the global registry lock. */
struct producer {
	_Atomic int busy; /* inside a publish call: shutdown waits for 0 */
	unsigned spread;  /* next executor for unordered topics */
	uint64_t bus_id;  /* never reused: a record of a destroyed bus matches no live one */
	/* The last sequence number this thread gave each topic, by topic index
	 * (ebus_event_t.seq): [nseq] entries, grown on the slow path (plain
	 * realloc: the table belongs to the thread, like the record). */
	uint64_t *seq;
	uint32_t nseq;
	uint64_t id; /* ebus_event_t.source: 1, 2, ... per bus, under producers_lock */
	/* The open claim (ebus_claim): its lane (NULL: none), slot and topic.
	 * While it is open, busy stays 1 and ebus_tls_last never points here,
	 * so every publish of the thread to this bus takes the general path,
	 * which refuses the claim's lane. */
	struct lane *claim_lane;
	struct ebus_slot *claim_slot;
	struct ebus_topic_s *claim_topic;
	uint64_t claim_arena_head; /* the lane's arena_head before the claim */
	struct producer *tls_next;
	struct cds_list_head bus_node; /* ebus.producers, under producers_lock */
	struct lane *lanes[];          /* [nexec] */
};

struct sync_stripe; /* sync.c */

struct ebus {
	/* read on every publish: one cache line */
	_Atomic int state; /* BUS_*: 0 (open) is what ebus_env.state tests */
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
	uint64_t id; /* producer.c, at create: never reused */
	struct ebus_exec **exec;
	struct sync_stripe *stripes; /* sync.c */
	ebus_allocator_t alloc;
	int shutdown_mode; /* STOP_*, written by ebus_shutdown before CLOSING */

	/* the layers below, each owning its state */
	struct ebus_env env;
	struct lane_set lanes;
	struct ebus_registry reg;
	struct ebus_subs subs;

	/* producer.c */
	pthread_mutex_t producers_lock;
	struct cds_list_head producers; /* struct producer (bus_node) */
	uint64_t last_producer_id;      /* under producers_lock */
	struct ebus *reg_next;          /* global registry of live buses */

	bool emit_stopped; /* ebus_shutdown: executor.stopped is due (meta.c) */
	_Atomic uint64_t rejected_shutdown;
	_Atomic uint64_t unknown_name_drops;
	_Atomic uint64_t sync_deferred_pending; /* sync.c */
	pthread_mutex_t shutdown_lock;

	struct ebus_topic_s *meta[META_N]; /* meta.c: all NULL unless config.meta_events */

	/* consumer.c: pull consumers */
	pthread_mutex_t consumers_lock;
	struct cds_list_head consumers;
};

/* ---- producer.c ----------------------------------------------------------- */
/* One-entry cache of the calling thread's producer record. initial-exec:
 * no __tls_get_addr call per publish in the shared library. */
extern _Thread_local struct producer *ebus_tls_last __attribute__((tls_model("initial-exec")));
/* The record holding the calling thread's open claim (publish.c), or NULL. */
extern _Thread_local struct producer *ebus_tls_claim __attribute__((tls_model("initial-exec")));
/* Gives an open claim's slot back (its owned payload freed); busy drops to
 * 0. The claiming thread, or its exit. */
void ebus_claim_drop(struct ebus *bus, struct producer *p);
struct producer *ebus_producer_get_slow(struct ebus *bus); /* NULL: EBUS_ERR_NOMEM */
static inline struct producer *ebus_producer_get(struct ebus *bus)
{
	struct producer *p = ebus_tls_last;
	if (EBUS_LIKELY(p && p->bus_id == bus->id))
		return p;
	return ebus_producer_get_slow(bus);
}
/* Grows p's sequence table to cover topic index `ix` (slow path);
 * EBUS_ERR_NOMEM leaves it as it was. */
int ebus_producer_seq_grow(struct producer *p, uint32_t ix);
/* The slot of p's last sequence number for topic t, or NULL when the table
 * cannot grow (out of memory). */
static inline uint64_t *ebus_producer_seq(struct producer *p, const struct ebus_topic_s *t)
{
	if (EBUS_UNLIKELY(t->index >= p->nseq) && ebus_producer_seq_grow(p, t->index) != EBUS_OK)
		return NULL;
	return &p->seq[t->index];
}
/* The calling thread's first lane to executor `exec`; NULL: out of memory. */
struct lane *ebus_producer_lane(struct ebus *bus, struct producer *p, unsigned exec);
/* True while a publish call is inside its critical section. */
bool ebus_producers_busy(struct ebus *bus);
void ebus_registry_add_bus(struct ebus *bus);
void ebus_registry_remove_bus(struct ebus *bus);

/* ---- bus.c ------------------------------------------------------------------ */
/* Meta events: no reserved-prefix or size check, never waits. */
int ebus_publish_internal(struct ebus_topic_s *t, const void *data, size_t len);

/* ---- meta.c --------------------------------------------------------------- */
int ebus_meta_init(struct ebus *bus, const ebus_config_t *cfg);
void ebus_meta_emit(struct ebus *bus, int which, int executor, ebus_sub_id sub, uint64_t count,
                    int rc, const char *name, size_t namelen);
/* ebus_env hooks (ctx = the bus). */
void ebus_meta_emit_hook(void *bus, int which, int executor, ebus_sub_id sub, uint64_t count,
                         int rc, const char *name, size_t namelen);
uint64_t ebus_meta_handled_hook(void *bus, unsigned exec);
void ebus_meta_at_exit_hook(void *bus, struct ebus_exec *ex);

/* ---- sync.c ----------------------------------------------------------------- */
int ebus_sync_init(struct ebus *bus);
void ebus_sync_fini(struct ebus *bus);
int ebus_sync_publish(struct ebus_topic_s *t, const void *data, size_t len, int kind,
                      ebus_release_fn release, void *arg);
/* ebus_subs_ops (ctx = the bus). */
void ebus_sync_grace_period(void *bus);
bool ebus_sync_try_grace_period(void *bus); /* never waits; false if a stripe is busy */
int ebus_sync_flush(struct ebus *bus, uint64_t timeout_ns);
void ebus_sync_shutdown(struct ebus *bus);
void ebus_sync_stats(struct ebus *bus, unsigned stripe, ebus_stats_t *s);
struct ebus_hist *ebus_sync_hist(struct ebus *bus, unsigned stripe);

/* ---- consumer.c: wakes every pull consumer and every handler blocked on a
 * consumer's full queue, so they re-check the bus state (ebus_shutdown). */
void ebus_consumers_notify(struct ebus *bus);

#endif
