/*
 * Synchronous mode (bus layer, beside bus.c): publish delivers on the
 * calling thread.
 *
 * Each topic maps to a stripe (its "executor" index); a stripe mutex is
 * held while its subscribers run. That gives the same contract as the
 * asynchronous bus: a subscription never runs on two threads at once, and
 * per-topic order is the order in which publishers took the stripe. It also
 * makes the stripe lock the grace period for subscriber arrays: once a
 * writer has locked and unlocked every stripe, no handler can still hold an
 * array it unlinked before (ebus_sync_grace_period).
 *
 * A publish from inside a handler does not nest: the event is queued on the
 * thread and delivered after the handler returns, before the outermost
 * publish returns (Guava's per-thread queued dispatcher). Nesting would
 * either deadlock on the stripe or run a subscriber inside itself.
 */
#include "bus.h"

#include <pthread.h>
#include <stdlib.h>

_Thread_local unsigned ebus_tls_sync_depth;

/* One mutex per stripe replaces the executor. */
struct sync_stripe {
	pthread_mutex_t lock;
	ebus_ctr published;
	struct dispatch_ctrs d;
	struct ebus_hist *hist; /* under lock; NULL unless timestamps */
} __attribute__((aligned(EBUS_CL)));

int ebus_sync_init(struct ebus *bus)
{
	bus->stripes = ebus_zalloc(&bus->alloc, bus->nexec * sizeof bus->stripes[0], EBUS_CL);
	if (!bus->stripes)
		return EBUS_ERR_NOMEM;
	for (unsigned i = 0; i < bus->nexec; i++)
		pthread_mutex_init(&bus->stripes[i].lock, NULL);
	for (unsigned i = 0; bus->timestamps && i < bus->nexec; i++) {
		bus->stripes[i].hist = ebus_zalloc(&bus->alloc, sizeof(struct ebus_hist), EBUS_CL);
		if (!bus->stripes[i].hist)
			return EBUS_ERR_NOMEM; /* ebus_sync_fini frees the others */
	}
	return EBUS_OK;
}

void ebus_sync_fini(struct ebus *bus)
{
	if (!bus->stripes)
		return;
	for (unsigned i = 0; i < bus->nexec; i++) {
		ebus_free(&bus->alloc, bus->stripes[i].hist, sizeof(struct ebus_hist));
		pthread_mutex_destroy(&bus->stripes[i].lock);
	}
	ebus_free(&bus->alloc, bus->stripes, bus->nexec * sizeof bus->stripes[0]);
	bus->stripes = NULL;
}

void ebus_sync_stats(struct ebus *bus, unsigned i, ebus_stats_t *s)
{
	struct sync_stripe *st = &bus->stripes[i];
	s->published += ctr_get(&st->published);
	ebus_dispatch_ctrs_read(&st->d, s);
}

struct ebus_hist *ebus_sync_hist(struct ebus *bus, unsigned i)
{
	return bus->stripes[i].hist;
}

struct defer_q {
	struct ebus_slot *q;
	size_t head, tail, cap; /* head == tail: empty */
};
static _Thread_local struct defer_q tls_defer;
static pthread_key_t defer_key;
static pthread_once_t defer_once = PTHREAD_ONCE_INIT;

static void defer_free(void *arg)
{
	free(arg);
	tls_defer.q = NULL;
	tls_defer.cap = tls_defer.head = tls_defer.tail = 0;
}

static void defer_key_init(void)
{
	(void)pthread_key_create(&defer_key, defer_free);
}

static int defer_push(const struct ebus_slot *s)
{
	struct defer_q *d = &tls_defer;
	if (d->tail == d->cap) {
		if (d->head > 0) {
			memmove(d->q, d->q + d->head, (d->tail - d->head) * sizeof *d->q);
			d->tail -= d->head;
			d->head = 0;
		} else {
			size_t ncap = d->cap ? d->cap * 2 : 16;
			struct ebus_slot *n = NULL;
			if (posix_memalign((void **)&n, EBUS_CL, ncap * sizeof *n) != 0)
				return EBUS_ERR_NOMEM;
			if (d->tail)
				memcpy(n, d->q, d->tail * sizeof *n);
			free(d->q);
			d->q = n;
			d->cap = ncap;
			pthread_once(&defer_once, defer_key_init);
			(void)pthread_setspecific(defer_key, n);
		}
	}
	d->q[d->tail++] = *s;
	return EBUS_OK;
}

static bool defer_pop(struct ebus_slot *out)
{
	struct defer_q *d = &tls_defer;
	if (d->head == d->tail)
		return false;
	*out = d->q[d->head++];
	if (d->head == d->tail)
		d->head = d->tail = 0;
	return true;
}

static void run_locked(struct ebus *bus, struct sync_stripe *st, struct ebus_slot *s,
                       uint64_t source)
{
	unsigned who = (unsigned)(st - bus->stripes);
	ctr_add(&st->published, 1);
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN &&
	    bus->shutdown_mode == STOP_DISCARD) {
		ctr_add(&st->d.dropped_shutdown, 1);
		ctr_add(&topic_ctrs_of(s->topic, who)->dropped_shutdown, 1);
		/* A release callback runs under the stripe lock like a handler,
		 * and under a handler's rules: a publish from it is queued (and
		 * refused, the bus is closing), an unsubscribe does not wait. */
		ebus_tls_sync_depth++;
		ebus_slot_release(&bus->alloc, s);
		ebus_tls_sync_depth--;
		return;
	}
	if (EBUS_UNLIKELY(st->hist != NULL))
		ebus_hist_record(st->hist, s->ts);
	ebus_tls_sync_depth++;
	ebus_dispatch_slot(&bus->env, s, who, &st->d, source);
	ebus_tls_sync_depth--;
}

static void drain_deferred(void)
{
	struct ebus_slot s;
	while (defer_pop(&s)) {
		struct ebus *bus = s.topic->bus;
		struct sync_stripe *st = &bus->stripes[s.topic->executor];
		/* Queued by this thread, whose record for the bus exists. */
		struct producer *p = ebus_producer_get(bus);
		uint64_t source = p ? p->id : 0;
		pthread_mutex_lock(&st->lock);
		run_locked(bus, st, &s, source);
		pthread_mutex_unlock(&st->lock);
		atomic_fetch_sub_explicit(&bus->sync_deferred_pending, 1, memory_order_release);
		ebus_subs_sync_retire_run(&bus->subs);
	}
}

int ebus_sync_publish(struct ebus_topic_s *t, const void *data, size_t len, int kind,
                      ebus_release_fn release, void *arg)
{
	struct ebus *bus = t->bus;
	struct sync_stripe *st = &bus->stripes[t->executor];
	struct ebus_slot s;
	struct producer *p = ebus_producer_get(bus);
	uint64_t *seq;
	int rc;

	if (EBUS_UNLIKELY(!p || !(seq = ebus_producer_seq(p, t))))
		return EBUS_ERR_NOMEM;
	s.topic = t;
	s.ts = EBUS_UNLIKELY(bus->timestamps) ? ebus_now_ns() : 0;
	s.len = (uint32_t)len;
	if (ebus_tls_sync_depth > 0) {
		/* Inside a handler: queue a copy, deliver after it returns. */
		if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN) {
			atomic_fetch_add_explicit(&bus->rejected_shutdown, 1, memory_order_relaxed);
			return EBUS_ERR_SHUTDOWN;
		}
		if (kind == SLOT_REF) {
			s.kind = SLOT_REF;
			s.u.ref.ptr = (void *)data;
			s.u.ref.release = release;
			s.u.ref.arg = arg;
		} else if (len <= EBUS_INLINE_MAX) {
			s.kind = SLOT_INLINE;
			if (len)
				memcpy(s.u.data, data, len);
		} else {
			void *copy = ebus_alloc(&bus->alloc, len, 16);
			if (!copy)
				return EBUS_ERR_NOMEM;
			memcpy(copy, data, len);
			s.kind = SLOT_OWNED;
			s.u.ref.ptr = copy;
		}
		s.seq = *seq + 1; /* taken only once queued */
		rc = defer_push(&s);
		if (rc) {
			if (s.kind == SLOT_OWNED)
				ebus_free(&bus->alloc, s.u.ref.ptr, len);
			return rc;
		}
		++*seq;
		atomic_fetch_add_explicit(&bus->sync_deferred_pending, 1, memory_order_relaxed);
		return EBUS_OK;
	}
	/* Outermost: the caller's buffer outlives the delivery; no copy. */
	s.kind = SLOT_REF;
	s.u.ref.ptr = (void *)data;
	s.u.ref.release = kind == SLOT_REF ? release : NULL;
	s.u.ref.arg = arg;
	pthread_mutex_lock(&st->lock);
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN) {
		pthread_mutex_unlock(&st->lock);
		atomic_fetch_add_explicit(&bus->rejected_shutdown, 1, memory_order_relaxed);
		return EBUS_ERR_SHUTDOWN;
	}
	s.seq = ++*seq;
	run_locked(bus, st, &s, p->id);
	pthread_mutex_unlock(&st->lock);
	EBUS_TEST_STALL(EBUS_TP_SYNC_PUBLISH_END, -1);
	drain_deferred();
	ebus_subs_sync_retire_run(&bus->subs);
	return EBUS_OK;
}

void ebus_sync_grace_period(void *ctx)
{
	struct ebus *bus = ctx;
	for (unsigned i = 0; i < bus->nexec; i++) {
		pthread_mutex_lock(&bus->stripes[i].lock);
		pthread_mutex_unlock(&bus->stripes[i].lock);
	}
}

bool ebus_sync_try_grace_period(void *ctx)
{
	struct ebus *bus = ctx;
	for (unsigned i = 0; i < bus->nexec; i++) {
		if (pthread_mutex_trylock(&bus->stripes[i].lock) != 0)
			return false;
		pthread_mutex_unlock(&bus->stripes[i].lock);
	}
	return true;
}

struct deferred_wait {
	struct ebus_waiter w;
	struct ebus *bus;
};

static int deferred_check(struct ebus_waiter *w)
{
	struct ebus *bus = EBUS_CONTAINER(w, struct deferred_wait, w)->bus;
	if (atomic_load_explicit(&bus->sync_deferred_pending, memory_order_acquire))
		return EBUS_WAIT_AGAIN;
	return EBUS_OK;
}

static uint32_t deferred_announce(struct ebus_waiter *w)
{
	(void)w;
	return 0; /* nobody wakes us: the queuing threads deliver, we yield */
}

/* In-flight dispatches finish (stripe sweep), then every queued nested
 * publish is delivered by the thread that queued it. */
static int sync_quiesce(struct ebus *bus, uint64_t deadline)
{
	struct deferred_wait x = { { deferred_check, deferred_announce, NULL, NULL, deadline }, bus };
	ebus_sync_grace_period(bus);
	return ebus_wait_for(&x.w);
}

int ebus_sync_flush(struct ebus *bus, uint64_t timeout_ns)
{
	if (ebus_tls_sync_depth > 0)
		return EBUS_ERR_DEADLOCK;
	return sync_quiesce(bus, ebus_deadline_after(timeout_ns));
}

/* run_locked reads bus->shutdown_mode to drain or discard what is queued. */
void ebus_sync_shutdown(struct ebus *bus)
{
	(void)sync_quiesce(bus, EBUS_DEADLINE_NONE);
}
