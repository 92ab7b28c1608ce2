/*
 * Executor layer: the executor threads (drain, dispatch, park), their
 * progress and flush protocol, the blocking wait for lane space with
 * deadlock detection, and dispatch itself (shared with synchronous mode).
 *
 * Contract:
 *  - struct ebus_exec is opaque: executor.c alone reads and writes its
 *    fields. Other layers act on an executor only through these functions.
 *  - Lifecycle (the bus's control thread): create, start, stop, join,
 *    destroy, in that order; stop and join are no-ops on an executor that
 *    never started.
 *  - Any thread: ebus_exec_add_lane, ebus_exec_lane_closed, ebus_exec_wake,
 *    ebus_exec_poke, ebus_exec_retire, ebus_exec_stats.
 *  - Blocking calls (ebus_exec_flush, ebus_exec_wait_space) return
 *    EBUS_ERR_TIMEOUT at the deadline and never hold a lock while asleep.
 *  - Upward calls (meta events, the executor.stopped hook) go through the
 *    function pointers of struct ebus_env, set by the bus before any
 *    executor starts and read-only afterwards.
 */
#ifndef EBUS_EXEC_H
#define EBUS_EXEC_H

#include "base.h"
#include "lane.h"
#include "subs.h"
#include "topic.h"

enum { STOP_NONE = 0, STOP_DRAIN = 1, STOP_DISCARD = 2 };

/* Meta events, by index (meta.c names them); the executor layer emits
 * STARTED, IDLE and ERROR through ebus_env.meta_emit. */
enum { META_SUB_ADDED, META_SUB_REMOVED, META_STARTED, META_STOPPED, META_IDLE, META_ERROR, META_N };

/* Dispatch counters of one dispatcher (an executor, or a stripe of a
 * synchronous bus): one writer, the dispatcher. */
struct dispatch_ctrs {
	ebus_ctr delivered, handler_calls, handler_errors, dropped_no_sub, dropped_shutdown;
};
/* Adds them to *s (relaxed reads; any thread). */
void ebus_dispatch_ctrs_read(struct dispatch_ctrs *d, ebus_stats_t *s);

/* What the executor layer needs from its bus: fixed before any executor
 * starts, read-only afterwards. */
struct ebus_env {
	const ebus_allocator_t *alloc;
	struct lane_set *lanes;
	const _Atomic int *state; /* the bus's state word: 0 while open */
	unsigned nexec;
	ebus_wait wait;
	unsigned spin_iterations;
	bool timestamps; /* executors keep a latency histogram */
	ebus_error_hook_fn error_hook;
	void *error_hook_arg;
	/* Meta events: meta_emit is NULL on a bus without them; meta_error
	 * and meta_idle say whether those topics exist. */
	bool meta_error, meta_idle;
	void (*meta_emit)(void *ctx, int which, int executor, ebus_sub_id sub, uint64_t count,
	                  int rc, const char *name, size_t namelen);
	/* Meta events executor `exec` has handled (not counted as work). */
	uint64_t (*meta_handled)(void *ctx, unsigned exec);
	/* On the executor's thread after its last pass, before it leaves the
	 * qsbr reader set: may call ebus_exec_dispatch_direct. */
	void (*at_exit)(void *ctx, struct ebus_exec *ex);
	void *ctx;
};

struct ebus_exec; /* opaque: executor.c */

/* ---- lifecycle ----------------------------------------------------------- */
/* EBUS_ERR_NOMEM; cpu -1: not pinned (checked by the caller). */
int ebus_exec_create(const struct ebus_env *env, unsigned index, int cpu, struct ebus_exec **out);
int ebus_exec_start(struct ebus_exec *ex); /* EBUS_ERR_SYSTEM */
/* Asks the executor to finish: STOP_DRAIN dispatches what its lanes hold,
 * STOP_DISCARD counts it as dropped_shutdown. The caller made sure that no
 * publish is in flight. */
void ebus_exec_stop(struct ebus_exec *ex, int mode);
void ebus_exec_join(struct ebus_exec *ex);
/* After join (or if never started). Frees the executor, not its lanes. */
void ebus_exec_destroy(struct ebus_exec *ex);
unsigned ebus_exec_index(const struct ebus_exec *ex);
/* True when the calling thread is an executor of the bus that owns env. */
bool ebus_on_executor_of(const struct ebus_env *env);

/* ---- lanes -------------------------------------------------------------- */
/* A new lane of this executor's (empty, from ebus_lane_new): the executor
 * starts draining it; its publisher wakes the executor through it. */
void ebus_exec_add_lane(struct ebus_exec *ex, struct lane *l);
/* The lane's producer exited after its last commit: reclaim it once empty. */
void ebus_exec_lane_closed(struct ebus_exec *ex, struct lane *l);

/* Publisher, after a commit on lane l: whether its executor is parked (the
 * light side of the park protocol; see executor.c). Then ebus_lane_wake. */
static inline bool ebus_lane_needs_wake(struct lane *l)
{
	ebus_fence_light();
	return EBUS_UNLIKELY(atomic_load_explicit(l->park_word, memory_order_relaxed) != 0);
}
static inline void ebus_lane_wake(struct lane *l)
{
	ebus_wake_edge(l->park_word);
}

/* ---- signals and waits ----------------------------------------------------- */
void ebus_exec_wake(struct ebus_exec *ex);
/* Wakes every thread waiting on this executor's progress (flush waiters,
 * blocked publishers) so that it re-checks (a shutdown). */
void ebus_exec_poke(struct ebus_exec *ex);
/* Returns once every event accepted on this executor before the call has
 * been dispatched (or discarded by shutdown) and its closed lanes are
 * reclaimed; or EBUS_ERR_TIMEOUT. Not from this bus's executors. */
int ebus_exec_flush(struct ebus_exec *ex, uint64_t deadline);
/*
 * A publisher found lane l (of executor ex) full under EBUS_FULL_BLOCK:
 * waits for a free slot (*slot, EBUS_OK), or with arena_need > 0 (its slot
 * already reserved; *slot is left alone) until the lane's arena has room
 * for that many bytes. EBUS_ERR_SHUTDOWN once the bus
 * leaves the open state; EBUS_ERR_DEADLOCK when the caller is an executor
 * of this bus that the wait would close a cycle of (its own lane, or
 * executors waiting on each other's lanes and serial guards);
 * EBUS_ERR_TIMEOUT at the deadline. Counts DEADLOCK and TIMEOUT on the lane.
 */
int ebus_exec_wait_space(struct ebus_exec *ex, struct lane *l, uint64_t deadline,
                         size_t arena_need, struct ebus_slot **slot);

/* ---- deferred frees -------------------------------------------------------- */
/* Any thread: the executor passes `list` (newest first) to call_rcu on its
 * next pass; what is left when it has exited, the bus frees at destroy. */
void ebus_exec_retire(struct ebus_exec *ex, struct retire *list);
struct retire *ebus_exec_retire_leftover(struct ebus_exec *ex);

/* ---- statistics ---------------------------------------------------------- */
/* Adds the executor's own counters to *s (dispatch, parks, wakeups, lanes
 * reclaimed, high water; published for events it dispatched without a
 * lane). Any thread. */
void ebus_exec_stats(struct ebus_exec *ex, ebus_stats_t *s);
struct ebus_hist *ebus_exec_hist(const struct ebus_exec *ex); /* NULL without timestamps */

/* ---- dispatch -------------------------------------------------------------- */
/*
 * Calls the topic's current subscribers with the slot's event and releases
 * its payload. Shared by executors and synchronous mode: `who` is the
 * dispatcher's index (the topic counter block it writes), `c` its
 * counters, `source` the publisher's id (ebus_event_t.source); the event
 * is flagged EBUS_EV_END_OF_BATCH. Serial subscriptions are called under
 * their guard. The caller is an online qsbr reader (executor) or holds the
 * topic's stripe (sync).
 */
void ebus_dispatch_slot(const struct ebus_env *env, struct ebus_slot *s, unsigned who,
                        struct dispatch_ctrs *c, uint64_t source);
/* On ex's thread (ebus_env.at_exit): dispatches one event now, counted as
 * published and delivered by ex. data stays the caller's. */
void ebus_exec_dispatch_direct(struct ebus_exec *ex, struct ebus_topic_s *t, const void *data,
                               size_t len);

#endif
