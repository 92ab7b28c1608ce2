/*
 * Subscription layer (contract in subs.h): copy-on-write subscriber arrays,
 * the id table, pattern subscriptions, topic interning and deferred frees.
 *
 * Writers (subscribe/unsubscribe) serialise on the layer's lock, build a new
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
 *    the layer's retired list; every RETIRE_BATCH entries the list is
 *    handed off (ops.handoff: to an executor, which passes it to call_rcu;
 *    retire_collect): nothing but the
 *    blocking unsubscribe ever waits for a grace period.
 *  - sync bus: handlers run under the topic's stripe mutex, so locking and
 *    unlocking a stripe is the grace period (ops.sync_grace_period; the
 *    control path only tries the stripes, ops.sync_try_grace_period). What
 *    a synchronous handler retires goes on a thread-local list, freed when
 *    that thread's outermost publish ends.
 *
 * No lock is ever held across a grace period: handlers may subscribe, and a
 * writer waiting for them while holding the lock would deadlock.
 *
 * Ids: the low 32 bits index the id table, the high 32 bits are a serial
 * drawn from one process-wide counter when the subscription is made and
 * kept in its table slot. An id that is stale, or that belongs to another
 * bus, names a live subscription only if that subscription drew the same
 * serial: after 2^32 subscriptions in the process, whatever the number of
 * buses. 0 is never drawn, so no id is 0.
 */
#include "subs.h"

char ebus_tsan_gp_token;
char ebus_tsan_cb_token;

#define RETIRE_BATCH 32
#define ID_NONE UINT32_MAX

/* ---- id table ------------------------------------------------------------ */

static _Atomic uint32_t id_serials;

static uint32_t serial_next(void)
{
	uint32_t v;
	do
		v = atomic_fetch_add_explicit(&id_serials, 1, memory_order_relaxed) + 1;
	while (v == 0);
	return v;
}

static struct ebus_sub *id_lookup(struct ebus_subs *s, ebus_sub_id id, uint32_t *idx_out)
{
	uint32_t idx = (uint32_t)id, serial = (uint32_t)(id >> 32);
	if (serial == 0 || idx >= s->ids_cap || !s->ids[idx].sub || s->ids[idx].serial != serial)
		return NULL;
	*idx_out = idx;
	return s->ids[idx].sub;
}

static int id_grow(struct ebus_subs *s)
{
	uint32_t ncap = s->ids_cap ? s->ids_cap * 2 : 64;
	struct idslot *n;
	if (ncap > (1u << 31))
		return EBUS_ERR_NOMEM;
	n = ebus_alloc(s->alloc, ncap * sizeof *n, _Alignof(struct idslot));
	if (!n)
		return EBUS_ERR_NOMEM;
	if (s->ids_cap)
		memcpy(n, s->ids, s->ids_cap * sizeof *n);
	for (uint32_t i = s->ids_cap; i < ncap; i++) {
		n[i].sub = NULL;
		n[i].serial = 0;
		n[i].next_free = i + 1 < ncap ? i + 1 : ID_NONE;
	}
	ebus_free(s->alloc, s->ids, s->ids_cap * sizeof *n);
	s->free_head = s->ids_cap;
	s->free_tail = ncap - 1;
	s->ids = n;
	s->ids_cap = ncap;
	return EBUS_OK;
}

static int id_alloc(struct ebus_subs *s, struct ebus_sub *sub)
{
	uint32_t idx;
	if (s->free_head == ID_NONE && id_grow(s) != EBUS_OK)
		return EBUS_ERR_NOMEM;
	idx = s->free_head;
	s->free_head = s->ids[idx].next_free;
	if (s->free_head == ID_NONE)
		s->free_tail = ID_NONE;
	s->ids[idx].sub = sub;
	s->ids[idx].serial = serial_next();
	sub->id = ((uint64_t)s->ids[idx].serial << 32) | idx;
	return EBUS_OK;
}

/* FIFO reuse, so a slot's next serial comes as late as possible. */
static void id_release(struct ebus_subs *s, uint32_t idx)
{
	struct idslot *e = &s->ids[idx];
	e->sub = NULL;
	e->serial = 0;
	e->next_free = ID_NONE;
	if (s->free_tail == ID_NONE)
		s->free_head = idx;
	else
		s->ids[s->free_tail].next_free = idx;
	s->free_tail = idx;
}

/* ---- arrays and deferred frees ---------------------------------------- */

static size_t arr_size(uint32_t n)
{
	return sizeof(struct subarr) + n * sizeof(struct ebus_sub *);
}

static void arr_free(struct retire *r)
{
	struct subarr *a = EBUS_CONTAINER(r, struct subarr, retire);
	ebus_free(r->owner->alloc, a, arr_size(a->n));
}

static size_t sub_size(size_t patlen)
{
	return sizeof(struct ebus_sub) + (patlen ? patlen + 1 : 0);
}

static void sub_free(struct retire *r)
{
	struct ebus_sub *sub = EBUS_CONTAINER(r, struct ebus_sub, retire);
	if (sub->released)
		sub->released(sub->ctx);
	ebus_free(r->owner->alloc, sub, sub_size(sub->patlen));
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

/* Caller holds the lock. */
static void retire(struct ebus_subs *s, struct retire *r)
{
	r->owner = s;
	if (!s->sync && ebus_tls_exec) {
		/* Registered, online qsbr reader: call_rcu is allowed here. */
		urcu_qsbr_call_rcu(&r->rcu, retire_cb);
		return;
	}
	if (s->sync && ebus_tls_sync_depth > 0) {
		/* A handler of a synchronous bus: its released() callbacks run
		 * on this thread when its outermost publish ends (ebus.h). */
		r->next = tls_sync_retired;
		tls_sync_retired = r;
		return;
	}
	r->next = s->retired;
	s->retired = r;
	s->nretired++;
	if (s->sync)
		atomic_store_explicit(&s->sync_retire_pending, 1, memory_order_release);
}

static struct retire *retire_take(struct ebus_subs *s)
{
	struct retire *list = s->retired;
	s->retired = NULL;
	s->nretired = 0;
	return list;
}

/* Gives a taken list (newest first) back, behind what was retired since. */
static void retire_putback(struct ebus_subs *s, struct retire *list)
{
	struct retire **pp;
	unsigned n = 0;
	for (struct retire *r = list; r; r = r->next)
		n++;
	pthread_mutex_lock(&s->lock);
	for (pp = &s->retired; *pp; pp = &(*pp)->next)
		;
	*pp = list;
	s->nretired += n;
	atomic_store_explicit(&s->sync_retire_pending, 1, memory_order_release);
	pthread_mutex_unlock(&s->lock);
}

static void grace_period(struct ebus_subs *s)
{
	if (s->sync) {
		s->ops.sync_grace_period(s->ops.ctx);
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

void ebus_subs_free_list(struct retire *list)
{
	struct retire *next;
	for (list = retire_reverse(list); list; list = next) {
		next = list->next;
		list->free(list);
	}
}

void ebus_retire_call_rcu(struct retire *list)
{
	struct retire *next;
	for (list = retire_reverse(list); list; list = next) {
		next = list->next;
		urcu_qsbr_call_rcu(&list->rcu, retire_cb);
	}
}

/*
 * Frees what control calls retired, without ever waiting for a grace
 * period (a subscribe must not wait for handlers: one may be blocked on a
 * pull consumer that the subscribing thread drains). Async bus: the list is
 * handed off (to executor 0, which passes it to call_rcu); only while
 * open, since after shutdown no executor takes it (destroy frees what is
 * left). Sync bus: freed if every stripe can be taken without waiting (no
 * handler holds an old array), else kept for the next try. Called with the
 * lock held; returns with it released.
 */
static void retire_collect(struct ebus_subs *s)
{
	struct retire *list = NULL;
	if (s->sync || !s->closed)
		list = retire_take(s);
	pthread_mutex_unlock(&s->lock);
	if (!list)
		return;
	if (!s->sync)
		s->ops.handoff(s->ops.ctx, list);
	else if (s->ops.sync_try_grace_period(s->ops.ctx))
		ebus_subs_free_list(list);
	else
		retire_putback(s, list);
}

void ebus_subs_sync_retire_run(struct ebus_subs *s)
{
	struct retire *mine = tls_sync_retired;
	if (mine) {
		/* One blocking grace period on each bus they came from. */
		tls_sync_retired = NULL;
		for (struct retire *r = mine; r; r = r->next)
			if (r == mine || r->owner != mine->owner)
				grace_period(r->owner);
		ebus_subs_free_list(mine);
	}
	/* Plain load first: this runs after every synchronous publish, and an
	 * RMW would bounce the line between publishing threads. */
	if (!atomic_load_explicit(&s->sync_retire_pending, memory_order_relaxed) ||
	    !atomic_exchange_explicit(&s->sync_retire_pending, 0, memory_order_acq_rel))
		return;
	pthread_mutex_lock(&s->lock);
	retire_collect(s);
}

/* After a change under the lock: unlocks, and lets what piled up be freed
 * without waiting (retire_collect). */
static int ctl_unlock(struct ebus_subs *s, int rc)
{
	if (s->sync ? s->nretired > 0 : s->nretired >= RETIRE_BATCH)
		retire_collect(s);
	else
		pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ---- init / close / destroy -------------------------------------------- */

int ebus_subs_init(struct ebus_subs *s, struct ebus_registry *reg, const ebus_allocator_t *a,
                   unsigned nexec, bool sync, const struct ebus_subs_ops *ops)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->lock, NULL);
	s->reg = reg;
	s->alloc = a;
	s->ops = *ops;
	s->nexec = nexec;
	s->sync = sync;
	s->free_head = s->free_tail = ID_NONE;
	CDS_INIT_LIST_HEAD(&s->patterns);
	return EBUS_OK;
}

void ebus_subs_close(struct ebus_subs *s)
{
	pthread_mutex_lock(&s->lock);
	s->closed = true;
	pthread_mutex_unlock(&s->lock);
}

void ebus_subs_destroy(struct ebus_subs *s)
{
	struct ebus_sub *sub;
	ebus_subs_free_list(retire_take(s));
	for (struct ebus_topic_s *t = ebus_registry_first(s->reg); t; t = ebus_registry_next(t)) {
		struct subarr *a = atomic_load_explicit(&t->subs, memory_order_relaxed);
		if (!a)
			continue;
		for (uint32_t i = 0; i < a->n; i++)
			if (!a->items[i]->pattern)
				ebus_free(s->alloc, a->items[i], sub_size(0));
		ebus_free(s->alloc, a, arr_size(a->n));
		atomic_store_explicit(&t->subs, NULL, memory_order_relaxed);
	}
	EBUS_LIST_FOR_EACH_SAFE(sub, &s->patterns, struct ebus_sub, pat_node)
		ebus_free(s->alloc, sub, sub_size(sub->patlen));
	CDS_INIT_LIST_HEAD(&s->patterns);
	ebus_free(s->alloc, s->ids, s->ids_cap * sizeof *s->ids);
	s->ids = NULL;
	s->ids_cap = 0;
	pthread_mutex_destroy(&s->lock);
}

/* ---- arrays ------------------------------------------------------------------ */

static bool pattern_applies(const struct ebus_sub *sub, const char *name, size_t len,
                            unsigned tflags)
{
	if ((tflags & EBUS_TOPIC_UNORDERED) && !(sub->flags & EBUS_SUB_CONCURRENT))
		return false;
	return ebus_pattern_matches(sub->pattern, sub->patlen, name, len);
}

static bool applies_to(const struct ebus_sub *sub, const struct ebus_topic_s *t)
{
	return pattern_applies(sub, t->name, t->namelen, t->flags);
}

/* A copy of `old` with `add` appended (add != NULL) or `del` left out. */
static struct subarr *arr_edit(struct ebus_subs *s, const struct subarr *old,
                               struct ebus_sub *add, const struct ebus_sub *del)
{
	uint32_t n = old ? old->n : 0, m = add ? n + 1 : n - 1, j = 0;
	struct subarr *nw;
	if (m == 0)
		return NULL;
	nw = ebus_alloc(s->alloc, arr_size(m), _Alignof(struct subarr));
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

static bool arr_has(const struct subarr *a, const struct ebus_sub *sub)
{
	for (uint32_t i = 0; a && i < a->n; i++)
		if (a->items[i] == sub)
			return true;
	return false;
}

/* Installs a topic's new array; the old one is freed after a grace period. */
static void arr_install(struct ebus_subs *s, struct ebus_topic_s *t, struct subarr *nw)
{
	struct subarr *old = atomic_load_explicit(&t->subs, memory_order_relaxed);
	atomic_store_explicit(&t->subs, nw, memory_order_release);
	if (old) {
		old->retire.free = arr_free;
		retire(s, &old->retire);
	}
}

/* Under the lock: the first array of a topic about to be created, with the
 * pattern subscriptions that match it, oldest first. */
static int first_array(struct ebus_subs *s, const char *name, size_t len, unsigned tflags,
                       struct subarr **out)
{
	uint32_t n = 0, j = 0;
	struct subarr *a;
	struct ebus_sub *sub;
	EBUS_LIST_FOR_EACH(sub, &s->patterns, struct ebus_sub, pat_node)
		n += pattern_applies(sub, name, len, tflags);
	*out = NULL;
	if (n == 0)
		return EBUS_OK;
	a = ebus_alloc(s->alloc, arr_size(n), _Alignof(struct subarr));
	if (!a)
		return EBUS_ERR_NOMEM;
	EBUS_LIST_FOR_EACH(sub, &s->patterns, struct ebus_sub, pat_node)
		if (pattern_applies(sub, name, len, tflags))
			a->items[j++] = sub;
	a->n = n;
	*out = a;
	return EBUS_OK;
}

/* ---- topics ------------------------------------------------------------------ */

/* Under the lock, the name not found: creates it with its first array. */
static int topic_create(struct ebus_subs *s, const char *name, size_t len, uint64_t hash,
                        int executor, unsigned flags, struct ebus_topic_s **out)
{
	struct subarr *first;
	int rc;
	if (s->closed)
		return EBUS_ERR_SHUTDOWN;
	rc = first_array(s, name, len, flags & EBUS_TOPIC_UNORDERED, &first);
	if (rc)
		return rc;
	rc = ebus_registry_add(s->reg, name, len, hash, executor, flags, first, out);
	if (rc)
		ebus_free(s->alloc, first, first ? arr_size(first->n) : 0);
	return rc;
}

int ebus_subs_intern(struct ebus_subs *s, const char *name, size_t len, uint64_t hash,
                     int executor, unsigned flags, struct ebus_topic_s **out)
{
	struct ebus_topic_s *t = ebus_registry_find(s->reg, name, len, hash);
	int rc = EBUS_OK;
	if (!t) {
		/* Creation is serialised with pattern subscriptions: a new topic
		 * gets every matching pattern, and a new pattern sees every
		 * topic. Lookups stay lock-free. */
		pthread_mutex_lock(&s->lock);
		t = ebus_registry_find(s->reg, name, len, hash);
		if (!t)
			rc = topic_create(s, name, len, hash, executor, flags, &t);
		pthread_mutex_unlock(&s->lock);
	}
	*out = t;
	return rc;
}

/* Never-interned names (ebus_publish_name): created only if a pattern
 * subscription matches, so arbitrary names cannot grow the registry. */
int ebus_subs_intern_matched(struct ebus_subs *s, const char *name, size_t len, uint64_t hash,
                             struct ebus_topic_s **out)
{
	struct ebus_topic_s *t;
	int rc = EBUS_OK;

	*out = NULL;
	if (!atomic_load_explicit(&s->npatterns, memory_order_relaxed))
		return EBUS_OK;
	pthread_mutex_lock(&s->lock);
	t = ebus_registry_find(s->reg, name, len, hash);
	if (!t) {
		struct ebus_sub *sub;
		EBUS_LIST_FOR_EACH(sub, &s->patterns, struct ebus_sub, pat_node) {
			if (ebus_pattern_matches(sub->pattern, sub->patlen, name, len)) {
				rc = topic_create(s, name, len, hash, -1, 0, &t);
				break;
			}
		}
	}
	pthread_mutex_unlock(&s->lock);
	*out = t;
	return rc;
}

uint32_t ebus_subs_count(struct ebus_subs *s, struct ebus_topic_s *t)
{
	struct subarr *a;
	uint32_t n;
	pthread_mutex_lock(&s->lock); /* the current array cannot be retired */
	a = atomic_load_explicit(&t->subs, memory_order_acquire);
	n = a ? a->n : 0;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- subscribe ------------------------------------------------------------------ */

static struct ebus_sub *sub_new(struct ebus_subs *s, ebus_handler_fn fn, void *ctx,
                                unsigned flags, const char *pattern, size_t patlen)
{
	struct ebus_sub *sub = ebus_zalloc(s->alloc, sub_size(patlen), _Alignof(struct ebus_sub));
	if (!sub)
		return NULL;
	sub->fn = fn;
	sub->ctx = ctx;
	sub->flags = flags;
	atomic_init(&sub->state, 0);
	atomic_init(&sub->errors, 0);
	ck_spinlock_fas_init(&sub->guard);
	atomic_init(&sub->owner, NULL);
	if (patlen) {
		sub->pattern = (char *)(sub + 1);
		memcpy(sub->pattern, pattern, patlen);
		sub->pattern[patlen] = '\0';
		sub->patlen = patlen;
		/* Its topics may live on different executors (stripes). */
		if (!(flags & EBUS_SUB_CONCURRENT) && s->nexec > 1)
			atomic_init(&sub->state, SUB_SERIAL);
	}
	return sub;
}

static void change_name(struct sub_change *c, const char *name, size_t len)
{
	c->namelen = len;
	memcpy(c->name, name, len);
	c->name[len] = '\0';
}

int ebus_subs_add(struct ebus_subs *s, struct ebus_topic_s *t, ebus_handler_fn fn, void *ctx,
                  unsigned flags, struct sub_change *out)
{
	struct subarr *old, *nw;
	struct ebus_sub *sub;

	pthread_mutex_lock(&s->lock);
	if (s->closed)
		return ctl_unlock(s, EBUS_ERR_SHUTDOWN);
	old = atomic_load_explicit(&t->subs, memory_order_relaxed);
	for (uint32_t i = 0; old && i < old->n; i++)
		if (!old->items[i]->pattern && old->items[i]->fn == fn && old->items[i]->ctx == ctx)
			return ctl_unlock(s, EBUS_ERR_DUPLICATE);
	sub = sub_new(s, fn, ctx, flags, NULL, 0);
	if (!sub)
		return ctl_unlock(s, EBUS_ERR_NOMEM);
	nw = arr_edit(s, old, sub, NULL);
	if (!nw || id_alloc(s, sub) != EBUS_OK) {
		ebus_free(s->alloc, nw, nw ? arr_size(nw->n) : 0);
		ebus_free(s->alloc, sub, sub_size(0));
		return ctl_unlock(s, EBUS_ERR_NOMEM);
	}
	sub->topic = t;
	arr_install(s, t, nw);
	out->id = sub->id;
	out->count = nw->n; /* nw and sub may be freed once the lock is dropped */
	change_name(out, t->name, t->namelen);
	return ctl_unlock(s, EBUS_OK);
}

/* A topic and its next array, prepared before anything changes so that an
 * allocation failure leaves every topic as it was. */
struct pending {
	struct ebus_topic_s *t;
	struct subarr *nw;
};

static void pending_free(struct ebus_subs *s, struct pending *p, size_t n, size_t cap)
{
	for (size_t i = 0; i < n; i++)
		ebus_free(s->alloc, p[i].nw, p[i].nw ? arr_size(p[i].nw->n) : 0);
	ebus_free(s->alloc, p, cap * sizeof *p);
}

/* Whether t's array gains `add` (it matches) or loses `del` (it holds it). */
static bool pending_for(const struct ebus_topic_s *t, const struct ebus_sub *add,
                        const struct ebus_sub *del)
{
	return add ? applies_to(add, t) : arr_has(atomic_load_explicit(&t->subs, memory_order_relaxed), del);
}

/*
 * Every topic whose array changes, with its new array. Under the lock,
 * under which topics are created, so the topic walk is stable.
 */
static int pending_build(struct ebus_subs *s, struct ebus_sub *add, const struct ebus_sub *del,
                         struct pending **out, size_t *nout)
{
	size_t n = 0, j = 0;
	struct pending *p;
	struct ebus_topic_s *t;

	for (t = ebus_registry_first(s->reg); t; t = ebus_registry_next(t))
		n += pending_for(t, add, del);
	*out = NULL;
	*nout = 0;
	if (n == 0)
		return EBUS_OK;
	p = ebus_alloc(s->alloc, n * sizeof *p, _Alignof(struct pending));
	if (!p)
		return EBUS_ERR_NOMEM;
	for (t = ebus_registry_first(s->reg); t && j < n; t = ebus_registry_next(t)) {
		struct subarr *old = atomic_load_explicit(&t->subs, memory_order_relaxed);
		if (!pending_for(t, add, del))
			continue;
		p[j].t = t;
		p[j].nw = arr_edit(s, old, add, del);
		j++;
		if (!p[j - 1].nw && (add || old->n > 1)) {
			pending_free(s, p, j, n);
			return EBUS_ERR_NOMEM;
		}
	}
	*out = p;
	*nout = j;
	return EBUS_OK;
}

static void pending_install(struct ebus_subs *s, struct pending *p, size_t np)
{
	for (size_t i = 0; i < np; i++)
		arr_install(s, p[i].t, p[i].nw);
}

static size_t same_pattern(struct ebus_subs *s, const char *pattern, size_t plen)
{
	size_t n = 0;
	struct ebus_sub *sub;
	EBUS_LIST_FOR_EACH(sub, &s->patterns, struct ebus_sub, pat_node)
		n += sub->patlen == plen && !memcmp(sub->pattern, pattern, plen);
	return n;
}

int ebus_subs_add_pattern(struct ebus_subs *s, const char *pattern, size_t plen,
                          ebus_handler_fn fn, void *ctx, unsigned flags, struct sub_change *out)
{
	struct ebus_sub *sub;
	struct pending *p;
	size_t np;
	int rc;

	pthread_mutex_lock(&s->lock);
	if (s->closed)
		return ctl_unlock(s, EBUS_ERR_SHUTDOWN);
	EBUS_LIST_FOR_EACH(sub, &s->patterns, struct ebus_sub, pat_node)
		if (sub->fn == fn && sub->ctx == ctx && sub->patlen == plen &&
		    !memcmp(sub->pattern, pattern, plen))
			return ctl_unlock(s, EBUS_ERR_DUPLICATE);
	sub = sub_new(s, fn, ctx, flags, pattern, plen);
	if (!sub)
		return ctl_unlock(s, EBUS_ERR_NOMEM);
	rc = pending_build(s, sub, NULL, &p, &np);
	if (rc == EBUS_OK && (rc = id_alloc(s, sub)) != EBUS_OK)
		pending_free(s, p, np, np);
	if (rc) {
		ebus_free(s->alloc, sub, sub_size(plen));
		return ctl_unlock(s, rc);
	}
	pending_install(s, p, np);
	ebus_free(s->alloc, p, np * sizeof *p);
	cds_list_add_tail(&sub->pat_node, &s->patterns);
	atomic_store_explicit(&s->npatterns, s->npatterns + 1, memory_order_relaxed);
	out->id = sub->id;
	out->count = same_pattern(s, pattern, plen);
	change_name(out, pattern, plen);
	return ctl_unlock(s, EBUS_OK);
}

/* ---- unsubscribe ----------------------------------------------------------------- */

/* Under the lock: unlinks `sub` from its topic's array (literal) or from
 * every array and the pattern list (pattern); says what is left. */
static int sub_unlink(struct ebus_subs *s, struct ebus_sub *sub, struct sub_change *out)
{
	struct pending one, *p = &one;
	size_t np = 1;
	int rc;

	if (sub->pattern) {
		rc = pending_build(s, NULL, sub, &p, &np);
	} else {
		struct subarr *old = atomic_load_explicit(&sub->topic->subs, memory_order_relaxed);
		one.t = sub->topic;
		one.nw = arr_edit(s, old, NULL, sub);
		rc = !one.nw && old->n > 1 ? EBUS_ERR_NOMEM : EBUS_OK;
	}
	if (rc)
		return rc;
	/* dead first: a dispatch loop that already holds an old array skips
	 * the subscriber from now on (same executor: immediately). */
	atomic_fetch_or_explicit(&sub->state, SUB_DEAD, memory_order_seq_cst);
	pending_install(s, p, np);
	if (p != &one)
		ebus_free(s->alloc, p, np * sizeof *p);
	out->id = sub->id;
	if (sub->pattern) {
		cds_list_del(&sub->pat_node);
		atomic_store_explicit(&s->npatterns, s->npatterns - 1, memory_order_relaxed);
		change_name(out, sub->pattern, sub->patlen);
		out->count = same_pattern(s, sub->pattern, sub->patlen);
	} else {
		struct subarr *now = atomic_load_explicit(&sub->topic->subs, memory_order_relaxed);
		change_name(out, sub->topic->name, sub->topic->namelen);
		out->count = now ? now->n : 0;
	}
	return EBUS_OK;
}

int ebus_subs_remove(struct ebus_subs *s, ebus_sub_id id, ebus_released_fn released,
                     struct sub_change *out)
{
	struct ebus_sub *sub;
	struct retire *list;
	uint32_t idx;
	int rc;

	pthread_mutex_lock(&s->lock);
	sub = id_lookup(s, id, &idx);
	rc = sub ? sub_unlink(s, sub, out) : EBUS_ERR_NOT_FOUND;
	if (rc) {
		pthread_mutex_unlock(&s->lock);
		return rc;
	}
	id_release(s, idx);
	sub->released = released;
	sub->retire.free = sub_free;
	retire(s, &sub->retire); /* after its arrays: freed after them */
	if (in_handler()) {
		pthread_mutex_unlock(&s->lock);
		return EBUS_OK;
	}
	/* Blocking form: take everything retired so far (this subscriber
	 * included), wait one grace period without holding any lock, free. */
	list = retire_take(s);
	pthread_mutex_unlock(&s->lock);
	grace_period(s);
	ebus_subs_free_list(list);
	return EBUS_OK;
}

/* Under the lock: up to `max` live subscriptions with this ctx, by id slot. */
static unsigned find_ctx(struct ebus_subs *s, void *ctx, uint32_t *idx, unsigned max)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < s->ids_cap && n < max; i++)
		if (s->ids[i].sub && s->ids[i].sub->ctx == ctx)
			idx[n++] = i;
	return n;
}

/* Prepends a newer retired list (newest first) to an older one. */
static struct retire *retire_concat(struct retire *newer, struct retire *older)
{
	struct retire *tail = newer;
	if (!newer)
		return older;
	while (tail->next)
		tail = tail->next;
	tail->next = older;
	return newer;
}

#define CTX_CHUNK 16

int ebus_subs_remove_ctx(struct ebus_subs *s, void *ctx, size_t *removed,
                         void (*each)(void *arg, const struct sub_change *c), void *arg)
{
	struct sub_change ch[CTX_CHUNK];
	struct retire *list = NULL;
	uint32_t idx[CTX_CHUNK];
	bool handler = in_handler();
	size_t total = 0;
	int rc = EBUS_OK;

	for (;;) {
		unsigned n, done = 0;
		pthread_mutex_lock(&s->lock);
		n = find_ctx(s, ctx, idx, CTX_CHUNK);
		for (; done < n; done++) {
			struct ebus_sub *sub = s->ids[idx[done]].sub;
			if ((rc = sub_unlink(s, sub, &ch[done])) != EBUS_OK)
				break;
			id_release(s, idx[done]);
			sub->released = NULL;
			sub->retire.free = sub_free;
			retire(s, &sub->retire);
		}
		if (!handler)
			list = retire_concat(retire_take(s), list);
		pthread_mutex_unlock(&s->lock);
		total += done;
		for (unsigned k = 0; each && k < done; k++)
			each(arg, &ch[k]);
		if (rc != EBUS_OK || n < CTX_CHUNK)
			break;
	}
	if (removed)
		*removed = total;
	if (!handler && list) {
		/* One grace period for all of them, no lock held. */
		grace_period(s);
		ebus_subs_free_list(list);
	}
	return rc;
}

int ebus_subs_errors(struct ebus_subs *s, ebus_sub_id id, uint64_t *errors)
{
	struct ebus_sub *sub;
	uint32_t idx;
	pthread_mutex_lock(&s->lock);
	sub = id_lookup(s, id, &idx);
	if (sub)
		*errors = atomic_load_explicit(&sub->errors, memory_order_relaxed);
	pthread_mutex_unlock(&s->lock);
	return sub ? EBUS_OK : EBUS_ERR_NOT_FOUND;
}
