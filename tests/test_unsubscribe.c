/*
 * Unsubscribe (DESIGN 2.4, ebus.h ebus_unsubscribe / ebus_unsubscribe_async).
 *
 * 1. Churn: control threads subscribe and unsubscribe continuously while
 *    publishers publish. Each subscription's context has an "unsubscribed"
 *    flag set right after ebus_unsubscribe returns and an in-handler counter:
 *    a handler entering after the flag is set is a violation, and the
 *    unsubscriber checks that the handler is not running when the call
 *    returned. Contexts are freed after unsubscribe (half at once, half a few
 *    rounds later so that a late call is counted rather than only crashing):
 *    ASan catches use after free. Permanent subscribers check that the churn
 *    loses or duplicates nothing for the others; handler_calls must equal
 *    the calls the handlers counted.
 * 2. A blocking unsubscribe from another thread waits for a running handler.
 * 3. From inside handlers: unsubscribing itself (blocking and async forms),
 *    another later subscription (must not be called even for the current
 *    event), an earlier one (async form), and subscribing a new one. No
 *    deadlock; nothing is called after its unsubscribe returned; released is
 *    called exactly once (on a synchronous bus: by the end of the outermost
 *    publish).
 * 4. ebus_unsubscribe_ctx: every subscription of one context (literal and
 *    pattern, more than one chunk of them) goes in one call, the other
 *    contexts' stay; a meta event per removal; it waits for a running
 *    handler of that context; from inside a handler, the context's later
 *    subscriptions are not called even for the current event.
 * All on an asynchronous bus (2 executors) and on a synchronous bus.
 *
 * Parameters:
 *   EBUS_STRESS_ROUNDS      300 | 100000  subscribe/unsubscribe rounds per control thread
 *   EBUS_STRESS_PUBLISHERS  2 | 4
 *   EBUS_STRESS_TOPICS      4 | 16
 */
#include "testutil.h"

#define MAXP 16
#define NCTL 2
#define GRAVE 8
#define CTX_MAGIC 0x5ca1ab1eu

static uint64_t ROUNDS;
static unsigned P, T;

/* ---- 1. churn ------------------------------------------------------------------ */

typedef struct ev_hdr {
	uint32_t pub, topic;
	uint64_t seq, check;
} ev_hdr;

typedef struct churn_ctx {
	uint32_t magic;
	unsigned topic;
	_Atomic int in_handler;
	_Atomic int unsubscribed;
	_Atomic uint64_t calls;
	_Atomic int released;
	uint64_t next[MAXP]; /* 0: nothing yet from that publisher; else last seq + 1 */
} churn_ctx;

typedef struct perm_sub {
	unsigned topic;
	uint64_t next[MAXP];
	uint64_t calls;
} perm_sub;

static struct {
	int synchronous;
	ebus_t *bus;
	ebus_topic_t *topics[16];
	perm_sub perm[16];
	_Atomic int stop;
	_Atomic uint64_t violations;     /* handler entered after unsubscribe returned */
	_Atomic uint64_t churn_calls;    /* calls counted by churned subscriptions */
	uint64_t sent[MAXP][16];         /* per publisher, per topic */
} cs;

static void check_event(const ebus_event_t *ev, unsigned topic, ev_hdr *h)
{
	CHECK(ev->topic == cs.topics[topic]);
	CHECK_EQ_U64(ev->len, sizeof *h);
	memcpy(h, ev->data, sizeof *h);
	CHECK(h->topic == topic && h->pub < P);
	CHECK_MSG(h->check == tu_mix3(h->pub, h->topic, h->seq), "corrupt event");
}

static int churn_handler(const ebus_event_t *ev, void *ctx)
{
	churn_ctx *c = ctx;
	CHECK_MSG(c->magic == CTX_MAGIC, "handler called with a context that was released (magic %#x)", c->magic);
	atomic_fetch_add(&c->in_handler, 1);
	if (atomic_load(&c->unsubscribed))
		atomic_fetch_add(&cs.violations, 1);
	ev_hdr h;
	check_event(ev, c->topic, &h);
	/* gapless per publisher from the first event this subscription saw */
	if (c->next[h.pub] != 0)
		CHECK_MSG(h.seq == c->next[h.pub], "churned subscription, publisher %u: seq %" PRIu64
		          " after %" PRIu64, h.pub, h.seq, c->next[h.pub] - 1);
	c->next[h.pub] = h.seq + 1;
	atomic_fetch_add(&c->calls, 1);
	atomic_fetch_sub(&c->in_handler, 1);
	return 0;
}

static int perm_handler(const ebus_event_t *ev, void *ctx)
{
	perm_sub *s = ctx;
	ev_hdr h;
	check_event(ev, s->topic, &h);
	CHECK_MSG(h.seq == s->next[h.pub], "permanent subscriber, topic %u publisher %u: seq %" PRIu64
	          ", want %" PRIu64, s->topic, h.pub, h.seq, s->next[h.pub]);
	s->next[h.pub]++;
	s->calls++;
	return 0;
}

static void churn_released(void *ctx)
{
	churn_ctx *c = ctx;
	CHECK(c->magic == CTX_MAGIC);
	CHECK_EQ_INT(atomic_fetch_add(&c->released, 1), 0);
}

static void *publisher(void *arg)
{
	const unsigned p = (unsigned)(uintptr_t)arg;
	uint64_t k = 0;
	while (!atomic_load_explicit(&cs.stop, memory_order_relaxed)) {
		const unsigned t = (unsigned)((k++ + p) % T);
		ev_hdr h = {p, t, cs.sent[p][t], 0};
		h.check = tu_mix3(h.pub, h.topic, h.seq);
		int rc = ebus_publish(cs.topics[t], &h, sizeof h);
		CHECK_MSG(rc == EBUS_OK, "publish: %s", ebus_errname(rc));
		cs.sent[p][t]++;
	}
	return NULL;
}

static void *controller(void *arg)
{
	const unsigned me = (unsigned)(uintptr_t)arg;
	churn_ctx *grave[GRAVE] = {0};
	for (uint64_t r = 0; r < ROUNDS; r++) {
		churn_ctx *c = calloc(1, sizeof *c);
		CHECK(c);
		c->magic = CTX_MAGIC;
		c->topic = (unsigned)((me * 7 + r) % T);
		ebus_sub_id id = 0;
		CHECK_OK(ebus_subscribe(cs.topics[c->topic], churn_handler, c, &id));
		if (r % 2 == 0) /* let it receive something: the publishers never stop before we do */
			while (atomic_load(&c->calls) == 0)
				sched_yield();
		const int async_form = r % 3 == 1;
		if (async_form) {
			CHECK_OK(ebus_unsubscribe_async(cs.bus, id, churn_released));
			/* from a non-handler thread, released runs before the call returns */
			CHECK_MSG(atomic_load(&c->released) == 1, "unsubscribe_async from a non-handler thread returned "
			          "before calling released (%d)", atomic_load(&c->released));
		} else {
			CHECK_OK(ebus_unsubscribe(cs.bus, id));
		}
		atomic_store(&c->unsubscribed, 1);
		/* the handler is not running now, and will never run again */
		CHECK_MSG(atomic_load(&c->in_handler) == 0, "handler still running after ebus_unsubscribe returned");
		if (r % 5 == 0)
			CHECK_EQ_INT(ebus_unsubscribe(cs.bus, id), EBUS_ERR_NOT_FOUND);
		atomic_fetch_add(&cs.churn_calls, atomic_load(&c->calls));
		if (r % 2) {
			c->magic = 0;
			free(c); /* at once: a late call is a use after free */
		} else {
			churn_ctx **slot = &grave[r / 2 % GRAVE];
			if (*slot) {
				(*slot)->magic = 0;
				free(*slot);
			}
			*slot = c; /* a late call is counted as a violation */
		}
	}
	for (int i = 0; i < GRAVE; i++)
		if (grave[i]) {
			grave[i]->magic = 0;
			free(grave[i]);
		}
	return NULL;
}

static ebus_t *make_bus(int synchronous)
{
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.synchronous = synchronous;
	cfg.executors = synchronous ? 0 : 2;
	cfg.lane_capacity = 256;
	cfg.spin_iterations = 64;
	ebus_t *bus = NULL;
	CHECK_OK(ebus_create(&cfg, &bus));
	return bus;
}

static void churn(int synchronous)
{
	memset(&cs, 0, sizeof cs);
	cs.synchronous = synchronous;
	cs.bus = make_bus(synchronous);
	for (unsigned t = 0; t < T; t++) {
		char name[32];
		snprintf(name, sizeof name, "unsub.churn.%u", t);
		CHECK_OK(ebus_topic(cs.bus, name, &cs.topics[t]));
		cs.perm[t].topic = t;
		ebus_sub_id id;
		CHECK_OK(ebus_subscribe(cs.topics[t], perm_handler, &cs.perm[t], &id));
	}
	pthread_t pubs[MAXP], ctls[NCTL];
	for (unsigned p = 0; p < P; p++)
		tu_thread_create(&pubs[p], publisher, (void *)(uintptr_t)p);
	for (unsigned i = 0; i < NCTL; i++)
		tu_thread_create(&ctls[i], controller, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < NCTL; i++)
		tu_thread_join(ctls[i]);
	atomic_store(&cs.stop, 1);
	for (unsigned p = 0; p < P; p++)
		tu_thread_join(pubs[p]);
	CHECK_OK(ebus_flush(cs.bus, 0));

	CHECK_EQ_U64(atomic_load(&cs.violations), 0);
	uint64_t total = 0, perm_calls = 0;
	for (unsigned t = 0; t < T; t++) {
		for (unsigned p = 0; p < P; p++) {
			CHECK_EQ_U64(cs.perm[t].next[p], cs.sent[p][t]);
			total += cs.sent[p][t];
		}
		perm_calls += cs.perm[t].calls;
	}
	CHECK_EQ_U64(perm_calls, total);
	ebus_stats_t st = tu_stats(cs.bus);
	printf("   %s: %" PRIu64 " events, %" PRIu64 " calls of churned subscriptions over %" PRIu64 " rounds\n",
	       synchronous ? "sync" : "async", total, atomic_load(&cs.churn_calls), NCTL * ROUNDS);
	CHECK_EQ_U64(st.published, total);
	CHECK_EQ_U64(st.delivered, total);
	CHECK_EQ_U64(st.handler_calls, perm_calls + atomic_load(&cs.churn_calls));
	CHECK_STATS_BALANCED(st);
	ebus_destroy(cs.bus);
}

static void test_churn_async(void)
{
	churn(0);
}

static void test_churn_sync(void)
{
	churn(1);
}

/* ---- 2. a blocking unsubscribe waits for the running handler ---------------------- */

static struct {
	ebus_t *bus;
	ebus_topic_t *topic;
	tu_gate gate;
	_Atomic int exited;
	_Atomic uint64_t calls;
	_Atomic int unsubscribed;
	_Atomic int violations;
	ebus_sub_id id;
	_Atomic int about_to_call;
} w;

static int gated_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	if (atomic_load(&w.unsubscribed))
		atomic_fetch_add(&w.violations, 1);
	atomic_fetch_add(&w.calls, 1);
	if (atomic_load(&w.calls) == 1) {
		tu_gate_pass(&w.gate);
		atomic_store(&w.exited, 1);
	}
	return 0;
}

static void *w_unsubscriber(void *arg)
{
	int async_form = (int)(uintptr_t)arg;
	atomic_store(&w.about_to_call, 1);
	if (async_form)
		CHECK_OK(ebus_unsubscribe_async(w.bus, w.id, NULL));
	else
		CHECK_OK(ebus_unsubscribe(w.bus, w.id));
	atomic_store(&w.unsubscribed, 1);
	CHECK_MSG(atomic_load(&w.exited) == 1, "ebus_unsubscribe returned while the handler was still running");
	return NULL;
}

static void *w_sync_publisher(void *arg)
{
	(void)arg;
	CHECK_OK(ebus_publish(w.topic, "g", 1));
	return NULL;
}

static void waits_for_handler(int synchronous, int async_form)
{
	memset(&w, 0, sizeof w);
	tu_gate_init(&w.gate);
	w.bus = make_bus(synchronous);
	CHECK_OK(ebus_topic(w.bus, "unsub.wait", &w.topic));
	CHECK_OK(ebus_subscribe(w.topic, gated_handler, NULL, &w.id));
	pthread_t pub = 0, un;
	if (synchronous)
		tu_thread_create(&pub, w_sync_publisher, NULL); /* delivers on its own thread */
	else
		CHECK_OK(ebus_publish(w.topic, "g", 1));
	tu_gate_wait_entered(&w.gate, 1); /* the handler is running, and blocked */
	tu_thread_create(&un, w_unsubscriber, (void *)(uintptr_t)async_form);
	while (!atomic_load(&w.about_to_call))
		sched_yield();
	for (int i = 0; i < 1000; i++) /* give the unsubscriber time to get inside (not needed for correctness) */
		sched_yield();
	tu_gate_open(&w.gate);
	tu_thread_join(un);
	if (synchronous)
		tu_thread_join(pub);
	CHECK_OK(ebus_publish(w.topic, "h", 1));
	CHECK_OK(ebus_flush(w.bus, 0));
	CHECK_EQ_U64(atomic_load(&w.calls), 1);
	CHECK_EQ_INT(atomic_load(&w.violations), 0);
	ebus_destroy(w.bus);
	tu_gate_destroy(&w.gate);
}

static void test_waits_for_handler_async(void)
{
	waits_for_handler(0, 0);
	waits_for_handler(0, 1);
}

static void test_waits_for_handler_sync(void)
{
	waits_for_handler(1, 0);
	waits_for_handler(1, 1);
}

/* ---- 3. from inside handlers ------------------------------------------------------- */

enum role { EARLY, SELF_BLOCK, SELF_ASYNC, KILLER, VICTIM, WITNESS, SPAWNED, NROLES };
static const char *role_name[NROLES] = {"early", "self_block", "self_async", "killer", "victim", "witness", "spawned"};

typedef struct hsub {
	enum role role;
	ebus_sub_id id;
	unsigned calls;
	int dead; /* set right after its unsubscribe returned */
	unsigned calls_after_dead;
	uint64_t first, last;
} hsub;

#define TRIGGER 3 /* the event during which handlers unsubscribe */
#define NEVENTS 10

static struct {
	int synchronous;
	ebus_t *bus;
	ebus_topic_t *topic;
	hsub subs[NROLES];
	tu_counter released[NROLES];
	uint64_t published; /* events published on the topic so far */
} hs;

static void h_released(void *ctx)
{
	hsub *s = ctx;
	tu_counter_add(&hs.released[s->role], 1);
}

static int h_handler(const ebus_event_t *ev, void *ctx)
{
	hsub *s = ctx;
	CHECK(ev->topic == hs.topic);
	CHECK_EQ_U64(ev->len, 8);
	uint64_t seq;
	memcpy(&seq, ev->data, 8);
	if (s->dead)
		s->calls_after_dead++;
	if (s->calls == 0)
		s->first = seq;
	else
		CHECK_MSG(seq == s->last + 1, "%s: seq %" PRIu64 " after %" PRIu64, role_name[s->role], seq, s->last);
	s->last = seq;
	s->calls++;
	if (seq != TRIGGER)
		return 0;
	switch (s->role) {
	case SELF_BLOCK:
		/* from a handler it does not wait (and cannot deadlock) */
		CHECK_OK(ebus_unsubscribe(hs.bus, s->id));
		s->dead = 1;
		CHECK_EQ_INT(ebus_unsubscribe(hs.bus, s->id), EBUS_ERR_NOT_FOUND);
		break;
	case SELF_ASYNC:
		CHECK_OK(ebus_unsubscribe_async(hs.bus, s->id, h_released));
		s->dead = 1;
		CHECK_EQ_INT(ebus_unsubscribe_async(hs.bus, s->id, h_released), EBUS_ERR_NOT_FOUND);
		break;
	case KILLER: {
		/* a later subscription: never called again, not even for this event */
		CHECK_OK(ebus_unsubscribe(hs.bus, hs.subs[VICTIM].id));
		hs.subs[VICTIM].dead = 1;
		/* an earlier one, async form */
		CHECK_OK(ebus_unsubscribe_async(hs.bus, hs.subs[EARLY].id, h_released));
		hs.subs[EARLY].dead = 1;
		/* and a new one, from inside the handler */
		CHECK_OK(ebus_subscribe(hs.topic, h_handler, &hs.subs[SPAWNED], &hs.subs[SPAWNED].id));
		break;
	}
	default:
		break;
	}
	return 0;
}

static void h_publish(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t seq = hs.published++;
		CHECK_OK(ebus_publish(hs.topic, &seq, sizeof seq));
		if (hs.synchronous && seq == TRIGGER) {
			/* released at the end of the outermost publish */
			CHECK_EQ_U64(tu_counter_get(&hs.released[SELF_ASYNC]), 1);
			CHECK_EQ_U64(tu_counter_get(&hs.released[EARLY]), 1);
		}
	}
	/* twice: events a handler published or subscriptions it made during the
	 * first flush are covered by the second */
	CHECK_OK(ebus_flush(hs.bus, 0));
	CHECK_OK(ebus_flush(hs.bus, 0));
}

static void from_handler(int synchronous)
{
	memset(&hs, 0, sizeof hs);
	hs.synchronous = synchronous;
	hs.bus = make_bus(synchronous);
	CHECK_OK(ebus_topic(hs.bus, "unsub.inside", &hs.topic));
	for (int r = 0; r < NROLES; r++) {
		hs.subs[r].role = (enum role)r;
		tu_counter_init(&hs.released[r]);
	}
	/* subscription order: early, self_block, self_async, killer, victim, witness */
	for (int r = EARLY; r <= WITNESS; r++)
		CHECK_OK(ebus_subscribe(hs.topic, h_handler, &hs.subs[r], &hs.subs[r].id));

	h_publish(NEVENTS);
	/* wait for the deferred frees (async bus: a call_rcu thread) */
	tu_counter_wait(&hs.released[SELF_ASYNC], 1);
	tu_counter_wait(&hs.released[EARLY], 1);
	h_publish(NEVENTS);

	const hsub *s = hs.subs;
	for (int r = 0; r < NROLES; r++)
		CHECK_MSG(s[r].calls_after_dead == 0, "%s called %u times after its unsubscribe returned",
		          role_name[r], s[r].calls_after_dead);
	/* events 0..TRIGGER, then nothing */
	CHECK_EQ_INT(s[EARLY].calls, TRIGGER + 1);
	CHECK_EQ_INT(s[SELF_BLOCK].calls, TRIGGER + 1);
	CHECK_EQ_INT(s[SELF_ASYNC].calls, TRIGGER + 1);
	/* unsubscribed by an earlier subscriber during TRIGGER: not called for it */
	CHECK_EQ_INT(s[VICTIM].calls, TRIGGER);
	CHECK_EQ_INT(s[KILLER].calls, 2 * NEVENTS);
	CHECK_EQ_INT(s[WITNESS].calls, 2 * NEVENTS);
	/* subscribed during TRIGGER: every event dispatched after that */
	CHECK_MSG(s[SPAWNED].first == TRIGGER || s[SPAWNED].first == TRIGGER + 1, "spawned: first event %" PRIu64,
	          s[SPAWNED].first);
	CHECK_EQ_U64(s[SPAWNED].last, 2 * NEVENTS - 1);
	/* removed ones are gone */
	CHECK_EQ_INT(ebus_unsubscribe(hs.bus, s[EARLY].id), EBUS_ERR_NOT_FOUND);
	CHECK_EQ_INT(ebus_unsubscribe(hs.bus, s[VICTIM].id), EBUS_ERR_NOT_FOUND);
	CHECK_EQ_INT(ebus_unsubscribe(hs.bus, s[SELF_BLOCK].id), EBUS_ERR_NOT_FOUND);
	CHECK_EQ_INT(ebus_unsubscribe(hs.bus, s[SELF_ASYNC].id), EBUS_ERR_NOT_FOUND);
	CHECK_OK(ebus_unsubscribe(hs.bus, s[SPAWNED].id));

	ebus_stats_t st = tu_stats(hs.bus);
	uint64_t calls = 0;
	for (int r = 0; r < NROLES; r++)
		calls += s[r].calls;
	CHECK_EQ_U64(st.handler_calls, calls);
	CHECK_EQ_U64(st.published, 2 * NEVENTS);
	CHECK_STATS_BALANCED(st);

	ebus_destroy(hs.bus);
	/* exactly once, also after destroy waited for deferred frees */
	for (int r = 0; r < NROLES; r++) {
		uint64_t want = (r == SELF_ASYNC || r == EARLY) ? 1 : 0;
		CHECK_MSG(tu_counter_get(&hs.released[r]) == want, "%s: released called %" PRIu64 " times",
		          role_name[r], tu_counter_get(&hs.released[r]));
		tu_counter_destroy(&hs.released[r]);
	}
}

static void test_from_handler_async(void)
{
	from_handler(0);
}

static void test_from_handler_sync(void)
{
	from_handler(1);
}

/* ---- 4. ebus_unsubscribe_ctx ------------------------------------------------- */

#define CTX_TOPICS 24 /* 24 literal + 24 pattern subscriptions: several chunks of 16 */

typedef struct {
	_Atomic uint64_t calls;
	_Atomic int gone; /* set once ebus_unsubscribe_ctx returned */
	_Atomic int late; /* calls after that */
} ctxrec;

static ctxrec ca, cb;
static _Atomic uint64_t removed_events;

static int ctx_handler(const ebus_event_t *ev, void *ctx)
{
	ctxrec *c = ctx;
	(void)ev;
	if (atomic_load(&c->gone))
		atomic_fetch_add(&c->late, 1);
	atomic_fetch_add(&c->calls, 1);
	return 0;
}

/* A second function with the same ctx: (handler, ctx, topic) must differ. */
static int ctx_handler2(const ebus_event_t *ev, void *ctx)
{
	return ctx_handler(ev, ctx);
}

static int on_meta_removed(const ebus_event_t *ev, void *ctx)
{
	const ebus_meta_t *m = ev->data;
	(void)ctx;
	if (m->kind == EBUS_META_KIND_SUB_REMOVED)
		atomic_fetch_add(&removed_events, 1);
	return 0;
}

static void publish_each(ebus_t *bus, ebus_topic_t **t)
{
	for (int i = 0; i < CTX_TOPICS; i++)
		CHECK_OK(ebus_publish(t[i], "e", 1));
	CHECK_OK(ebus_flush(bus, 0));
}

static void remove_ctx(int synchronous)
{
	ebus_config_t cfg;
	ebus_topic_t *t[CTX_TOPICS];
	ebus_t *bus;
	ebus_sub_id id;
	size_t n = 99;

	memset(&ca, 0, sizeof ca);
	memset(&cb, 0, sizeof cb);
	atomic_store(&removed_events, 0);
	memset(&cfg, 0, sizeof cfg);
	cfg.synchronous = synchronous;
	cfg.executors = 2;
	cfg.meta_events = 1;
	cfg.meta_handler = on_meta_removed;
	CHECK_OK(ebus_create(&cfg, &bus));
	for (int i = 0; i < CTX_TOPICS; i++) {
		char name[32], pat[32];
		snprintf(name, sizeof name, "ctx.t%d.x", i);
		snprintf(pat, sizeof pat, "ctx.t%d.*", i);
		CHECK_OK(ebus_topic(bus, name, &t[i]));
		CHECK_OK(ebus_subscribe(t[i], ctx_handler, &ca, &id));
		CHECK_OK(ebus_subscribe_pattern(bus, pat, ctx_handler2, &ca, 0, &id));
		CHECK_OK(ebus_subscribe(t[i], ctx_handler, &cb, &id));
	}
	publish_each(bus, t);
	CHECK_EQ_U64(atomic_load(&ca.calls), 2 * CTX_TOPICS);
	CHECK_EQ_U64(atomic_load(&cb.calls), CTX_TOPICS);

	CHECK_OK(ebus_unsubscribe_ctx(bus, &ca, &n));
	atomic_store(&ca.gone, 1);
	CHECK_EQ_U64(n, 2 * CTX_TOPICS);
	publish_each(bus, t);
	CHECK_EQ_U64(atomic_load(&ca.calls), 2 * CTX_TOPICS); /* nothing more */
	CHECK_EQ_INT(atomic_load(&ca.late), 0);
	CHECK_EQ_U64(atomic_load(&cb.calls), 2 * CTX_TOPICS); /* the other context's stay */
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(atomic_load(&removed_events), 2 * CTX_TOPICS);

	/* again, and an unknown context: nothing, not an error */
	n = 99;
	CHECK_OK(ebus_unsubscribe_ctx(bus, &ca, &n));
	CHECK_EQ_U64(n, 0);
	CHECK_OK(ebus_unsubscribe_ctx(bus, (void *)&n, NULL));
	CHECK_EQ_INT(ebus_unsubscribe_ctx(NULL, &ca, &n), EBUS_ERR_NULL);
	/* the other context through the same call */
	CHECK_OK(ebus_unsubscribe_ctx(bus, &cb, &n));
	CHECK_EQ_U64(n, CTX_TOPICS);
	ebus_destroy(bus);
}

/* From a handler: the context's subscriptions after it on the topic are not
 * called for the current event, nor ever again; the call does not wait. */
static ebus_t *hb;
static ctxrec hc;
static _Atomic int h_first_calls;

static int removing_handler(const ebus_event_t *ev, void *ctx)
{
	size_t n = 0;
	(void)ev;
	atomic_fetch_add(&h_first_calls, 1);
	CHECK_OK(ebus_unsubscribe_ctx(hb, ctx, &n));
	CHECK_EQ_U64(n, 3); /* itself and the two after it */
	atomic_store(&hc.gone, 1);
	return 0;
}

static void remove_ctx_from_handler(int synchronous)
{
	ebus_topic_t *t;
	ebus_sub_id id;
	memset(&hc, 0, sizeof hc);
	atomic_store(&h_first_calls, 0);
	hb = make_bus(synchronous);
	CHECK_OK(ebus_topic(hb, "ctx.inside", &t));
	CHECK_OK(ebus_subscribe(t, removing_handler, &hc, &id));
	CHECK_OK(ebus_subscribe(t, ctx_handler, &hc, &id));
	CHECK_OK(ebus_subscribe_pattern(hb, "ctx.*", ctx_handler2, &hc, 0, &id));
	for (int i = 0; i < 3; i++)
		CHECK_OK(ebus_publish(t, "e", 1));
	CHECK_OK(ebus_flush(hb, 0));
	CHECK_EQ_INT(atomic_load(&h_first_calls), 1);
	CHECK_EQ_U64(atomic_load(&hc.calls), 0);
	ebus_destroy(hb);
}

/* From another thread, while a handler of the context runs: returns only
 * after it has returned. */
static struct {
	tu_gate gate;
	_Atomic int exited;
	_Atomic pid_t remover;
	ebus_t *bus;
} cw;

static int ctx_gated(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	tu_gate_pass(&cw.gate);
	atomic_store(&cw.exited, 1);
	return 0;
}

static void *cw_remover(void *arg)
{
	size_t n = 0;
	(void)arg;
	atomic_store(&cw.remover, gettid());
	CHECK_OK(ebus_unsubscribe_ctx(cw.bus, &cw, &n));
	CHECK_EQ_U64(n, 1);
	CHECK_MSG(atomic_load(&cw.exited) == 1, "ebus_unsubscribe_ctx returned while the handler ran");
	return NULL;
}

static void *cw_sync_publisher(void *arg)
{
	CHECK_OK(ebus_publish(arg, "g", 1));
	return NULL;
}

static void remove_ctx_waits(int synchronous)
{
	ebus_topic_t *t;
	ebus_sub_id id;
	pthread_t pub = 0, rm;
	memset(&cw, 0, sizeof cw);
	tu_gate_init(&cw.gate);
	cw.bus = make_bus(synchronous);
	CHECK_OK(ebus_topic(cw.bus, "ctx.wait", &t));
	CHECK_OK(ebus_subscribe(t, ctx_gated, &cw, &id));
	if (synchronous)
		tu_thread_create(&pub, cw_sync_publisher, t);
	else
		CHECK_OK(ebus_publish(t, "g", 1));
	tu_gate_wait_entered(&cw.gate, 1);
	tu_thread_create(&rm, cw_remover, NULL);
	/* the remover is asleep in the call (its only blocking point: the grace
	 * period, which waits for the gated handler) before the gate opens */
	while (!atomic_load(&cw.remover) || tu_thread_state(atomic_load(&cw.remover)) != 'S')
		sched_yield();
	tu_gate_open(&cw.gate);
	tu_thread_join(rm);
	if (synchronous)
		tu_thread_join(pub);
	ebus_destroy(cw.bus);
	tu_gate_destroy(&cw.gate);
}

static void test_remove_ctx_async(void)
{
	remove_ctx(0);
	remove_ctx_from_handler(0);
	remove_ctx_waits(0);
}

static void test_remove_ctx_sync(void)
{
	remove_ctx(1);
	remove_ctx_from_handler(1);
	remove_ctx_waits(1);
}

int main(void)
{
	ROUNDS = tu_param("EBUS_STRESS_ROUNDS", 300, 100000);
	P = (unsigned)tu_param("EBUS_STRESS_PUBLISHERS", 2, 4);
	T = (unsigned)tu_param("EBUS_STRESS_TOPICS", 4, 16);
	CHECK(P >= 1 && P <= MAXP && T >= 1 && T <= 16);
	TU_RUN(test_from_handler_async);
	TU_RUN(test_from_handler_sync);
	TU_RUN(test_waits_for_handler_async);
	TU_RUN(test_waits_for_handler_sync);
	TU_RUN(test_churn_async);
	TU_RUN(test_churn_sync);
	TU_RUN(test_remove_ctx_async);
	TU_RUN(test_remove_ctx_sync);
	return tu_finish("test_unsubscribe");
}
