/*
 * Pattern subscriptions, unordered topics and concurrent subscribers, on
 * asynchronous buses (1 and 3 executors) and a synchronous one (3 stripes):
 *  - a pattern reaches topics interned before and after it, and only those
 *    it matches; unsubscribing it removes it from every topic, and topics
 *    interned later do not get it;
 *  - subscribers run in subscription order, patterns and literals mixed;
 *  - duplicates, bad patterns and bad flags are refused and change nothing;
 *  - an unordered topic spreads one publisher's events evenly over the
 *    executors, takes only concurrent subscribers, and is skipped by
 *    non-concurrent patterns;
 *  - "$ebus." topics cannot be published, and a leading wildcard skips them;
 *  - overlap detector: a non-concurrent pattern whose topics live on every
 *    executor never runs on two threads at once;
 *  - a handler holding a serial subscription that blocks on the lane of an
 *    executor waiting for that subscription gets EBUS_ERR_DEADLOCK.
 */
#include "testutil.h"

#include <stdbool.h>

#define MAXREC 64

typedef struct rec {
	char tag;
	unsigned n;
	char topic[MAXREC][32];
	uint32_t value[MAXREC];
} rec;

static char order[256];
static _Atomic unsigned norder;

static int record(const ebus_event_t *ev, void *ctx)
{
	rec *r = ctx;
	unsigned i = r->n++;
	CHECK(i < MAXREC);
	snprintf(r->topic[i], sizeof r->topic[i], "%s", ebus_topic_name(ev->topic));
	CHECK_EQ_INT((int)ev->len, 4);
	memcpy(&r->value[i], ev->data, 4);
	unsigned k = atomic_fetch_add(&norder, 1);
	if (k < sizeof order - 1)
		order[k] = r->tag;
	return 0;
}

static ebus_t *make_bus(unsigned nexec, int sync)
{
	ebus_config_t cfg = {0};
	ebus_t *b = NULL;
	cfg.executors = nexec;
	cfg.synchronous = sync;
	CHECK_OK(ebus_create(&cfg, &b));
	return b;
}

static void pub(ebus_t *b, const char *name, uint32_t v)
{
	ebus_topic_t *t;
	CHECK_OK(ebus_topic(b, name, &t));
	CHECK_OK(ebus_publish(t, &v, sizeof v));
}

static bool got(const rec *r, const char *topic, uint32_t v)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->value[i] == v)
			return strcmp(r->topic[i], topic) == 0;
	return false;
}

typedef struct bus_kind {
	unsigned nexec;
	int sync;
} bus_kind;

static void test_pattern_reach(const bus_kind *k)
{
	ebus_t *b = make_bus(k->nexec, k->sync);
	ebus_topic_t *t;
	rec star = {.tag = 'S'}, gt = {.tag = 'G'}, all = {.tag = 'A'};
	ebus_sub_id s_star, s_gt, s_all;

	CHECK_OK(ebus_topic(b, "orders.eu", &t)); /* interned before the patterns */
	CHECK_OK(ebus_subscribe_pattern(b, "orders.*", record, &star, 0, &s_star));
	CHECK_OK(ebus_subscribe_pattern(b, "orders.>", record, &gt, 0, &s_gt));
	CHECK_OK(ebus_subscribe_pattern(b, ">", record, &all, 0, &s_all));
	pub(b, "orders.eu", 1);      /* S G A */
	pub(b, "orders.us", 2);      /* S G A: interned after the patterns */
	pub(b, "orders.eu.fill", 3); /* G A */
	pub(b, "orders", 4);         /* A: "orders.>" needs one more token */
	pub(b, "trades.eu", 5);      /* A */
	CHECK_OK(ebus_flush(b, 0));
	CHECK_EQ_INT(star.n, 2);
	CHECK(got(&star, "orders.eu", 1) && got(&star, "orders.us", 2));
	CHECK_EQ_INT(gt.n, 3);
	CHECK(got(&gt, "orders.eu", 1) && got(&gt, "orders.us", 2) && got(&gt, "orders.eu.fill", 3));
	CHECK_EQ_INT(all.n, 5);
	CHECK(got(&all, "orders", 4) && got(&all, "trades.eu", 5));

	/* by name, never interned: a matching pattern makes it a topic */
	uint32_t v = 100;
	CHECK_OK(ebus_publish_name(b, "orders.byname", &v, sizeof v));
	CHECK_OK(ebus_flush(b, 0));
	CHECK_EQ_INT(star.n, 3);
	CHECK(got(&star, "orders.byname", 100));
	star.n--, gt.n--, all.n--; /* keep the counts below as they were */

	/* Unsubscribe removes the pattern from every topic, old and new. */
	CHECK_OK(ebus_unsubscribe(b, s_star));
	CHECK_EQ_INT(ebus_unsubscribe(b, s_star), EBUS_ERR_NOT_FOUND);
	pub(b, "orders.eu", 6);
	pub(b, "orders.jp", 7); /* interned after the unsubscribe */
	CHECK_OK(ebus_flush(b, 0));
	CHECK_EQ_INT(star.n, 2);
	CHECK_EQ_INT(gt.n, 5);
	CHECK(got(&gt, "orders.jp", 7));
	CHECK_OK(ebus_unsubscribe(b, s_gt));
	CHECK_OK(ebus_unsubscribe(b, s_all));
	pub(b, "orders.eu", 8);
	CHECK_OK(ebus_flush(b, 0));
	CHECK_EQ_INT(gt.n, 5);
	CHECK_EQ_INT(all.n, 7);
	ebus_stats_t st = tu_stats(b);
	CHECK_EQ_U64(st.published, 9);
	CHECK_EQ_U64(st.dropped_no_subscriber, 1);
	/* no pattern matches: nothing is created, the event is counted */
	ebus_topic_t *none = NULL;
	v = 101;
	CHECK_OK(ebus_publish_name(b, "nobody.listens", &v, sizeof v));
	CHECK_OK(ebus_flush(b, 0));
	st = tu_stats(b);
	CHECK_EQ_U64(st.published, 10);
	CHECK_EQ_U64(st.dropped_no_subscriber, 2);
	(void)none;
	ebus_destroy(b);
}

static void test_order_and_duplicates(const bus_kind *k)
{
	ebus_t *b = make_bus(k->nexec, k->sync);
	ebus_topic_t *t;
	rec a = {.tag = 'a'}, p = {.tag = 'p'}, q = {.tag = 'q'}, l = {.tag = 'l'}, m = {.tag = 'm'};
	ebus_sub_id ia, ip, iq, il, im, x = 77;

	atomic_store(&norder, 0);
	memset(order, 0, sizeof order);
	CHECK_OK(ebus_topic(b, "x.y", &t));
	CHECK_OK(ebus_subscribe(t, record, &a, &ia));
	CHECK_OK(ebus_subscribe_pattern(b, "x.*", record, &p, 0, &ip));
	CHECK_OK(ebus_subscribe_pattern(b, "*.y", record, &q, 0, &iq));
	CHECK_OK(ebus_subscribe(t, record, &l, &il));
	/* duplicates: same handler, ctx and pattern; a literal equal to a
	 * wildcard-free pattern is the same subscription */
	CHECK_EQ_INT(ebus_subscribe_pattern(b, "x.*", record, &p, 0, &x), EBUS_ERR_DUPLICATE);
	CHECK_EQ_INT(ebus_subscribe_pattern(b, "x.y", record, &a, 0, &x), EBUS_ERR_DUPLICATE);
	CHECK_EQ_U64(x, 77);
	/* the same handler and ctx on a literal and a pattern: two subscriptions */
	CHECK_OK(ebus_subscribe_pattern(b, "x.>", record, &m, 0, &im));
	pub(b, "x.y", 1);
	CHECK_OK(ebus_flush(b, 0));
	CHECK_MSG(strcmp(order, "apqlm") == 0, "order '%s'", order);

	/* A topic created after the patterns: patterns first, oldest first. */
	atomic_store(&norder, 0);
	memset(order, 0, sizeof order);
	ebus_topic_t *t2;
	rec z = {.tag = 'z'};
	ebus_sub_id iz;
	CHECK_OK(ebus_topic(b, "x.z", &t2));
	CHECK_OK(ebus_subscribe(t2, record, &z, &iz));
	pub(b, "x.z", 2);
	CHECK_OK(ebus_flush(b, 0));
	CHECK_MSG(strcmp(order, "pmz") == 0, "order '%s'", order);

	/* bad input changes nothing */
	x = 77;
	CHECK_EQ_INT(ebus_subscribe_pattern(b, "x.*", record, &p, 2, &x), EBUS_ERR_FLAGS);
	CHECK_EQ_INT(ebus_subscribe_pattern(b, "x.a*", record, &p, 0, &x), EBUS_ERR_PATTERN_WILDCARD);
	CHECK_EQ_INT(ebus_subscribe_pattern(b, "x.>.y", record, &p, 0, &x), EBUS_ERR_PATTERN_GT_LAST);
	CHECK_EQ_INT(ebus_subscribe_pattern(b, "x..y", record, &p, 0, &x), EBUS_ERR_TOPIC_EMPTY_TOKEN);
	CHECK_EQ_INT(ebus_subscribe_pattern(b, "", record, &p, 0, &x), EBUS_ERR_TOPIC_EMPTY);
	CHECK_EQ_INT(ebus_subscribe_pattern(b, NULL, record, &p, 0, &x), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_subscribe_pattern(b, "x.*", NULL, &p, 0, &x), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_subscribe_pattern(NULL, "x.*", record, &p, 0, &x), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_subscribe_pattern(b, "x.*", record, &p, 0, NULL), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_subscribe_ex(t, record, &p, 0x10, &x), EBUS_ERR_FLAGS);
	CHECK_EQ_U64(x, 77);
	CHECK_EQ_INT(p.n, 2);
	for (ebus_sub_id *id = (ebus_sub_id[]){ia, ip, iq, il, im, iz, 0}; *id; id++)
		CHECK_OK(ebus_unsubscribe(b, *id));
	CHECK_OK(ebus_shutdown(b, EBUS_SHUTDOWN_DRAIN));
	CHECK_EQ_INT(ebus_subscribe_pattern(b, "x.*", record, &p, 0, &x), EBUS_ERR_SHUTDOWN);
	ebus_destroy(b);
}

/* ---- unordered topics ---------------------------------------------------- */

static _Atomic uint64_t conc_calls, conc_sum;

static int conc_handler(const ebus_event_t *ev, void *ctx)
{
	uint32_t v;
	(void)ctx;
	memcpy(&v, ev->data, 4);
	atomic_fetch_add(&conc_calls, 1);
	atomic_fetch_add(&conc_sum, v);
	return 0;
}

static void test_unordered(const bus_kind *k)
{
	ebus_t *b = make_bus(k->nexec, k->sync);
	ebus_topic_t *u, *same, *o;
	ebus_sub_id id, pid, lit = 0;
	rec serial_pat = {.tag = 's'};
	const uint32_t n = 60;

	atomic_store(&conc_calls, 0);
	atomic_store(&conc_sum, 0);
	CHECK_EQ_INT(ebus_topic_ex(b, "u.t", -1, 0x4, &u), EBUS_ERR_FLAGS);
	CHECK_OK(ebus_topic_ex(b, "u.t", -1, EBUS_TOPIC_UNORDERED, &u));
	CHECK_EQ_INT((int)ebus_topic_flags(u), (int)EBUS_TOPIC_UNORDERED);
	CHECK_OK(ebus_topic(b, "u.t", &same)); /* any ordering: the same handle */
	CHECK(same == u);
	same = NULL;
	CHECK_EQ_INT(ebus_topic_ex(b, "u.t", -1, 0, &same), EBUS_ERR_ORDERING);
	CHECK(same == u);
	CHECK_OK(ebus_topic(b, "u.o", &o));
	CHECK_EQ_INT(ebus_topic_ex(b, "u.o", -1, EBUS_TOPIC_UNORDERED, &same), EBUS_ERR_ORDERING);

	CHECK_EQ_INT(ebus_subscribe(u, record, &serial_pat, &lit), EBUS_ERR_NOT_CONCURRENT);
	CHECK_EQ_U64(lit, 0);
	CHECK_OK(ebus_subscribe_ex(u, conc_handler, NULL, EBUS_SUB_CONCURRENT, &id));
	/* a non-concurrent pattern skips the unordered topic, a concurrent one
	 * gets it */
	CHECK_OK(ebus_subscribe_pattern(b, "u.*", record, &serial_pat, 0, &pid));
	ebus_sub_id cpid;
	CHECK_OK(ebus_subscribe_pattern(b, "u.*", conc_handler, &serial_pat, EBUS_SUB_CONCURRENT, &cpid));
	for (uint32_t i = 1; i <= n; i++)
		CHECK_OK(ebus_publish(u, &i, sizeof i));
	CHECK_OK(ebus_flush(b, 0));
	CHECK_EQ_U64(atomic_load(&conc_calls), 2 * n);
	CHECK_EQ_U64(atomic_load(&conc_sum), 2 * (uint64_t)n * (n + 1) / 2);
	CHECK_EQ_INT(serial_pat.n, 0);
	if (!k->sync) {
		/* One publishing thread: round-robin, so each executor got n/E. */
		for (unsigned e = 0; e < k->nexec; e++) {
			ebus_stats_t st;
			CHECK_OK(ebus_stats(b, (int)e, &st));
			CHECK_EQ_U64(st.delivered, n / k->nexec);
		}
	}
	CHECK_OK(ebus_unsubscribe(b, id));
	CHECK_OK(ebus_unsubscribe(b, pid));
	CHECK_OK(ebus_unsubscribe(b, cpid));
	ebus_destroy(b);
}

static void test_reserved(const bus_kind *k)
{
	ebus_t *b = make_bus(k->nexec, k->sync);
	ebus_topic_t *m, *t;
	rec all = {.tag = 'A'}, meta = {.tag = 'M'};
	ebus_sub_id ia, im;
	uint32_t v = 1;

	CHECK_OK(ebus_subscribe_pattern(b, ">", record, &all, 0, &ia));
	CHECK_OK(ebus_subscribe_pattern(b, "$ebus.>", record, &meta, 0, &im));
	CHECK_OK(ebus_topic(b, "$ebus.custom", &m)); /* may be interned, to subscribe */
	CHECK_EQ_INT(ebus_publish(m, &v, sizeof v), EBUS_ERR_RESERVED);
	CHECK_EQ_INT(ebus_publish_ex(m, &v, sizeof v, EBUS_FULL_FAIL), EBUS_ERR_RESERVED);
	CHECK_EQ_INT(ebus_publish_ref(m, &v, sizeof v, NULL, NULL), EBUS_ERR_RESERVED);
	CHECK_EQ_INT(ebus_publish_name(b, "$ebus.custom", &v, sizeof v), EBUS_ERR_RESERVED);
	CHECK_EQ_INT(ebus_publish_name(b, "$ebus.never.interned", &v, sizeof v), EBUS_ERR_RESERVED);
	/* "$ebus" itself and "$ebusx.y" are ordinary names */
	CHECK_OK(ebus_topic(b, "$ebusx.y", &t));
	CHECK_OK(ebus_publish(t, &v, sizeof v));
	CHECK_OK(ebus_flush(b, 0));
	CHECK_EQ_INT(all.n, 1);
	CHECK_EQ_INT(meta.n, 0);
	ebus_stats_t st = tu_stats(b);
	CHECK_EQ_U64(st.published, 1);
	/* ">" never matched "$ebus.custom": its array holds only "$ebus.>" */
	CHECK_OK(ebus_unsubscribe(b, ia));
	CHECK_OK(ebus_unsubscribe(b, im));
	ebus_destroy(b);
}

/* ---- overlap detector ---------------------------------------------------------- */

typedef struct overlap {
	_Atomic int inside;
	_Atomic uint64_t overlaps, calls;
	uint64_t plain_calls; /* written without atomics: TSan sees any overlap */
	uint64_t per_topic[8];
} overlap;

static int overlap_handler(const ebus_event_t *ev, void *ctx)
{
	overlap *o = ctx;
	if (atomic_fetch_add(&o->inside, 1) != 0)
		atomic_fetch_add(&o->overlaps, 1);
	const char *name = ebus_topic_name(ev->topic);
	o->per_topic[name[strlen(name) - 1] - '0']++;
	o->plain_calls++;
	for (volatile int spin = 0; spin < 200; spin++)
		;
	atomic_fetch_add(&o->calls, 1);
	atomic_fetch_sub(&o->inside, 1);
	return 0;
}

typedef struct ov_pub {
	ebus_topic_t **topics;
	uint64_t n;
} ov_pub;

static void *ov_publisher(void *arg)
{
	ov_pub *p = arg;
	for (uint64_t i = 0; i < p->n; i++) {
		uint32_t v = (uint32_t)i;
		CHECK_OK(ebus_publish(p->topics[i % 8], &v, sizeof v));
	}
	return NULL;
}

static void test_overlap(const bus_kind *k)
{
	const unsigned npub = 4;
	const uint64_t per = tu_param("EBUS_STRESS_OVERLAP_EVENTS", 20000, 2000000);
	ebus_t *b = make_bus(k->nexec, k->sync);
	ebus_topic_t *topics[8];
	static overlap o;
	ebus_sub_id id;
	pthread_t th[4];
	ov_pub p = {topics, per};

	memset(&o, 0, sizeof o);
	CHECK_OK(ebus_subscribe_pattern(b, "ov.*", overlap_handler, &o, 0, &id));
	for (unsigned i = 0; i < 8; i++) {
		char name[8];
		snprintf(name, sizeof name, "ov.%u", i);
		CHECK_OK(ebus_topic_on(b, name, i % k->nexec, &topics[i]));
	}
	for (unsigned i = 0; i < npub; i++)
		tu_thread_create(&th[i], ov_publisher, &p);
	for (unsigned i = 0; i < npub; i++)
		tu_thread_join(th[i]);
	CHECK_OK(ebus_flush(b, 0));
	CHECK_EQ_U64(atomic_load(&o.overlaps), 0);
	CHECK_EQ_U64(atomic_load(&o.calls), npub * per);
	CHECK_EQ_U64(o.plain_calls, npub * per);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ_U64(o.per_topic[i], npub * per / 8);
	CHECK_OK(ebus_unsubscribe(b, id));
	ebus_destroy(b);
}

/* ---- a serial subscription's holder blocking on its waiter --------------------- */

static tu_gate dl_gate;
static ebus_topic_t *dl_fill;
static _Atomic int dl_rc = -1;
static _Atomic unsigned dl_accepted;

static int dl_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ctx;
	if (strcmp(ebus_topic_name(ev->topic), "dl.x") != 0)
		return 0;
	tu_gate_pass(&dl_gate); /* until dl.y is queued for executor 1 */
	for (uint32_t i = 0; i < 64; i++) {
		int rc = ebus_publish_ex(dl_fill, &i, sizeof i, EBUS_FULL_BLOCK);
		if (rc != EBUS_OK) {
			atomic_store(&dl_rc, rc);
			return 0;
		}
		atomic_fetch_add(&dl_accepted, 1);
	}
	atomic_store(&dl_rc, EBUS_OK);
	return 0;
}

static _Atomic unsigned fill_seen;

static int fill_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	atomic_fetch_add(&fill_seen, 1);
	return 0;
}

static void test_serial_deadlock(void)
{
	ebus_config_t cfg = {0};
	ebus_t *b;
	ebus_topic_t *x, *y;
	ebus_sub_id id, fid;
	uint32_t v = 0;

	cfg.executors = 2;
	cfg.lane_capacity = 4;
	CHECK_OK(ebus_create(&cfg, &b));
	tu_gate_init(&dl_gate);
	CHECK_OK(ebus_topic_on(b, "dl.x", 0, &x));
	CHECK_OK(ebus_topic_on(b, "dl.y", 1, &y));
	CHECK_OK(ebus_topic_on(b, "fill", 1, &dl_fill));
	CHECK_OK(ebus_subscribe(dl_fill, fill_handler, NULL, &fid));
	CHECK_OK(ebus_subscribe_pattern(b, "dl.*", dl_handler, NULL, 0, &id));
	CHECK_OK(ebus_publish(x, &v, sizeof v));
	tu_gate_wait_entered(&dl_gate, 1); /* executor 0 holds the guard */
	CHECK_OK(ebus_publish(y, &v, sizeof v)); /* executor 1 will wait for it */
	tu_gate_open(&dl_gate);
	CHECK_OK(ebus_flush(b, 0));
	CHECK_EQ_INT(atomic_load(&dl_rc), EBUS_ERR_DEADLOCK);
	CHECK_EQ_INT(atomic_load(&fill_seen), atomic_load(&dl_accepted));
	CHECK(atomic_load(&dl_accepted) >= 3); /* the lane's capacity - 1 fit */
	CHECK_OK(ebus_unsubscribe(b, id));
	ebus_destroy(b);
	tu_gate_destroy(&dl_gate);
}

int main(void)
{
	static const bus_kind kinds[] = {{1, 0}, {3, 0}, {3, 1}};
	static const char *const names[] = {"async, 1 executor", "async, 3 executors",
	                                    "sync, 3 stripes"};
	for (unsigned i = 0; i < 3; i++) {
		TU_RUN1(test_pattern_reach, &kinds[i], names[i]);
		TU_RUN1(test_order_and_duplicates, &kinds[i], names[i]);
		TU_RUN1(test_unordered, &kinds[i], names[i]);
		TU_RUN1(test_reserved, &kinds[i], names[i]);
		TU_RUN1(test_overlap, &kinds[i], names[i]);
	}
	TU_RUN(test_serial_deadlock);
	return tu_finish("test_wildcards");
}
