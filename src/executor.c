/*
 * Executors: one thread each. It owns the consumer side of its lanes,
 * drains them round-robin in bounded batches, dispatches each slot in place
 * to the topic's current subscriber array, and parks when idle.
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
#include "internal.h"

#include <sched.h>

#define LANE_BATCH 64  /* slots per lane per pass: fairness between lanes */
#define YIELD_ROUNDS 16

/* ---- payloads ------------------------------------------------------------ */

void ebus_release_payload(struct ebus *bus, struct ebus_slot *s)
{
	if (s->kind == SLOT_OWNED)
		ebus_free(bus, s->u.ref.ptr, s->len);
	else if (s->kind == SLOT_REF && s->u.ref.release)
		s->u.ref.release(s->u.ref.ptr, s->len, s->u.ref.arg);
}

/* Shared by executors and synchronous mode. Counters belong to the caller
 * (one writer each); `who` is the caller's executor (stripe) index, which
 * picks the topic's counter block. */
void ebus_dispatch_slot(struct ebus *bus, struct ebus_slot *s, unsigned who, ebus_ctr *delivered,
                        ebus_ctr *calls, ebus_ctr *errors, ebus_ctr *no_sub)
{
	struct ebus_topic_s *t = s->topic;
	struct subarr *a = atomic_load_explicit(&t->subs, memory_order_acquire);
	struct topic_ctrs *tc = topic_ctrs_of(t, who);
	uint64_t ncalls = 0;
	ebus_event_t ev;

	if (!a) {
		ctr_add(no_sub, 1);
		ctr_add(&tc->dropped_no_sub, 1);
		ebus_release_payload(bus, s);
		return;
	}
	ev.topic = t;
	ev.len = s->len;
	ev.data = s->kind == SLOT_INLINE ? (s->len ? (const void *)s->u.data : NULL) : s->u.ref.ptr;
	for (uint32_t i = 0; i < a->n; i++) {
		struct ebus_sub *sub = a->items[i];
		int rc;
		if (atomic_load_explicit(&sub->dead, memory_order_relaxed))
			continue;
		if (EBUS_LIKELY(!sub->serial)) {
			rc = sub->fn(&ev, sub->ctx);
		} else {
			bool ran;
			rc = ebus_call_serial(bus, sub, &ev, &ran);
			if (!ran)
				continue; /* unsubscribed while we waited for its guard */
		}
		ncalls++;
		if (EBUS_UNLIKELY(rc != 0)) {
			ctr_add(errors, 1);
			ctr_add(&tc->handler_errors, 1);
			atomic_fetch_add_explicit(&sub->errors, 1, memory_order_relaxed);
			if (bus->error_hook)
				bus->error_hook(bus->error_hook_arg, t, sub->id, rc);
			if (bus->meta[META_ERROR] && !(t->flags & TOPIC_RESERVED))
				ebus_meta_emit(bus, META_ERROR, ebus_tls_exec ? (int)ebus_tls_exec->index : -1,
				               sub->id, atomic_load_explicit(&sub->errors, memory_order_relaxed),
				               rc, t->name, t->namelen);
		}
	}
	ctr_add(calls, ncalls);
	ctr_add(&tc->handler_calls, ncalls);
	ctr_add(delivered, 1);
	ctr_add(&tc->delivered, 1);
	ebus_release_payload(bus, s);
}

/* ---- waking ----------------------------------------------------------------- */

void ebus_exec_wake(struct ebus_exec *ex)
{
	ebus_wake_edge(&ex->sleeping);
}

void ebus_exec_notify_all(struct ebus_exec *ex)
{
	ebus_wake_all(&ex->progress);
}

/*
 * Tells flush waiters that this executor moved, but only when one of them
 * can be done (its target reached) or the executor is idle: a futex wake
 * per batch would cost the executor more than the batch. Light side of the
 * asymmetric fence; waiters run the heavy side after announcing themselves
 * (flush_exec in bus.c). The reset of wake_at comes before the bump, so a
 * waiter whose registration it erased wakes (it read the word before it
 * registered).
 */
void ebus_exec_notify_progress(struct ebus_exec *ex, bool idle)
{
	ebus_fence_light();
	if (EBUS_LIKELY(!atomic_load_explicit(&ex->waiters, memory_order_relaxed)))
		return;
	if (!idle && ctr_get(&ex->finished) <
	                 atomic_load_explicit(&ex->wake_at, memory_order_relaxed))
		return;
	EBUS_TEST_STALL(EBUS_TP_EXEC_WAKING, 2 * (long)ex->index + idle);
	atomic_store_explicit(&ex->wake_at, UINT64_MAX, memory_order_seq_cst);
	ebus_exec_notify_all(ex);
	EBUS_TEST_STALL(EBUS_TP_EXEC_NOTIFY, 2 * (long)ex->index + idle);
}

/* ---- lanes, consumer side ------------------------------------------------ */

static void adopt_incoming(struct ebus_exec *ex)
{
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
			struct lane **n = ebus_alloc(ex->bus, ncap * sizeof *n, _Alignof(struct lane *));
			if (!n) {
				/* Keep it for the next pass; nothing is lost. */
				ck_stack_push_upmc(&ex->incoming, e);
				continue;
			}
			if (ex->nlanes)
				memcpy(n, ex->lanes, ex->nlanes * sizeof *n);
			ebus_free(ex->bus, ex->lanes, ex->cap_lanes * sizeof *n);
			ex->lanes = n;
			ex->cap_lanes = ncap;
		}
		ex->lanes[ex->nlanes++] = l;
	}
}

static inline unsigned lane_pending(struct lane *l)
{
	unsigned p = __atomic_load_n(&l->ring.p_tail, __ATOMIC_ACQUIRE);
	return p - __atomic_load_n(&l->ring.c_head, __ATOMIC_RELAXED);
}

/*
 * Batched single-consumer dequeue over ck_ring's fields (ck 0.7.1 has no
 * batch API; notes 2.4). Slots are dispatched in place and released with
 * one c_head store per batch, so the producer's cache line of c_head moves
 * once per batch, not once per event.
 */
static unsigned lane_drain(struct ebus_exec *ex, struct lane *l, unsigned max, int mode)
{
	struct ebus *bus = ex->bus;
	unsigned c = __atomic_load_n(&l->ring.c_head, __ATOMIC_RELAXED);
	unsigned p = __atomic_load_n(&l->ring.p_tail, __ATOMIC_ACQUIRE);
	unsigned n = p - c, mask = l->ring.mask;
	struct ebus_hist *hist = ex->hist; /* NULL unless timestamps */

	if (n == 0)
		return 0;
	if (EBUS_UNLIKELY(n > ctr_get(&ex->lane_high_water)))
		atomic_store_explicit(&ex->lane_high_water, n, memory_order_relaxed);
	if (n > max)
		n = max;
	EBUS_TSAN_ACQUIRE(&l->ring.p_tail); /* pairs with the producer's commit */
	for (unsigned i = 0; i < n; i++) {
		struct ebus_slot *s = &l->buf[(c + i) & mask];
		if (EBUS_UNLIKELY(mode == STOP_DISCARD)) {
			ctr_add(&ex->dropped_shutdown, 1);
			ctr_add(&topic_ctrs_of(s->topic, ex->index)->dropped_shutdown, 1);
			ebus_release_payload(bus, s);
		} else {
			if (EBUS_UNLIKELY(hist != NULL))
				ebus_hist_record(hist, s->ts);
			ebus_dispatch_slot(bus, s, ex->index, &ex->delivered, &ex->handler_calls,
			                   &ex->handler_errors, &ex->dropped_no_sub);
		}
	}
	EBUS_TSAN_RELEASE(&l->ring.c_head); /* slot reads before the producer reuses them */
	__atomic_store_n(&l->ring.c_head, c + n, __ATOMIC_RELEASE);
	ctr_add_release(&ex->finished, n);
	/* A producer blocked on this full lane sleeps until it is half empty:
	 * one wake per half lane, not per batch. Light fence against the
	 * producer's heavy one (full_block in bus.c). Only the producer clears
	 * space_wait: clearing it here from a stale reading could erase the
	 * flag of the producer's next sleep and lose that wakeup. */
	ebus_fence_light();
	if (EBUS_UNLIKELY(atomic_load_explicit(&l->space_wait, memory_order_relaxed)) &&
	    p - (c + n) <= mask / 2)
		ebus_exec_notify_all(ex);
	EBUS_TEST_STALL(EBUS_TP_LANE_DRAINED, ex->index);
	return n;
}

static void reclaim_closed(struct ebus_exec *ex)
{
	struct ebus *bus = ex->bus;
	unsigned i = 0, freed = 0;

	while (i < ex->nlanes) {
		struct lane *l = ex->lanes[i];
		if (!atomic_load_explicit(&l->closed, memory_order_acquire) || lane_pending(l)) {
			i++;
			continue;
		}
		pthread_mutex_lock(&bus->lanes_lock);
		ex->ret_published += ctr_get(&l->published);
		ex->ret_dropped_full += ctr_get(&l->dropped_full);
		ex->ret_rejected_full += ctr_get(&l->rejected_full);
		ex->ret_rejected_timeout += ctr_get(&l->rejected_timeout);
		ebus_lane_free(bus, l);
		ctr_add(&ex->lanes_reclaimed, 1);
		pthread_mutex_unlock(&bus->lanes_lock);
		ex->lanes[i] = ex->lanes[--ex->nlanes];
		freed++;
	}
	if (freed && ex->nlanes == 0) {
		/* No publisher left: give the lane table back too, so a burst of
		 * short-lived threads leaves no memory behind. */
		ebus_free(bus, ex->lanes, ex->cap_lanes * sizeof ex->lanes[0]);
		ex->lanes = NULL;
		ex->cap_lanes = 0;
	}
	if (freed)
		atomic_fetch_sub_explicit(&ex->closed_pending, freed, memory_order_seq_cst);
}

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
		if (lane_pending(ex->lanes[i]))
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
	ebus_exec_notify_progress(ex, true);
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
	uint64_t work = ctr_get(&ex->finished) - ebus_meta_handled(ex);
	if (work == ex->idle_work)
		return;
	ex->idle_work = work;
	ebus_meta_emit(ex->bus, META_IDLE, (int)ex->index, 0, work, 0, NULL, 0);
}

static void *exec_main(void *arg)
{
	struct ebus_exec *ex = arg;
	struct ebus *bus = ex->bus;
	unsigned idle = 0;
	int mode;

	if (ex->cpu >= 0)
		(void)ebus_pin_self(ex->cpu); /* checked at create */
	ebus_tls_exec = ex;
	urcu_qsbr_register_thread();
	ebus_meta_emit(bus, META_STARTED, (int)ex->index, 0, 0, 0, NULL, 0);

	for (;;) {
		unsigned n;
		mode = atomic_load_explicit(&ex->stop, memory_order_acquire);
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
			ebus_exec_notify_progress(ex, false);
			continue;
		}
		if (mode != STOP_NONE) {
			/* Shutdown waited for every publish in flight before setting
			 * stop, so empty lanes now stay empty. */
			adopt_incoming(ex);
			if (!CK_STACK_FIRST(&ex->incoming) && pass(ex, mode) == 0)
				break;
			continue;
		}
		ebus_exec_notify_progress(ex, true);
		idle++;
		if (EBUS_UNLIKELY(idle == bus->spin_iterations) && bus->meta[META_IDLE])
			emit_idle(ex);
		if (bus->wait == EBUS_WAIT_BUSY_SPIN || idle < bus->spin_iterations) {
			ebus_cpu_relax();
		} else if (bus->wait == EBUS_WAIT_SPIN_YIELD ||
		           idle < bus->spin_iterations + YIELD_ROUNDS) {
			sched_yield();
		} else {
			park(ex);
			idle = 0;
		}
	}
	reclaim_closed(ex);
	/* Still a registered qsbr reader marked as this bus's executor, so the
	 * executor.stopped handlers run under the rules of every handler. */
	if (bus->emit_stopped && bus->meta[META_STOPPED] &&
	    bus->meta[META_STOPPED]->executor == ex->index)
		ebus_meta_stopped(ex);
	take_retired(ex);
	EBUS_TSAN_RELEASE(&ebus_tsan_gp_token);
	urcu_qsbr_unregister_thread();
	ebus_tls_exec = NULL;
	ebus_exec_notify_all(ex);
	return NULL;
}

int ebus_exec_start(struct ebus_exec *ex)
{
	if (pthread_create(&ex->thread, NULL, exec_main, ex) != 0)
		return EBUS_ERR_SYSTEM;
	ex->started = true;
	return EBUS_OK;
}
