/*
 * Meta events (bus layer, beside bus.c; config.meta_events): the bus reports on itself through
 * ordinary topics under the reserved prefix "$ebus.".
 *
 * They travel like any event, with three differences: they bypass the
 * reserved-prefix check, they never wait for space (drop-newest, counted),
 * and executor.stopped is dispatched by the executor that owns its topic, at
 * its exit, once every other executor has been joined (so its handlers
 * run on an executor thread, under the same rules as every handler).
 * Idle events are emitted only after ordinary work, so meta events handled
 * on an executor never cause more of them.
 */
#include "bus.h"

static const char *const meta_names[META_N] = {
	[META_SUB_ADDED] = EBUS_META_SUB_ADDED,
	[META_SUB_REMOVED] = EBUS_META_SUB_REMOVED,
	[META_STARTED] = EBUS_META_EXECUTOR_STARTED,
	[META_STOPPED] = EBUS_META_EXECUTOR_STOPPED,
	[META_IDLE] = EBUS_META_EXECUTOR_IDLE,
	[META_ERROR] = EBUS_META_HANDLER_ERROR,
};

static const int meta_kinds[META_N] = {
	[META_SUB_ADDED] = EBUS_META_KIND_SUB_ADDED,
	[META_SUB_REMOVED] = EBUS_META_KIND_SUB_REMOVED,
	[META_STARTED] = EBUS_META_KIND_EXECUTOR_STARTED,
	[META_STOPPED] = EBUS_META_KIND_EXECUTOR_STOPPED,
	[META_IDLE] = EBUS_META_KIND_EXECUTOR_IDLE,
	[META_ERROR] = EBUS_META_KIND_HANDLER_ERROR,
};

/* Before the executors start: the topics, the executor layer's hooks,
 * and the config's handler. */
int ebus_meta_init(struct ebus *bus, const ebus_config_t *cfg)
{
	ebus_sub_id id;
	int rc;
	if (!cfg->meta_events)
		return EBUS_OK;
	for (int i = 0; i < META_N; i++) {
		size_t len = strlen(meta_names[i]);
		rc = ebus_subs_intern(&bus->subs, meta_names[i], len, ebus_hash(meta_names[i], len), -1,
		                      0, &bus->meta[i]);
		if (rc)
			return rc;
	}
	bus->env.meta_emit = ebus_meta_emit_hook;
	bus->env.meta_handled = ebus_meta_handled_hook;
	bus->env.at_exit = ebus_meta_at_exit_hook;
	bus->env.meta_error = true;
	bus->env.meta_idle = true;
	if (!cfg->meta_handler)
		return EBUS_OK;
	return ebus_subscribe_pattern(bus, EBUS_META_PREFIX ">", cfg->meta_handler,
	                              cfg->meta_handler_ctx, 0, &id);
}

static void meta_fill(ebus_meta_t *m, int which, int executor, ebus_sub_id sub, uint64_t count,
                      int rc, const char *name, size_t namelen)
{
	memset(m, 0, sizeof *m);
	m->kind = meta_kinds[which];
	m->executor = executor;
	m->sub = sub;
	m->count = count;
	m->rc = rc;
	if (name && namelen) {
		if (namelen > EBUS_TOPIC_MAX)
			namelen = EBUS_TOPIC_MAX;
		memcpy(m->name, name, namelen);
	}
}

void ebus_meta_emit(struct ebus *bus, int which, int executor, ebus_sub_id sub, uint64_t count,
                    int rc, const char *name, size_t namelen)
{
	ebus_meta_t m;
	if (!bus->meta[which])
		return;
	meta_fill(&m, which, executor, sub, count, rc, name, namelen);
	(void)ebus_publish_internal(bus->meta[which], &m, sizeof m);
}

void ebus_meta_emit_hook(void *bus, int which, int executor, ebus_sub_id sub, uint64_t count,
                         int rc, const char *name, size_t namelen)
{
	ebus_meta_emit(bus, which, executor, sub, count, rc, name, namelen);
}

/*
 * Meta events executor `exec` has taken out of its lanes so far: the
 * counters of the meta topics it owns (meta topics are ordered, so one
 * block each, written by that executor). Read only when an idle event is
 * due, so the drain loop pays nothing to tell meta events apart.
 */
uint64_t ebus_meta_handled_hook(void *ctx, unsigned exec)
{
	struct ebus *bus = ctx;
	uint64_t n = 0;
	for (int i = 0; i < META_N; i++) {
		struct ebus_topic_s *t = bus->meta[i];
		struct topic_ctrs *tc;
		if (!t || t->executor != exec)
			continue;
		tc = topic_ctrs_of(t, exec);
		n += ctr_get(&tc->delivered) + ctr_get(&tc->dropped_no_sub) +
		     ctr_get(&tc->dropped_shutdown);
	}
	return n;
}

/*
 * At every executor's exit; acts on the one that owns executor.stopped,
 * after ebus_shutdown joined every other executor (bus.c stop_executors)
 * and this one drained its lanes: one event per executor, dispatched there
 * and then rather than queued (nothing is taken from lanes any more),
 * counted as published and delivered by that executor.
 */
void ebus_meta_at_exit_hook(void *ctx, struct ebus_exec *home)
{
	struct ebus *bus = ctx;
	struct ebus_topic_s *t = bus->meta[META_STOPPED];
	if (!bus->emit_stopped || !t || t->executor != ebus_exec_index(home))
		return;
	for (unsigned i = 0; i < bus->nexec; i++) {
		ebus_meta_t m;
		meta_fill(&m, META_STOPPED, (int)i, 0, 0, 0, NULL, 0);
		ebus_exec_dispatch_direct(home, t, &m, sizeof m);
	}
}
