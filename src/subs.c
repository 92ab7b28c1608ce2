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
 *    that report a quiescent state after every pass over their lanes and
 *    go offline before parking, so a grace period never waits for an idle
 *    executor, but it does wait for every handler call running when it
 *    began (without bound, if one blocks). A blocking unsubscribe calls
 *    urcu_qsbr_synchronize_rcu() (legal from unregistered threads); from an
 *    executor thread (a handler) we cannot wait, but that thread is a
 *    registered, online qsbr reader, so urcu_qsbr_call_rcu() is legal there.
 *    Other threads cannot call_rcu without registering (which would fight an
 *    application that uses liburcu-qsbr itself), so what they retire goes on
 *    bus->retired; every RETIRE_BATCH entries the list is handed to an
 *    executor, which passes it to call_rcu (retire_collect): nothing but the
 *    blocking unsubscribe ever waits for a grace period.
 *  - sync bus: handlers run under the topic's stripe mutex, so locking and
 *    unlocking a stripe is the grace period (ebus_sync_grace_period; the
 *    control path only tries the stripes, ebus_sync_try_grace_period). What
 *    a synchronous handler retires goes on a thread-local list, freed when
 *    that thread's outermost publish ends.
 *
 * No lock is ever held across a grace period: handlers may subscribe, and a
 * writer waiting for them while holding ctl_lock would deadlock.
 */
#include "internal.h"

#include <sched.h>

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

static size_t sub_size(size_t patlen)
{
	return sizeof(struct ebus_sub) + (patlen ? patlen + 1 : 0);
}

static void sub_free(struct retire *r)
{
	struct ebus_sub *s = EBUS_CONTAINER(r, struct ebus_sub, retire);
	if (s->released)
		s->released(s->ctx);
	ebus_free(r->bus, s, sub_size(s->patlen));
}

static void retire_cb(struct rcu_head *h)
{
	struct retire *r = caa_container_of(h, struct retire, rcu);
	EBUS_TSAN_ACQUIRE(&ebus_tsan_gp_token);
	r->free(r);
	EBUS_TSAN_RELEASE(&ebus_tsan_cb_token); /* rcu_barrier in ebus_destroy */
}

/* Thread-local list of what handlers of synchronous buses retired on this
 * thread; freed at the end of the thread's outermost publish. */
static _Thread_local struct retire *tls_sync_retired;

/* Caller holds ctl_lock. */
void ebus_retire(struct ebus *bus, struct retire *r)
{
	r->bus = bus;
	if (!bus->sync && ebus_tls_exec) {
		/* Registered, online qsbr reader: call_rcu is allowed here. */
		urcu_qsbr_call_rcu(&r->rcu, retire_cb);
		return;
	}
	if (bus->sync && ebus_tls_sync_depth > 0) {
		/* A handler of a synchronous bus: its released() callbacks run
		 * on this thread when its outermost publish ends (ebus.h). */
		r->next = tls_sync_retired;
		tls_sync_retired = r;
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

/* Gives a taken list (newest first) back, behind what was retired since. */
static void retire_putback(struct ebus *bus, struct retire *list)
{
	struct retire **pp;
	unsigned n = 0;
	for (struct retire *r = list; r; r = r->next)
		n++;
	pthread_mutex_lock(&bus->ctl_lock);
	for (pp = &bus->retired; *pp; pp = &(*pp)->next)
		;
	*pp = list;
	bus->nretired += n;
	atomic_store_explicit(&bus->sync_retire_pending, 1, memory_order_release);
	pthread_mutex_unlock(&bus->ctl_lock);
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
static struct retire *retire_reverse(struct retire *list)
{
	struct retire *rev = NULL, *next;
	for (; list; list = next) {
		next = list->next;
		list->next = rev;
		rev = list;
	}
	return rev;
}

static void retire_free_list(struct retire *list)
{
	struct retire *next;
	for (list = retire_reverse(list); list; list = next) {
		next = list->next;
		list->free(list);
	}
}

/* Executor thread (online qsbr reader): queues a list handed over by
 * retire_collect for freeing after a grace period, oldest first. */
void ebus_retire_call_rcu(struct retire *list)
{
	struct retire *next;
	for (list = retire_reverse(list); list; list = next) {
		next = list->next;
		urcu_qsbr_call_rcu(&list->rcu, retire_cb);
	}
}

/*
 * Frees what control calls retired on this bus, without ever waiting for a
 * grace period (a subscribe must not wait for handlers: one may be blocked
 * on a pull consumer that the subscribing thread drains). Async bus: the
 * list goes to executor 0, which hands it to call_rcu (executor.c); only
 * while the bus is open, since after shutdown no executor takes it (destroy
 * frees what is left). Sync bus: freed if every stripe can be taken without
 * waiting (no handler holds an old array), else kept for the next try.
 */
static void retire_collect(struct ebus *bus, bool locked)
{
	struct retire *list = NULL;
	if (!locked)
		pthread_mutex_lock(&bus->ctl_lock);
	if (bus->sync || atomic_load_explicit(&bus->state, memory_order_acquire) == BUS_OPEN)
		list = retire_take(bus);
	pthread_mutex_unlock(&bus->ctl_lock);
	if (!list)
		return;
	if (!bus->sync)
		ebus_exec_retire(bus->exec[0], list);
	else if (ebus_sync_try_grace_period(bus))
		retire_free_list(list);
	else
		retire_putback(bus, list);
}

/* Sync bus, at the end of an outermost publish (no stripe held): first
 * what this thread's handlers retired (a blocking grace period on each of
 * their buses, then free in order), then the bus's own list, if any. */
void ebus_sync_retire_run(struct ebus *bus)
{
	struct retire *mine = tls_sync_retired;
	if (mine) {
		tls_sync_retired = NULL;
		for (struct retire *r = mine; r; r = r->next)
			if (r == mine || r->bus != mine->bus)
				grace_period(r->bus);
		retire_free_list(mine);
	}
	/* Plain load first: this runs after every synchronous publish, and an
	 * RMW would bounce the line between publishing threads. */
	if (!atomic_load_explicit(&bus->sync_retire_pending, memory_order_relaxed) ||
	    !atomic_exchange_explicit(&bus->sync_retire_pending, 0, memory_order_acq_rel))
		return;
	retire_collect(bus, false);
}

/* ---- subscribe / unsubscribe -------------------------------------------- */

static struct ebus_sub *sub_new(struct ebus *bus, ebus_handler_fn fn, void *ctx, unsigned flags,
                                const char *pattern, size_t patlen)
{
	struct ebus_sub *sub = ebus_zalloc(bus, sub_size(patlen), _Alignof(struct ebus_sub));
	if (!sub)
		return NULL;
	sub->fn = fn;
	sub->ctx = ctx;
	sub->flags = flags;
	atomic_init(&sub->dead, 0);
	atomic_init(&sub->errors, 0);
	ck_spinlock_fas_init(&sub->guard);
	atomic_init(&sub->owner, NULL);
	if (patlen) {
		sub->pattern = (char *)(sub + 1);
		memcpy(sub->pattern, pattern, patlen);
		sub->pattern[patlen] = '\0';
		sub->patlen = patlen;
		/* Its topics may live on different executors (stripes). */
		sub->serial = !(flags & EBUS_SUB_CONCURRENT) && bus->nexec > 1;
	}
	return sub;
}

static bool pattern_applies(const struct ebus_sub *s, const struct ebus_topic_s *t)
{
	if ((t->flags & EBUS_TOPIC_UNORDERED) && !(s->flags & EBUS_SUB_CONCURRENT))
		return false;
	return ebus_pattern_matches(s->pattern, s->patlen, t->name, t->namelen);
}

/* A copy of `old` with `add` appended (add != NULL) or `del` left out. */
static struct subarr *arr_edit(struct ebus *bus, const struct subarr *old, struct ebus_sub *add,
                               const struct ebus_sub *del)
{
	uint32_t n = old ? old->n : 0, m = add ? n + 1 : n - 1, j = 0;
	struct subarr *nw;
	if (m == 0)
		return NULL;
	nw = ebus_alloc(bus, arr_size(m), _Alignof(struct subarr));
	if (!nw)
		return NULL;
	for (uint32_t i = 0; i < n; i++)
		if (old->items[i] != del)
			nw->items[j++] = old->items[i];
	if (add)
		nw->items[j++] = add;
	nw->n = j;
	return nw;
}

static bool arr_has(const struct subarr *a, const struct ebus_sub *s)
{
	for (uint32_t i = 0; a && i < a->n; i++)
		if (a->items[i] == s)
			return true;
	return false;
}

/* Installs a topic's new array; the old one is freed after a grace period. */
static void arr_install(struct ebus *bus, struct ebus_topic_s *t, struct subarr *nw)
{
	struct subarr *old = atomic_load_explicit(&t->subs, memory_order_relaxed);
	atomic_store_explicit(&t->subs, nw, memory_order_release);
	if (old) {
		old->retire.free = arr_free;
		ebus_retire(bus, &old->retire);
	}
}

/*
 * Caller holds ctl_lock and is about to make `t` visible: its first array
 * holds the pattern subscriptions that match it, oldest first.
 */
int ebus_subs_for_new_topic(struct ebus *bus, struct ebus_topic_s *t, struct subarr **out)
{
	uint32_t n = 0, j = 0;
	struct subarr *a;
	struct ebus_sub *s;
	EBUS_LIST_FOR_EACH(s, &bus->patterns, struct ebus_sub, pat_node)
		n += pattern_applies(s, t);
	*out = NULL;
	if (n == 0)
		return EBUS_OK;
	a = ebus_alloc(bus, arr_size(n), _Alignof(struct subarr));
	if (!a)
		return EBUS_ERR_NOMEM;
	EBUS_LIST_FOR_EACH(s, &bus->patterns, struct ebus_sub, pat_node)
		if (pattern_applies(s, t))
			a->items[j++] = s;
	a->n = n;
	*out = a;
	return EBUS_OK;
}

/* After a change under ctl_lock: unlocks, and lets what piled up be freed
 * without waiting (retire_collect). */
static int ctl_unlock(struct ebus *bus, int rc)
{
	if (bus->sync ? bus->nretired > 0 : bus->nretired >= RETIRE_BATCH)
		retire_collect(bus, true);
	else
		pthread_mutex_unlock(&bus->ctl_lock);
	return rc;
}

int ebus_subscribe_ex(ebus_topic_t *topic, ebus_handler_fn fn, void *ctx, unsigned flags,
                      ebus_sub_id *out)
{
	struct ebus *bus;
	struct subarr *old, *nw;
	struct ebus_sub *sub;
	ebus_sub_id id;
	uint64_t count;

	if (!topic || !fn || !out)
		return EBUS_ERR_NULL;
	if (flags & ~EBUS_SUB_CONCURRENT)
		return EBUS_ERR_FLAGS;
	if ((topic->flags & EBUS_TOPIC_UNORDERED) && !(flags & EBUS_SUB_CONCURRENT))
		return EBUS_ERR_NOT_CONCURRENT;
	bus = topic->bus;
	pthread_mutex_lock(&bus->ctl_lock);
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN)
		return ctl_unlock(bus, EBUS_ERR_SHUTDOWN);
	old = atomic_load_explicit(&topic->subs, memory_order_relaxed);
	for (uint32_t i = 0; old && i < old->n; i++)
		if (!old->items[i]->pattern && old->items[i]->fn == fn && old->items[i]->ctx == ctx)
			return ctl_unlock(bus, EBUS_ERR_DUPLICATE);
	sub = sub_new(bus, fn, ctx, flags, NULL, 0);
	if (!sub)
		return ctl_unlock(bus, EBUS_ERR_NOMEM);
	nw = arr_edit(bus, old, sub, NULL);
	if (!nw || id_alloc(bus, sub) != EBUS_OK) {
		ebus_free(bus, nw, nw ? arr_size(nw->n) : 0);
		ebus_free(bus, sub, sub_size(0));
		return ctl_unlock(bus, EBUS_ERR_NOMEM);
	}
	sub->topic = topic;
	arr_install(bus, topic, nw);
	*out = id = sub->id;
	count = nw->n; /* nw and sub may be freed once the lock is dropped */
	ctl_unlock(bus, EBUS_OK);
	ebus_meta_emit(bus, META_SUB_ADDED, -1, id, count, 0, topic->name, topic->namelen);
	return EBUS_OK;
}

int ebus_subscribe(ebus_topic_t *topic, ebus_handler_fn fn, void *ctx, ebus_sub_id *out)
{
	return ebus_subscribe_ex(topic, fn, ctx, 0, out);
}

/* A topic and its next array, prepared before anything changes so that an
 * allocation failure leaves every topic as it was. */
struct pending {
	struct ebus_topic_s *t;
	struct subarr *nw;
};

static void pending_free(struct ebus *bus, struct pending *p, size_t n, size_t cap)
{
	for (size_t i = 0; i < n; i++)
		ebus_free(bus, p[i].nw, p[i].nw ? arr_size(p[i].nw->n) : 0);
	ebus_free(bus, p, cap * sizeof *p);
}

/*
 * Every topic whose array gains `add` (it matches) or loses `del` (it holds
 * it), with its new array. Caller holds ctl_lock, under which topics are
 * created, so the topic list is stable.
 */
static int pending_build(struct ebus *bus, struct ebus_sub *add, const struct ebus_sub *del,
                         struct pending **out, size_t *nout)
{
	size_t n = 0, j = 0;
	struct pending *p;
	ck_stack_entry_t *e;

	for (e = CK_STACK_FIRST(&bus->all_topics); e; e = CK_STACK_NEXT(e)) {
		struct ebus_topic_s *t = EBUS_CONTAINER(e, struct ebus_topic_s, all);
		n += add ? pattern_applies(add, t)
		         : arr_has(atomic_load_explicit(&t->subs, memory_order_relaxed), del);
	}
	*out = NULL;
	*nout = 0;
	if (n == 0)
		return EBUS_OK;
	p = ebus_alloc(bus, n * sizeof *p, _Alignof(struct pending));
	if (!p)
		return EBUS_ERR_NOMEM;
	for (e = CK_STACK_FIRST(&bus->all_topics); e && j < n; e = CK_STACK_NEXT(e)) {
		struct ebus_topic_s *t = EBUS_CONTAINER(e, struct ebus_topic_s, all);
		struct subarr *old = atomic_load_explicit(&t->subs, memory_order_relaxed);
		if (add ? !pattern_applies(add, t) : !arr_has(old, del))
			continue;
		p[j].t = t;
		p[j].nw = arr_edit(bus, old, add, del);
		j++;
		if (!p[j - 1].nw && (add || old->n > 1)) {
			pending_free(bus, p, j, n);
			return EBUS_ERR_NOMEM;
		}
	}
	*out = p;
	*nout = j;
	return EBUS_OK;
}

static size_t same_pattern(struct ebus *bus, const char *pattern, size_t plen)
{
	size_t n = 0;
	struct ebus_sub *s;
	EBUS_LIST_FOR_EACH(s, &bus->patterns, struct ebus_sub, pat_node)
		n += s->patlen == plen && !memcmp(s->pattern, pattern, plen);
	return n;
}

int ebus_subscribe_pattern(ebus_t *bus, const char *pattern, ebus_handler_fn fn, void *ctx,
                           unsigned flags, ebus_sub_id *out)
{
	struct ebus_sub *sub;
	struct pending *p;
	size_t plen, np;
	int rc;

	if (!bus || !pattern || !fn || !out)
		return EBUS_ERR_NULL;
	if (flags & ~EBUS_SUB_CONCURRENT)
		return EBUS_ERR_FLAGS;
	rc = ebus_pattern_check(pattern, &plen);
	if (rc)
		return rc;
	if (!ebus_pattern_has_wildcard(pattern, plen)) {
		/* One name: a literal subscription to that topic. */
		ebus_topic_t *t;
		rc = ebus_topic(bus, pattern, &t);
		return rc ? rc : ebus_subscribe_ex(t, fn, ctx, flags, out);
	}
	pthread_mutex_lock(&bus->ctl_lock);
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN)
		return ctl_unlock(bus, EBUS_ERR_SHUTDOWN);
	EBUS_LIST_FOR_EACH(sub, &bus->patterns, struct ebus_sub, pat_node)
		if (sub->fn == fn && sub->ctx == ctx && sub->patlen == plen &&
		    !memcmp(sub->pattern, pattern, plen))
			return ctl_unlock(bus, EBUS_ERR_DUPLICATE);
	sub = sub_new(bus, fn, ctx, flags, pattern, plen);
	if (!sub)
		return ctl_unlock(bus, EBUS_ERR_NOMEM);
	rc = pending_build(bus, sub, NULL, &p, &np);
	if (rc == EBUS_OK && (rc = id_alloc(bus, sub)) != EBUS_OK)
		pending_free(bus, p, np, np);
	if (rc) {
		ebus_free(bus, sub, sub_size(plen));
		return ctl_unlock(bus, rc);
	}
	for (size_t i = 0; i < np; i++)
		arr_install(bus, p[i].t, p[i].nw);
	ebus_free(bus, p, np * sizeof *p);
	cds_list_add_tail(&sub->pat_node, &bus->patterns);
	atomic_store_explicit(&bus->npatterns, bus->npatterns + 1, memory_order_relaxed);
	*out = sub->id;
	np = same_pattern(bus, pattern, plen);
	ctl_unlock(bus, EBUS_OK);
	ebus_meta_emit(bus, META_SUB_ADDED, -1, *out, np, 0, pattern, plen);
	return EBUS_OK;
}

static void pattern_unlink(struct ebus *bus, struct ebus_sub *s)
{
	cds_list_del(&s->pat_node);
	atomic_store_explicit(&bus->npatterns, bus->npatterns - 1, memory_order_relaxed);
}

static int unsubscribe(struct ebus *bus, ebus_sub_id id, ebus_released_fn released)
{
	struct ebus_sub *sub;
	struct pending one, *p = &one;
	struct retire *list;
	size_t np = 1, namelen;
	char name[EBUS_TOPIC_MAX + 1];
	uint64_t count;
	uint32_t idx;
	int rc;

	if (!bus)
		return EBUS_ERR_NULL;
	pthread_mutex_lock(&bus->ctl_lock);
	sub = id_lookup(bus, id, &idx);
	if (!sub) {
		pthread_mutex_unlock(&bus->ctl_lock);
		return EBUS_ERR_NOT_FOUND;
	}
	if (sub->pattern) {
		rc = pending_build(bus, NULL, sub, &p, &np);
	} else {
		struct subarr *old = atomic_load_explicit(&sub->topic->subs, memory_order_relaxed);
		one.t = sub->topic;
		one.nw = arr_edit(bus, old, NULL, sub);
		rc = !one.nw && old->n > 1 ? EBUS_ERR_NOMEM : EBUS_OK;
	}
	if (rc) {
		pthread_mutex_unlock(&bus->ctl_lock);
		return rc;
	}
	id_release(bus, idx);
	/* dead first: a dispatch loop that already holds an old array skips
	 * the subscriber from now on (same executor: immediately). */
	atomic_store_explicit(&sub->dead, 1, memory_order_seq_cst);
	for (size_t i = 0; i < np; i++)
		arr_install(bus, p[i].t, p[i].nw);
	if (p != &one)
		ebus_free(bus, p, np * sizeof *p);
	if (sub->pattern) {
		pattern_unlink(bus, sub);
		namelen = sub->patlen;
		memcpy(name, sub->pattern, namelen);
		count = same_pattern(bus, sub->pattern, sub->patlen);
	} else {
		struct subarr *now = atomic_load_explicit(&sub->topic->subs, memory_order_relaxed);
		namelen = sub->topic->namelen;
		memcpy(name, sub->topic->name, namelen);
		count = now ? now->n : 0;
	}
	sub->released = released;
	sub->retire.free = sub_free;
	ebus_retire(bus, &sub->retire); /* after its arrays: freed after them */
	if (in_handler()) {
		pthread_mutex_unlock(&bus->ctl_lock);
		ebus_meta_emit(bus, META_SUB_REMOVED, -1, id, count, 0, name, namelen);
		return EBUS_OK;
	}
	/* Blocking form: take everything retired so far (this subscriber
	 * included), wait one grace period without holding any lock, free. */
	list = retire_take(bus);
	pthread_mutex_unlock(&bus->ctl_lock);
	ebus_meta_emit(bus, META_SUB_REMOVED, -1, id, count, 0, name, namelen);
	grace_period(bus);
	retire_free_list(list);
	return EBUS_OK;
}

int ebus_unsubscribe(ebus_t *bus, ebus_sub_id id)
{
	return unsubscribe(bus, id, NULL);
}

int ebus_unsubscribe_async(ebus_t *bus, ebus_sub_id id, ebus_released_fn released)
{
	return unsubscribe(bus, id, released);
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
		*errors = atomic_load_explicit(&sub->errors, memory_order_relaxed);
	pthread_mutex_unlock(&bus->ctl_lock);
	return sub ? EBUS_OK : EBUS_ERR_NOT_FOUND;
}

/* ---- serial calls ----------------------------------------------------------- */

/*
 * A serial subscription's call, under its guard (a ck fas spin lock). The
 * guard is almost always free; when it is not, another executor is inside
 * the handler: spin a little, then yield. A waiting executor names the
 * subscription in wait_sub and bumps its own progress word, so a holder
 * that sleeps on this executor's full lane re-walks the wait chain and
 * gets EBUS_ERR_DEADLOCK (bus.c full_block). The walk reads the guard's
 * holder (owner) afresh on every step, so the record never goes stale when
 * the guard changes hands.
 *
 * `dead` is checked again once the guard is ours: an unsubscribe from
 * inside the handler on the executor that held it has returned by then
 * (the guard's release orders it), and the handler must not run again.
 */
int ebus_call_serial(struct ebus *bus, struct ebus_sub *sub, const ebus_event_t *ev, bool *ran)
{
	struct ebus_exec *self = bus->sync ? NULL : ebus_tls_exec;
	bool announced = false;
	int rc;

	for (unsigned spins = 0; !ck_spinlock_fas_trylock(&sub->guard); spins++) {
		if (spins < 64) {
			ebus_cpu_relax();
			continue;
		}
		EBUS_TEST_STALL(EBUS_TP_SERIAL_WAIT, self ? (long)self->index : -1);
		if (self && !announced) {
			atomic_store_explicit(&self->wait_sub, sub, memory_order_seq_cst);
			ebus_exec_notify_all(self);
			announced = true;
		}
		sched_yield();
	}
	EBUS_TSAN_ACQUIRE(&sub->guard);
	atomic_store_explicit(&sub->owner, self, memory_order_seq_cst);
	if (announced)
		atomic_store_explicit(&self->wait_sub, NULL, memory_order_seq_cst);
	EBUS_TEST_STALL(EBUS_TP_SERIAL_ACQUIRED, self ? (long)self->index : -1);
	*ran = !atomic_load_explicit(&sub->dead, memory_order_acquire);
	rc = *ran ? sub->fn(ev, sub->ctx) : 0;
	atomic_store_explicit(&sub->owner, NULL, memory_order_seq_cst);
	EBUS_TSAN_RELEASE(&sub->guard);
	ck_spinlock_fas_unlock(&sub->guard);
	return rc;
}

/* Destroy: no executor, no publisher, no handler is left. */
void ebus_subs_destroy(struct ebus *bus)
{
	ck_stack_entry_t *e;
	struct ebus_sub *s;
	/* Lists handed to executors after they stopped taking them. */
	for (unsigned i = 0; !bus->sync && i < bus->nexec; i++)
		if (bus->exec[i])
			retire_free_list(ebus_exec_retire_leftover(bus->exec[i]));
	retire_free_list(retire_take(bus));
	for (e = CK_STACK_FIRST(&bus->all_topics); e; e = CK_STACK_NEXT(e)) {
		struct ebus_topic_s *t = EBUS_CONTAINER(e, struct ebus_topic_s, all);
		struct subarr *a = atomic_load_explicit(&t->subs, memory_order_relaxed);
		if (!a)
			continue;
		for (uint32_t i = 0; i < a->n; i++)
			if (!a->items[i]->pattern)
				ebus_free(bus, a->items[i], sub_size(0));
		ebus_free(bus, a, arr_size(a->n));
		atomic_store_explicit(&t->subs, NULL, memory_order_relaxed);
	}
	EBUS_LIST_FOR_EACH_SAFE(s, &bus->patterns, struct ebus_sub, pat_node)
		ebus_free(bus, s, sub_size(s->patlen));
	CDS_INIT_LIST_HEAD(&bus->patterns);
	ebus_free(bus, bus->ids, bus->ids_cap * sizeof *bus->ids);
	bus->ids = NULL;
	bus->ids_cap = 0;
}
