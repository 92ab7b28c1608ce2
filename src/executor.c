/*
 * Executor layer (contract in exec.h). An executor is one thread. It owns
 * the consumer side of its lanes, drains them round-robin in bounded
 * batches, dispatches each slot in place to the topic's current subscriber
 * array, and parks when idle. It also owns the protocols other threads use
 * to wait for it (flush, a publisher blocked on a full lane), so every
 * field of struct ebus_exec is written in this file only.
 *
 * RCU: executors are urcu-qsbr readers. The read side costs nothing; after
 * every pass over the lanes the executor reports a quiescent state (one
 * load and compare when no grace period is waiting), and it goes offline
 * before it parks, so a subscribe/unsubscribe never waits for an idle
 * executor and no IPI is ever sent to a pinned core (memb's grace periods
 * use membarrier IPIs). Subscriber arrays are loaded with a plain acquire
 * load (what rcu_dereference compiles to) to keep the per-event cost inline
 * without defining _LGPL_SOURCE (ebus is MIT; liburcu is LGPL).
 *
 * Parking (lost-wakeup-safe): the executor stores sleeping = 1, runs the
 * heavy side of an asymmetric fence (membarrier), re-checks every lane and
 * only then futex-waits. A publisher, after its commit, runs the light side
 * (a compiler barrier) and loads `sleeping`; the pair orders like two full
 * fences, so either the executor sees the new event or the publisher sees
 * sleeping = 1 and wakes it. The publisher pays no fence per event.
 */
#include "exec.h"

#include <pthread.h>
#include <sched.h>

#define LANE_BATCH 64  /* slots per lane per pass: fairness between lanes */
#define YIELD_ROUNDS 16

_Thread_local struct ebus_exec *ebus_tls_exec;

struct ebus_exec {
	/* executor-private, hot */
	const struct ebus_env *env;
	unsigned index;
	unsigned rr;
	struct lane **lanes;
	unsigned nlanes, cap_lanes;
	uint64_t idle_work; /* ordinary events handled at the last idle event */
	struct dispatch_ctrs d;
	ebus_ctr finished; /* events taken out of lanes and fully processed */
	ebus_ctr parks, wakeups;
	ebus_ctr lanes_reclaimed;
	ebus_ctr lane_high_water; /* most events found in one lane at a drain */
	ebus_ctr direct;          /* events dispatched without a lane (executor.stopped) */
	struct ebus_hist *hist;   /* latency histogram; NULL unless timestamps */
	/* signals from other threads */
	_Atomic uint32_t sleeping __attribute__((aligned(EBUS_CL))); /* park futex word */
	_Atomic int stop;
	_Atomic int exited; /* the thread is past its last pass */
	_Atomic uint32_t closed_pending; /* closed lanes not yet reclaimed */
	ck_stack_t incoming; /* new lanes */
	_Atomic(struct retire *) retire_in; /* lists handed over (ebus_exec_retire) */
	/* waiters for progress (flush, blocked publishers) */
	_Atomic uint32_t progress __attribute__((aligned(EBUS_CL))); /* futex word */
	_Atomic uint32_t waiters; /* flush waiters */
	_Atomic uint64_t wake_at; /* smallest `finished` a flush waiter needs */
	/* Deadlock detection (ebus_exec_wait_space): what this executor's
	 * thread waits for. blocked_on: space in a lane of that executor.
	 * wait_sub: the guard of that serial subscription, whose holder is read
	 * afresh (wait_sub->owner) on every step of a walk, never cached. */
	_Atomic(struct ebus_exec *) blocked_on;
	_Atomic(struct ebus_sub *) wait_sub;
	/* cold */
	int cpu __attribute__((aligned(EBUS_CL)));
	pthread_t thread;
	bool started;
};

/* ---- dispatch ------------------------------------------------------------- */

/* Out of line: serial subscriptions are the exception, and inlined its wait
 * context would be set up on every dispatch. */
static __attribute__((noinline)) int call_serial(const struct ebus_env *env, struct ebus_sub *sub,
                                                 const ebus_event_t *ev, bool *ran);

/*
 * What a dispatch loop hands the subscriber loop: the event (first, so a
 * handler's event pointer is the frame's address) and what only the
 * exceptions need (errors, dead or serial subscribers), reached through
 * that one pointer, so the loop keeps its registers for itself.
 */
struct dispatch_frame {
	ebus_event_t ev;
	const struct ebus_env *env;
	struct dispatch_ctrs *d;
	struct topic_ctrs *tc;
	uint64_t skipped; /* subscribers in the arrays but not called */
};

/* A handler returned rc != 0: counted, and reported to the error hook and
 * as a meta event. Out of line: the exception. */
static __attribute__((noinline)) void handler_failed(struct dispatch_frame *f,
                                                     struct ebus_sub *sub, int rc)
{
	const struct ebus_env *env = f->env;
	struct ebus_topic_s *t = f->ev.topic;
	ctr_add(&f->d->handler_errors, 1);
	ctr_add(&f->tc->handler_errors, 1);
	atomic_fetch_add_explicit(&sub->errors, 1, memory_order_relaxed);
	if (env->error_hook)
		env->error_hook(env->error_hook_arg, t, sub->id, rc);
	if (env->meta_error && !(t->flags & TOPIC_RESERVED))
		env->meta_emit(env->ctx, META_ERROR, ebus_tls_exec ? (int)ebus_tls_exec->index : -1,
		               sub->id, atomic_load_explicit(&sub->errors, memory_order_relaxed), rc,
		               t->name, t->namelen);
}

/* The slot's payload as a handler sees it. */
static inline const void *slot_data(const struct ebus_slot *s)
{
	return s->kind == SLOT_INLINE ? (s->len ? (const void *)s->u.data : NULL) : s->u.ref.ptr;
}

/* A subscriber whose state word is not 0: dead (skipped: false) or serial
 * (called under its guard). Out of line: the exception. */
static __attribute__((noinline)) bool call_special(struct dispatch_frame *f, struct ebus_sub *sub,
                                                   int *rc)
{
	bool ran = false;
	if (!(atomic_load_explicit(&sub->state, memory_order_relaxed) & SUB_DEAD))
		*rc = call_serial(f->env, sub, &f->ev, &ran);
	if (!ran)
		f->skipped++; /* dead, or unsubscribed while we waited for its guard */
	return ran;
}

/*
 * The core of dispatch, inline in both callers (the drain loop and
 * ebus_dispatch_slot): calls the live subscribers of `a` with f->ev, in
 * order. Per subscriber: one state word (0: a plain live subscriber), the
 * call, the return code. The caller counts a->n calls and subtracts
 * f->skipped; errors are counted at once.
 */
static inline void call_subscribers(struct dispatch_frame *f, struct subarr *a)
{
	struct ebus_sub *const *it = a->items, *const *end = it + a->n;
	for (; it != end; it++) {
		struct ebus_sub *sub = *it;
		int rc;
		if (EBUS_LIKELY(atomic_load_explicit(&sub->state, memory_order_relaxed) == 0))
			rc = sub->fn(&f->ev, sub->ctx);
		else if (!call_special(f, sub, &rc))
			continue;
		if (EBUS_UNLIKELY(rc != 0))
			handler_failed(f, *it, rc);
	}
}

void ebus_dispatch_slot(const struct ebus_env *env, struct ebus_slot *s, unsigned who,
                        struct dispatch_ctrs *d, uint64_t source)
{
	struct ebus_topic_s *t = s->topic;
	struct subarr *a = atomic_load_explicit(&t->subs, memory_order_acquire);
	struct topic_ctrs *tc = topic_ctrs_of(t, who);
	struct dispatch_frame f;
	uint64_t ncalls;

	if (!a) {
		ctr_add(&d->dropped_no_sub, 1);
		ctr_add(&tc->dropped_no_sub, 1);
		ebus_slot_release(env->alloc, s);
		return;
	}
	f.ev.topic = t;
	f.ev.data = slot_data(s);
	f.ev.len = s->len;
	f.ev.source = source;
	f.ev.seq = s->seq;
	f.ev.flags = EBUS_EV_END_OF_BATCH;
	f.env = env;
	f.d = d;
	f.tc = tc;
	f.skipped = 0;
	call_subscribers(&f, a);
	ncalls = a->n - f.skipped;
	ctr_add(&d->handler_calls, ncalls);
	ctr_add(&tc->handler_calls, ncalls);
	ctr_add(&d->delivered, 1);
	ctr_add(&tc->delivered, 1);
	ebus_slot_release(env->alloc, s);
}

/*
 * A serial subscription's call, under its guard (a ck fas spin lock). The
 * guard is almost always free; when it is not, another executor is inside
 * the handler: wait (spin, yield; the holder has no one to wake, so no
 * sleep). A waiting executor names the subscription in wait_sub and bumps
 * its own progress word, so a holder that sleeps on this executor's full
 * lane re-walks the wait chain and gets EBUS_ERR_DEADLOCK
 * (ebus_exec_wait_space). The walk reads the guard's holder (owner) afresh
 * on every step, so the record never goes stale when the guard changes
 * hands.
 *
 * `dead` is checked again once the guard is ours: an unsubscribe from
 * inside the handler on the executor that held it has returned by then
 * (the guard's release orders it), and the handler must not run again.
 */
struct serial_wait {
	struct ebus_waiter w;
	struct ebus_sub *sub;
	struct ebus_exec *self; /* NULL on a synchronous bus */
	bool announced;
};

static int serial_check(struct ebus_waiter *w)
{
	struct serial_wait *sw = EBUS_CONTAINER(w, struct serial_wait, w);
	return ck_spinlock_fas_trylock(&sw->sub->guard) ? EBUS_OK : EBUS_WAIT_AGAIN;
}

static uint32_t serial_announce(struct ebus_waiter *w)
{
	struct serial_wait *sw = EBUS_CONTAINER(w, struct serial_wait, w);
	EBUS_TEST_STALL(EBUS_TP_SERIAL_WAIT, sw->self ? (long)sw->self->index : -1);
	if (sw->self && !sw->announced) {
		atomic_store_explicit(&sw->self->wait_sub, sw->sub, memory_order_seq_cst);
		ebus_exec_poke(sw->self);
		sw->announced = true;
	}
	return 0;
}

static __attribute__((noinline)) int call_serial(const struct ebus_env *env, struct ebus_sub *sub,
                                                 const ebus_event_t *ev, bool *ran)
{
	struct ebus_exec *self = ebus_on_executor_of(env) ? ebus_tls_exec : NULL;
	struct serial_wait sw = { { serial_check, serial_announce, NULL, NULL, EBUS_DEADLINE_NONE },
		                  sub, self, false };
	int rc;

	if (!ck_spinlock_fas_trylock(&sub->guard))
		(void)ebus_wait_for(&sw.w); /* no deadline: returns holding the guard */
	EBUS_TSAN_ACQUIRE(&sub->guard);
	atomic_store_explicit(&sub->owner, self, memory_order_seq_cst);
	if (sw.announced)
		atomic_store_explicit(&self->wait_sub, NULL, memory_order_seq_cst);
	EBUS_TEST_STALL(EBUS_TP_SERIAL_ACQUIRED, self ? (long)self->index : -1);
	*ran = !(atomic_load_explicit(&sub->state, memory_order_acquire) & SUB_DEAD);
	rc = *ran ? sub->fn(ev, sub->ctx) : 0;
	atomic_store_explicit(&sub->owner, NULL, memory_order_seq_cst);
	EBUS_TSAN_RELEASE(&sub->guard);
	ck_spinlock_fas_unlock(&sub->guard);
	return rc;
}

void ebus_exec_dispatch_direct(struct ebus_exec *ex, struct ebus_topic_s *t, const void *data,
                               size_t len)
{
	struct ebus_slot s;
	memset(&s, 0, sizeof s);
	s.topic = t;
	s.len = (uint32_t)len;
	s.kind = SLOT_REF; /* no release: the data stays the caller's */
	s.u.ref.ptr = (void *)data;
	ctr_add(&ex->direct, 1);
	ebus_dispatch_slot(ex->env, &s, ex->index, &ex->d, 0); /* seq 0, source 0: the bus's own */
	ctr_add_release(&ex->finished, 1);
}

/* ---- waking ----------------------------------------------------------------- */

void ebus_exec_wake(struct ebus_exec *ex)
{
	ebus_wake_edge(&ex->sleeping);
}

void ebus_exec_poke(struct ebus_exec *ex)
{
	ebus_wake_all(&ex->progress);
}

/*
 * Tells flush waiters that this executor moved, but only when one of them
 * can be done (its target reached) or the executor is idle: a futex wake
 * per batch would cost the executor more than the batch. Light side of the
 * asymmetric fence; waiters run the heavy side after announcing themselves
 * (ebus_wait_for in ebus_exec_flush). The reset of wake_at comes before the
 * bump, so a waiter whose registration it erased wakes (it read the word
 * before it registered).
 */
static void notify_progress(struct ebus_exec *ex, bool idle)
{
	ebus_fence_light();
	if (EBUS_LIKELY(!atomic_load_explicit(&ex->waiters, memory_order_relaxed)))
		return;
	if (!idle && ctr_get(&ex->finished) <
	                 atomic_load_explicit(&ex->wake_at, memory_order_relaxed))
		return;
	EBUS_TEST_STALL(EBUS_TP_EXEC_WAKING, 2 * (long)ex->index + idle);
	atomic_store_explicit(&ex->wake_at, UINT64_MAX, memory_order_seq_cst);
	ebus_exec_poke(ex);
	EBUS_TEST_STALL(EBUS_TP_EXEC_NOTIFY, 2 * (long)ex->index + idle);
}

/* ---- lanes, consumer side ------------------------------------------------ */

void ebus_exec_add_lane(struct ebus_exec *ex, struct lane *l)
{
	l->park_word = &ex->sleeping;
	EBUS_TSAN_RELEASE(&ex->incoming); /* ck_stack's CAS is asm */
	ck_stack_push_upmc(&ex->incoming, &l->link);
	/* The push is a locked instruction (a full barrier) before the check. */
	ebus_exec_wake(ex);
}

void ebus_exec_lane_closed(struct ebus_exec *ex, struct lane *l)
{
	atomic_fetch_add_explicit(&ex->closed_pending, 1, memory_order_relaxed);
	/* release: every commit of the lane's thread precedes it */
	atomic_store_explicit(&l->closed, 1, memory_order_seq_cst);
	ebus_exec_wake(ex);
}

static void adopt_incoming(struct ebus_exec *ex)
{
	const ebus_allocator_t *a = ex->env->alloc;
	ck_stack_entry_t *e, *next;
	if (!CK_STACK_FIRST(&ex->incoming))
		return;
	e = ck_stack_batch_pop_upmc(&ex->incoming);
	EBUS_TSAN_ACQUIRE(&ex->incoming);
	for (; e; e = next) {
		struct lane *l = EBUS_CONTAINER(e, struct lane, link);
		next = CK_STACK_NEXT(e);
		if (ex->nlanes == ex->cap_lanes) {
			unsigned ncap = ex->cap_lanes ? ex->cap_lanes * 2 : 16;
			struct lane **n = ebus_alloc(a, ncap * sizeof *n, _Alignof(struct lane *));
			if (!n) {
				/* Keep it for the next pass; nothing is lost. */
				ck_stack_push_upmc(&ex->incoming, e);
				continue;
			}
			if (ex->nlanes)
				memcpy(n, ex->lanes, ex->nlanes * sizeof *n);
			ebus_free(a, ex->lanes, ex->cap_lanes * sizeof *n);
			ex->lanes = n;
			ex->cap_lanes = ncap;
		}
		ex->lanes[ex->nlanes++] = l;
	}
}

/*
 * A run: consecutive slots of one topic in a stretch. Its counts go to the
 * topic's and the executor's counters once, at its end, before the batch's
 * c_head store, so that whoever sees the slots released (flush) sees the
 * counts too.
 */
static inline void run_counted(struct ebus_exec *ex, struct topic_ctrs *tc, uint64_t delivered,
                               uint64_t calls)
{
	ctr_add(&tc->delivered, delivered);
	ctr_add(&tc->handler_calls, calls);
	ctr_add(&ex->d.delivered, delivered);
	ctr_add(&ex->d.handler_calls, calls);
}

/* A run of a topic without subscribers: counted and released. Returns
 * where the run ends. */
static __attribute__((noinline)) struct ebus_slot *run_no_sub(struct ebus_exec *ex,
                                                              struct lane *l,
                                                              struct ebus_slot *s,
                                                              struct ebus_slot *end)
{
	struct ebus_topic_s *t = s->topic;
	struct ebus_slot *start = s;
	for (; s != end && s->topic == t; s++) {
		if (EBUS_UNLIKELY(ex->hist != NULL))
			ebus_hist_record(ex->hist, s->ts);
		if (s->kind != SLOT_INLINE)
			ebus_lane_slot_release(l, ex->env->alloc, s);
	}
	ctr_add(&topic_ctrs_of(t, ex->index)->dropped_no_sub, (uint64_t)(s - start));
	ctr_add(&ex->d.dropped_no_sub, (uint64_t)(s - start));
	return s;
}

/*
 * Dispatches the slots [s, end) of one contiguous stretch of a lane's ring,
 * in place: the executor's hot loop. `after` is the topic of the slot that
 * follows the stretch in this batch (NULL: the batch ends), for the
 * end-of-batch flag. Run by run: one event struct serves the stretch
 * (source once, topic per run, the rest per event), and the subscriber
 * array is loaded again for every event (a handler may subscribe: events
 * dispatched after that reach the new subscriber). What stays live across
 * a handler call is the slot, the end, the topic and the array, so the
 * subscriber loop keeps its registers.
 * `timed` (a constant at each call) records the latency histogram.
 */
static inline void drain_stretch(struct ebus_exec *ex, struct lane *l, struct ebus_slot *s,
                                 struct ebus_slot *end, struct ebus_topic_s *after, bool timed)
{
	uint64_t source = l->source;
	struct dispatch_frame f;
	f.ev.source = source;
	f.env = ex->env;
	f.d = &ex->d;
	while (s != end) {
		struct ebus_topic_s *t = s->topic;
		struct subarr *a = atomic_load_explicit(&t->subs, memory_order_acquire);
		struct ebus_slot *start = s;
		uint64_t calls = 0;
		if (EBUS_UNLIKELY(!a)) {
			s = run_no_sub(ex, l, s, end);
			continue;
		}
		f.tc = topic_ctrs_of(t, ex->index);
		f.ev.topic = t;
		f.skipped = 0;
		do {
			struct ebus_slot *nx = s + 1;
			struct ebus_topic_s *nt = nx != end ? nx->topic : after;
			if (timed)
				ebus_hist_record(ex->hist, s->ts);
			f.ev.len = s->len;
			f.ev.seq = s->seq;
			f.ev.flags = nt != t ? EBUS_EV_END_OF_BATCH : 0; /* a run of t ends */
			calls += a->n;
			/* The kind is tested once: the inline case needs no release. */
			if (EBUS_LIKELY(s->kind == SLOT_INLINE)) {
				f.ev.data = s->len ? (const void *)s->u.data : NULL;
				call_subscribers(&f, a);
			} else {
				f.ev.data = s->u.ref.ptr;
				call_subscribers(&f, a);
				ebus_lane_slot_release(l, f.env->alloc, s);
			}
			s = nx;
			/* every subscriber left (a == NULL): the outer loop counts the rest */
		} while (s != end && s->topic == t &&
		         EBUS_LIKELY((a = atomic_load_explicit(&t->subs, memory_order_acquire)) != NULL));
		run_counted(ex, f.tc, (uint64_t)(s - start), calls - f.skipped);
	}
}

/* Dispatches n slots from index c: the part up to the ring's end, then the
 * part that wrapped to its start. */
static inline void drain_dispatch(struct ebus_exec *ex, struct lane *l, unsigned c, unsigned n)
{
	unsigned head = c & l->ring.mask, room = l->ring.mask + 1 - head;
	struct ebus_slot *b = l->buf;
	if (EBUS_UNLIKELY(ex->hist != NULL)) {
		if (n <= room) {
			drain_stretch(ex, l, b + head, b + head + n, NULL, true);
		} else {
			drain_stretch(ex, l, b + head, b + head + room, b[0].topic, true);
			drain_stretch(ex, l, b, b + (n - room), NULL, true);
		}
	} else if (EBUS_LIKELY(n <= room)) {
		drain_stretch(ex, l, b + head, b + head + n, NULL, false);
	} else {
		drain_stretch(ex, l, b + head, b + head + room, b[0].topic, false);
		drain_stretch(ex, l, b, b + (n - room), NULL, false);
	}
}

/* Shutdown (DISCARD): counts and releases n slots from index c. */
static void drain_discard(struct ebus_exec *ex, struct lane *l, unsigned c, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct ebus_slot *s = &l->buf[(c + i) & l->ring.mask];
		ctr_add(&ex->d.dropped_shutdown, 1);
		ctr_add(&topic_ctrs_of(s->topic, ex->index)->dropped_shutdown, 1);
		ebus_lane_slot_release(l, ex->env->alloc, s);
	}
}

/*
 * Drains up to `max` slots of one lane in place (the ring view of lane.h):
 * dispatch (or, when discarding, count and release) each, then one c_head
 * store for the batch.
 */
static unsigned lane_drain(struct ebus_exec *ex, struct lane *l, unsigned max, int mode)
{
	unsigned c, n = ebus_ring_peek(&l->ring, &c), p = c + n, mask = l->ring.mask;

	if (n == 0)
		return 0;
	if (EBUS_UNLIKELY(n > ctr_get(&ex->lane_high_water)))
		atomic_store_explicit(&ex->lane_high_water, n, memory_order_relaxed);
	if (n > max)
		n = max;
	if (EBUS_LIKELY(mode != STOP_DISCARD))
		drain_dispatch(ex, l, c, n);
	else
		drain_discard(ex, l, c, n);
	ebus_ring_release(&l->ring, c + n);
	ctr_add_release(&l->consumed, n); /* after c_head: ebus_lane_counts */
	ctr_add_release(&ex->finished, n);
	/* A producer blocked on this full lane sleeps until it is half empty:
	 * one wake per half lane, not per batch; one blocked on the lane's
	 * arena is woken after every batch (its bytes come back in slot
	 * order, as they are dispatched). Light fence against the
	 * producer's heavy one (ebus_exec_wait_space). Only the producer clears
	 * space_wait: clearing it here from a stale reading could erase the
	 * flag of the producer's next sleep and lose that wakeup. */
	ebus_fence_light();
	if (EBUS_UNLIKELY(atomic_load_explicit(&l->space_wait, memory_order_relaxed)) &&
	    (p - (c + n) <= mask / 2 ||
	     atomic_load_explicit(&l->space_wait, memory_order_relaxed) == 2))
		ebus_exec_poke(ex);
	EBUS_TEST_STALL(EBUS_TP_LANE_DRAINED, ex->index);
	return n;
}

static void reclaim_closed(struct ebus_exec *ex)
{
	const ebus_allocator_t *a = ex->env->alloc;
	unsigned i = 0, freed = 0;

	while (i < ex->nlanes) {
		struct lane *l = ex->lanes[i];
		if (!atomic_load_explicit(&l->closed, memory_order_acquire) ||
		    ebus_ring_queued(&l->ring)) {
			i++;
			continue;
		}
		ebus_lane_reclaim(ex->env->lanes, l);
		ctr_add(&ex->lanes_reclaimed, 1);
		ex->lanes[i] = ex->lanes[--ex->nlanes];
		freed++;
	}
	if (freed && ex->nlanes == 0) {
		/* No publisher left: give the lane table back too, so a burst of
		 * short-lived threads leaves no memory behind. */
		ebus_free(a, ex->lanes, ex->cap_lanes * sizeof ex->lanes[0]);
		ex->lanes = NULL;
		ex->cap_lanes = 0;
	}
	if (freed)
		atomic_fetch_sub_explicit(&ex->closed_pending, freed, memory_order_seq_cst);
}

/* ---- deferred frees ---------------------------------------------------------- */

void ebus_exec_retire(struct ebus_exec *ex, struct retire *list)
{
	struct retire *tail = list, *head;
	while (tail->next)
		tail = tail->next;
	head = atomic_load_explicit(&ex->retire_in, memory_order_relaxed);
	do
		tail->next = head;
	while (!atomic_compare_exchange_weak_explicit(&ex->retire_in, &head, list,
	                                              memory_order_seq_cst, memory_order_relaxed));
	ebus_exec_wake(ex);
}

struct retire *ebus_exec_retire_leftover(struct ebus_exec *ex)
{
	return atomic_exchange_explicit(&ex->retire_in, NULL, memory_order_acquire);
}

static void take_retired(struct ebus_exec *ex)
{
	struct retire *list;
	if (EBUS_LIKELY(!atomic_load_explicit(&ex->retire_in, memory_order_relaxed)))
		return;
	list = atomic_exchange_explicit(&ex->retire_in, NULL, memory_order_acquire);
	if (list)
		ebus_retire_call_rcu(list);
}

/* ---- the loop ------------------------------------------------------------------ */

static bool has_work(struct ebus_exec *ex)
{
	if (CK_STACK_FIRST(&ex->incoming))
		return true;
	if (atomic_load_explicit(&ex->retire_in, memory_order_acquire))
		return true;
	if (atomic_load_explicit(&ex->closed_pending, memory_order_acquire))
		return true;
	if (atomic_load_explicit(&ex->stop, memory_order_acquire))
		return true;
	for (unsigned i = 0; i < ex->nlanes; i++)
		if (ebus_ring_queued(&ex->lanes[i]->ring))
			return true;
	return false;
}

/* One pass: every lane, up to LANE_BATCH slots each, starting after the
 * lane that went first last time. */
static unsigned pass(struct ebus_exec *ex, int mode)
{
	unsigned total = 0, n = ex->nlanes;
	if (n == 0)
		return 0;
	ex->rr = ex->rr + 1 < n ? ex->rr + 1 : 0;
	for (unsigned k = 0; k < n; k++) {
		unsigned i = ex->rr + k;
		if (i >= n)
			i -= n;
		total += lane_drain(ex, ex->lanes[i], LANE_BATCH, mode);
	}
	return total;
}

static void park(struct ebus_exec *ex)
{
	atomic_store_explicit(&ex->sleeping, 1, memory_order_seq_cst);
	/* A failed heavy fence (platform.c) proves nothing: do not sleep on it. */
	if (!ebus_fence_heavy() || has_work(ex)) {
		atomic_store_explicit(&ex->sleeping, 0, memory_order_relaxed);
		return;
	}
	ctr_add(&ex->parks, 1);
	notify_progress(ex, true);
	EBUS_TSAN_RELEASE(&ebus_tsan_gp_token);
	urcu_qsbr_thread_offline();
	while (atomic_load_explicit(&ex->sleeping, memory_order_acquire))
		ebus_futex_wait(&ex->sleeping, 1, 0);
	urcu_qsbr_thread_online();
	ctr_add(&ex->wakeups, 1);
}

/* Once per busy period, and only after ordinary events: the idle event is
 * a meta event itself, so handling it never causes another. */
static void emit_idle(struct ebus_exec *ex)
{
	const struct ebus_env *env = ex->env;
	uint64_t work = ctr_get(&ex->finished) - env->meta_handled(env->ctx, ex->index);
	if (work == ex->idle_work)
		return;
	ex->idle_work = work;
	env->meta_emit(env->ctx, META_IDLE, (int)ex->index, 0, work, 0, NULL, 0);
}

/* Nothing was found: spin, yield or park, by the bus's wait strategy. */
static void idle_step(struct ebus_exec *ex, unsigned *idle)
{
	const struct ebus_env *env = ex->env;
	notify_progress(ex, true);
	(*idle)++;
	if (EBUS_UNLIKELY(*idle == env->spin_iterations) && env->meta_idle)
		emit_idle(ex);
	if (env->wait == EBUS_WAIT_BUSY_SPIN || *idle < env->spin_iterations) {
		ebus_cpu_relax();
	} else if (env->wait == EBUS_WAIT_SPIN_YIELD || *idle < env->spin_iterations + YIELD_ROUNDS) {
		sched_yield();
	} else {
		park(ex);
		*idle = 0;
	}
}

/* The loop proper: returns once stopped with every lane empty. */
static void run(struct ebus_exec *ex)
{
	unsigned idle = 0;
	for (;;) {
		int mode = atomic_load_explicit(&ex->stop, memory_order_acquire);
		unsigned n;
		adopt_incoming(ex);
		n = pass(ex, mode);
		if (atomic_load_explicit(&ex->closed_pending, memory_order_acquire))
			reclaim_closed(ex);
		take_retired(ex);
		EBUS_TSAN_RELEASE(&ebus_tsan_gp_token);
		urcu_qsbr_quiescent_state();
		if (n) {
			idle = 0;
			EBUS_TEST_STALL(EBUS_TP_EXEC_PASS, ex->index);
			notify_progress(ex, false);
			continue;
		}
		if (mode != STOP_NONE) {
			/* Shutdown waited for every publish in flight before setting
			 * stop, so empty lanes now stay empty. */
			adopt_incoming(ex);
			if (!CK_STACK_FIRST(&ex->incoming) && pass(ex, mode) == 0)
				return;
			continue;
		}
		idle_step(ex, &idle);
	}
}

static void *exec_main(void *arg)
{
	struct ebus_exec *ex = arg;
	const struct ebus_env *env = ex->env;

	if (ex->cpu >= 0)
		(void)ebus_pin_self(ex->cpu); /* checked at create */
	ebus_tls_exec = ex;
	urcu_qsbr_register_thread();
	if (env->meta_emit)
		env->meta_emit(env->ctx, META_STARTED, (int)ex->index, 0, 0, 0, NULL, 0);
	run(ex);
	reclaim_closed(ex);
	/* Still a registered qsbr reader marked as this bus's executor, so
	 * what the hook dispatches (executor.stopped) runs under the rules of
	 * every handler. */
	if (env->at_exit)
		env->at_exit(env->ctx, ex);
	take_retired(ex);
	EBUS_TSAN_RELEASE(&ebus_tsan_gp_token);
	urcu_qsbr_unregister_thread();
	ebus_tls_exec = NULL;
	atomic_store_explicit(&ex->exited, 1, memory_order_seq_cst);
	ebus_exec_poke(ex);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------- */

int ebus_exec_create(const struct ebus_env *env, unsigned index, int cpu, struct ebus_exec **out)
{
	struct ebus_exec *ex = ebus_zalloc(env->alloc, sizeof *ex, EBUS_CL);
	if (!ex)
		return EBUS_ERR_NOMEM;
	ex->env = env;
	ex->index = index;
	ex->cpu = cpu;
	atomic_init(&ex->wake_at, UINT64_MAX);
	ck_stack_init(&ex->incoming);
	if (env->timestamps) {
		ex->hist = ebus_zalloc(env->alloc, sizeof *ex->hist, EBUS_CL);
		if (!ex->hist) {
			ebus_free(env->alloc, ex, sizeof *ex);
			return EBUS_ERR_NOMEM;
		}
	}
	*out = ex;
	return EBUS_OK;
}

int ebus_exec_start(struct ebus_exec *ex)
{
	if (pthread_create(&ex->thread, NULL, exec_main, ex) != 0)
		return EBUS_ERR_SYSTEM;
	ex->started = true;
	return EBUS_OK;
}

void ebus_exec_stop(struct ebus_exec *ex, int mode)
{
	if (!ex->started)
		return;
	atomic_store_explicit(&ex->stop, mode, memory_order_seq_cst);
	ebus_exec_wake(ex);
}

void ebus_exec_join(struct ebus_exec *ex)
{
	if (!ex->started)
		return;
	pthread_join(ex->thread, NULL);
	ex->started = false;
}

void ebus_exec_destroy(struct ebus_exec *ex)
{
	const ebus_allocator_t *a = ex->env->alloc;
	ebus_free(a, ex->lanes, ex->cap_lanes * sizeof ex->lanes[0]);
	ebus_free(a, ex->hist, sizeof *ex->hist);
	ebus_free(a, ex, sizeof *ex);
}

unsigned ebus_exec_index(const struct ebus_exec *ex)
{
	return ex->index;
}

bool ebus_on_executor_of(const struct ebus_env *env)
{
	return ebus_tls_exec && ebus_tls_exec->env == env;
}

/* ---- statistics ------------------------------------------------------------------- */

void ebus_dispatch_ctrs_read(struct dispatch_ctrs *d, ebus_stats_t *s)
{
	s->delivered += ctr_get(&d->delivered);
	s->handler_calls += ctr_get(&d->handler_calls);
	s->handler_errors += ctr_get(&d->handler_errors);
	s->dropped_no_subscriber += ctr_get(&d->dropped_no_sub);
	s->dropped_shutdown += ctr_get(&d->dropped_shutdown);
}

void ebus_exec_stats(struct ebus_exec *ex, ebus_stats_t *s)
{
	s->published += ctr_get(&ex->direct);
	ebus_dispatch_ctrs_read(&ex->d, s);
	s->parks += ctr_get(&ex->parks);
	s->wakeups += ctr_get(&ex->wakeups);
	s->lanes_reclaimed += ctr_get(&ex->lanes_reclaimed);
	if (ctr_get(&ex->lane_high_water) > s->lane_high_water)
		s->lane_high_water = ctr_get(&ex->lane_high_water); /* max, not sum */
}

struct ebus_hist *ebus_exec_hist(const struct ebus_exec *ex)
{
	return ex->hist;
}

/* ---- waiting for progress: flush ------------------------------------------------ */

/*
 * Threads that wait for this executor sleep on its progress word
 * (ebus_wait_for): they read it BEFORE they announce themselves (flush:
 * waiters and wake_at; a blocked publisher: lane->space_wait), then run the
 * heavy fence and re-check. Every event that could end a wait (or that
 * cancels an announcement, as notify_progress resetting wake_at does)
 * bumps the word after it happened, so if it happened after the word was
 * read the futex returns at once.
 */
static uint32_t progress_word(struct ebus_exec *ex)
{
	return atomic_load_explicit(&ex->progress, memory_order_seq_cst);
}

static void wake_at_min(struct ebus_exec *ex, uint64_t target)
{
	uint64_t cur = atomic_load_explicit(&ex->wake_at, memory_order_relaxed);
	while (target < cur &&
	       !atomic_compare_exchange_weak_explicit(&ex->wake_at, &cur, target,
	                                              memory_order_seq_cst, memory_order_relaxed))
		;
}

/*
 * Flush waits for positions, not counts: for each of the executor's lanes,
 * the producer index it had at the call. Counting events over all lanes
 * would let other threads' later events stand in for the caller's own.
 * Lanes are taken FLUSH_CHUNK at a time (no allocation): a later chunk's
 * positions are taken later, which only waits for more. A lane is done
 * when its c_head (stored by the executor after dispatching a batch,
 * release) has reached the position, or when it is no longer in the lane
 * set: reclaimed, so drained. Lanes created after the call hold no event
 * accepted before it and are skipped by id.
 */
#define FLUSH_CHUNK 32

struct flush_mark {
	uint64_t lane_id;
	uint64_t consumed; /* lane->consumed at the mark */
	unsigned pos;       /* lane->ring.p_tail at the mark */
};

struct flush_ctx {
	struct ebus_waiter w;
	struct ebus_exec *ex;
	struct lane_set *set;
	unsigned n;
	uint64_t next_id; /* the next chunk takes lanes with smaller ids */
	uint64_t bound;   /* for wake_at: `finished` at which the marks can be reached */
	bool more;        /* lanes beyond this chunk may be pending */
	struct flush_mark m[FLUSH_CHUNK];
};

/* The lane's position has been dispatched. 32-bit indices: `consumed`
 * (64-bit) says when so much has passed that the difference could wrap. */
static bool mark_reached(const struct flush_mark *m, struct lane *l)
{
	unsigned c = __atomic_load_n(&l->ring.c_head, __ATOMIC_ACQUIRE);
	if (ctr_get(&l->consumed) - m->consumed >= (1ull << 30))
		return true; /* capacity <= 2^24: c_head is long past pos */
	return (int)(c - m->pos) >= 0;
}

/* Under the set's lock: marks the next chunk of this executor's pending lanes. */
static void flush_take_chunk(struct flush_ctx *c)
{
	struct lane *l;
	c->n = 0;
	c->more = false;
	EBUS_LIST_FOR_EACH(l, &c->set->lanes, struct lane, set_node) {
		unsigned p;
		if (l->exec != c->ex->index || l->id >= c->next_id)
			continue;
		p = __atomic_load_n(&l->ring.p_tail, __ATOMIC_ACQUIRE);
		if (p == __atomic_load_n(&l->ring.c_head, __ATOMIC_ACQUIRE))
			continue; /* nothing queued: nothing to wait for */
		if (c->n == FLUSH_CHUNK) {
			c->more = true;
			break;
		}
		c->m[c->n].lane_id = l->id;
		c->m[c->n].consumed = ctr_get(&l->consumed);
		c->m[c->n].pos = p;
		c->n++;
		c->next_id = l->id;
	}
}

/* Under the set's lock: drops the marks that are reached; returns a lower
 * bound of the executor's `finished` count at which the rest can be. */
static uint64_t flush_prune(struct flush_ctx *c)
{
	uint64_t bound = ctr_get_acquire(&c->ex->finished); /* before the c_heads */
	struct cds_list_head *pos = c->set->lanes.next, *end = &c->set->lanes;
	unsigned j = 0;
	for (unsigned k = 0; k < c->n; k++) {
		struct flush_mark *m = &c->m[k];
		struct lane *l = NULL;
		for (; pos != end; pos = pos->next) {
			l = cds_list_entry(pos, struct lane, set_node);
			if (l->id <= m->lane_id)
				break;
		}
		if (pos == end || l->id != m->lane_id || mark_reached(m, l))
			continue; /* reclaimed (drained), or reached */
		bound += (unsigned)(m->pos - __atomic_load_n(&l->ring.c_head, __ATOMIC_RELAXED));
		c->m[j++] = *m;
	}
	c->n = j;
	return bound;
}

/* Everything accepted on this executor before the call is dispatched (and
 * its closed lanes are reclaimed), or the executor has exited. */
static int flush_check(struct ebus_waiter *w)
{
	struct flush_ctx *c = EBUS_CONTAINER(w, struct flush_ctx, w);
	struct ebus_exec *ex = c->ex;
	bool done;
	if (atomic_load_explicit(&ex->exited, memory_order_acquire))
		return EBUS_OK;
	pthread_mutex_lock(&c->set->lock);
	c->bound = flush_prune(c);
	while (c->n == 0 && c->more) {
		flush_take_chunk(c);
		c->bound = flush_prune(c);
	}
	pthread_mutex_unlock(&c->set->lock);
	done = c->n == 0 && atomic_load_explicit(&ex->closed_pending, memory_order_acquire) == 0;
	if (done)
		return EBUS_OK;
	if (c->bound <= ctr_get(&ex->finished))
		c->bound = ctr_get(&ex->finished) + 1;
	return EBUS_WAIT_AGAIN;
}

static uint32_t flush_announce(struct ebus_waiter *w)
{
	struct flush_ctx *c = EBUS_CONTAINER(w, struct flush_ctx, w);
	uint32_t v = progress_word(c->ex);
	atomic_fetch_add_explicit(&c->ex->waiters, 1, memory_order_seq_cst);
	wake_at_min(c->ex, c->bound);
	EBUS_TEST_STALL(EBUS_TP_FLUSH_ANNOUNCED, -1);
	return v;
}

static void flush_retract(struct ebus_waiter *w)
{
	struct flush_ctx *c = EBUS_CONTAINER(w, struct flush_ctx, w);
	atomic_fetch_sub_explicit(&c->ex->waiters, 1, memory_order_relaxed);
}

int ebus_exec_flush(struct ebus_exec *ex, uint64_t deadline)
{
	struct flush_ctx c;
	c.w = (struct ebus_waiter){ flush_check, flush_announce, flush_retract, &ex->progress,
		                    deadline };
	c.ex = ex;
	c.set = ex->env->lanes;
	c.next_id = UINT64_MAX;
	c.bound = 0;
	pthread_mutex_lock(&c.set->lock);
	flush_take_chunk(&c);
	pthread_mutex_unlock(&c.set->lock);
	EBUS_TEST_STALL(EBUS_TP_FLUSH_TARGET, -1);
	return ebus_wait_for(&c.w);
}

/* ---- waiting for progress: space in a full lane --------------------------------- */

/* What the executor `e` waits for, read afresh: the executor whose lane
 * it needs space in, or the current holder of the guard it waits for. */
static struct ebus_exec *waits_for(struct ebus_exec *e)
{
	struct ebus_exec *next = atomic_load_explicit(&e->blocked_on, memory_order_seq_cst);
	struct ebus_sub *sub;
	if (next)
		return next;
	/* The walker is an online qsbr reader that reports no quiescent state
	 * while it blocks, so a subscription still named here is not freed. */
	sub = atomic_load_explicit(&e->wait_sub, memory_order_seq_cst);
	return sub ? atomic_load_explicit(&sub->owner, memory_order_seq_cst) : NULL;
}

/* True if executors waiting for each other would wait for `self`. */
static bool cycle_through(struct ebus_exec *self, struct ebus_exec *target)
{
	struct ebus_exec *e = target;
	for (unsigned i = 0; e && i <= self->env->nexec; i++) {
		if (e == self)
			return true;
		e = waits_for(e);
	}
	return false;
}

struct space_ctx {
	struct ebus_waiter w;
	struct ebus_exec *self, *target;
	struct lane *lane;
	size_t arena_need; /* 0: a slot */
	struct ebus_slot *slot;
};

/* One look at everything that ends a blocked publish. The cycle is looked
 * for on every pass: another executor may start waiting for a guard this
 * thread holds at any time (it then bumps its progress word, which the
 * sleep waits on). */
static int space_check(struct ebus_waiter *w)
{
	struct space_ctx *c = EBUS_CONTAINER(w, struct space_ctx, w);
	EBUS_TEST_STALL(EBUS_TP_FULL_WAIT, c->self ? (long)c->self->index : -1);
	if (atomic_load_explicit(c->target->env->state, memory_order_acquire) != 0)
		return EBUS_ERR_SHUTDOWN;
	if (c->arena_need ? ebus_lane_arena_fits(c->lane, c->arena_need)
	                  : (c->slot = ebus_lane_reserve(c->lane)) != NULL)
		return EBUS_OK;
	if (c->self && cycle_through(c->self, c->target))
		return EBUS_ERR_DEADLOCK;
	return EBUS_WAIT_AGAIN;
}

static uint32_t space_announce(struct ebus_waiter *w)
{
	struct space_ctx *c = EBUS_CONTAINER(w, struct space_ctx, w);
	uint32_t v = progress_word(c->target);
	atomic_store_explicit(&c->lane->space_wait, c->arena_need ? 2 : 1, memory_order_seq_cst);
	EBUS_TEST_STALL(EBUS_TP_FULL_SLEEP, c->self ? (long)c->self->index : -1);
	return v;
}

int ebus_exec_wait_space(struct ebus_exec *ex, struct lane *l, uint64_t deadline,
                         size_t arena_need, struct ebus_slot **slot)
{
	struct space_ctx c = { { space_check, space_announce, NULL, &ex->progress, deadline },
		               ebus_on_executor_of(ex->env) ? ebus_tls_exec : NULL, ex, l, arena_need,
		               NULL };
	int rc;

	if (c.self == ex) {
		ctr_add(&l->rejected_full, 1);
		return EBUS_ERR_DEADLOCK;
	}
	/* Dekker with the other executors: store, full fence (seq_cst), then
	 * walk. Of two executors closing a cycle, at least one sees it. */
	if (c.self)
		atomic_store_explicit(&c.self->blocked_on, ex, memory_order_seq_cst);
	rc = ebus_wait_for(&c.w);
	atomic_store_explicit(&l->space_wait, 0, memory_order_relaxed);
	if (c.self)
		atomic_store_explicit(&c.self->blocked_on, NULL, memory_order_seq_cst);
	if (rc == EBUS_ERR_DEADLOCK)
		ctr_add(&l->rejected_full, 1);
	else if (rc == EBUS_ERR_TIMEOUT)
		ctr_add(&l->rejected_timeout, 1);
	if (!arena_need)
		*slot = c.slot; /* an arena wait leaves the caller's slot as it was */
	return rc;
}
