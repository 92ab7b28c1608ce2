/*
 * The NATS bridge against a real nats-server on a loopback port
 * (nats_server.h). Two buses in this process, each with its bridge on the
 * same server, stand for two processes: events cross the server both
 * ways, in order, exactly once, at every size up to the server's maximum
 * payload; a ring of bridges re-exports nothing it imported; subjects
 * ebus cannot name are counted, never interned; bad input gets its code.
 */
#define _GNU_SOURCE
#include "nats_server.h"

#include <ebus/nats.h>
#include <nats/nats.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); \
			failures++;                                                      \
			exit(1);                                                         \
		}                                                                        \
	} while (0)
#define CHECK_RC(expr, want)                                                             \
	do {                                                                             \
		int rc_ = (expr);                                                        \
		if (rc_ != (want)) {                                                     \
			fprintf(stderr, "%s:%d: %s = %s, want %s\n", __FILE__, __LINE__, #expr, \
			        ebus_errname(rc_), ebus_errname(want));                  \
			exit(1);                                                         \
		}                                                                        \
	} while (0)

static ns_server server;

/* A failed CHECK exits: the server goes with the test. */
static void stop_server(void)
{
	ns_stop(&server, 1);
}

/* ---- a recording subscriber ---------------------------------------------------- */

typedef struct rec {
	pthread_mutex_t m;
	pthread_cond_t cv;
	uint64_t n;
	uint64_t next;  /* the value the next event must carry */
	int bad;        /* out of order, wrong bytes or wrong size */
	size_t last_len;
} rec;

static void rec_init(rec *r)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->m, NULL);
	pthread_cond_init(&r->cv, NULL);
}

/* Payload i: 8 bytes of i, then bytes derived from i (or shorter). */
static void fill(unsigned char *p, size_t len, uint64_t i)
{
	for (size_t k = 0; k < len; k++)
		p[k] = (unsigned char)(i * 131 + k * 7);
	if (len >= 8)
		memcpy(p, &i, 8);
}

static int on_event(const ebus_event_t *ev, void *ctx)
{
	rec *r = ctx;
	const unsigned char *d = ev->data;
	pthread_mutex_lock(&r->m);
	if (ev->len >= 8) {
		uint64_t v;
		memcpy(&v, d, 8);
		if (v != r->next)
			r->bad = 1;
		for (size_t k = 8; k < ev->len; k++)
			if (d[k] != (unsigned char)(v * 131 + k * 7)) {
				r->bad = 1;
				break;
			}
	}
	r->next++;
	r->n++;
	r->last_len = ev->len;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->m);
	return 0;
}

/* Waits until r has seen `want` events (deadline 10 s: a lost event fails
 * the test, it does not hang it). */
static int rec_wait(rec *r, uint64_t want)
{
	struct timespec ts;
	int ok;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&r->m);
	while (r->n < want && pthread_cond_timedwait(&r->cv, &r->m, &ts) == 0)
		;
	ok = r->n >= want;
	pthread_mutex_unlock(&r->m);
	return ok;
}

static ebus_t *new_bus(void)
{
	ebus_config_t cfg = {0};
	ebus_t *bus;
	cfg.executors = 2;
	cfg.max_payload = 2u << 20;
	CHECK_RC(ebus_create(&cfg, &bus), EBUS_OK);
	return bus;
}

/* A started bridge: its NATS subscription is live at the server when
 * ebus_nats_start returns (it flushes), so what others publish from then
 * on reaches it. */
static ebus_nats_bridge_t *new_bridge(ebus_t *bus, const char *const *ex, const char *const *im)
{
	const char *servers[] = {server.url, NULL};
	ebus_nats_config_t c = {0};
	ebus_nats_bridge_t *b;
	c.servers = servers;
	c.prefix = "t";
	c.exports = ex;
	c.imports = im;
	c.heartbeat_ns = 20000000;
	c.import_block_ns = 20000000000u; /* these tests block, not lose: a slow
	                                     (sanitized) executor must not time out */
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_OK);
	CHECK_RC(ebus_nats_start(b), EBUS_OK);
	return b;
}

/* ---- tests ------------------------------------------------------------------------ */

/* A exports x.>, B imports it; B exports y.>, A imports it: N events each
 * way arrive in order, exactly once, and the counters balance. */
static void both_ways(void)
{
	enum { N = 5000 };
	const char *x[] = {"x.>", NULL}, *y[] = {"y.>", NULL};
	ebus_t *ba = new_bus(), *bb = new_bus();
	ebus_topic_t *tx, *ty, *rx, *ry;
	ebus_sub_id id;
	rec at_b, at_a;
	ebus_nats_stats_t sa, sb;
	rec_init(&at_b);
	rec_init(&at_a);
	CHECK_RC(ebus_topic(ba, "x.orders", &tx), EBUS_OK);
	CHECK_RC(ebus_topic(bb, "y.fills", &ty), EBUS_OK);
	CHECK_RC(ebus_topic(bb, "x.orders", &rx), EBUS_OK);
	CHECK_RC(ebus_topic(ba, "y.fills", &ry), EBUS_OK);
	CHECK_RC(ebus_subscribe(rx, on_event, &at_b, &id), EBUS_OK);
	CHECK_RC(ebus_subscribe(ry, on_event, &at_a, &id), EBUS_OK);
	ebus_nats_bridge_t *a = new_bridge(ba, x, y), *b = new_bridge(bb, y, x);
	for (uint64_t i = 0; i < N; i++) {
		unsigned char p[32];
		fill(p, sizeof p, i);
		CHECK_RC(ebus_publish(tx, p, sizeof p), EBUS_OK);
		CHECK_RC(ebus_publish(ty, p, sizeof p), EBUS_OK);
	}
	CHECK_RC(ebus_flush(ba, 0), EBUS_OK);
	CHECK_RC(ebus_flush(bb, 0), EBUS_OK);
	CHECK_RC(ebus_nats_flush(a, 0), EBUS_OK);
	CHECK_RC(ebus_nats_flush(b, 0), EBUS_OK);
	CHECK(rec_wait(&at_b, N));
	CHECK(rec_wait(&at_a, N));
	CHECK(!at_b.bad && !at_a.bad);
	ebus_nats_stop(a);
	ebus_nats_stop(b);
	CHECK_RC(ebus_nats_stats(a, &sa), EBUS_OK);
	CHECK_RC(ebus_nats_stats(b, &sb), EBUS_OK);
	printf("   A: exported %llu imported %llu gaps %llu; B: exported %llu imported %llu gaps %llu\n",
	       (unsigned long long)sa.exported, (unsigned long long)sa.imported,
	       (unsigned long long)sa.gaps, (unsigned long long)sb.exported,
	       (unsigned long long)sb.imported, (unsigned long long)sb.gaps);
	CHECK(sa.exported == N && sb.exported == N);
	CHECK(sa.imported == N && sb.imported == N);
	CHECK(sa.gaps + sa.duplicates + sa.reordered + sb.gaps + sb.duplicates + sb.reordered == 0);
	CHECK(sa.export_overflow + sa.export_failed + sb.export_overflow + sb.export_failed == 0);
	CHECK(at_b.n == N && at_a.n == N); /* exactly once: nothing more came */
	ebus_nats_destroy(a);
	ebus_nats_destroy(b);
	ebus_destroy(ba);
	ebus_destroy(bb);
}

/* Every size from 0 to the server's maximum payload (1 MiB, trailer
 * included) crosses intact. */
static void sizes(void)
{
	static const size_t sz[] = {0, 1, 7, 8, 31, 32, 33, 1000, 65536, 300000, (1u << 20) - 24};
	enum { NS = sizeof sz / sizeof sz[0] };
	const char *x[] = {"s.>", NULL};
	ebus_t *ba = new_bus(), *bb = new_bus();
	ebus_topic_t *tx, *rx;
	ebus_sub_id id;
	rec at_b;
	static unsigned char buf[1u << 20];
	rec_init(&at_b);
	CHECK_RC(ebus_topic(ba, "s.blob", &tx), EBUS_OK);
	CHECK_RC(ebus_topic(bb, "s.blob", &rx), EBUS_OK);
	CHECK_RC(ebus_subscribe(rx, on_event, &at_b, &id), EBUS_OK);
	ebus_nats_bridge_t *a = new_bridge(ba, x, NULL), *b = new_bridge(bb, NULL, x);
	for (unsigned k = 0; k < NS; k++) {
		fill(buf, sz[k], k);
		CHECK_RC(ebus_publish(tx, sz[k] ? buf : NULL, sz[k]), EBUS_OK);
		CHECK(rec_wait(&at_b, k + 1));
		CHECK(at_b.last_len == sz[k]);
	}
	CHECK(!at_b.bad);
	ebus_nats_destroy(a);
	ebus_nats_destroy(b);
	ebus_destroy(ba);
	ebus_destroy(bb);
}

/* A ring of three bridges that all export and import r.>: an event
 * published at A reaches B and C once each and comes back to nobody. */
static void ring_of_three(void)
{
	const char *r[] = {"r.>", NULL};
	ebus_t *bus[3];
	ebus_nats_bridge_t *br[3];
	rec got[3];
	for (int i = 0; i < 3; i++) {
		ebus_topic_t *t;
		ebus_sub_id id;
		bus[i] = new_bus();
		rec_init(&got[i]);
		CHECK_RC(ebus_topic(bus[i], "r.ring", &t), EBUS_OK);
		CHECK_RC(ebus_subscribe(t, on_event, &got[i], &id), EBUS_OK);
	}
	for (int i = 0; i < 3; i++)
		br[i] = new_bridge(bus[i], r, r);
	{
		ebus_topic_t *t;
		uint64_t v = 0;
		CHECK_RC(ebus_topic(bus[0], "r.ring", &t), EBUS_OK);
		CHECK_RC(ebus_publish(t, &v, sizeof v), EBUS_OK);
	}
	CHECK(rec_wait(&got[0], 1)); /* its own subscriber, locally */
	CHECK(rec_wait(&got[1], 1));
	CHECK(rec_wait(&got[2], 1));
	/* if B or C re-exported, A (and the other) would get it again: flush
	 * every bridge and then count */
	for (int i = 0; i < 3; i++) {
		CHECK_RC(ebus_flush(bus[i], 0), EBUS_OK);
		CHECK_RC(ebus_nats_flush(br[i], 0), EBUS_OK);
	}
	for (int i = 0; i < 3; i++)
		ebus_nats_stop(br[i]);
	for (int i = 0; i < 3; i++) {
		ebus_nats_stats_t st;
		CHECK_RC(ebus_flush(bus[i], 0), EBUS_OK);
		CHECK(got[i].n == 1);
		CHECK_RC(ebus_nats_stats(br[i], &st), EBUS_OK);
		CHECK(st.exported == (i == 0 ? 1u : 0u));
		CHECK(st.imported == (i == 0 ? 0u : 1u));
		ebus_nats_destroy(br[i]);
		ebus_destroy(bus[i]);
	}
}

/* Subjects NATS accepts and ebus cannot name are counted as unmappable and
 * interned nowhere; messages without a trailer (a plain NATS publisher)
 * are imported as they are. */
static void unmappable(void)
{
	const char *all[] = {">", NULL};
	const char *bad[] = {"t.a*b", "t.$x", "t.caf\xc3\xa9", "t.x\x7fy", "t.a>b"};
	ebus_t *bb = new_bus();
	ebus_nats_bridge_t *b = new_bridge(bb, NULL, all);
	natsConnection *nc;
	ebus_topic_t *ok;
	ebus_sub_id id;
	ebus_nats_stats_t st;
	ebus_stats_t bs;
	rec got;
	rec_init(&got);
	CHECK_RC(ebus_topic(bb, "plain", &ok), EBUS_OK);
	CHECK_RC(ebus_subscribe(ok, on_event, &got, &id), EBUS_OK);
	CHECK(natsConnection_ConnectTo(&nc, server.url) == NATS_OK);
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(natsConnection_PublishString(nc, bad[i], "x") == NATS_OK);
	CHECK(natsConnection_PublishString(nc, "t.plain", "12345678") == NATS_OK);
	CHECK(natsConnection_FlushTimeout(nc, 5000) == NATS_OK);
	CHECK(rec_wait(&got, 1));
	ebus_nats_stop(b);
	CHECK_RC(ebus_nats_stats(b, &st), EBUS_OK);
	CHECK(st.unmappable == sizeof bad / sizeof bad[0]);
	CHECK(st.imported == 1);
	CHECK(got.last_len == 8);
	CHECK_RC(ebus_stats(bb, -1, &bs), EBUS_OK);
	CHECK(bs.published == 1); /* the unmappable ones never reached the bus */
	natsConnection_Destroy(nc);
	ebus_nats_destroy(b);
	ebus_destroy(bb);
}

/* Polls `cond` until it holds or 20 s pass (yielding between looks: the
 * deadline bounds it, the condition decides). */
#define WAIT_FOR(cond)                                                                   \
	do {                                                                             \
		uint64_t end_ = ns_now_ms() + 20000;                                     \
		while (!(cond) && ns_now_ms() < end_)                                    \
			sched_yield();                                                   \
		CHECK(cond);                                                             \
	} while (0)

static ebus_nats_stats_t stats_of(ebus_nats_bridge_t *b)
{
	ebus_nats_stats_t st;
	CHECK_RC(ebus_nats_stats(b, &st), EBUS_OK);
	return st;
}

/* What B has accounted for of A's sequence numbers. */
static uint64_t accounted(const ebus_nats_stats_t *b)
{
	return b->imported + b->import_rejected + b->filtered + b->gaps;
}

/* A strictly increasing check at B: every value at most once. */
typedef struct seen {
	pthread_mutex_t m;
	uint64_t n, last, dup;
	int any;
} seen;

static int on_seen(const ebus_event_t *ev, void *ctx)
{
	seen *s = ctx;
	uint64_t v;
	memcpy(&v, ev->data, 8);
	pthread_mutex_lock(&s->m);
	if (s->any && v <= s->last)
		s->dup++;
	s->any = 1;
	s->last = v;
	s->n++;
	pthread_mutex_unlock(&s->m);
	return 0;
}

/* The server is killed (SIGKILL) and restarted on the same port, several
 * times, while A exports to B: both reconnect, and every event A numbered
 * is, at B, either delivered or counted lost: the invariant of nats.h
 * holds exactly once B has A's last heartbeat. */
static void kill_and_restart(void)
{
	enum { ROUNDS = 3, CHUNK = 20000 };
	const char *k[] = {"k.>", NULL};
	ebus_t *ba = new_bus(), *bb = new_bus();
	ebus_topic_t *tx, *rx;
	ebus_sub_id id;
	seen at_b;
	uint64_t v = 0;
	memset(&at_b, 0, sizeof at_b);
	pthread_mutex_init(&at_b.m, NULL);
	CHECK_RC(ebus_topic(ba, "k.stream", &tx), EBUS_OK);
	CHECK_RC(ebus_topic(bb, "k.stream", &rx), EBUS_OK);
	CHECK_RC(ebus_subscribe(rx, on_seen, &at_b, &id), EBUS_OK);
	ebus_nats_bridge_t *a = new_bridge(ba, k, NULL), *b = new_bridge(bb, NULL, k);
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < CHUNK; i++, v++)
			CHECK_RC(ebus_publish(tx, &v, sizeof v), EBUS_OK);
		/* mid-stream: the export thread is still sending this chunk */
		ns_stop(&server, 1);
		CHECK(ns_start(&server) == 0);
		WAIT_FOR(stats_of(a).reconnects >= (uint64_t)r + 1 &&
		         stats_of(b).reconnects >= (uint64_t)r + 1);
	}
	for (int i = 0; i < CHUNK; i++, v++)
		CHECK_RC(ebus_publish(tx, &v, sizeof v), EBUS_OK);
	CHECK_RC(ebus_flush(ba, 0), EBUS_OK);
	CHECK_RC(ebus_nats_flush(a, 20000000000u), EBUS_OK);
	CHECK_RC(ebus_nats_stop(a), EBUS_OK); /* its last heartbeat */
	ebus_nats_stats_t sa = stats_of(a);
	uint64_t numbered = sa.exported + sa.export_failed;
	{
		ebus_nats_stats_t now;
		WAIT_FOR((now = stats_of(b), accounted(&now) >= numbered));
	}
	CHECK_RC(ebus_flush(bb, 0), EBUS_OK);
	ebus_nats_stop(b);
	ebus_nats_stats_t sb = stats_of(b);
	printf("   %d kills; A: published %llu, exported %llu (%llu while reconnecting), "
	       "export failed %llu, overflow %llu; B: imported %llu, gaps %llu (client drops %llu), "
	       "duplicates %llu, reordered %llu, rejected %llu; disconnects A %llu B %llu, "
	       "reconnects A %llu B %llu\n",
	       ROUNDS, (unsigned long long)v, (unsigned long long)sa.exported,
	       (unsigned long long)sa.exported_reconnecting, (unsigned long long)sa.export_failed,
	       (unsigned long long)sa.export_overflow, (unsigned long long)sb.imported,
	       (unsigned long long)sb.gaps, (unsigned long long)sb.import_dropped,
	       (unsigned long long)sb.duplicates, (unsigned long long)sb.reordered,
	       (unsigned long long)sb.import_rejected, (unsigned long long)sa.disconnects,
	       (unsigned long long)sb.disconnects, (unsigned long long)sa.reconnects,
	       (unsigned long long)sb.reconnects);
	CHECK(numbered + sa.export_overflow == v);  /* every event A took is numbered or counted */
	CHECK(accounted(&sb) == numbered);          /* the invariant, exactly */
	CHECK(at_b.n == sb.imported && at_b.dup == 0); /* delivered once each, in order */
	CHECK(sa.disconnects == ROUNDS && sb.disconnects == ROUNDS);
	ebus_nats_destroy(a);
	ebus_nats_destroy(b);
	ebus_destroy(ba);
	ebus_destroy(bb);
}

/* A slow local subscriber: the import callback blocks on the full lane
 * (the bus's BLOCK policy), the NATS client's pending queue (100 here)
 * fills and drops: the drops are counted (import_dropped) and, once the
 * subscriber catches up and A's last heartbeat arrives, accounted as gaps
 * like every other loss. */
typedef struct gated {
	pthread_mutex_t m;
	pthread_cond_t cv;
	int open;
	uint64_t n;
} gated;

static int on_gated(const ebus_event_t *ev, void *ctx)
{
	gated *g = ctx;
	(void)ev;
	pthread_mutex_lock(&g->m);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->m);
	g->n++;
	pthread_mutex_unlock(&g->m);
	return 0;
}

/* The import backpressure tests' two ends: A (bus ba, a started bridge)
 * exports `k`; bus bb (one executor, 16 slots, `policy`) has a gated
 * subscriber on `topic`, and *c is its importer's config of `k` with a
 * 20 ms heartbeat, for the test to finish. */
static const char *gated_servers[2];
static void gated_setup(const char *const *k, const char *topic, ebus_full_policy policy, ebus_t **ba,
                        ebus_t **bb, ebus_topic_t **tx, gated *g, ebus_nats_bridge_t **a,
                        ebus_nats_config_t *c)
{
	ebus_config_t bc = {0};
	ebus_topic_t *rx;
	ebus_sub_id id;
	memset(g, 0, sizeof *g);
	pthread_mutex_init(&g->m, NULL);
	pthread_cond_init(&g->cv, NULL);
	*ba = new_bus();
	bc.executors = 1;
	bc.lane_capacity = 16;
	bc.full_policy = policy;
	CHECK_RC(ebus_create(&bc, bb), EBUS_OK);
	CHECK_RC(ebus_topic(*ba, topic, tx), EBUS_OK);
	CHECK_RC(ebus_topic(*bb, topic, &rx), EBUS_OK);
	CHECK_RC(ebus_subscribe(rx, on_gated, g, &id), EBUS_OK);
	*a = new_bridge(*ba, k, NULL);
	gated_servers[0] = server.url;
	memset(c, 0, sizeof *c);
	c->servers = gated_servers;
	c->prefix = "t";
	c->imports = k;
	c->heartbeat_ns = 20000000;
}

static void gate_open(gated *g)
{
	pthread_mutex_lock(&g->m);
	g->open = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->m);
}

static void slow_subscriber(void)
{
	enum { N = 5000 };
	const char *k[] = {"slow.>", NULL};
	ebus_nats_config_t c;
	ebus_t *ba, *bb;
	ebus_topic_t *tx;
	ebus_nats_bridge_t *a, *b;
	gated g;
	uint64_t v;
	gated_setup(k, "slow.t", EBUS_FULL_DEFAULT, &ba, &bb, &tx, &g, &a, &c);
	c.import_pending = 100;
	CHECK_RC(ebus_nats_create(bb, &c, &b), EBUS_OK);
	CHECK_RC(ebus_nats_start(b), EBUS_OK);
	for (v = 0; v < N; v++)
		CHECK_RC(ebus_publish(tx, &v, sizeof v), EBUS_OK);
	CHECK_RC(ebus_flush(ba, 0), EBUS_OK);
	CHECK_RC(ebus_nats_flush(a, 0), EBUS_OK);
	/* B's client has everything it will get: the rest was dropped */
	WAIT_FOR(stats_of(b).import_dropped > 0);
	gate_open(&g);
	/* A's periodic heartbeat, once B has caught up, tells it the tail */
	ebus_nats_stats_t sa = stats_of(a), sb;
	{
		ebus_nats_stats_t now;
		WAIT_FOR((now = stats_of(b), accounted(&now) >= sa.exported + sa.export_failed));
	}
	CHECK_RC(ebus_nats_stop(a), EBUS_OK);
	CHECK_RC(ebus_flush(bb, 0), EBUS_OK);
	ebus_nats_stop(b);
	sb = stats_of(b);
	printf("   exported %llu; imported %llu, client drops %llu, gaps %llu\n",
	       (unsigned long long)sa.exported, (unsigned long long)sb.imported,
	       (unsigned long long)sb.import_dropped, (unsigned long long)sb.gaps);
	CHECK(sa.exported == N);
	CHECK(accounted(&sb) == N);
	/* every gap is a drop here (no server was killed); the client's drops
	 * are messages, heartbeats among them */
	CHECK(sb.import_dropped > 0 && sb.gaps > 0 && sb.gaps <= sb.import_dropped);
	CHECK(g.n == sb.imported);
	ebus_nats_destroy(a);
	ebus_nats_destroy(b);
	ebus_destroy(ba);
	ebus_destroy(bb);
}

/* Wildcards, both ways, as NATS would match them: import patterns pick
 * what a raw NATS publisher sends under the prefix (`*` one token, `>` one
 * or more), export patterns pick the local topics a raw NATS subscriber
 * on t.> sees. */
static int on_count(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
	return 0;
}

static void wildcards(void)
{
	const char *im[] = {"w.*.x", "w.y.>", NULL}, *ex[] = {"e.*", "f.>", NULL};
	static const struct {
		const char *subject;
		int imported;
	} in[] = {{"t.w.a.x", 1}, {"t.w.a.b.x", 0}, {"t.w.a", 0}, {"t.w.y", 0},
	          {"t.w.y.z", 1}, {"t.w.y.z.q", 1}, {"t.v.a.x", 0}};
	static const struct {
		const char *topic;
		int exported;
	} out[] = {{"e.a", 1}, {"e.a.b", 0}, {"e", 0}, {"f", 0}, {"f.a", 1}, {"f.a.b", 1}, {"g.a", 0}};
	ebus_t *bus = new_bus();
	ebus_nats_bridge_t *b;
	ebus_nats_stats_t st;
	natsConnection *nc;
	natsSubscription *sub;
	natsMsg *m;
	ebus_sub_id id;
	_Atomic uint64_t got = 0;
	uint64_t want_in = 0, want_out = 0, seen = 0;
	CHECK_RC(ebus_subscribe_pattern(bus, ">", on_count, (void *)&got, EBUS_SUB_CONCURRENT, &id),
	         EBUS_OK);
	CHECK(natsConnection_ConnectTo(&nc, server.url) == NATS_OK);
	CHECK(natsConnection_SubscribeSync(&sub, nc, "t.>") == NATS_OK);
	CHECK(natsConnection_FlushTimeout(nc, 5000) == NATS_OK);
	b = new_bridge(bus, ex, im);
	for (unsigned i = 0; i < sizeof in / sizeof in[0]; i++) {
		CHECK(natsConnection_PublishString(nc, in[i].subject, "x") == NATS_OK);
		want_in += (uint64_t)in[i].imported;
	}
	CHECK(natsConnection_FlushTimeout(nc, 5000) == NATS_OK);
	WAIT_FOR((st = stats_of(b), st.imported + st.filtered == sizeof in / sizeof in[0]));
	CHECK(st.imported == want_in && st.filtered == sizeof in / sizeof in[0] - want_in);
	for (unsigned i = 0; i < sizeof out / sizeof out[0]; i++) {
		ebus_topic_t *t;
		CHECK_RC(ebus_topic(bus, out[i].topic, &t), EBUS_OK);
		CHECK_RC(ebus_publish(t, "y", 1), EBUS_OK);
		want_out += (uint64_t)out[i].exported;
	}
	CHECK_RC(ebus_flush(bus, 0), EBUS_OK);
	ebus_nats_stop(b);
	CHECK(natsConnection_FlushTimeout(nc, 5000) == NATS_OK);
	while (natsSubscription_NextMsg(&m, sub, 1) == NATS_OK) {
		const char *subj = natsMsg_GetSubject(m);
		int ok = 0;
		if (strcmp(subj, "t.$hb") == 0) { /* the bridge's heartbeats */
			natsMsg_Destroy(m);
			continue;
		}
		for (unsigned i = 0; i < sizeof out / sizeof out[0]; i++)
			ok |= out[i].exported && strcmp(subj + 2, out[i].topic) == 0;
		for (unsigned i = 0; i < sizeof in / sizeof in[0]; i++)
			ok |= strcmp(subj, in[i].subject) == 0; /* the raw publishes themselves */
		CHECK(ok);
		seen += strncmp(subj, "t.w.", 4) != 0 && strncmp(subj, "t.v.", 4) != 0;
		natsMsg_Destroy(m);
	}
	CHECK_RC(ebus_nats_stats(b, &st), EBUS_OK);
	printf("   imported %llu of %u raw subjects; exported %llu of %u topics, as seen on NATS %llu\n",
	       (unsigned long long)st.imported, (unsigned)(sizeof in / sizeof in[0]),
	       (unsigned long long)st.exported, (unsigned)(sizeof out / sizeof out[0]),
	       (unsigned long long)seen);
	CHECK(st.exported == want_out && seen == want_out);
	CHECK(atomic_load(&got) == want_in + sizeof out / sizeof out[0]); /* imports + local */
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(nc);
	ebus_nats_destroy(b);
	ebus_destroy(bus);
}

/* Meta topics go out only when asked: a bus with meta events exporting
 * ">" sends none of "$ebus." (a raw NATS subscriber on t.$ebus.> gets
 * nothing), and one exporting "$ebus.>" as well sends them. */
static void meta_topics(void)
{
	const char *plain[] = {">", NULL}, *asked[] = {">", "$ebus.>", NULL};
	for (int round = 0; round < 2; round++) {
		ebus_config_t cfg = {0};
		ebus_t *bus;
		ebus_topic_t *t;
		ebus_sub_id id;
		ebus_nats_bridge_t *a;
		ebus_nats_stats_t st;
		natsConnection *nc;
		natsSubscription *sub;
		natsMsg *m;
		uint64_t meta = 0;
		rec r;
		rec_init(&r);
		cfg.executors = 2;
		cfg.meta_events = 1;
		CHECK_RC(ebus_create(&cfg, &bus), EBUS_OK);
		CHECK(natsConnection_ConnectTo(&nc, server.url) == NATS_OK);
		CHECK(natsConnection_SubscribeSync(&sub, nc, "t.$ebus.>") == NATS_OK);
		CHECK(natsConnection_FlushTimeout(nc, 5000) == NATS_OK);
		a = new_bridge(bus, round ? asked : plain, NULL);
		CHECK_RC(ebus_topic(bus, "m.x", &t), EBUS_OK);
		CHECK_RC(ebus_subscribe(t, on_event, &r, &id), EBUS_OK); /* a sub.added */
		for (uint64_t i = 0; i < 10; i++)
			CHECK_RC(ebus_publish(t, &i, sizeof i), EBUS_OK);
		CHECK_RC(ebus_flush(bus, 0), EBUS_OK);
		/* stopped: nothing more is exported (meta events such as
		 * executor.idle come on their own), and what was is at the server */
		ebus_nats_stop(a);
		/* our PONG comes after everything the server routed to us before */
		CHECK(natsConnection_FlushTimeout(nc, 5000) == NATS_OK);
		while (natsSubscription_NextMsg(&m, sub, 1) == NATS_OK) {
			meta++;
			natsMsg_Destroy(m);
		}
		CHECK_RC(ebus_nats_stats(a, &st), EBUS_OK);
		printf("   exports %s: exported %llu, meta events seen on NATS %llu\n",
		       round ? "> and $ebus.>" : ">", (unsigned long long)st.exported,
		       (unsigned long long)meta);
		CHECK(round ? meta >= 1 && st.exported == 10 + meta : meta == 0 && st.exported == 10);
		natsSubscription_Destroy(sub);
		natsConnection_Destroy(nc);
		ebus_nats_destroy(a);
		ebus_destroy(bus);
	}
}

/* ---- two processes ------------------------------------------------------------------ */

/* Event i of the two-process exchange: its size (every one from 0 to the
 * server's maximum payload, trailer included) and its bytes (fill). */
static size_t size_of(uint64_t i)
{
	static const size_t psz[] = {0, 1, 7, 8, 31, 32, 33, 100, 1000, 4096, 65536};
	if (i % 500 == 499)
		return (1u << 20) - 24;
	return psz[i % (sizeof psz / sizeof psz[0])];
}

/* In order and intact: the k-th event is event k, of its size. */
static int on_sized(const ebus_event_t *ev, void *ctx)
{
	rec *r = ctx;
	const unsigned char *d = ev->data;
	pthread_mutex_lock(&r->m);
	if (ev->len != size_of(r->n))
		r->bad = 1;
	for (size_t k = 0; k < ev->len && !r->bad; k++) {
		unsigned char want = k < 8 && ev->len >= 8 ? ((const unsigned char *)&r->n)[k]
		                                           : (unsigned char)(r->n * 131 + k * 7);
		if (d[k] != want)
			r->bad = 1;
	}
	r->n++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->m);
	return 0;
}

enum { PEER_N = 2000 };

/* Publishes PEER_N sized events on `topic` of bus, through bridge b. */
static void send_sized(ebus_t *bus, ebus_nats_bridge_t *b, const char *topic)
{
	static unsigned char buf[1u << 20];
	ebus_topic_t *t;
	CHECK_RC(ebus_topic(bus, topic, &t), EBUS_OK);
	for (uint64_t i = 0; i < PEER_N; i++) {
		size_t len = size_of(i);
		fill(buf, len, i);
		CHECK_RC(ebus_publish(t, len ? buf : NULL, len), EBUS_OK);
	}
	CHECK_RC(ebus_flush(bus, 0), EBUS_OK);
	CHECK_RC(ebus_nats_flush(b, 0), EBUS_OK);
}

/* The other process (this binary run with --peer URL): exports pb.>,
 * imports pa.>; says "ready" once live, sends its events, waits for the
 * parent's, and exits 0 only if all came in order, intact, exactly once. */
static int peer_main(const char *url)
{
	const char *ex[] = {"pb.>", NULL}, *im[] = {"pa.>", NULL}, *servers[] = {url, NULL};
	ebus_nats_config_t c = {0};
	ebus_t *bus = new_bus();
	ebus_nats_bridge_t *b;
	ebus_nats_stats_t st;
	ebus_sub_id id;
	rec got;
	rec_init(&got);
	CHECK_RC(ebus_subscribe_pattern(bus, "pa.>", on_sized, &got, 0, &id), EBUS_OK);
	c.servers = servers;
	c.prefix = "t";
	c.exports = ex;
	c.imports = im;
	c.import_block_ns = 20000000000u;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_OK);
	CHECK_RC(ebus_nats_start(b), EBUS_OK);
	printf("ready\n");
	fflush(stdout);
	send_sized(bus, b, "pb.replies");
	CHECK(rec_wait(&got, PEER_N));
	CHECK_RC(ebus_flush(bus, 0), EBUS_OK);
	ebus_nats_stop(b);
	CHECK_RC(ebus_nats_stats(b, &st), EBUS_OK);
	printf("peer: got %llu, bad %d; exported %llu, imported %llu, gaps %llu, duplicates %llu\n",
	       (unsigned long long)got.n, got.bad, (unsigned long long)st.exported,
	       (unsigned long long)st.imported, (unsigned long long)st.gaps,
	       (unsigned long long)st.duplicates);
	CHECK(!got.bad && got.n == PEER_N && st.imported == PEER_N && st.exported == PEER_N);
	CHECK(st.gaps + st.duplicates + st.reordered == 0);
	ebus_nats_destroy(b);
	ebus_destroy(bus);
	return 0;
}

/* Two processes exchange PEER_N events each way through the server (the
 * peer is this binary, exec'd afresh): per-publisher order, every size up
 * to the server's maximum payload, exactly once, both ways. */
static void two_processes(void)
{
	const char *ex[] = {"pa.>", NULL}, *im[] = {"pb.>", NULL};
	ebus_t *bus = new_bus();
	ebus_sub_id id;
	rec got;
	char exe[4096], line[512];
	int out[2], st;
	pid_t pid;
	ssize_t n;
	posix_spawn_file_actions_t fa;
	rec_init(&got);
	CHECK_RC(ebus_subscribe_pattern(bus, "pb.>", on_sized, &got, 0, &id), EBUS_OK);
	ebus_nats_bridge_t *b = new_bridge(bus, ex, im);
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	CHECK(n > 0);
	exe[n] = '\0';
	char *argv[] = {exe, "--peer", server.url, NULL};
	CHECK(pipe(out) == 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	CHECK(posix_spawn(&pid, exe, &fa, NULL, argv, environ) == 0);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	{ /* its "ready": its subscription is live at the server */
		struct pollfd p = {out[0], POLLIN, 0};
		CHECK(poll(&p, 1, 20000) == 1);
		n = read(out[0], line, sizeof line - 1);
		CHECK(n > 0);
		line[n] = '\0';
		CHECK(strstr(line, "ready"));
	}
	send_sized(bus, b, "pa.requests");
	CHECK(rec_wait(&got, PEER_N));
	CHECK(waitpid(pid, &st, 0) == pid);
	n = read(out[0], line, sizeof line - 1);
	line[n > 0 ? n : 0] = '\0';
	printf("   %u events each way; %s", PEER_N, n > 0 ? line : "(the peer said nothing)\n");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_RC(ebus_flush(bus, 0), EBUS_OK);
	CHECK(!got.bad && got.n == PEER_N); /* nothing more came */
	close(out[0]);
	ebus_nats_destroy(b);
	ebus_destroy(bus);
}

/* ---- a ring of three processes ------------------------------------------------------ */

/* Each member exports and imports r.> and publishes RING_K events on r.X
 * (X its name, a, b or c); each must see every other member's events once,
 * in order, its own only locally, and export exactly its own RING_K. */
enum { RING_K = 1000 };

typedef struct ring_member {
	pthread_mutex_t m;
	pthread_cond_t cv;
	char name;
	uint64_t next[3], foreign, own;
	int bad;
	ebus_t *bus;
	ebus_nats_bridge_t *b;
} ring_member;

static int on_ring(const ebus_event_t *ev, void *ctx)
{
	ring_member *r = ctx;
	char from = ebus_topic_name(ev->topic)[2];
	uint64_t v;
	memcpy(&v, ev->data, 8);
	pthread_mutex_lock(&r->m);
	if (from < 'a' || from > 'c' || v != r->next[from - 'a'])
		r->bad = 1;
	else
		r->next[from - 'a']++;
	if (from == r->name)
		r->own++;
	else
		r->foreign++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->m);
	return 0;
}

static void ring_start(ring_member *r, char name, const char *url)
{
	const char *k[] = {"r.>", NULL}, *servers[] = {url, NULL};
	ebus_nats_config_t c = {0};
	ebus_sub_id id;
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->m, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->name = name;
	r->bus = new_bus();
	CHECK_RC(ebus_subscribe_pattern(r->bus, "r.>", on_ring, r, 0, &id), EBUS_OK);
	c.servers = servers;
	c.prefix = "t";
	c.exports = k;
	c.imports = k;
	c.import_block_ns = 20000000000u;
	CHECK_RC(ebus_nats_create(r->bus, &c, &r->b), EBUS_OK);
	CHECK_RC(ebus_nats_start(r->b), EBUS_OK);
}

/* Publishes this member's events, waits for the other two's, stops, and
 * checks; returns the counters line. */
static const char *ring_run(ring_member *r)
{
	static char line[256];
	char topic[] = "r.x";
	ebus_topic_t *t;
	ebus_nats_stats_t st;
	struct timespec ts;
	int ok;
	topic[2] = r->name;
	CHECK_RC(ebus_topic(r->bus, topic, &t), EBUS_OK);
	for (uint64_t i = 0; i < RING_K; i++)
		CHECK_RC(ebus_publish(t, &i, sizeof i), EBUS_OK);
	CHECK_RC(ebus_flush(r->bus, 0), EBUS_OK);
	CHECK_RC(ebus_nats_flush(r->b, 0), EBUS_OK);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	pthread_mutex_lock(&r->m);
	while (r->foreign < 2 * RING_K && pthread_cond_timedwait(&r->cv, &r->m, &ts) == 0)
		;
	pthread_mutex_unlock(&r->m);
	CHECK_RC(ebus_flush(r->bus, 0), EBUS_OK);
	ebus_nats_stop(r->b);
	CHECK_RC(ebus_nats_stats(r->b, &st), EBUS_OK);
	pthread_mutex_lock(&r->m);
	ok = !r->bad && r->foreign == 2 * RING_K && r->own == RING_K;
	snprintf(line, sizeof line, "%c: own %llu, from the others %llu; exported %llu, imported %llu\n",
	         r->name, (unsigned long long)r->own, (unsigned long long)r->foreign,
	         (unsigned long long)st.exported, (unsigned long long)st.imported);
	pthread_mutex_unlock(&r->m);
	if (!ok || st.exported != RING_K || st.imported != 2 * RING_K) {
		fprintf(stderr, "ring member %s", line);
		CHECK(0); /* a loop would show as more exported or imported */
	}
	ebus_nats_destroy(r->b);
	ebus_destroy(r->bus);
	return line;
}

/* A ring member in its own process (--ring URL NAME): "ready" once live,
 * then waits for "go" on stdin. */
static int ring_peer_main(const char *url, char name)
{
	ring_member r;
	char go[8];
	ring_start(&r, name, url);
	printf("ready\n");
	fflush(stdout);
	CHECK(read(0, go, sizeof go) > 0);
	fputs(ring_run(&r), stdout);
	return 0;
}

static void ring_processes(void)
{
	ring_member r;
	char exe[4096], buf[512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	int in[2][2], out[2][2];
	pid_t pid[2];
	CHECK(n > 0);
	exe[n] = '\0';
	ring_start(&r, 'a', server.url);
	for (int k = 0; k < 2; k++) {
		char name[2] = {(char)('b' + k), 0};
		char *argv[] = {exe, "--ring", server.url, name, NULL};
		posix_spawn_file_actions_t fa;
		struct pollfd p;
		CHECK(pipe(in[k]) == 0 && pipe(out[k]) == 0);
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, in[k][0], 0);
		posix_spawn_file_actions_adddup2(&fa, out[k][1], 1);
		posix_spawn_file_actions_addclose(&fa, in[k][1]);
		posix_spawn_file_actions_addclose(&fa, out[k][0]);
		CHECK(posix_spawn(&pid[k], exe, &fa, NULL, argv, environ) == 0);
		posix_spawn_file_actions_destroy(&fa);
		close(in[k][0]);
		close(out[k][1]);
		p.fd = out[k][0];
		p.events = POLLIN;
		CHECK(poll(&p, 1, 20000) == 1 && read(out[k][0], buf, sizeof buf) > 0 &&
		      memcmp(buf, "ready", 5) == 0);
	}
	for (int k = 0; k < 2; k++) /* all three are live: go */
		CHECK(write(in[k][1], "go\n", 3) == 3);
	printf("   %s", ring_run(&r));
	for (int k = 0; k < 2; k++) {
		int st;
		CHECK(waitpid(pid[k], &st, 0) == pid[k]);
		n = read(out[k][0], buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = '\0';
		printf("   %s", n > 0 ? buf : "(a member said nothing)\n");
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		close(in[k][1]);
		close(out[k][0]);
	}
}

/* Backpressure on import. B's only subscriber is stuck in its handler, so
 * B's lane fills. Under the bus's BLOCK policy (which never gives up on
 * this bus) each import waits at most import_block_ns and is then counted
 * as import_timeout; under an import_policy of FAIL it is counted as
 * import_full at once. Either way the NATS client's thread goes on: B
 * accounts for all of A's events while the subscriber is still stuck, and
 * once it is let go it gets exactly the imported ones. */
static void bounded_import_policy(ebus_full_policy policy)
{
	enum { N = 500 };
	const char *k[] = {"bp.>", NULL};
	ebus_nats_config_t c;
	ebus_t *ba, *bb;
	ebus_topic_t *tx;
	ebus_nats_bridge_t *a, *b;
	ebus_nats_stats_t sa, sb;
	gated g;
	uint64_t v;
	/* the bus blocks (block_timeout_ns 0: for ever) */
	gated_setup(k, "bp.t", EBUS_FULL_BLOCK, &ba, &bb, &tx, &g, &a, &c);
	c.import_policy = policy;
	c.import_block_ns = 1000000; /* 1 ms */
	CHECK_RC(ebus_nats_create(bb, &c, &b), EBUS_OK);
	CHECK_RC(ebus_nats_start(b), EBUS_OK);
	for (v = 0; v < N; v++)
		CHECK_RC(ebus_publish(tx, &v, sizeof v), EBUS_OK);
	CHECK_RC(ebus_flush(ba, 0), EBUS_OK);
	CHECK_RC(ebus_nats_flush(a, 0), EBUS_OK);
	sa = stats_of(a);
	/* all of it accounted for with the subscriber still stuck */
	WAIT_FOR((sb = stats_of(b), accounted(&sb) >= sa.exported));
	pthread_mutex_lock(&g.m);
	CHECK(g.n == 0);
	pthread_mutex_unlock(&g.m);
	gate_open(&g);
	CHECK_RC(ebus_nats_stop(a), EBUS_OK);
	ebus_nats_stop(b);
	CHECK_RC(ebus_flush(bb, 0), EBUS_OK);
	sb = stats_of(b);
	printf("   %s: exported %llu; imported %llu, rejected %llu (full %llu, timed out %llu), "
	       "gaps %llu, client drops %llu\n",
	       policy == EBUS_FULL_FAIL ? "FAIL" : "BLOCK for 1 ms", (unsigned long long)sa.exported,
	       (unsigned long long)sb.imported, (unsigned long long)sb.import_rejected,
	       (unsigned long long)sb.import_full, (unsigned long long)sb.import_timeout,
	       (unsigned long long)sb.gaps, (unsigned long long)sb.import_dropped);
	CHECK(sa.exported == N);
	CHECK(accounted(&sb) == N && sb.gaps == 0 && sb.import_dropped == 0);
	CHECK(sb.import_rejected > 0 && sb.imported + sb.import_rejected == N);
	if (policy == EBUS_FULL_FAIL)
		CHECK(sb.import_full == sb.import_rejected && sb.import_timeout == 0);
	else
		CHECK(sb.import_timeout == sb.import_rejected && sb.import_full == 0);
	CHECK(g.n == sb.imported); /* exactly the imported ones reached the subscriber */
	ebus_nats_destroy(a);
	ebus_nats_destroy(b);
	ebus_destroy(ba);
	ebus_destroy(bb);
}
static void bounded_import(void)
{
	bounded_import_policy(EBUS_FULL_DEFAULT); /* the bus's: BLOCK */
	bounded_import_policy(EBUS_FULL_FAIL);
}

/* A publisher that waits for room never overflows a small export buffer:
 * after each wait at most M events are queued, the lane holds at most
 * L - 1 more and PACE are published before the next wait, and
 * M + L + PACE <= E. Exactly once, in order, at the importer. */
static void export_wait(void)
{
	enum { N = 20000, E = 256, M = 64, L = 64, PACE = 64 };
	const char *x[] = {"ew.>", NULL}, *servers[] = {server.url, NULL};
	ebus_config_t bc = {0};
	ebus_nats_config_t c = {0};
	ebus_t *ba, *bb = new_bus();
	ebus_nats_bridge_t *a, *b;
	ebus_topic_t *tx, *rx;
	ebus_sub_id id;
	ebus_nats_stats_t sa, sb;
	rec at_b;
	bc.executors = 1;
	bc.lane_capacity = L;
	CHECK_RC(ebus_create(&bc, &ba), EBUS_OK);
	c.servers = servers;
	c.prefix = "t";
	c.exports = x;
	c.export_buffer = E;
	CHECK_RC(ebus_nats_create(ba, &c, &a), EBUS_OK);
	/* not started: nothing is queued, nothing to wait for */
	CHECK_RC(ebus_nats_export_wait(a, 0, 1), EBUS_OK);
	CHECK_RC(ebus_nats_start(a), EBUS_OK);
	rec_init(&at_b);
	CHECK_RC(ebus_topic(ba, "ew.ticks", &tx), EBUS_OK);
	CHECK_RC(ebus_topic(bb, "ew.ticks", &rx), EBUS_OK);
	CHECK_RC(ebus_subscribe(rx, on_event, &at_b, &id), EBUS_OK);
	b = new_bridge(bb, NULL, x);
	for (uint64_t i = 0; i < N; i++) {
		unsigned char p[32];
		if (i % PACE == 0)
			CHECK_RC(ebus_nats_export_wait(a, M, EBUS_FOREVER), EBUS_OK);
		fill(p, sizeof p, i);
		CHECK_RC(ebus_publish(tx, p, sizeof p), EBUS_OK);
	}
	CHECK_RC(ebus_flush(ba, 0), EBUS_OK);
	CHECK_RC(ebus_nats_export_wait(a, 0, EBUS_FOREVER), EBUS_OK); /* all handed to libnats */
	CHECK_RC(ebus_nats_flush(a, EBUS_FOREVER), EBUS_OK); /* no limit, not an instant timeout */
	CHECK(rec_wait(&at_b, N));
	ebus_nats_stop(a);
	CHECK_RC(ebus_nats_export_wait(a, 0, 1), EBUS_OK); /* stopped: returns at once */
	ebus_nats_stop(b);
	CHECK_RC(ebus_nats_stats(a, &sa), EBUS_OK);
	CHECK_RC(ebus_nats_stats(b, &sb), EBUS_OK);
	printf("   export_buffer %u: exported %llu overflow %llu; imported %llu gaps %llu\n", E,
	       (unsigned long long)sa.exported, (unsigned long long)sa.export_overflow,
	       (unsigned long long)sb.imported, (unsigned long long)sb.gaps);
	CHECK(sa.export_overflow == 0 && sa.exported == N);
	CHECK(sb.imported == N && sb.gaps + sb.duplicates + sb.reordered == 0);
	CHECK(!at_b.bad && at_b.n == N);
	CHECK_RC(ebus_nats_export_wait(NULL, 0, 0), EBUS_ERR_NULL);
	ebus_nats_destroy(a);
	ebus_nats_destroy(b);
	ebus_destroy(ba);
	ebus_destroy(bb);
}

static void bad_input(void)
{
	ebus_t *bus = new_bus();
	ebus_nats_bridge_t *b = (ebus_nats_bridge_t *)(uintptr_t)0x5eed;
	const char *servers[] = {server.url, NULL}, *none[] = {NULL};
	const char *bad_url[] = {"nats://", NULL}, *bad_url2[] = {"http://127.0.0.1:1", NULL};
	const char *bad_pat[] = {"a.>.b", NULL};
	char unreachable[64];
	const char *dead[] = {unreachable, NULL};
	ebus_nats_config_t c = {0};
	c.servers = servers;
	c.prefix = "t";
	CHECK_RC(ebus_nats_create(NULL, &c, &b), EBUS_ERR_NULL);
	CHECK_RC(ebus_nats_create(bus, NULL, &b), EBUS_ERR_NULL);
	CHECK_RC(ebus_nats_create(bus, &c, NULL), EBUS_ERR_NULL);
	c.servers = none;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_CONFIG);
	c.servers = servers;
	c.reserved_[2] = 1;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_CONFIG);
	c.reserved_[2] = 0;
	c.flags = 0x80;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_CONFIG);
	c.flags = 0;
	c.import_policy = (ebus_full_policy)9;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_CONFIG);
	c.import_policy = EBUS_FULL_DEFAULT;
	c.import_block_ns = EBUS_FOREVER; /* an import must not stall the client for ever */
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_CONFIG);
	c.import_block_ns = 0;
	{
		const char *im[] = {"x.>", NULL};
		const char *durables[] = {NULL, "", "a.b", "a b", "a*",
		                          "0123456789012345678901234567890123456789012345678901234567890123x"};
		c.flags = EBUS_NATS_JETSTREAM;
		c.imports = im;
		for (unsigned i = 0; i < sizeof durables / sizeof durables[0]; i++) {
			c.durable = durables[i];
			CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_CONFIG);
		}
		/* a valid name, but this server runs without JetStream */
		c.durable = "d-1_x";
		CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_CONFIG);
		c.durable = NULL;
		c.imports = NULL;
		c.flags = 0;
	}
	c.export_buffer = 1000;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_CONFIG);
	c.export_buffer = 0;
	const char *prefixes[] = {"", "a..b", "a.*", "a.>", "$ebus", "a b"};
	for (unsigned i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		c.prefix = prefixes[i];
		CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_PREFIX);
	}
	c.prefix = NULL;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_PREFIX);
	c.prefix = "t";
	c.exports = bad_pat;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_PATTERN_GT_LAST);
	c.exports = NULL;
	c.imports = bad_pat;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_PATTERN_GT_LAST);
	c.imports = NULL;
	c.servers = bad_url;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_URL);
	c.servers = bad_url2;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_URL);
	/* nobody listens: a clear error within the connect timeout */
	snprintf(unreachable, sizeof unreachable, "nats://127.0.0.1:%d", ns_free_port());
	c.servers = dead;
	c.connect_timeout_ns = 300000000;
	{
		uint64_t t0 = ns_now_ms();
		CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_ERR_UNREACHABLE);
		printf("   unreachable server: refused after %llu ms\n",
		       (unsigned long long)(ns_now_ms() - t0));
	}
	CHECK(b == (ebus_nats_bridge_t *)(uintptr_t)0x5eed); /* untouched */
	CHECK_RC(ebus_nats_start(NULL), EBUS_ERR_NULL);
	CHECK_RC(ebus_nats_stats(NULL, NULL), EBUS_ERR_NULL);
	CHECK_RC(ebus_nats_flush(NULL, 0), EBUS_ERR_NULL);
	CHECK_RC(ebus_nats_stop(NULL), EBUS_ERR_NULL);
	ebus_nats_destroy(NULL);
	/* start twice, after stop */
	c.servers = servers;
	c.connect_timeout_ns = 0;
	CHECK_RC(ebus_nats_create(bus, &c, &b), EBUS_OK);
	CHECK_RC(ebus_nats_start(b), EBUS_OK);
	CHECK_RC(ebus_nats_start(b), EBUS_ERR_SHUTDOWN);
	CHECK_RC(ebus_nats_stop(b), EBUS_OK);
	CHECK_RC(ebus_nats_stop(b), EBUS_OK);
	ebus_nats_destroy(b);
	ebus_destroy(bus);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--peer") == 0)
		return peer_main(argv[2]);
	if (argc == 4 && strcmp(argv[1], "--ring") == 0)
		return ring_peer_main(argv[2], argv[3][0]);
	if (ns_start(&server) != 0)
		return 1;
	atexit(stop_server);
	printf("nats-server on %s\n", server.url);
	struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{"bad_input", bad_input}, {"both_ways", both_ways}, {"sizes", sizes},
		{"ring_of_three", ring_of_three}, {"unmappable", unmappable},
		{"meta_topics", meta_topics}, {"wildcards", wildcards},
		{"kill_and_restart", kill_and_restart}, {"slow_subscriber", slow_subscriber},
		{"bounded_import", bounded_import}, {"export_wait", export_wait},
		{"two_processes", two_processes},
		{"ring_processes", ring_processes},
	};
	for (unsigned i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		printf("-- %s\n", tests[i].name);
		tests[i].fn();
	}
	ns_stop(&server, 0);
	printf("test_nats_bridge: %u passed\n", (unsigned)(sizeof tests / sizeof tests[0]));
	return failures ? 1 : 0;
}
