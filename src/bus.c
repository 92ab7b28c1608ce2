/*
 * The bus: configuration, lifecycle (create, shutdown, flush, destroy),
 * the publish paths and statistics.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#define DEFAULT_CAPACITY 1024u
#define MAX_CAPACITY (1u << 24)
#define DEFAULT_SPIN 256u
#define DEFAULT_MAX_PAYLOAD (1u << 20)

/* ---- allocation ------------------------------------------------------------ */

void *ebus_alloc(struct ebus *bus, size_t size, size_t align)
{
	void *p = NULL;
	if (align < sizeof(void *))
		align = sizeof(void *);
	if (bus->alloc.alloc)
		return bus->alloc.alloc(size, align, bus->alloc.ctx);
	if (posix_memalign(&p, align, size ? size : 1) != 0)
		return NULL;
	return p;
}

void *ebus_zalloc(struct ebus *bus, size_t size, size_t align)
{
	void *p = ebus_alloc(bus, size, align);
	if (p)
		memset(p, 0, size);
	return p;
}

void ebus_free(struct ebus *bus, void *p, size_t size)
{
	if (!p)
		return;
	if (bus->alloc.free)
		bus->alloc.free(p, size, bus->alloc.ctx);
	else
		free(p);
}

/* ---- create ---------------------------------------------------------------- */

static int check_config(const ebus_config_t *c, unsigned *nexec)
{
	unsigned n = c->executors ? c->executors : 1;
	if (n > EBUS_MAX_EXECUTORS)
		return EBUS_ERR_CONFIG;
	if (c->lane_capacity &&
	    (c->lane_capacity < 4 || c->lane_capacity > MAX_CAPACITY ||
	     (c->lane_capacity & (c->lane_capacity - 1))))
		return EBUS_ERR_CAPACITY;
	if ((unsigned)c->wait > EBUS_WAIT_SPIN_PARK)
		return EBUS_ERR_CONFIG;
	if ((unsigned)c->full_policy > EBUS_FULL_DROP)
		return EBUS_ERR_CONFIG;
	if (c->max_payload > UINT32_MAX)
		return EBUS_ERR_CONFIG;
	if (c->allocator && (!c->allocator->alloc || !c->allocator->free))
		return EBUS_ERR_NULL;
	if (c->meta_handler && !c->meta_events)
		return EBUS_ERR_CONFIG;
	if (c->cpus) {
		if (c->synchronous)
			return EBUS_ERR_CONFIG; /* no threads to pin */
		for (unsigned i = 0; i < n; i++)
			if (c->cpus[i] != -1 && ebus_cpu_check(c->cpus[i]) != EBUS_OK)
				return EBUS_ERR_CPU;
	}
	*nexec = n;
	return EBUS_OK;
}

static void bus_free_memory(struct ebus *bus)
{
	struct lane *l;
	EBUS_LIST_FOR_EACH_SAFE(l, &bus->lanes, struct lane, bus_node)
		ebus_lane_free(bus, l);
	ebus_stats_fini(bus);
	if (bus->exec) {
		for (unsigned i = 0; i < bus->nexec; i++) {
			struct ebus_exec *ex = bus->exec[i];
			if (!ex)
				continue;
			ebus_free(bus, ex->lanes, ex->cap_lanes * sizeof ex->lanes[0]);
			ebus_free(bus, ex, sizeof *ex);
		}
		ebus_free(bus, bus->exec, bus->nexec * sizeof bus->exec[0]);
	}
	if (bus->stripes) {
		for (unsigned i = 0; i < bus->nexec; i++)
			pthread_mutex_destroy(&bus->stripes[i].lock);
		ebus_free(bus, bus->stripes, bus->nexec * sizeof bus->stripes[0]);
	}
	pthread_mutex_destroy(&bus->ctl_lock);
	pthread_mutex_destroy(&bus->lanes_lock);
	pthread_mutex_destroy(&bus->shutdown_lock);
	{
		ebus_allocator_t a = bus->alloc;
		if (a.free)
			a.free(bus, sizeof *bus, a.ctx);
		else
			free(bus);
	}
}

static void stop_executors(struct ebus *bus, int mode);

int ebus_create(const ebus_config_t *cfg, ebus_t **out)
{
	static const ebus_config_t defaults;
	struct ebus *bus;
	unsigned nexec;
	int rc;

	if (!out)
		return EBUS_ERR_NULL;
	if (!cfg)
		cfg = &defaults;
	rc = check_config(cfg, &nexec);
	if (rc)
		return rc;
	ebus_platform_init();

	if (cfg->allocator) {
		bus = cfg->allocator->alloc(sizeof *bus, EBUS_CL, cfg->allocator->ctx);
	} else {
		void *p = NULL;
		bus = posix_memalign(&p, EBUS_CL, sizeof *bus) == 0 ? p : NULL;
	}
	if (!bus)
		return EBUS_ERR_NOMEM;
	memset(bus, 0, sizeof *bus);
	CDS_INIT_LIST_HEAD(&bus->lanes);
	CDS_INIT_LIST_HEAD(&bus->producers);
	CDS_INIT_LIST_HEAD(&bus->patterns);
	CDS_INIT_LIST_HEAD(&bus->consumers);
	if (cfg->allocator)
		bus->alloc = *cfg->allocator;
	atomic_init(&bus->state, BUS_OPEN);
	bus->sync = cfg->synchronous != 0;
	bus->nexec = nexec;
	bus->policy = cfg->full_policy ? cfg->full_policy : EBUS_FULL_BLOCK;
	bus->block_timeout_ns = cfg->block_timeout_ns;
	bus->max_payload = cfg->max_payload ? cfg->max_payload : DEFAULT_MAX_PAYLOAD;
	bus->lane_capacity = cfg->lane_capacity ? cfg->lane_capacity : DEFAULT_CAPACITY;
	bus->wait = cfg->wait ? cfg->wait : EBUS_WAIT_SPIN_PARK;
	bus->spin_iterations = cfg->spin_iterations ? cfg->spin_iterations : DEFAULT_SPIN;
	bus->error_hook = cfg->error_hook;
	bus->error_hook_arg = cfg->error_hook_arg;
	bus->timestamps = cfg->timestamps != 0;
	/* The fast path neither stamps events nor serves synchronous buses. */
	bus->fast_max = bus->sync || bus->timestamps
	                    ? 0
	                    : (uint32_t)(bus->max_payload < EBUS_INLINE_MAX ? bus->max_payload
	                                                                    : EBUS_INLINE_MAX);
	bus->free_head = bus->free_tail = UINT32_MAX;
	pthread_mutex_init(&bus->ctl_lock, NULL);
	pthread_mutex_init(&bus->lanes_lock, NULL);
	pthread_mutex_init(&bus->shutdown_lock, NULL);

	rc = EBUS_ERR_NOMEM;
	if (bus->sync) {
		bus->stripes = ebus_zalloc(bus, nexec * sizeof bus->stripes[0], EBUS_CL);
		if (!bus->stripes)
			goto fail;
		for (unsigned i = 0; i < nexec; i++)
			pthread_mutex_init(&bus->stripes[i].lock, NULL);
	} else {
		bus->exec = ebus_zalloc(bus, nexec * sizeof bus->exec[0], _Alignof(void *));
		if (!bus->exec)
			goto fail;
		for (unsigned i = 0; i < nexec; i++) {
			struct ebus_exec *ex = ebus_zalloc(bus, sizeof *ex, EBUS_CL);
			if (!ex)
				goto fail;
			ex->bus = bus;
			ex->index = i;
			ex->cpu = cfg->cpus ? cfg->cpus[i] : -1;
			atomic_init(&ex->wake_at, UINT64_MAX);
			ck_stack_init(&ex->incoming);
			bus->exec[i] = ex;
		}
	}
	rc = ebus_stats_init(bus, cfg);
	if (rc)
		goto fail;
	rc = ebus_registry_init(bus);
	if (rc)
		goto fail;
	ebus_registry_add_bus(bus);
	rc = ebus_meta_init(bus, cfg);
	if (rc) {
		ebus_registry_remove_bus(bus);
		atomic_store(&bus->state, BUS_CLOSED);
		goto fail_subs;
	}
	if (!bus->sync) {
		for (unsigned i = 0; i < nexec; i++) {
			rc = ebus_exec_start(bus->exec[i]);
			if (rc) {
				atomic_store(&bus->state, BUS_CLOSING);
				stop_executors(bus, STOP_DISCARD);
				ebus_registry_remove_bus(bus);
				goto fail_subs;
			}
		}
	}
	*out = bus;
	return EBUS_OK;
fail_subs:
	/* No executor runs: what subscribe retired can go at once, and lanes
	 * made by meta events are on bus->lanes. */
	urcu_qsbr_barrier();
	ebus_subs_destroy(bus);
fail:
	if (bus->topics)
		ebus_registry_destroy(bus);
	bus_free_memory(bus);
	return rc;
}

unsigned ebus_executor_count(const ebus_t *bus)
{
	return bus ? bus->nexec : 0;
}

/* ---- waiting for executor progress --------------------------------------- */

/*
 * Futex sleep on an executor's progress word, lost-wakeup-safe. The caller
 * read the word into `v` BEFORE it announced itself (flush: waiters and
 * wake_at; a blocked publisher: lane->space_wait), then ran the heavy
 * fence and found its condition still false. Every event that could make
 * the condition true (or that cancels the announcement, as an executor
 * resetting wake_at does) bumps the word after it happened, so if it
 * happened after `v` was read the futex returns at once. Returns
 * EBUS_ERR_TIMEOUT past the deadline.
 */
static int sleep_progress(struct ebus_exec *ex, uint32_t v, uint64_t deadline)
{
	uint64_t left;
	if (!ebus_time_left(deadline, &left))
		return EBUS_ERR_TIMEOUT;
	ebus_futex_wait(&ex->progress, v, left);
	return EBUS_OK;
}

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

/* ---- publish --------------------------------------------------------------- */

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
static bool cycle_through(struct ebus *bus, struct ebus_exec *self, struct ebus_exec *target)
{
	struct ebus_exec *e = target;
	for (unsigned i = 0; e && i <= bus->nexec; i++) {
		if (e == self)
			return true;
		e = waits_for(e);
	}
	return false;
}

enum { FULL_WAIT, FULL_SLOT, FULL_SHUTDOWN, FULL_DEADLOCK };

struct full_ctx {
	struct ebus *bus;
	struct lane *lane;
	struct ebus_exec *self, *target;
	struct ebus_slot *slot;
};

/* One look at everything that ends a blocked publish. The cycle is looked
 * for on every pass: another executor may start waiting for a guard this
 * thread holds at any time (it then bumps its progress word, which the
 * sleep below waits on). */
static int full_check(struct full_ctx *c)
{
	if (atomic_load_explicit(&c->bus->state, memory_order_acquire) != BUS_OPEN)
		return FULL_SHUTDOWN;
	c->slot = ck_ring_enqueue_reserve_spsc_ebus_slot(&c->lane->ring, c->lane->buf);
	if (c->slot)
		return FULL_SLOT;
	if (c->self && cycle_through(c->bus, c->self, c->target))
		return FULL_DEADLOCK;
	return FULL_WAIT;
}

static int full_block(struct ebus *bus, struct lane *lane, struct ebus_slot **slot)
{
	struct full_ctx c = { bus, lane, NULL, bus->exec[lane->exec], NULL };
	uint64_t deadline = ebus_deadline_after(bus->block_timeout_ns);
	int r = FULL_WAIT, rc = EBUS_OK;

	if (ebus_tls_exec && ebus_tls_exec->bus == bus)
		c.self = ebus_tls_exec;
	if (c.self == c.target) {
		ctr_add(&lane->rejected_full, 1);
		return EBUS_ERR_DEADLOCK;
	}
	/* Dekker with the other executors: store, full fence (seq_cst), then
	 * walk. Of two executors closing a cycle, at least one sees it. */
	if (c.self)
		atomic_store_explicit(&c.self->blocked_on, c.target, memory_order_seq_cst);
	for (unsigned spins = 0;; spins++) {
		EBUS_TEST_STALL(EBUS_TP_FULL_WAIT, c.self ? (long)c.self->index : -1);
		if ((r = full_check(&c)) != FULL_WAIT)
			break;
		if (ebus_past(deadline))
			break;
		if (ebus_backoff(spins)) {
			uint32_t v = progress_word(c.target);
			atomic_store_explicit(&lane->space_wait, 1, memory_order_seq_cst);
			if (!ebus_fence_heavy())
				continue;
			EBUS_TEST_STALL(EBUS_TP_FULL_SLEEP, c.self ? (long)c.self->index : -1);
			if ((r = full_check(&c)) != FULL_WAIT)
				break;
			if (sleep_progress(c.target, v, deadline) == EBUS_ERR_TIMEOUT)
				break;
		}
	}
	atomic_store_explicit(&lane->space_wait, 0, memory_order_relaxed);
	if (c.self)
		atomic_store_explicit(&c.self->blocked_on, NULL, memory_order_seq_cst);
	switch (r) {
	case FULL_SLOT:
		break;
	case FULL_SHUTDOWN:
		rc = EBUS_ERR_SHUTDOWN;
		atomic_fetch_add_explicit(&bus->rejected_shutdown, 1, memory_order_relaxed);
		break;
	case FULL_DEADLOCK:
		rc = EBUS_ERR_DEADLOCK;
		ctr_add(&lane->rejected_full, 1);
		break;
	default:
		rc = EBUS_ERR_TIMEOUT;
		ctr_add(&lane->rejected_timeout, 1);
	}
	*slot = c.slot;
	return rc;
}

/*
 * Copies 1..EBUS_INLINE_MAX bytes with fixed-size moves (the last one
 * overlapping when len is not a multiple), so the hot path calls no memcpy.
 */
_Static_assert(EBUS_INLINE_MAX >= 32 && EBUS_INLINE_MAX <= 48, "copy_small covers 1..48 bytes");
static inline void copy_small(unsigned char *d, const unsigned char *src, size_t len)
{
	if (EBUS_LIKELY(len >= 16)) {
		memcpy(d, src, 16);
		if (len > 32)
			memcpy(d + 16, src + 16, 16);
		memcpy(d + len - 16, src + len - 16, 16);
	} else if (len >= 8) {
		memcpy(d, src, 8);
		memcpy(d + len - 8, src + len - 8, 8);
	} else if (len >= 4) {
		memcpy(d, src, 4);
		memcpy(d + len - 4, src + len - 4, 4);
	} else if (len) {
		d[0] = src[0];
		d[len / 2] = src[len / 2];
		d[len - 1] = src[len - 1];
	}
}

/*
 * Commits the slot reserved on `lane`, then the publisher's side of the park
 * protocol: light fence, look at `sleeping`. Returns the executor to wake,
 * or NULL.
 */
static inline struct ebus_exec *lane_commit(struct lane *lane)
{
	struct ebus_exec *ex;
	EBUS_TSAN_RELEASE(&lane->ring.p_tail);
	ck_ring_enqueue_commit_spsc(&lane->ring);
	ctr_add(&lane->published, 1);
	ex = lane->ex;
	ebus_fence_light();
	return EBUS_UNLIKELY(atomic_load_explicit(&ex->sleeping, memory_order_relaxed)) ? ex : NULL;
}

static int publish_async(struct ebus_topic_s *t, const void *data, size_t len, bool by_ref,
                         ebus_release_fn release, void *arg, ebus_full_policy policy)
{
	struct ebus *bus = t->bus;
	struct producer *p = ebus_producer_get(bus);
	struct ebus_exec *ex;
	struct lane *lane;
	struct ebus_slot *s;
	unsigned exec;
	int rc = EBUS_OK;

	if (EBUS_UNLIKELY(!p))
		return EBUS_ERR_NOMEM;
	/* Dekker with ebus_shutdown: announce, light fence, then look. */
	atomic_store_explicit(&p->busy, 1, memory_order_relaxed);
	ebus_fence_light();
	if (EBUS_UNLIKELY(atomic_load_explicit(&bus->state, memory_order_relaxed) != BUS_OPEN)) {
		atomic_fetch_add_explicit(&bus->rejected_shutdown, 1, memory_order_relaxed);
		rc = EBUS_ERR_SHUTDOWN;
		goto out;
	}
	exec = t->executor;
	if (EBUS_UNLIKELY(t->flags & EBUS_TOPIC_UNORDERED)) {
		/* Spread over the executors, round-robin per publishing thread. */
		exec = p->spread;
		p->spread = exec + 1 < bus->nexec ? exec + 1 : 0;
	}
	lane = p->lanes[exec];
	if (EBUS_UNLIKELY(!lane)) {
		lane = ebus_lane_create(bus, p, exec);
		if (!lane) {
			rc = EBUS_ERR_NOMEM;
			goto out;
		}
	}
	s = ck_ring_enqueue_reserve_spsc_ebus_slot(&lane->ring, lane->buf);
	if (EBUS_UNLIKELY(!s)) {
		switch (policy ? policy : bus->policy) {
		case EBUS_FULL_FAIL:
			ctr_add(&lane->rejected_full, 1);
			rc = EBUS_ERR_FULL;
			break;
		case EBUS_FULL_DROP:
			ctr_add(&lane->dropped_full, 1);
			rc = EBUS_DROPPED;
			break;
		default:
			rc = full_block(bus, lane, &s);
		}
		if (rc) {
			ebus_topic_count_refused(t, rc);
			goto out;
		}
	}
	EBUS_TSAN_ACQUIRE(&lane->ring.c_head); /* the executor is done with this slot */
	s->topic = t;
	s->len = (uint32_t)len;
	if (EBUS_UNLIKELY(bus->timestamps)) /* same line as bus->state: no extra miss */
		s->ts = ebus_now_ns();
	if (by_ref) {
		s->kind = SLOT_REF;
		s->u.ref.ptr = (void *)data;
		s->u.ref.release = release;
		s->u.ref.arg = arg;
	} else if (EBUS_LIKELY(len <= EBUS_INLINE_MAX)) {
		s->kind = SLOT_INLINE;
		copy_small(s->u.data, data, len);
	} else {
		void *copy = ebus_alloc(bus, len, 16);
		if (!copy) {
			rc = EBUS_ERR_NOMEM; /* slot reserved, not committed: nothing happened */
			goto out;
		}
		memcpy(copy, data, len);
		s->kind = SLOT_OWNED;
		s->u.ref.ptr = copy;
	}
	ex = lane_commit(lane);
	if (EBUS_UNLIKELY(ex != NULL))
		ebus_exec_wake(ex);
out:
	atomic_store_explicit(&p->busy, 0, memory_order_release);
	return rc;
}

static int publish(struct ebus_topic_s *t, const void *data, size_t len, bool by_ref,
                   ebus_release_fn release, void *arg, ebus_full_policy policy)
{
	if (EBUS_UNLIKELY(!t || (!data && len)))
		return EBUS_ERR_NULL;
	if (EBUS_UNLIKELY(t->flags & TOPIC_RESERVED))
		return EBUS_ERR_RESERVED;
	if (EBUS_UNLIKELY(len > (by_ref ? UINT32_MAX : t->bus->max_payload)))
		return EBUS_ERR_TOO_LARGE;
	if (EBUS_UNLIKELY((unsigned)policy > EBUS_FULL_DROP))
		return EBUS_ERR_CONFIG;
	if (t->bus->sync)
		return ebus_sync_publish(t, data, len, by_ref ? SLOT_REF : SLOT_INLINE, release, arg);
	return publish_async(t, data, len, by_ref, release, arg, policy);
}

static __attribute__((noinline)) int publish_slow(struct ebus_topic_s *t, const void *data,
                                                  size_t len)
{
	return publish(t, data, len, false, NULL, NULL, EBUS_FULL_DEFAULT);
}

/* Wakes a parked executor, then ends the publish call (busy = 0 only after
 * the wake: shutdown, once it sees busy = 0, may stop and free the
 * executor). Out of line, so the fast path saves no registers. */
static __attribute__((noinline)) int publish_wake(struct ebus_exec *ex, struct producer *p)
{
	ebus_exec_wake(ex);
	atomic_store_explicit(&p->busy, 0, memory_order_release);
	return EBUS_OK;
}

/*
 * The common case of publish_async, for an inline payload on an open
 * asynchronous bus whose calling thread already has its lane: the same
 * steps (busy flag and light fence for the shutdown Dekker, reserve, fill,
 * commit, light fence and the `sleeping` check for the park protocol),
 * with no call on the way. Anything else (first publish of the thread, a
 * full lane, a closing bus, a larger or empty payload, bad arguments, a
 * synchronous bus, a topic with flags) goes the general way, from the
 * start: nothing has been reserved when it bails out.
 */
int ebus_publish(ebus_topic_t *t, const void *data, size_t len)
{
	struct ebus *bus;
	struct producer *p;
	struct lane *lane;
	struct ebus_slot *s;
	struct ebus_exec *ex;

	if (EBUS_UNLIKELY(!t || !data))
		return publish_slow(t, data, len);
	bus = t->bus;
	p = ebus_tls_last;
	if (EBUS_UNLIKELY(len - 1 >= bus->fast_max || t->flags || !p || p->bus_id != bus->id))
		return publish_slow(t, data, len);
	atomic_store_explicit(&p->busy, 1, memory_order_relaxed);
	ebus_fence_light();
	if (EBUS_UNLIKELY(atomic_load_explicit(&bus->state, memory_order_relaxed) != BUS_OPEN))
		goto bail;
	lane = p->lanes[t->executor];
	if (EBUS_UNLIKELY(!lane))
		goto bail;
	s = ck_ring_enqueue_reserve_spsc_ebus_slot(&lane->ring, lane->buf);
	if (EBUS_UNLIKELY(!s))
		goto bail;
	EBUS_TSAN_ACQUIRE(&lane->ring.c_head);
	s->topic = t;
	s->len = (uint32_t)len;
	s->kind = SLOT_INLINE;
	copy_small(s->u.data, data, len);
	ex = lane_commit(lane);
	if (EBUS_UNLIKELY(ex != NULL))
		return publish_wake(ex, p);
	atomic_store_explicit(&p->busy, 0, memory_order_release);
	return EBUS_OK;
bail:
	atomic_store_explicit(&p->busy, 0, memory_order_release);
	return publish_slow(t, data, len);
}

int ebus_publish_ex(ebus_topic_t *t, const void *data, size_t len, ebus_full_policy policy)
{
	return publish(t, data, len, false, NULL, NULL, policy);
}

int ebus_publish_ref(ebus_topic_t *t, void *data, size_t len, ebus_release_fn release, void *arg)
{
	return publish(t, data, len, true, release, arg, EBUS_FULL_DEFAULT);
}

/* Meta events: no reserved-prefix or size check, never waits. */
int ebus_publish_internal(struct ebus_topic_s *t, const void *data, size_t len)
{
	if (t->bus->sync)
		return ebus_sync_publish(t, data, len, SLOT_INLINE, NULL, NULL);
	return publish_async(t, data, len, false, NULL, NULL, EBUS_FULL_DROP);
}

int ebus_publish_name(ebus_t *bus, const char *name, const void *data, size_t len)
{
	size_t n;
	uint64_t hash;
	struct ebus_topic_s *t;
	int rc;

	if (!bus)
		return EBUS_ERR_NULL;
	rc = ebus_topic_check(name, &n);
	if (rc)
		return rc;
	if (n > sizeof EBUS_META_PREFIX - 1 &&
	    memcmp(name, EBUS_META_PREFIX, sizeof EBUS_META_PREFIX - 1) == 0)
		return EBUS_ERR_RESERVED;
	hash = ebus_hash(name, n);
	t = ebus_registry_find(bus, name, n, hash);
	if (!t && (rc = ebus_registry_intern_matched(bus, name, n, hash, &t)) != EBUS_OK) {
		if (rc == EBUS_ERR_SHUTDOWN)
			atomic_fetch_add_explicit(&bus->rejected_shutdown, 1, memory_order_relaxed);
		return rc;
	}
	if (t)
		return publish(t, data, len, false, NULL, NULL, EBUS_FULL_DEFAULT);
	if (!data && len)
		return EBUS_ERR_NULL;
	if (len > bus->max_payload)
		return EBUS_ERR_TOO_LARGE;
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN) {
		atomic_fetch_add_explicit(&bus->rejected_shutdown, 1, memory_order_relaxed);
		return EBUS_ERR_SHUTDOWN;
	}
	/* Never interned, so nobody can be subscribed: accepted and counted. */
	atomic_fetch_add_explicit(&bus->unknown_name_drops, 1, memory_order_relaxed);
	return EBUS_OK;
}

/* ---- flush ----------------------------------------------------------------- */

/*
 * Flush waits for positions, not counts: for each lane of an executor, the
 * producer index it had at the call. Counting events over all lanes would
 * let other threads' later events stand in for the caller's own. Lanes are
 * taken FLUSH_CHUNK at a time (no allocation): a later chunk's positions
 * are taken later, which only waits for more. A lane is done when its
 * c_head (stored by the executor after dispatching a batch, release) has
 * reached the position, or when it is no longer on bus->lanes: reclaimed,
 * so drained. Lanes created after the call hold no event accepted before
 * it and are skipped by id.
 */
#define FLUSH_CHUNK 32

struct flush_mark {
	uint64_t lane_id;
	uint64_t published; /* lane->published at the mark */
	unsigned pos;       /* lane->ring.p_tail at the mark */
};

struct flush_ctx {
	struct ebus *bus;
	struct ebus_exec *ex;
	unsigned exec, n;
	uint64_t next_id; /* the next chunk takes lanes with smaller ids */
	bool more;        /* lanes beyond this chunk may be pending */
	struct flush_mark m[FLUSH_CHUNK];
};

/* The lane's position has been dispatched. 32-bit indices: `published`
 * (64-bit) says when so much has passed that the difference could wrap. */
static bool mark_reached(const struct flush_mark *m, struct lane *l)
{
	unsigned c = __atomic_load_n(&l->ring.c_head, __ATOMIC_ACQUIRE);
	if (ctr_get(&l->published) - m->published >= (1ull << 30))
		return true; /* capacity <= 2^24: c_head is long past pos */
	return (int)(c - m->pos) >= 0;
}

/* Under lanes_lock: marks the next chunk of executor c->exec's pending lanes. */
static void flush_take_chunk(struct flush_ctx *c)
{
	struct lane *l;
	c->n = 0;
	c->more = false;
	EBUS_LIST_FOR_EACH(l, &c->bus->lanes, struct lane, bus_node) {
		unsigned p;
		if (l->exec != c->exec || l->id >= c->next_id)
			continue;
		p = __atomic_load_n(&l->ring.p_tail, __ATOMIC_ACQUIRE);
		if (p == __atomic_load_n(&l->ring.c_head, __ATOMIC_ACQUIRE))
			continue; /* nothing queued: nothing to wait for */
		if (c->n == FLUSH_CHUNK) {
			c->more = true;
			break;
		}
		c->m[c->n].lane_id = l->id;
		c->m[c->n].published = ctr_get(&l->published);
		c->m[c->n].pos = p;
		c->n++;
		c->next_id = l->id;
	}
}

/* Under lanes_lock: drops the marks that are reached; returns a lower bound
 * of the executor's `finished` count at which the rest can be (wake_at). */
static uint64_t flush_prune(struct flush_ctx *c)
{
	uint64_t bound = ctr_get_acquire(&c->ex->finished); /* before the c_heads */
	struct cds_list_head *pos = c->bus->lanes.next, *end = &c->bus->lanes;
	unsigned j = 0;
	for (unsigned k = 0; k < c->n; k++) {
		struct flush_mark *m = &c->m[k];
		struct lane *l = NULL;
		for (; pos != end; pos = pos->next) {
			l = cds_list_entry(pos, struct lane, bus_node);
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

/* Everything accepted on this executor before the call is delivered (and
 * its closed lanes are reclaimed). Else *bound is for wake_at. */
static bool flush_done(struct flush_ctx *c, uint64_t *bound)
{
	bool done;
	if (atomic_load_explicit(&c->bus->state, memory_order_acquire) == BUS_CLOSED)
		return true;
	pthread_mutex_lock(&c->bus->lanes_lock);
	*bound = flush_prune(c);
	while (c->n == 0 && c->more) {
		flush_take_chunk(c);
		*bound = flush_prune(c);
	}
	pthread_mutex_unlock(&c->bus->lanes_lock);
	done = c->n == 0 && atomic_load_explicit(&c->ex->closed_pending, memory_order_acquire) == 0;
	if (!done && *bound <= ctr_get(&c->ex->finished))
		*bound = ctr_get(&c->ex->finished) + 1;
	return done;
}

static int flush_exec(struct flush_ctx *c, uint64_t deadline)
{
	uint64_t bound;
	pthread_mutex_lock(&c->bus->lanes_lock);
	flush_take_chunk(c);
	pthread_mutex_unlock(&c->bus->lanes_lock);
	EBUS_TEST_STALL(EBUS_TP_FLUSH_TARGET, -1);
	/* Yield a little first: most flushes end within a few batches, and a
	 * sleeping waiter costs the executor a futex wake. */
	for (unsigned y = 0; y < 64; y++) {
		if (flush_done(c, &bound))
			return EBUS_OK;
		sched_yield();
	}
	for (;;) {
		/* The word is read before the announcement (see sleep_progress):
		 * an executor that resets wake_at after we lowered it bumps the
		 * word after that, and the sleep returns at once. */
		uint32_t v = progress_word(c->ex);
		int rc = EBUS_OK;
		atomic_fetch_add_explicit(&c->ex->waiters, 1, memory_order_seq_cst);
		wake_at_min(c->ex, bound);
		EBUS_TEST_STALL(EBUS_TP_FLUSH_ANNOUNCED, -1);
		if (ebus_fence_heavy() && !flush_done(c, &bound))
			rc = sleep_progress(c->ex, v, deadline);
		atomic_fetch_sub_explicit(&c->ex->waiters, 1, memory_order_relaxed);
		if (flush_done(c, &bound))
			return EBUS_OK;
		if (rc == EBUS_ERR_TIMEOUT)
			return EBUS_ERR_TIMEOUT;
	}
}

int ebus_flush(ebus_t *bus, uint64_t timeout_ns)
{
	uint64_t deadline;
	if (!bus)
		return EBUS_ERR_NULL;
	if (bus->sync)
		return ebus_sync_flush(bus, timeout_ns);
	if (ebus_tls_exec && ebus_tls_exec->bus == bus)
		return EBUS_ERR_DEADLOCK;
	deadline = ebus_deadline_after(timeout_ns);
	for (unsigned i = 0; i < bus->nexec; i++) {
		struct flush_ctx c;
		int rc;
		c.bus = bus;
		c.ex = bus->exec[i];
		c.exec = i;
		c.next_id = UINT64_MAX;
		rc = flush_exec(&c, deadline);
		if (rc)
			return rc;
	}
	return EBUS_OK;
}

/* ---- shutdown and destroy ---------------------------------------------------- */

static void poke_waiters(struct ebus *bus)
{
	for (unsigned i = 0; i < bus->nexec; i++)
		ebus_exec_notify_all(bus->exec[i]);
}

static void stop_one(struct ebus_exec *ex, int mode)
{
	if (!ex || !ex->started)
		return;
	atomic_store_explicit(&ex->stop, mode, memory_order_seq_cst);
	ebus_exec_wake(ex);
}

static void join_one(struct ebus_exec *ex)
{
	if (!ex || !ex->started)
		return;
	pthread_join(ex->thread, NULL);
	ex->started = false;
}

/*
 * Two steps: every executor but the one that owns executor.stopped, then
 * that one, which emits executor.stopped for all at its exit (meta.c) when
 * bus->emit_stopped is set: its handlers run on an executor, after every
 * other executor has stopped.
 */
static void stop_executors(struct ebus *bus, int mode)
{
	unsigned last = bus->meta[META_STOPPED] ? bus->meta[META_STOPPED]->executor : bus->nexec;
	for (unsigned i = 0; i < bus->nexec; i++)
		if (i != last)
			stop_one(bus->exec[i], mode);
	for (unsigned i = 0; i < bus->nexec; i++)
		if (i != last)
			join_one(bus->exec[i]);
	if (last < bus->nexec) {
		stop_one(bus->exec[last], mode);
		join_one(bus->exec[last]);
	}
}

/* Waits until no publish call is inside its critical section. Publishers
 * need lanes_lock to create lanes, so it is dropped while waiting. */
static void wait_publishers(struct ebus *bus)
{
	for (;;) {
		bool busy = false;
		pthread_mutex_lock(&bus->lanes_lock);
		struct producer *p;
		EBUS_LIST_FOR_EACH(p, &bus->producers, struct producer, bus_node)
			if (atomic_load_explicit(&p->busy, memory_order_acquire))
				busy = true;
		pthread_mutex_unlock(&bus->lanes_lock);
		if (!busy)
			return;
		poke_waiters(bus);
		sched_yield();
	}
}

int ebus_shutdown(ebus_t *bus, ebus_shutdown_mode mode)
{
	if (!bus)
		return EBUS_ERR_NULL;
	if (mode != EBUS_SHUTDOWN_DRAIN && mode != EBUS_SHUTDOWN_DISCARD)
		return EBUS_ERR_CONFIG;
	if (in_handler() && (bus->sync || (ebus_tls_exec && ebus_tls_exec->bus == bus)))
		return EBUS_ERR_DEADLOCK;
	pthread_mutex_lock(&bus->shutdown_lock);
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN) {
		pthread_mutex_unlock(&bus->shutdown_lock);
		return EBUS_ERR_SHUTDOWN;
	}
	bus->shutdown_mode = mode == EBUS_SHUTDOWN_DISCARD ? STOP_DISCARD : STOP_DRAIN;
	pthread_mutex_lock(&bus->ctl_lock); /* subscribe sees the state under this lock */
	atomic_store_explicit(&bus->state, BUS_CLOSING, memory_order_seq_cst);
	pthread_mutex_unlock(&bus->ctl_lock);
	ebus_consumers_notify(bus); /* handlers blocked on a full consumer queue give up */
	if (bus->sync) {
		ebus_sync_shutdown(bus);
	} else {
		ebus_fence_heavy(); /* heavy side of the Dekker pair in publish_async */
		poke_waiters(bus);  /* publishers blocked on a full lane re-check state */
		wait_publishers(bus);
		bus->emit_stopped = true;
		stop_executors(bus, bus->shutdown_mode);
	}
	atomic_store_explicit(&bus->state, BUS_CLOSED, memory_order_seq_cst);
	if (!bus->sync)
		poke_waiters(bus); /* flush waiters see CLOSED */
	ebus_consumers_notify(bus); /* waiting consumers see CLOSED */
	pthread_mutex_unlock(&bus->shutdown_lock);
	return EBUS_OK;
}

void ebus_destroy(ebus_t *bus)
{
	if (!bus)
		return;
	if (in_handler() && (bus->sync || (ebus_tls_exec && ebus_tls_exec->bus == bus)))
		return; /* would join the calling thread; documented */
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_CLOSED)
		(void)ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN);
	ebus_registry_remove_bus(bus);
	/* Every call_rcu queued by this bus's executors has run. */
	urcu_qsbr_barrier();
	EBUS_TSAN_ACQUIRE(&ebus_tsan_gp_token);
	EBUS_TSAN_ACQUIRE(&ebus_tsan_cb_token);
	ebus_subs_destroy(bus);
	ebus_registry_destroy(bus);
	bus_free_memory(bus);
}

/* ---- statistics -------------------------------------------------------------- */

static void exec_stats(struct ebus *bus, unsigned i, ebus_stats_t *s)
{
	struct ebus_exec *ex = bus->exec[i];
	s->delivered += ctr_get(&ex->delivered);
	s->handler_calls += ctr_get(&ex->handler_calls);
	s->handler_errors += ctr_get(&ex->handler_errors);
	s->dropped_no_subscriber += ctr_get(&ex->dropped_no_sub);
	s->dropped_shutdown += ctr_get(&ex->dropped_shutdown);
	s->parks += ctr_get(&ex->parks);
	s->wakeups += ctr_get(&ex->wakeups);
	s->lanes_reclaimed += ctr_get(&ex->lanes_reclaimed);
	if (ctr_get(&ex->lane_high_water) > s->lane_high_water)
		s->lane_high_water = ctr_get(&ex->lane_high_water); /* max, not sum */
	/* under lanes_lock (caller) */
	s->published += ex->ret_published;
	s->dropped_full += ex->ret_dropped_full;
	s->rejected_full += ex->ret_rejected_full;
	s->rejected_timeout += ex->ret_rejected_timeout;
	s->lanes_created += ex->lanes_created;
	struct lane *l;
	EBUS_LIST_FOR_EACH(l, &bus->lanes, struct lane, bus_node) {
		if (l->exec != i)
			continue;
		s->published += ctr_get(&l->published);
		s->dropped_full += ctr_get(&l->dropped_full);
		s->rejected_full += ctr_get(&l->rejected_full);
		s->rejected_timeout += ctr_get(&l->rejected_timeout);
		s->queued += (uint32_t)(__atomic_load_n(&l->ring.p_tail, __ATOMIC_ACQUIRE) -
		                        __atomic_load_n(&l->ring.c_head, __ATOMIC_ACQUIRE));
		s->lanes_live++;
	}
}

static void stripe_stats(struct sync_stripe *st, ebus_stats_t *s)
{
	s->published += ctr_get(&st->published);
	s->delivered += ctr_get(&st->delivered);
	s->handler_calls += ctr_get(&st->handler_calls);
	s->handler_errors += ctr_get(&st->handler_errors);
	s->dropped_no_subscriber += ctr_get(&st->dropped_no_sub);
	s->dropped_shutdown += ctr_get(&st->dropped_shutdown);
}

int ebus_stats(ebus_t *bus, int executor, ebus_stats_t *out)
{
	if (!bus || !out)
		return EBUS_ERR_NULL;
	if (executor >= 0 && (unsigned)executor >= bus->nexec)
		return EBUS_ERR_EXECUTOR;
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&bus->lanes_lock);
	for (unsigned i = 0; i < bus->nexec; i++) {
		if (executor >= 0 && (unsigned)executor != i)
			continue;
		if (bus->sync)
			stripe_stats(&bus->stripes[i], out);
		else
			exec_stats(bus, i, out);
	}
	pthread_mutex_unlock(&bus->lanes_lock);
	if (executor < 0) {
		uint64_t u = atomic_load_explicit(&bus->unknown_name_drops, memory_order_relaxed);
		out->published += u;
		out->dropped_no_subscriber += u;
		out->rejected_shutdown = atomic_load_explicit(&bus->rejected_shutdown, memory_order_relaxed);
	}
	return EBUS_OK;
}
