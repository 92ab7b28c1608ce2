/*
 * Subscriptions: copy-on-write subscriber arrays, the id table, and
 * deferred frees.
 *
 * Writers (subscribe/unsubscribe) serialise on bus->ctl_lock, build a new
 * immutable array and publish it with a release store; the executor loads
 * it with acquire per event and never locks. An old array (and a removed
 * subscriber) is freed only after every reader that could hold it is done:
 *
 *  - async bus: after a urcu-qsbr grace period. Executors are qsbr readers
 *    that report a quiescent state after every batch and go offline before
 *    parking, so a grace period lasts at most one batch and never waits for
 *    an idle executor. A blocking unsubscribe calls
 *    urcu_qsbr_synchronize_rcu() (legal from unregistered threads); from an
 *    executor thread (a handler) we cannot wait, but that thread is a
 *    registered, online qsbr reader, so urcu_qsbr_call_rcu() is legal there.
 *    Other threads cannot call_rcu without registering (which would fight an
 *    application that uses liburcu-qsbr itself), so their retired arrays go
 *    on bus->retired and are freed after the next synchronize_rcu.
 *  - sync bus: handlers run under the topic's stripe mutex, so locking and
 *    unlocking a stripe is the grace period (ebus_sync_grace_period).
 *
 * No lock is ever held across a grace period: handlers may subscribe, and a
 * writer waiting for them while holding ctl_lock would deadlock.
 */
#include "internal.h"

char ebus_tsan_gp_token;
char ebus_tsan_cb_token;

#define RETIRE_BATCH 32
#define ID_NONE UINT32_MAX
#define ID_GEN_BITS 20
#define ID_TAG_BITS 12

/* ---- id table ------------------------------------------------------------ */

static ebus_sub_id id_make(struct ebus *bus, uint32_t idx, uint32_t gen)
{
	return ((uint64_t)bus->tag << (64 - ID_TAG_BITS)) | ((uint64_t)gen << 32) | idx;
}

static struct ebus_sub *id_lookup(struct ebus *bus, ebus_sub_id id, uint32_t *idx_out)
{
	uint32_t idx = (uint32_t)id;
	uint32_t gen = (uint32_t)(id >> 32) & ((1u << ID_GEN_BITS) - 1);
	if (id == 0 || (uint32_t)(id >> (64 - ID_TAG_BITS)) != bus->tag || idx >= bus->ids_cap)
		return NULL;
	if (!bus->ids[idx].sub || bus->ids[idx].gen != gen)
		return NULL;
	*idx_out = idx;
	return bus->ids[idx].sub;
}

static int id_alloc(struct ebus *bus, struct ebus_sub *sub)
{
	uint32_t idx;
	if (bus->free_head == ID_NONE) {
		uint32_t ncap = bus->ids_cap ? bus->ids_cap * 2 : 64;
		struct idslot *n;
		if (ncap > (1u << 31))
			return EBUS_ERR_NOMEM;
		n = ebus_alloc(bus, ncap * sizeof *n, _Alignof(struct idslot));
		if (!n)
			return EBUS_ERR_NOMEM;
		if (bus->ids_cap)
			memcpy(n, bus->ids, bus->ids_cap * sizeof *n);
		for (uint32_t i = bus->ids_cap; i < ncap; i++) {
			n[i].sub = NULL;
			n[i].gen = 1;
			n[i].next_free = i + 1 < ncap ? i + 1 : ID_NONE;
		}
		ebus_free(bus, bus->ids, bus->ids_cap * sizeof *n);
		bus->free_head = bus->ids_cap;
		bus->free_tail = ncap - 1;
		bus->ids = n;
		bus->ids_cap = ncap;
	}
	idx = bus->free_head;
	bus->free_head = bus->ids[idx].next_free;
	if (bus->free_head == ID_NONE)
		bus->free_tail = ID_NONE;
	bus->ids[idx].sub = sub;
	sub->id = id_make(bus, idx, bus->ids[idx].gen);
	bus->ids_used++;
	return EBUS_OK;
}

/* FIFO reuse plus a 20-bit generation: a stale id aliases a live one only
 * after its slot was reused 2^20 times. */
static void id_release(struct ebus *bus, uint32_t idx)
{
	struct idslot *s = &bus->ids[idx];
	s->sub = NULL;
	s->gen = (s->gen + 1) & ((1u << ID_GEN_BITS) - 1);
	if (s->gen == 0)
		s->gen = 1;
	s->next_free = ID_NONE;
	if (bus->free_tail == ID_NONE)
		bus->free_head = idx;
	else
		bus->ids[bus->free_tail].next_free = idx;
	bus->free_tail = idx;
	bus->ids_used--;
}

/* ---- arrays and deferred frees ---------------------------------------- */

static size_t arr_size(uint32_t n)
{
	return sizeof(struct subarr) + n * sizeof(struct ebus_sub *);
}

static void arr_free(struct retire *r)
{
	struct subarr *a = EBUS_CONTAINER(r, struct subarr, retire);
	ebus_free(r->bus, a, arr_size(a->n));
}

static void sub_free(struct retire *r)
{
	struct ebus_sub *s = EBUS_CONTAINER(r, struct ebus_sub, retire);
	if (s->released)
		s->released(s->ctx);
	ebus_free(r->bus, s, sizeof *s);
}

static void retire_cb(struct rcu_head *h)
{
	struct retire *r = caa_container_of(h, struct retire, rcu);
	EBUS_TSAN_ACQUIRE(&ebus_tsan_gp_token);
	r->free(r);
	EBUS_TSAN_RELEASE(&ebus_tsan_cb_token); /* rcu_barrier in ebus_destroy */
}

/* Caller holds ctl_lock. */
void ebus_retire(struct ebus *bus, struct retire *r)
{
	r->bus = bus;
	if (!bus->sync && ebus_tls_exec) {
		/* Registered, online qsbr reader: call_rcu is allowed here. */
		urcu_qsbr_call_rcu(&r->rcu, retire_cb);
		return;
	}
	r->next = bus->retired;
	bus->retired = r;
	bus->nretired++;
	if (bus->sync)
		atomic_store_explicit(&bus->sync_retire_pending, 1, memory_order_release);
}

static struct retire *retire_take(struct ebus *bus)
{
	struct retire *list = bus->retired;
	bus->retired = NULL;
	bus->nretired = 0;
	return list;
}

static void grace_period(struct ebus *bus)
{
	if (bus->sync) {
		ebus_sync_grace_period(bus);
	} else {
		urcu_qsbr_synchronize_rcu();
		EBUS_TSAN_ACQUIRE(&ebus_tsan_gp_token);
	}
}

/* Frees in retire order (oldest first), so a subscriber's array goes before
 * the subscriber; released() callbacks run in unsubscribe order. */
static void retire_free_list(struct retire *list)
{
	struct retire *rev = NULL, *next;
	for (; list; list = next) {
		next = list->next;
		list->next = rev;
		rev = list;
	}
	for (; rev; rev = next) {
		next = rev->next;
		rev->free(rev);
	}
}

/* Not from a handler. */
void ebus_retire_flush(struct ebus *bus)
{
	struct retire *list;
	pthread_mutex_lock(&bus->ctl_lock);
	list = retire_take(bus);
	pthread_mutex_unlock(&bus->ctl_lock);
	if (!list)
		return;
	grace_period(bus);
	retire_free_list(list);
}

/* Sync bus, at the end of an outermost publish (no stripe held). */
void ebus_sync_retire_run(struct ebus *bus)
{
	/* Plain load first: this runs after every synchronous publish, and an
	 * RMW would bounce the line between publishing threads. */
	if (!atomic_load_explicit(&bus->sync_retire_pending, memory_order_relaxed) ||
	    !atomic_exchange_explicit(&bus->sync_retire_pending, 0, memory_order_acq_rel))
		return;
	ebus_retire_flush(bus);
}

/* ---- subscribe / unsubscribe -------------------------------------------- */

int ebus_subscribe(ebus_topic_t *topic, ebus_handler_fn fn, void *ctx, ebus_sub_id *out)
{
	return ebus_subscribe_ex(topic, fn, ctx, 0, out);
}

int ebus_subscribe_ex(ebus_topic_t *topic, ebus_handler_fn fn, void *ctx, unsigned flags,
                      ebus_sub_id *out)
{
	struct ebus *bus;
	struct subarr *old, *nw;
	struct ebus_sub *sub;
	uint32_t n;
	bool flush;
	int rc;

	if (!topic || !fn || !out)
		return EBUS_ERR_NULL;
	if (flags & ~EBUS_SUB_CONCURRENT)
		return EBUS_ERR_FLAGS;
	if ((topic->flags & EBUS_TOPIC_UNORDERED) && !(flags & EBUS_SUB_CONCURRENT))
		return EBUS_ERR_NOT_CONCURRENT;
	bus = topic->bus;
	pthread_mutex_lock(&bus->ctl_lock);
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN) {
		rc = EBUS_ERR_SHUTDOWN;
		goto out;
	}
	old = atomic_load_explicit(&topic->subs, memory_order_relaxed);
	n = old ? old->n : 0;
	for (uint32_t i = 0; i < n; i++) {
		if (old->items[i]->fn == fn && old->items[i]->ctx == ctx) {
			rc = EBUS_ERR_DUPLICATE;
			goto out;
		}
	}
	rc = EBUS_ERR_NOMEM;
	sub = ebus_zalloc(bus, sizeof *sub, _Alignof(struct ebus_sub));
	if (!sub)
		goto out;
	nw = ebus_alloc(bus, arr_size(n + 1), _Alignof(struct subarr));
	if (!nw) {
		ebus_free(bus, sub, sizeof *sub);
		goto out;
	}
	sub->fn = fn;
	sub->ctx = ctx;
	sub->flags = flags;
	sub->topic = topic;
	atomic_init(&sub->dead, 0);
	rc = id_alloc(bus, sub);
	if (rc) {
		ebus_free(bus, nw, arr_size(n + 1));
		ebus_free(bus, sub, sizeof *sub);
		goto out;
	}
	nw->n = n + 1;
	if (n)
		memcpy(nw->items, old->items, n * sizeof nw->items[0]);
	nw->items[n] = sub;
	atomic_store_explicit(&topic->subs, nw, memory_order_release);
	if (old) {
		old->retire.free = arr_free;
		ebus_retire(bus, &old->retire);
	}
	*out = sub->id;
out:
	flush = !in_handler() && (bus->sync ? bus->nretired > 0 : bus->nretired >= RETIRE_BATCH);
	pthread_mutex_unlock(&bus->ctl_lock);
	if (flush)
		ebus_retire_flush(bus);
	return rc;
}

static int unsubscribe(struct ebus *bus, ebus_sub_id id, ebus_released_fn released)
{
	struct ebus_sub *sub;
	struct ebus_topic_s *topic;
	struct subarr *old, *nw = NULL;
	struct retire *list;
	uint32_t idx, n, j = 0;

	if (!bus)
		return EBUS_ERR_NULL;
	pthread_mutex_lock(&bus->ctl_lock);
	sub = id_lookup(bus, id, &idx);
	if (!sub) {
		pthread_mutex_unlock(&bus->ctl_lock);
		return EBUS_ERR_NOT_FOUND;
	}
	topic = sub->topic;
	old = atomic_load_explicit(&topic->subs, memory_order_relaxed);
	n = old->n;
	if (n > 1) {
		nw = ebus_alloc(bus, arr_size(n - 1), _Alignof(struct subarr));
		if (!nw) {
			pthread_mutex_unlock(&bus->ctl_lock);
			return EBUS_ERR_NOMEM;
		}
		for (uint32_t i = 0; i < n; i++)
			if (old->items[i] != sub)
				nw->items[j++] = old->items[i];
		nw->n = n - 1;
	}
	id_release(bus, idx);
	/* dead first: a dispatch loop that already holds the old array skips
	 * the subscriber from now on (same executor: immediately). */
	atomic_store_explicit(&sub->dead, 1, memory_order_seq_cst);
	atomic_store_explicit(&topic->subs, nw, memory_order_release);
	sub->released = released;
	old->retire.free = arr_free;
	sub->retire.free = sub_free;

	if (in_handler()) {
		ebus_retire(bus, &old->retire);
		ebus_retire(bus, &sub->retire);
		pthread_mutex_unlock(&bus->ctl_lock);
		return EBUS_OK;
	}
	/* Blocking form: take everything retired so far, wait one grace
	 * period without holding any lock, then free it all. */
	old->retire.bus = bus;
	sub->retire.bus = bus;
	list = retire_take(bus);
	pthread_mutex_unlock(&bus->ctl_lock);
	grace_period(bus);
	retire_free_list(list);
	arr_free(&old->retire);
	sub_free(&sub->retire);
	return EBUS_OK;
}

/* TEMPORARY (issue 4 in progress): literal patterns only, until the
 * pattern registry lands. */
int ebus_subscribe_pattern(ebus_t *bus, const char *pattern, ebus_handler_fn fn, void *ctx,
                           unsigned flags, ebus_sub_id *out)
{
	ebus_topic_t *t;
	int rc;
	if (!bus || !pattern || !fn || !out)
		return EBUS_ERR_NULL;
	rc = ebus_topic(bus, pattern, &t);
	if (rc == EBUS_ERR_TOPIC_WILDCARD)
		return EBUS_ERR_UNSUPPORTED;
	if (rc)
		return rc;
	return ebus_subscribe_ex(t, fn, ctx, flags, out);
}

int ebus_sub_errors(ebus_t *bus, ebus_sub_id id, uint64_t *errors)
{
	struct ebus_sub *sub;
	uint32_t idx;
	if (!bus || !errors)
		return EBUS_ERR_NULL;
	pthread_mutex_lock(&bus->ctl_lock);
	sub = id_lookup(bus, id, &idx);
	if (sub)
		*errors = ctr_get(&sub->errors);
	pthread_mutex_unlock(&bus->ctl_lock);
	return sub ? EBUS_OK : EBUS_ERR_NOT_FOUND;
}

int ebus_unsubscribe(ebus_t *bus, ebus_sub_id id)
{
	return unsubscribe(bus, id, NULL);
}

int ebus_unsubscribe_async(ebus_t *bus, ebus_sub_id id, ebus_released_fn released)
{
	return unsubscribe(bus, id, released);
}

/* Destroy: no executor, no publisher, no handler is left. */
void ebus_subs_destroy(struct ebus *bus)
{
	ck_stack_entry_t *e;
	retire_free_list(retire_take(bus));
	for (e = CK_STACK_FIRST(&bus->all_topics); e; e = CK_STACK_NEXT(e)) {
		struct ebus_topic_s *t = EBUS_CONTAINER(e, struct ebus_topic_s, all);
		struct subarr *a = atomic_load_explicit(&t->subs, memory_order_relaxed);
		if (!a)
			continue;
		for (uint32_t i = 0; i < a->n; i++)
			ebus_free(bus, a->items[i], sizeof *a->items[i]);
		ebus_free(bus, a, arr_size(a->n));
		atomic_store_explicit(&t->subs, NULL, memory_order_relaxed);
	}
	ebus_free(bus, bus->ids, bus->ids_cap * sizeof *bus->ids);
	bus->ids = NULL;
	bus->ids_cap = 0;
}
