/*
 * Bus layer: the public API of a bus. Configuration, lifecycle (create,
 * shutdown, flush, destroy), topics and subscriptions; the publish paths
 * are in publish.c.
 * Each call validates its arguments, then calls down: lane.h and exec.h
 * for events, subs.h for topics and subscriptions; meta events, sync mode,
 * pull consumers and statistics are in the modules beside this one.
 */
#include "bus.h"

#include <stdlib.h>

#define DEFAULT_CAPACITY 1024u
#define MAX_CAPACITY (1u << 24)
#define DEFAULT_SPIN 256u
#define DEFAULT_MAX_PAYLOAD (1u << 20)
#define DEFAULT_ARENA (256u << 10)
#define MIN_ARENA (4u << 10)
#define MAX_ARENA (1u << 30)

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
	if (c->lane_arena_bytes && (c->lane_arena_bytes < MIN_ARENA || c->lane_arena_bytes > MAX_ARENA ||
	                            (c->lane_arena_bytes & (c->lane_arena_bytes - 1))))
		return EBUS_ERR_CONFIG;
	if (c->allocator && (!c->allocator->alloc || !c->allocator->free))
		return EBUS_ERR_NULL;
	if (c->meta_handler && !c->meta_events)
		return EBUS_ERR_CONFIG;
	for (size_t i = 0; i < sizeof c->reserved_ / sizeof c->reserved_[0]; i++)
		if (c->reserved_[i])
			return EBUS_ERR_CONFIG; /* a field of a later release: not understood here */
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

/* ebus_subs_ops of an asynchronous bus: retired lists go to executor 0. */
static void handoff_to_exec0(void *ctx, struct retire *list)
{
	struct ebus *bus = ctx;
	ebus_exec_retire(bus->exec[0], list);
}

/* The bus struct with the configuration applied; nothing else allocated. */
static struct ebus *bus_new(const ebus_config_t *cfg, unsigned nexec)
{
	struct ebus *bus;
	ebus_allocator_t none = { 0 };
	const ebus_allocator_t *a = cfg->allocator ? cfg->allocator : &none;

	bus = ebus_alloc(a, sizeof *bus, EBUS_CL);
	if (!bus)
		return NULL;
	memset(bus, 0, sizeof *bus);
	bus->alloc = *a;
	atomic_init(&bus->state, BUS_OPEN);
	bus->sync = cfg->synchronous != 0;
	bus->nexec = nexec;
	bus->policy = cfg->full_policy ? cfg->full_policy : EBUS_FULL_BLOCK;
	bus->block_timeout_ns = cfg->block_timeout_ns;
	bus->max_payload = cfg->max_payload ? cfg->max_payload : DEFAULT_MAX_PAYLOAD;
	bus->timestamps = cfg->timestamps != 0;
	/* The fast path neither stamps events nor serves synchronous buses. */
	bus->fast_max = bus->sync || bus->timestamps
	                    ? 0
	                    : (uint32_t)(bus->max_payload < EBUS_INLINE_MAX ? bus->max_payload
	                                                                    : EBUS_INLINE_MAX);
	pthread_mutex_init(&bus->producers_lock, NULL);
	pthread_mutex_init(&bus->shutdown_lock, NULL);
	pthread_mutex_init(&bus->consumers_lock, NULL);
	CDS_INIT_LIST_HEAD(&bus->producers);
	CDS_INIT_LIST_HEAD(&bus->consumers);

	bus->env.alloc = &bus->alloc;
	bus->env.lanes = &bus->lanes;
	bus->env.state = &bus->state;
	bus->env.nexec = nexec;
	bus->env.wait = cfg->wait ? cfg->wait : EBUS_WAIT_SPIN_PARK;
	bus->env.spin_iterations = cfg->spin_iterations ? cfg->spin_iterations : DEFAULT_SPIN;
	bus->env.timestamps = bus->timestamps;
	bus->env.error_hook = cfg->error_hook;
	bus->env.error_hook_arg = cfg->error_hook_arg;
	bus->env.ctx = bus;
	return bus;
}

/* Frees what bus_layers and bus_new made (any prefix of it). */
static void bus_free(struct ebus *bus)
{
	ebus_allocator_t a = bus->alloc;
	ebus_lane_set_fini(&bus->lanes);
	if (bus->exec) {
		for (unsigned i = 0; i < bus->nexec; i++)
			if (bus->exec[i])
				ebus_exec_destroy(bus->exec[i]);
		ebus_free(&a, bus->exec, bus->nexec * sizeof bus->exec[0]);
	}
	ebus_sync_fini(bus);
	pthread_mutex_destroy(&bus->producers_lock);
	pthread_mutex_destroy(&bus->shutdown_lock);
	pthread_mutex_destroy(&bus->consumers_lock);
	ebus_free(&a, bus, sizeof *bus);
}

/* The layers below, bottom up: lanes (async) or stripes (sync), the
 * registry, the subscription layer, the executors (not started). */
static int bus_layers(struct ebus *bus, const ebus_config_t *cfg)
{
	struct ebus_subs_ops ops = { 0 };
	int rc;

	if (bus->sync) {
		rc = ebus_sync_init(bus);
		ops.sync_grace_period = ebus_sync_grace_period;
		ops.sync_try_grace_period = ebus_sync_try_grace_period;
	} else {
		unsigned cap = cfg->lane_capacity ? cfg->lane_capacity : DEFAULT_CAPACITY;
		rc = ebus_lane_set_init(&bus->lanes, &bus->alloc, cap, bus->nexec,
		                        cfg->lane_arena_bytes ? (uint32_t)cfg->lane_arena_bytes
		                                              : DEFAULT_ARENA);
		ops.handoff = handoff_to_exec0;
	}
	if (rc)
		return rc;
	ops.ctx = bus;
	rc = ebus_registry_init(&bus->reg, bus, &bus->alloc, bus->nexec);
	if (rc)
		return rc;
	ebus_subs_init(&bus->subs, &bus->reg, &bus->alloc, bus->nexec, bus->sync, &ops);
	if (bus->sync)
		return EBUS_OK;
	bus->exec = ebus_zalloc(&bus->alloc, bus->nexec * sizeof bus->exec[0], _Alignof(void *));
	if (!bus->exec)
		return EBUS_ERR_NOMEM;
	for (unsigned i = 0; i < bus->nexec; i++) {
		rc = ebus_exec_create(&bus->env, i, cfg->cpus ? cfg->cpus[i] : -1, &bus->exec[i]);
		if (rc)
			return rc;
	}
	return EBUS_OK;
}

static void stop_executors(struct ebus *bus, int mode);

/* Meta topics, then the executor threads. On failure nothing runs. */
static int bus_start(struct ebus *bus, const ebus_config_t *cfg)
{
	int rc = ebus_meta_init(bus, cfg);
	if (rc)
		return rc;
	for (unsigned i = 0; !bus->sync && i < bus->nexec; i++) {
		rc = ebus_exec_start(bus->exec[i]);
		if (rc) {
			atomic_store(&bus->state, BUS_CLOSING);
			stop_executors(bus, STOP_DISCARD);
			return rc;
		}
	}
	return EBUS_OK;
}

static void bus_teardown(struct ebus *bus);

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
	bus = bus_new(cfg, nexec);
	if (!bus)
		return EBUS_ERR_NOMEM;
	rc = bus_layers(bus, cfg);
	if (rc) {
		if (bus->reg.table)
			ebus_subs_destroy(&bus->subs);
		ebus_registry_destroy(&bus->reg);
		bus_free(bus);
		return rc;
	}
	ebus_registry_add_bus(bus);
	rc = bus_start(bus, cfg);
	if (rc) {
		atomic_store(&bus->state, BUS_CLOSED);
		bus_teardown(bus);
		return rc;
	}
	*out = bus;
	return EBUS_OK;
}

unsigned ebus_executor_count(const ebus_t *bus)
{
	return bus ? bus->nexec : 0;
}

/* ---- topics ------------------------------------------------------------------ */

/* Validates, then interns through the subscription layer (which gives a
 * new topic its matching patterns). executor -1: placed by hash. */
static int topic_intern(struct ebus *bus, const char *name, int executor, unsigned flags,
                        struct ebus_topic_s **out)
{
	size_t len;
	struct ebus_topic_s *t;
	int rc;

	if (!bus || !out)
		return EBUS_ERR_NULL;
	rc = ebus_topic_check(name, &len);
	if (rc)
		return rc;
	if (executor >= 0 && (unsigned)executor >= bus->nexec)
		return EBUS_ERR_EXECUTOR;
	if (flags & ~(EBUS_TOPIC_UNORDERED | TOPIC_ANY_ORDER))
		return EBUS_ERR_FLAGS;
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN)
		return EBUS_ERR_SHUTDOWN;
	rc = ebus_subs_intern(&bus->subs, name, len, ebus_hash(name, len), executor, flags, &t);
	if (rc)
		return rc;
	*out = t;
	if (executor >= 0 && t->executor != (unsigned)executor)
		return EBUS_ERR_EXISTS;
	if (!(flags & TOPIC_ANY_ORDER) && ((t->flags ^ flags) & EBUS_TOPIC_UNORDERED))
		return EBUS_ERR_ORDERING;
	return EBUS_OK;
}

int ebus_topic(ebus_t *bus, const char *name, ebus_topic_t **out)
{
	return topic_intern(bus, name, -1, TOPIC_ANY_ORDER, out);
}

int ebus_topic_on(ebus_t *bus, const char *name, unsigned executor, ebus_topic_t **out)
{
	if (bus && executor >= bus->nexec)
		return EBUS_ERR_EXECUTOR;
	return topic_intern(bus, name, (int)executor, TOPIC_ANY_ORDER, out);
}

int ebus_topic_ex(ebus_t *bus, const char *name, int executor, unsigned flags, ebus_topic_t **out)
{
	if (flags & ~EBUS_TOPIC_UNORDERED)
		return EBUS_ERR_FLAGS;
	if (bus && executor >= 0 && (unsigned)executor >= bus->nexec)
		return EBUS_ERR_EXECUTOR;
	return topic_intern(bus, name, executor < 0 ? -1 : executor, flags, out);
}

/* ---- subscriptions ------------------------------------------------------------- */

int ebus_subscribe_ex(ebus_topic_t *topic, ebus_handler_fn fn, void *ctx, unsigned flags,
                      ebus_sub_id *out)
{
	struct sub_change c;
	int rc;

	if (!topic || !fn || !out)
		return EBUS_ERR_NULL;
	if (flags & ~EBUS_SUB_CONCURRENT)
		return EBUS_ERR_FLAGS;
	if ((topic->flags & EBUS_TOPIC_UNORDERED) && !(flags & EBUS_SUB_CONCURRENT))
		return EBUS_ERR_NOT_CONCURRENT;
	rc = ebus_subs_add(&topic->bus->subs, topic, fn, ctx, flags, &c);
	if (rc)
		return rc;
	*out = c.id;
	ebus_meta_emit(topic->bus, META_SUB_ADDED, -1, c.id, c.count, 0, c.name, c.namelen);
	return EBUS_OK;
}

int ebus_subscribe(ebus_topic_t *topic, ebus_handler_fn fn, void *ctx, ebus_sub_id *out)
{
	return ebus_subscribe_ex(topic, fn, ctx, 0, out);
}

int ebus_subscribe_pattern(ebus_t *bus, const char *pattern, ebus_handler_fn fn, void *ctx,
                           unsigned flags, ebus_sub_id *out)
{
	struct sub_change c;
	size_t plen;
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
	rc = ebus_subs_add_pattern(&bus->subs, pattern, plen, fn, ctx, flags, &c);
	if (rc)
		return rc;
	*out = c.id;
	ebus_meta_emit(bus, META_SUB_ADDED, -1, c.id, c.count, 0, c.name, c.namelen);
	return EBUS_OK;
}

static int unsubscribe(struct ebus *bus, ebus_sub_id id, ebus_released_fn released)
{
	struct sub_change c;
	int rc;
	if (!bus)
		return EBUS_ERR_NULL;
	rc = ebus_subs_remove(&bus->subs, id, released, &c);
	if (rc)
		return rc;
	ebus_meta_emit(bus, META_SUB_REMOVED, -1, id, c.count, 0, c.name, c.namelen);
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

static void emit_removed(void *arg, const struct sub_change *c)
{
	ebus_meta_emit(arg, META_SUB_REMOVED, -1, c->id, c->count, 0, c->name, c->namelen);
}

int ebus_unsubscribe_ctx(ebus_t *bus, void *ctx, size_t *removed)
{
	if (!bus)
		return EBUS_ERR_NULL;
	return ebus_subs_remove_ctx(&bus->subs, ctx, removed, bus->meta[META_SUB_REMOVED] ? emit_removed : NULL,
	                            bus);
}

int ebus_sub_errors(ebus_t *bus, ebus_sub_id id, uint64_t *errors)
{
	if (!bus || !errors)
		return EBUS_ERR_NULL;
	return ebus_subs_errors(&bus->subs, id, errors);
}

/* ---- flush ----------------------------------------------------------------- */

int ebus_flush(ebus_t *bus, uint64_t timeout_ns)
{
	uint64_t deadline;
	if (!bus)
		return EBUS_ERR_NULL;
	if (bus->sync)
		return ebus_sync_flush(bus, timeout_ns);
	if (ebus_on_executor_of(&bus->env))
		return EBUS_ERR_DEADLOCK;
	deadline = ebus_deadline_after(timeout_ns);
	for (unsigned i = 0; i < bus->nexec; i++) {
		int rc = ebus_exec_flush(bus->exec[i], deadline);
		if (rc)
			return rc;
	}
	return EBUS_OK;
}

/* ---- shutdown and destroy ---------------------------------------------------- */

static void poke_waiters(struct ebus *bus)
{
	for (unsigned i = 0; i < bus->nexec; i++)
		ebus_exec_poke(bus->exec[i]);
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
			ebus_exec_stop(bus->exec[i], mode);
	for (unsigned i = 0; i < bus->nexec; i++)
		if (i != last)
			ebus_exec_join(bus->exec[i]);
	if (last < bus->nexec) {
		ebus_exec_stop(bus->exec[last], mode);
		ebus_exec_join(bus->exec[last]);
	}
}

/* Waits until no publish call is inside its critical section; a publisher
 * blocked on a full lane is poked to re-check the state. */
struct publishers_wait {
	struct ebus_waiter w;
	struct ebus *bus;
};

static int publishers_check(struct ebus_waiter *w)
{
	struct ebus *bus = EBUS_CONTAINER(w, struct publishers_wait, w)->bus;
	return ebus_producers_busy(bus) ? EBUS_WAIT_AGAIN : EBUS_OK;
}

static uint32_t publishers_poke(struct ebus_waiter *w)
{
	poke_waiters(EBUS_CONTAINER(w, struct publishers_wait, w)->bus);
	return 0;
}

static void wait_publishers(struct ebus *bus)
{
	struct publishers_wait x = { { publishers_check, publishers_poke, NULL, NULL,
		                       EBUS_DEADLINE_NONE },
		                     bus };
	(void)ebus_wait_for(&x.w);
}

/* The calling thread is a handler of this bus (it would wait for itself). */
static bool in_own_handler(struct ebus *bus)
{
	return in_handler() && (bus->sync || ebus_on_executor_of(&bus->env));
}

int ebus_shutdown(ebus_t *bus, ebus_shutdown_mode mode)
{
	if (!bus)
		return EBUS_ERR_NULL;
	if (mode != EBUS_SHUTDOWN_DRAIN && mode != EBUS_SHUTDOWN_DISCARD)
		return EBUS_ERR_CONFIG;
	if (in_own_handler(bus))
		return EBUS_ERR_DEADLOCK;
	if (ebus_tls_claim && ebus_tls_claim->bus_id == bus->id)
		return EBUS_ERR_CLAIM_OPEN; /* it would wait for this thread's claim */
	pthread_mutex_lock(&bus->shutdown_lock);
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN) {
		pthread_mutex_unlock(&bus->shutdown_lock);
		return EBUS_ERR_SHUTDOWN;
	}
	bus->shutdown_mode = mode == EBUS_SHUTDOWN_DISCARD ? STOP_DISCARD : STOP_DRAIN;
	ebus_subs_close(&bus->subs); /* no new topic or subscription from here on */
	atomic_store_explicit(&bus->state, BUS_CLOSING, memory_order_seq_cst);
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
		poke_waiters(bus); /* flush waiters see the executors gone */
	ebus_consumers_notify(bus); /* waiting consumers see CLOSED */
	pthread_mutex_unlock(&bus->shutdown_lock);
	return EBUS_OK;
}

/* No executor runs and no publish or handler is left: frees everything. */
static void bus_teardown(struct ebus *bus)
{
	ebus_registry_remove_bus(bus);
	/* Every call_rcu queued by this bus's executors has run. */
	urcu_qsbr_barrier();
	EBUS_TSAN_ACQUIRE(&ebus_tsan_gp_token);
	EBUS_TSAN_ACQUIRE(&ebus_tsan_cb_token);
	/* Lists handed to executors after they stopped taking them. */
	for (unsigned i = 0; !bus->sync && i < bus->nexec; i++)
		ebus_subs_free_list(ebus_exec_retire_leftover(bus->exec[i]));
	ebus_subs_destroy(&bus->subs);
	ebus_registry_destroy(&bus->reg);
	bus_free(bus);
}

void ebus_destroy(ebus_t *bus)
{
	if (!bus)
		return;
	if (in_own_handler(bus) || (ebus_tls_claim && ebus_tls_claim->bus_id == bus->id))
		return; /* would wait for the calling thread; documented */
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_CLOSED)
		(void)ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN);
	bus_teardown(bus);
}
