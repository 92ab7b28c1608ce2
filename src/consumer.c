/*
 * Pull consumers (bus layer, beside bus.c): a pattern subscription whose handler copies each event
 * into a bounded queue that the application drains with ebus_consume.
 *
 * The queue is a typed ck_ring of 64-byte records (one cache line each):
 * the topic, the length, and the payload inline up to CONS_INLINE bytes,
 * else a copy made with the bus allocator. Producers are handlers, and a
 * pattern (or an unordered topic) delivers from several executors (or, in
 * synchronous mode, several publishing threads) at once, so the enqueue is
 * ck's multi-producer reserve (a CAS on p_head). The commit is ours: ck's
 * waits for earlier tickets with a pause loop that never yields, which
 * convoys when producers outnumber cores (research notes, section 6); ours
 * yields after a few spins. The record is filled between reserve and commit
 * with a memcpy and nothing that can fail (the large copy is made before the
 * reserve), because an MP reservation cannot be abandoned. The consumer is
 * single: it peeks at the head record, copies it out and moves c_head with
 * a release store, as the executor does for lanes.
 *
 * Waiting, lost-wakeup-safe with the asymmetric fence pair of platform.h:
 *  - consumer, queue empty: sleeping = 1; heavy fence; re-check the queue
 *    and the bus state; futex_wait(&sleeping, 1). Producer: commit; light
 *    fence; if sleeping, exchange it to 0 and wake. Only the empty-to-
 *    sleeping edge costs a system call.
 *  - producer, queue full (EBUS_FULL_BLOCK): space_waiters++; heavy fence;
 *    read space_seq; re-check (reserve, closing, bus state); futex_wait on
 *    space_seq. Consumer, after each take: light fence; if space_waiters,
 *    bump space_seq and wake them all.
 * ebus_shutdown calls ebus_consumers_notify twice (state CLOSING, then
 * CLOSED): blocked producers give up, waiting consumers re-check.
 *
 * Counters: `consumed` has one writer (the consumer); the producer-side
 * counters have several writers (handlers on several threads) and use
 * relaxed atomic adds: this path copies a payload and CASes p_head anyway.
 */
#include "bus.h"

#include <sched.h>

#define CONS_DEFAULT_CAPACITY 1024u
#define CONS_MAX_CAPACITY (1u << 24)
#define CONS_INLINE 48
#define AWAIT_CAPACITY 4u

struct cons_rec {
	struct ebus_topic_s *topic;
	uint32_t len;
	uint32_t pad_;
	union {
		unsigned char data[CONS_INLINE];
		void *ptr; /* len > CONS_INLINE: bus-allocated copy of len bytes */
	} u;
} __attribute__((aligned(EBUS_CL)));
_Static_assert(sizeof(struct cons_rec) == EBUS_CL, "a record is one cache line");

CK_RING_PROTOTYPE(cons_rec, cons_rec)

struct ebus_consumer {
	struct ck_ring ring __attribute__((aligned(EBUS_CL)));
	/* consumer side */
	_Atomic uint32_t sleeping __attribute__((aligned(EBUS_CL))); /* futex word */
	ebus_ctr consumed;
	_Atomic uint64_t last_thread; /* id of the thread that last called ebus_consume */
	/* producer side (several writers) */
	_Atomic uint64_t received __attribute__((aligned(EBUS_CL)));
	_Atomic uint64_t high_water;
	_Atomic uint64_t dropped_full, rejected_full, rejected_timeout;
	_Atomic uint64_t dropped_shutdown, dropped_nomem;
	/* full-queue waiters */
	_Atomic uint32_t space_seq __attribute__((aligned(EBUS_CL))); /* futex word */
	_Atomic uint32_t space_waiters;
	_Atomic int closing; /* ebus_consumer_destroy began */
	/* cold */
	struct cons_rec *buf __attribute__((aligned(EBUS_CL)));
	struct ebus *bus;
	ebus_sub_id sub;
	ebus_full_policy policy;
	struct cds_list_head bus_node; /* bus->consumers, under consumers_lock */
};

/* A process-wide id per thread, for "is the producer the consumer's own
 * thread?". Addresses of thread-locals could be reused by a later thread. */
static _Atomic uint64_t thread_ids;
static _Thread_local uint64_t tls_thread_id;

static uint64_t self_id(void)
{
	if (!tls_thread_id)
		tls_thread_id = atomic_fetch_add_explicit(&thread_ids, 1, memory_order_relaxed) + 1;
	return tls_thread_id;
}

static void count(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static bool bus_open(struct ebus *bus)
{
	return atomic_load_explicit(&bus->state, memory_order_seq_cst) == BUS_OPEN;
}

/* ---- waking ------------------------------------------------------------- */

static void wake_consumer(struct ebus_consumer *c)
{
	ebus_wake_edge(&c->sleeping);
}

static void wake_producers(struct ebus_consumer *c)
{
	ebus_wake_all(&c->space_seq);
}

void ebus_consumers_notify(struct ebus *bus)
{
	struct ebus_consumer *c;
	pthread_mutex_lock(&bus->consumers_lock);
	EBUS_LIST_FOR_EACH(c, &bus->consumers, struct ebus_consumer, bus_node) {
		wake_producers(c);
		wake_consumer(c);
	}
	pthread_mutex_unlock(&bus->consumers_lock);
}

/* ---- producer side: the subscription's handler ------------------------------ */

enum { PUSH_OK, PUSH_FULL, PUSH_TIMEOUT, PUSH_SHUTDOWN };

static struct cons_rec *reserve(struct ebus_consumer *c, unsigned *ticket)
{
	unsigned before;
	struct cons_rec *r = ck_ring_enqueue_reserve_mpsc_size_cons_rec(&c->ring, c->buf, ticket,
	                                                                 &before);
	if (r) {
		uint64_t hw = atomic_load_explicit(&c->high_water, memory_order_relaxed);
		while ((uint64_t)before + 1 > hw &&
		       !atomic_compare_exchange_weak_explicit(&c->high_water, &hw, (uint64_t)before + 1,
		                                              memory_order_relaxed,
		                                              memory_order_relaxed))
			;
		EBUS_TSAN_ACQUIRE(&c->ring.c_head); /* the consumer is done with this record */
	}
	return r;
}

static bool closed_for_push(struct ebus_consumer *c)
{
	return atomic_load_explicit(&c->closing, memory_order_seq_cst) || !bus_open(c->bus);
}

/* EBUS_FULL_BLOCK: wait (ebus_wait_for) on space_seq until a record is free,
 * the consumer closes, the bus shuts down or block_timeout_ns passes. */
struct space_ctx {
	struct ebus_waiter w;
	struct ebus_consumer *c;
	struct cons_rec *r;
	unsigned ticket;
};

static int space_check(struct ebus_waiter *w)
{
	struct space_ctx *x = EBUS_CONTAINER(w, struct space_ctx, w);
	if (closed_for_push(x->c))
		return PUSH_SHUTDOWN;
	x->r = reserve(x->c, &x->ticket);
	return x->r ? PUSH_OK : EBUS_WAIT_AGAIN;
}

static uint32_t space_announce(struct ebus_waiter *w)
{
	struct space_ctx *x = EBUS_CONTAINER(w, struct space_ctx, w);
	uint32_t v = atomic_load_explicit(&x->c->space_seq, memory_order_seq_cst);
	atomic_fetch_add_explicit(&x->c->space_waiters, 1, memory_order_seq_cst);
	EBUS_TEST_STALL(EBUS_TP_CONSUMER_FULL_SLEEP, -1);
	return v;
}

static void space_retract(struct ebus_waiter *w)
{
	struct space_ctx *x = EBUS_CONTAINER(w, struct space_ctx, w);
	atomic_fetch_sub_explicit(&x->c->space_waiters, 1, memory_order_relaxed);
}

static int block_for_space(struct ebus_consumer *c, struct cons_rec **out, unsigned *ticket)
{
	struct space_ctx x = { { space_check, space_announce, space_retract, &c->space_seq,
		                 ebus_deadline_after(c->bus->block_timeout_ns) },
		               c, NULL, 0 };
	int rc;

	/* The consumer's own thread (a synchronous publish, or a handler on the
	 * thread that consumes) would wait for itself. */
	if (atomic_load_explicit(&c->last_thread, memory_order_relaxed) == self_id())
		return PUSH_FULL;
	rc = ebus_wait_for(&x.w);
	*out = x.r;
	*ticket = x.ticket;
	return rc == EBUS_ERR_TIMEOUT ? PUSH_TIMEOUT : rc;
}

/* Commits in ticket order, as ck's commit does, but yields while an earlier
 * producer (possibly preempted) has not committed yet. */
static void commit(struct ebus_consumer *c, unsigned ticket)
{
	for (unsigned step = 0; __atomic_load_n(&c->ring.p_tail, __ATOMIC_ACQUIRE) != ticket; step++)
		if (ebus_backoff(step))
			sched_yield(); /* the earlier producer has no one to wake us */
	EBUS_TSAN_RELEASE(&c->ring.p_tail);
	__atomic_store_n(&c->ring.p_tail, ticket + 1, __ATOMIC_RELEASE);
}

static int consumer_handler(const ebus_event_t *ev, void *ctx)
{
	struct ebus_consumer *c = ctx;
	struct ebus *bus = c->bus;
	struct cons_rec *r;
	void *copy = NULL;
	unsigned ticket;
	int rc = PUSH_OK;

	if (ev->len > CONS_INLINE) {
		copy = ebus_alloc(&bus->alloc, ev->len, 16);
		if (!copy) {
			count(&c->dropped_nomem);
			return 0;
		}
		memcpy(copy, ev->data, ev->len);
	}
	r = reserve(c, &ticket);
	if (!r) {
		switch (c->policy) {
		case EBUS_FULL_FAIL:
			rc = PUSH_FULL;
			break;
		case EBUS_FULL_DROP:
			count(&c->dropped_full);
			ebus_free(&bus->alloc, copy, ev->len);
			return 0;
		default:
			rc = block_for_space(c, &r, &ticket);
		}
	}
	if (rc != PUSH_OK) {
		count(rc == PUSH_FULL ? &c->rejected_full
		      : rc == PUSH_TIMEOUT ? &c->rejected_timeout
		                           : &c->dropped_shutdown);
		ebus_free(&bus->alloc, copy, ev->len);
		return 0; /* the loss is the consumer's, counted there: not a handler error */
	}
	r->topic = ev->topic;
	r->len = (uint32_t)ev->len;
	if (copy)
		r->u.ptr = copy;
	else if (ev->len)
		memcpy(r->u.data, ev->data, ev->len);
	count(&c->received);
	commit(c, ticket);
	ebus_fence_light(); /* pairs with the consumer's heavy fence before it sleeps */
	if (atomic_load_explicit(&c->sleeping, memory_order_relaxed))
		wake_consumer(c);
	return 0;
}

/* ---- create / destroy ----------------------------------------------------- */

static void consumer_free(struct ebus_consumer *c)
{
	struct ebus *bus = c->bus;
	unsigned h = __atomic_load_n(&c->ring.c_head, __ATOMIC_ACQUIRE);
	unsigned t = __atomic_load_n(&c->ring.p_tail, __ATOMIC_ACQUIRE);
	EBUS_TSAN_ACQUIRE(&c->ring.p_tail);
	for (; h != t; h++) {
		struct cons_rec *r = &c->buf[h & c->ring.mask];
		if (r->len > CONS_INLINE)
			ebus_free(&bus->alloc, r->u.ptr, r->len);
	}
	ebus_free(&bus->alloc, c->buf, (size_t)ck_ring_capacity(&c->ring) * sizeof *c->buf);
	ebus_free(&bus->alloc, c, sizeof *c);
}

static void consumer_released(void *ctx)
{
	consumer_free(ctx);
}

static void link_consumer(struct ebus_consumer *c)
{
	struct ebus *bus = c->bus;
	pthread_mutex_lock(&bus->consumers_lock);
	cds_list_add(&c->bus_node, &bus->consumers);
	pthread_mutex_unlock(&bus->consumers_lock);
}

static void unlink_consumer(struct ebus_consumer *c)
{
	struct ebus *bus = c->bus;
	pthread_mutex_lock(&bus->consumers_lock);
	cds_list_del(&c->bus_node);
	pthread_mutex_unlock(&bus->consumers_lock);
}

static int consumer_create(ebus_t *bus, const char *pattern, unsigned capacity,
                           ebus_full_policy policy, ebus_consumer_t **out)
{
	struct ebus_consumer *c;
	int rc;

	if (!bus || !pattern || !out)
		return EBUS_ERR_NULL;
	if (!capacity)
		capacity = CONS_DEFAULT_CAPACITY;
	if (capacity < 4 || capacity > CONS_MAX_CAPACITY || (capacity & (capacity - 1)))
		return EBUS_ERR_CAPACITY;
	rc = ebus_pattern_validate(pattern); /* before allocating anything */
	if (rc)
		return rc;
	c = ebus_zalloc(&bus->alloc, sizeof *c, EBUS_CL);
	if (!c)
		return EBUS_ERR_NOMEM;
	c->buf = ebus_alloc(&bus->alloc, (size_t)capacity * sizeof *c->buf, EBUS_CL);
	if (!c->buf) {
		ebus_free(&bus->alloc, c, sizeof *c);
		return EBUS_ERR_NOMEM;
	}
	ck_ring_init(&c->ring, capacity);
	c->bus = bus;
	c->policy = policy;
	/* Linked first, so a shutdown that starts while we subscribe wakes it. */
	link_consumer(c);
	rc = ebus_subscribe_pattern(bus, pattern, consumer_handler, c, EBUS_SUB_CONCURRENT, &c->sub);
	if (rc) {
		unlink_consumer(c);
		consumer_free(c);
		return rc;
	}
	*out = c;
	return EBUS_OK;
}

int ebus_consumer_create(ebus_t *bus, const char *pattern, unsigned capacity,
                         ebus_consumer_t **out)
{
	if (!bus)
		return EBUS_ERR_NULL;
	return consumer_create(bus, pattern, capacity, bus->policy, out);
}

void ebus_consumer_destroy(ebus_consumer_t *c)
{
	if (!c)
		return;
	/* Handlers blocked on the full queue give up (dropped_shutdown), so the
	 * grace period of the unsubscribe below cannot wait for them. */
	atomic_store_explicit(&c->closing, 1, memory_order_seq_cst);
	wake_producers(c);
	unlink_consumer(c);
	/* Outside a handler this waits for a grace period and frees before it
	 * returns; inside one it frees after the handlers that may still hold
	 * the consumer have returned. On failure (out of memory) the consumer
	 * stays subscribed but closed: every event it gets is counted as
	 * dropped_shutdown, and its memory is not reclaimed. */
	(void)ebus_unsubscribe_async(c->bus, c->sub, consumer_released);
}

/* ---- consumer side ---------------------------------------------------------- */

/* A waiting call from a thread that the bus needs to make progress. */
static bool would_deadlock(struct ebus *bus)
{
	return ebus_on_executor_of(&bus->env) || (bus->sync && ebus_tls_sync_depth > 0);
}

/* Takes the head record (the ring view of lane.h, one record at a time):
 * EBUS_OK, EBUS_ERR_EMPTY or EBUS_ERR_BUFFER. */
static int take(struct ebus_consumer *c, void *buf, size_t cap, ebus_message_t *msg)
{
	unsigned h;
	struct cons_rec *r;

	if (ebus_ring_peek(&c->ring, &h) == 0)
		return EBUS_ERR_EMPTY;
	r = &c->buf[h & c->ring.mask];
	msg->topic = r->topic;
	msg->len = r->len;
	if (r->len > cap)
		return EBUS_ERR_BUFFER; /* stays queued */
	if (r->len > CONS_INLINE) {
		memcpy(buf, r->u.ptr, r->len);
		ebus_free(&c->bus->alloc, r->u.ptr, r->len);
	} else if (r->len) {
		memcpy(buf, r->u.data, r->len);
	}
	ebus_ring_release(&c->ring, h + 1);
	ctr_add(&c->consumed, 1);
	ebus_fence_light(); /* pairs with a blocked producer's heavy fence */
	if (atomic_load_explicit(&c->space_waiters, memory_order_relaxed))
		wake_producers(c);
	return EBUS_OK;
}

struct take_ctx {
	struct ebus_waiter w;
	struct ebus_consumer *c;
	void *buf;
	size_t cap;
	ebus_message_t *msg;
};

/* A record, or the bus closed with none left. */
static int take_check(struct ebus_waiter *w)
{
	struct take_ctx *x = EBUS_CONTAINER(w, struct take_ctx, w);
	int rc = take(x->c, x->buf, x->cap, x->msg);
	if (rc != EBUS_ERR_EMPTY)
		return rc;
	if (atomic_load_explicit(&x->c->bus->state, memory_order_seq_cst) == BUS_CLOSED) {
		/* Every handler finished before CLOSED was stored: look once more. */
		rc = take(x->c, x->buf, x->cap, x->msg);
		return rc == EBUS_ERR_EMPTY ? EBUS_ERR_SHUTDOWN : rc;
	}
	return EBUS_WAIT_AGAIN;
}

static uint32_t take_announce(struct ebus_waiter *w)
{
	struct take_ctx *x = EBUS_CONTAINER(w, struct take_ctx, w);
	atomic_store_explicit(&x->c->sleeping, 1, memory_order_seq_cst);
	return 1; /* a producer's commit takes it back to 0 before waking */
}

static void take_retract(struct ebus_waiter *w)
{
	struct take_ctx *x = EBUS_CONTAINER(w, struct take_ctx, w);
	atomic_store_explicit(&x->c->sleeping, 0, memory_order_relaxed);
}

/* deadline: 0 = poll (EBUS_ERR_EMPTY), EBUS_DEADLINE_NONE = forever, else
 * absolute. */
static int consume(struct ebus_consumer *c, void *buf, size_t cap, ebus_message_t *msg,
                   uint64_t deadline)
{
	struct take_ctx x = { { take_check, take_announce, take_retract, NULL, deadline },
		              c, buf, cap, msg };
	int rc;

	if (!c || !msg || (!buf && cap))
		return EBUS_ERR_NULL;
	if (deadline && would_deadlock(c->bus))
		return EBUS_ERR_DEADLOCK;
	atomic_store_explicit(&c->last_thread, self_id(), memory_order_relaxed);
	x.w.word = &c->sleeping;
	if (!deadline) {
		rc = take_check(&x.w);
		return rc == EBUS_WAIT_AGAIN ? EBUS_ERR_EMPTY : rc;
	}
	return ebus_wait_for(&x.w);
}

int ebus_consume(ebus_consumer_t *c, void *buf, size_t cap, ebus_message_t *msg,
                 uint64_t timeout_ns)
{
	/* 0 polls; anything else, EBUS_FOREVER included, is a saturating deadline. */
	return consume(c, buf, cap, msg, timeout_ns ? ebus_deadline_after(timeout_ns) : 0);
}

int ebus_consume_until(ebus_consumer_t *c, void *buf, size_t cap, ebus_message_t *msg,
                       uint64_t deadline_ns)
{
	int rc;
	if (deadline_ns > ebus_now_ns())
		return consume(c, buf, cap, msg, deadline_ns);
	/* The deadline has passed: take what is queued, without waiting. */
	rc = consume(c, buf, cap, msg, 0);
	return rc == EBUS_ERR_EMPTY ? EBUS_ERR_TIMEOUT : rc;
}

int ebus_consumer_stats(const ebus_consumer_t *cc, ebus_consumer_stats_t *out)
{
	struct ebus_consumer *c = (struct ebus_consumer *)cc;
	unsigned h, t;
	if (!c || !out)
		return EBUS_ERR_NULL;
	memset(out, 0, sizeof *out);
	out->consumed = ctr_get(&c->consumed);
	out->received = atomic_load_explicit(&c->received, memory_order_relaxed);
	out->high_water = atomic_load_explicit(&c->high_water, memory_order_relaxed);
	out->dropped_full = atomic_load_explicit(&c->dropped_full, memory_order_relaxed);
	out->rejected_full = atomic_load_explicit(&c->rejected_full, memory_order_relaxed);
	out->rejected_timeout = atomic_load_explicit(&c->rejected_timeout, memory_order_relaxed);
	out->dropped_shutdown = atomic_load_explicit(&c->dropped_shutdown, memory_order_relaxed);
	out->dropped_nomem = atomic_load_explicit(&c->dropped_nomem, memory_order_relaxed);
	h = __atomic_load_n(&c->ring.c_head, __ATOMIC_ACQUIRE);
	t = __atomic_load_n(&c->ring.p_tail, __ATOMIC_ACQUIRE);
	out->queued = t - h;
	return EBUS_OK;
}

int ebus_await(ebus_t *bus, const char *pattern, void *buf, size_t cap, ebus_message_t *msg,
               uint64_t timeout_ns)
{
	ebus_consumer_t *c;
	int rc;
	if (!bus || !pattern || !msg || (!buf && cap))
		return EBUS_ERR_NULL;
	if (timeout_ns && would_deadlock(bus))
		return EBUS_ERR_DEADLOCK;
	/* Drop-newest: only the first event matters, and a one-shot consumer
	 * must never hold up the bus's handlers. */
	rc = consumer_create(bus, pattern, AWAIT_CAPACITY, EBUS_FULL_DROP, &c);
	if (rc)
		return rc;
	rc = ebus_consume(c, buf, cap, msg, timeout_ns);
	ebus_consumer_destroy(c);
	return rc;
}
