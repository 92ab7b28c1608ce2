/*
 * Pull consumers (ebus_consumer_*, ebus_consume, ebus_consume_until,
 * ebus_await), each case on an asynchronous and a synchronous bus.
 *
 *  - order: one publisher, inline and allocated payloads; every event comes
 *    out once, in order, byte for byte; then EBUS_ERR_EMPTY; stats balance.
 *  - multi: P publisher threads x T topics on a 4-executor bus, one
 *    consumer (capacity 64, BLOCK) and one consuming thread per topic;
 *    per-publisher order, payload checks and exact totals, no loss.
 *  - patterns: "orders.*" gets orders.eu/us (and a topic interned later),
 *    not orders.eu.fill; one "load.>" consumer fed by 3 publishers x 4
 *    topics on 4 executors plus an unordered topic: many threads enqueue at
 *    once; per-(publisher, topic) order, each event exactly once.
 *  - poll/timeout codes; EBUS_ERR_BUFFER leaves the event queued.
 *  - the full policies on a queue nobody drains: exact counts per cause;
 *    BLOCK on the consumer's own thread does not wait (rejected_full).
 *  - BLOCK: a blocked handler proceeds when the consumer takes events
 *    (no loss); ebus_shutdown and ebus_consumer_destroy release it.
 *  - EBUS_ERR_DEADLOCK for a waiting consume/await from a handler; polling
 *    from a handler works; create and destroy from a handler do not hang
 *    or leak.
 *  - a consumer waiting in ebus_consume(EBUS_FOREVER) gets every queued
 *    event, then EBUS_ERR_SHUTDOWN when ebus_shutdown completes.
 *  - ebus_await gets an event published after it began.
 *  - bad input: specific codes, nothing allocated or subscribed.
 * The counting allocator checks that every block (queued large payloads
 * included) is given back. No sleeps, no timing assertions: timeouts are
 * checked by their return code only.
 */
#include "testutil.h"

#define MS 1000000ull

static tu_alloc g_alloc;
static ebus_allocator_t g_allocator;

static ebus_t *mkbus(int sync, unsigned executors, ebus_full_policy pol, uint64_t block_timeout)
{
	ebus_config_t cfg = {0};
	ebus_t *bus = NULL;
	cfg.executors = executors;
	cfg.synchronous = sync;
	cfg.full_policy = pol;
	cfg.block_timeout_ns = block_timeout;
	cfg.allocator = &g_allocator;
	CHECK_OK(ebus_create(&cfg, &bus));
	return bus;
}

static void endbus(ebus_t *bus)
{
	ebus_destroy(bus);
	CHECK_ALLOC_BALANCED(&g_alloc);
}

static ebus_consumer_stats_t cstats(ebus_consumer_t *c)
{
	ebus_consumer_stats_t s;
	memset(&s, 0xa5, sizeof s);
	CHECK_OK(ebus_consumer_stats(c, &s));
	return s;
}

static uint64_t losses(const ebus_consumer_stats_t *s)
{
	return s->dropped_full + s->rejected_full + s->rejected_timeout + s->dropped_shutdown +
	       s->dropped_nomem;
}

/* Payload of event `seq`: the 8-byte seq, then bytes derived from it.
 * 8..12 bytes, and 100 bytes (past the 48-byte inline record) when
 * seq % 7 == 6. */
static size_t ev_len(uint64_t seq)
{
	return 8 + (seq % 7 == 6 ? 92 : seq % 5);
}

static void ev_fill(unsigned char *p, uint64_t seq)
{
	size_t n = ev_len(seq);
	memcpy(p, &seq, 8);
	for (size_t i = 8; i < n; i++)
		p[i] = (unsigned char)tu_mix(seq + i);
}

static uint64_t ev_check(const unsigned char *p, size_t n)
{
	uint64_t seq;
	CHECK(n >= 8);
	memcpy(&seq, p, 8);
	CHECK_EQ_U64(n, ev_len(seq));
	for (size_t i = 8; i < n; i++)
		CHECK_MSG(p[i] == (unsigned char)tu_mix(seq + i), "seq %" PRIu64 " byte %zu corrupt", seq, i);
	return seq;
}

static void pub_seq(ebus_topic_t *t, uint64_t seq)
{
	unsigned char b[128];
	ev_fill(b, seq);
	CHECK_OK(ebus_publish(t, b, ev_len(seq)));
}

/* ---- order and exactly-once, one publisher -------------------------------- */

static void test_order(int sync)
{
	const uint64_t n = 500;
	ebus_t *bus = mkbus(sync, 2, EBUS_FULL_DEFAULT, 0);
	ebus_topic_t *t, *other;
	ebus_consumer_t *c;
	unsigned char buf[128];
	ebus_message_t msg;

	CHECK_OK(ebus_topic(bus, "md.eu.quote", &t));
	CHECK_OK(ebus_topic(bus, "md.us.quote", &other));
	CHECK_OK(ebus_consumer_create(bus, "md.eu.quote", 1024, &c));
	for (uint64_t i = 0; i < n; i++) {
		pub_seq(t, i);
		pub_seq(other, 1000 + i); /* not for this consumer */
	}
	CHECK_OK(ebus_flush(bus, 0));
	ebus_consumer_stats_t s = cstats(c);
	CHECK_EQ_U64(s.received, n);
	CHECK_EQ_U64(s.queued, n);
	CHECK_EQ_U64(s.high_water, n);
	CHECK_EQ_U64(s.consumed, 0);
	for (uint64_t i = 0; i < n; i++) {
		memset(&msg, 0, sizeof msg);
		CHECK_OK(ebus_consume(c, buf, sizeof buf, &msg, i % 2 ? 0 : EBUS_FOREVER));
		CHECK(msg.topic == t);
		CHECK_EQ_U64(ev_check(buf, msg.len), i);
	}
	CHECK_EQ_INT(ebus_consume(c, buf, sizeof buf, &msg, 0), EBUS_ERR_EMPTY);
	s = cstats(c);
	CHECK_EQ_U64(s.received, n);
	CHECK_EQ_U64(s.consumed, n);
	CHECK_EQ_U64(s.queued, 0);
	CHECK_EQ_U64(losses(&s), 0);
	ebus_stats_t bs = tu_stats(bus);
	CHECK_EQ_U64(bs.handler_errors, 0);
	CHECK_EQ_U64(bs.delivered, n); /* the other topic has no subscriber */
	CHECK_EQ_U64(bs.dropped_no_subscriber, n);
	ebus_consumer_destroy(c);
	endbus(bus);
}

/* ---- several publishers x topics ------------------------------------------ */

typedef struct {
	uint32_t pub, topic;
	uint64_t seq, check;
	uint64_t fill[8];
} mp_ev;

static size_t mp_len(uint64_t check)
{
	/* 24..88 bytes: both sides of the 48-byte inline limit */
	return 24 + 8 * (size_t)(check % 9);
}

struct mp_run {
	ebus_t *bus;
	unsigned P, T;
	uint64_t E; /* events per (publisher, topic) */
	ebus_topic_t *topics[8];
	ebus_consumer_t *cons[8];
	pthread_barrier_t start;
};

struct mp_arg {
	struct mp_run *r;
	unsigned idx;
};

static void *mp_publisher(void *arg)
{
	struct mp_arg *a = arg;
	struct mp_run *r = a->r;
	pthread_barrier_wait(&r->start);
	for (uint64_t k = 0; k < r->E; k++) {
		for (unsigned j = 0; j < r->T; j++) {
			unsigned t = (j + a->idx) % r->T;
			mp_ev ev = {a->idx, t, k, tu_mix3(a->idx, t, k), {0}};
			for (unsigned i = 0; i < 8; i++)
				ev.fill[i] = tu_mix(ev.check + i);
			CHECK_OK(ebus_publish(r->topics[t], &ev, mp_len(ev.check)));
		}
	}
	return NULL;
}

static void *mp_consumer(void *arg)
{
	struct mp_arg *a = arg;
	struct mp_run *r = a->r;
	uint64_t next[8] = {0};
	mp_ev ev;
	ebus_message_t msg;
	pthread_barrier_wait(&r->start);
	for (uint64_t got = 0; got < r->E * r->P; got++) {
		memset(&ev, 0, sizeof ev);
		CHECK_OK(ebus_consume(r->cons[a->idx], &ev, sizeof ev, &msg, EBUS_FOREVER));
		CHECK(msg.topic == r->topics[a->idx]);
		CHECK(msg.len >= 24);
		CHECK_MSG(ev.topic == a->idx && ev.pub < r->P, "event of topic %u publisher %u", ev.topic,
		          ev.pub);
		CHECK_EQ_U64(ev.check, tu_mix3(ev.pub, ev.topic, ev.seq));
		CHECK_EQ_U64(msg.len, mp_len(ev.check));
		for (unsigned i = 0; i < (msg.len - 24) / 8; i++)
			CHECK_EQ_U64(ev.fill[i], tu_mix(ev.check + i));
		CHECK_MSG(ev.seq == next[ev.pub], "topic %u publisher %u: seq %" PRIu64 ", expected %" PRIu64,
		          a->idx, ev.pub, ev.seq, next[ev.pub]);
		next[ev.pub]++;
	}
	return NULL;
}

static void test_multi(int sync)
{
	struct mp_run r = {0};
	struct mp_arg pa[8], ca[8];
	pthread_t pt[8], ct[8];
	char name[32];

	r.P = 3;
	r.T = 4;
	r.E = tu_param("EBUS_STRESS_CONSUMER_EVENTS", 2000, 200000);
	r.bus = mkbus(sync, 4, EBUS_FULL_BLOCK, 0);
	for (unsigned t = 0; t < r.T; t++) {
		snprintf(name, sizeof name, "load.t%u", t);
		CHECK_OK(ebus_topic_on(r.bus, name, t % 4, &r.topics[t]));
		CHECK_OK(ebus_consumer_create(r.bus, name, 64, &r.cons[t]));
	}
	CHECK(pthread_barrier_init(&r.start, NULL, r.P + r.T) == 0);
	for (unsigned i = 0; i < r.T; i++) {
		ca[i] = (struct mp_arg){&r, i};
		tu_thread_create(&ct[i], mp_consumer, &ca[i]);
	}
	for (unsigned i = 0; i < r.P; i++) {
		pa[i] = (struct mp_arg){&r, i};
		tu_thread_create(&pt[i], mp_publisher, &pa[i]);
	}
	for (unsigned i = 0; i < r.P; i++)
		tu_thread_join(pt[i]);
	for (unsigned i = 0; i < r.T; i++)
		tu_thread_join(ct[i]);
	CHECK_OK(ebus_flush(r.bus, 0));
	for (unsigned t = 0; t < r.T; t++) {
		ebus_consumer_stats_t s = cstats(r.cons[t]);
		ebus_message_t msg;
		CHECK_EQ_U64(s.received, r.E * r.P);
		CHECK_EQ_U64(s.consumed, r.E * r.P);
		CHECK_EQ_U64(s.queued, 0);
		CHECK_EQ_U64(losses(&s), 0);
		CHECK(s.high_water >= 1 && s.high_water <= 63);
		CHECK_EQ_INT(ebus_consume(r.cons[t], NULL, 0, &msg, 0), EBUS_ERR_EMPTY);
		ebus_consumer_destroy(r.cons[t]);
	}
	ebus_stats_t bs = tu_stats(r.bus);
	CHECK_EQ_U64(bs.delivered, r.E * r.P * r.T);
	CHECK_EQ_U64(bs.handler_errors, 0);
	pthread_barrier_destroy(&r.start);
	endbus(r.bus);
}

/* ---- patterns --------------------------------------------------------------- */

/* "orders.*" gets orders.eu and orders.us (on different executors, so two
 * threads enqueue at once), not orders.eu.fill nor orders; per topic in
 * order, each event once. */
static void test_wildcard(int sync)
{
	const uint64_t n = 200;
	ebus_t *bus = mkbus(sync, 4, EBUS_FULL_DEFAULT, 0);
	ebus_topic_t *eu, *us, *fill, *bare, *late;
	ebus_consumer_t *c;
	unsigned char buf[128];
	ebus_message_t msg;
	uint64_t next_eu = 0, next_us = 0, next_late = 0;

	CHECK_OK(ebus_topic_on(bus, "orders.eu", 0, &eu));
	CHECK_OK(ebus_topic_on(bus, "orders.us", 1, &us));
	CHECK_OK(ebus_topic_on(bus, "orders.eu.fill", 2, &fill));
	CHECK_OK(ebus_topic_on(bus, "orders", 3, &bare));
	CHECK_OK(ebus_consumer_create(bus, "orders.*", 1024, &c));
	CHECK_OK(ebus_topic_on(bus, "orders.jp", 3, &late)); /* interned after: matched too */
	for (uint64_t i = 0; i < n; i++) {
		pub_seq(eu, i);
		pub_seq(us, i);
		pub_seq(fill, i);
		pub_seq(bare, i);
		pub_seq(late, i);
	}
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(cstats(c).received, 3 * n);
	for (uint64_t k = 0; k < 3 * n; k++) {
		CHECK_OK(ebus_consume(c, buf, sizeof buf, &msg, 0));
		uint64_t seq = ev_check(buf, msg.len);
		if (msg.topic == eu)
			CHECK_EQ_U64(seq, next_eu++);
		else if (msg.topic == us)
			CHECK_EQ_U64(seq, next_us++);
		else if (msg.topic == late)
			CHECK_EQ_U64(seq, next_late++);
		else
			CHECK_MSG(0, "event of %s reached orders.*", ebus_topic_name(msg.topic));
	}
	CHECK_EQ_INT(ebus_consume(c, buf, sizeof buf, &msg, 0), EBUS_ERR_EMPTY);
	CHECK(next_eu == n && next_us == n && next_late == n);
	ebus_consumer_destroy(c);
	endbus(bus);
}

/* Several publishers x topics on 4 executors (plus an unordered topic
 * spread over all of them) into ONE consumer of "load.>" with a small queue
 * under BLOCK: many producer threads at once on one queue. Ordered topics:
 * per (publisher, topic) order; all: each event exactly once. */
struct pc_run {
	ebus_t *bus;
	unsigned P, T; /* T ordered topics + 1 unordered */
	uint64_t E;    /* events per (publisher, topic) */
	ebus_topic_t *topics[8];
	ebus_consumer_t *c;
	pthread_barrier_t start;
};

struct pc_arg {
	struct pc_run *r;
	unsigned idx;
};

static void *pc_publisher(void *arg)
{
	struct pc_arg *a = arg;
	struct pc_run *r = a->r;
	pthread_barrier_wait(&r->start);
	for (uint64_t k = 0; k < r->E; k++) {
		for (unsigned j = 0; j <= r->T; j++) {
			unsigned t = (j + a->idx) % (r->T + 1);
			mp_ev ev = {a->idx, t, k, tu_mix3(a->idx, t, k), {0}};
			for (unsigned i = 0; i < 8; i++)
				ev.fill[i] = tu_mix(ev.check + i);
			CHECK_OK(ebus_publish(r->topics[t], &ev, mp_len(ev.check)));
		}
	}
	return NULL;
}

static void test_pattern_many_producers(int sync)
{
	struct pc_run r = {0};
	struct pc_arg pa[8];
	pthread_t pt[8];
	char name[32];
	uint64_t next[8][8] = {{0}};
	unsigned char *seen;

	r.P = 3;
	r.T = 4;
	r.E = tu_param("EBUS_STRESS_CONSUMER_EVENTS", 2000, 200000);
	r.bus = mkbus(sync, 4, EBUS_FULL_BLOCK, 0);
	for (unsigned t = 0; t < r.T; t++) {
		snprintf(name, sizeof name, "load.t%u", t);
		CHECK_OK(ebus_topic_on(r.bus, name, t % 4, &r.topics[t]));
	}
	CHECK_OK(ebus_topic_ex(r.bus, "load.unordered", -1, EBUS_TOPIC_UNORDERED, &r.topics[r.T]));
	CHECK_OK(ebus_consumer_create(r.bus, "load.>", 64, &r.c));
	seen = calloc(r.P * r.E, 1);
	CHECK(seen);
	CHECK(pthread_barrier_init(&r.start, NULL, r.P + 1) == 0);
	for (unsigned i = 0; i < r.P; i++) {
		pa[i] = (struct pc_arg){&r, i};
		tu_thread_create(&pt[i], pc_publisher, &pa[i]);
	}
	pthread_barrier_wait(&r.start);
	const uint64_t total = r.P * r.E * (r.T + 1);
	for (uint64_t got = 0; got < total; got++) {
		mp_ev ev;
		ebus_message_t msg;
		memset(&ev, 0, sizeof ev);
		CHECK_OK(ebus_consume(r.c, &ev, sizeof ev, &msg, EBUS_FOREVER));
		CHECK(ev.topic <= r.T && ev.pub < r.P);
		CHECK(msg.topic == r.topics[ev.topic]);
		CHECK_EQ_U64(ev.check, tu_mix3(ev.pub, ev.topic, ev.seq));
		CHECK_EQ_U64(msg.len, mp_len(ev.check));
		for (unsigned i = 0; i < (msg.len - 24) / 8; i++)
			CHECK_EQ_U64(ev.fill[i], tu_mix(ev.check + i));
		if (ev.topic < r.T) {
			CHECK_MSG(ev.seq == next[ev.pub][ev.topic],
			          "topic %u publisher %u: seq %" PRIu64 ", expected %" PRIu64, ev.topic,
			          ev.pub, ev.seq, next[ev.pub][ev.topic]);
			next[ev.pub][ev.topic]++;
		} else {
			CHECK(ev.seq < r.E);
			CHECK_MSG(!seen[ev.pub * r.E + ev.seq], "unordered event %u/%" PRIu64 " twice",
			          ev.pub, ev.seq);
			seen[ev.pub * r.E + ev.seq] = 1;
		}
	}
	for (unsigned i = 0; i < r.P; i++)
		tu_thread_join(pt[i]);
	CHECK_OK(ebus_flush(r.bus, 0));
	ebus_consumer_stats_t s = cstats(r.c);
	ebus_message_t msg;
	CHECK_EQ_U64(s.received, total);
	CHECK_EQ_U64(s.consumed, total);
	CHECK_EQ_U64(s.queued, 0);
	CHECK_EQ_U64(losses(&s), 0);
	CHECK_EQ_INT(ebus_consume(r.c, NULL, 0, &msg, 0), EBUS_ERR_EMPTY);
	ebus_consumer_destroy(r.c);
	free(seen);
	pthread_barrier_destroy(&r.start);
	endbus(r.bus);
}

/* ---- poll, timeout, buffer ---------------------------------------------- */

static void test_poll_timeout_buffer(int sync)
{
	ebus_t *bus = mkbus(sync, 1, EBUS_FULL_DEFAULT, 0);
	ebus_topic_t *t;
	ebus_consumer_t *c;
	unsigned char small[10], big[128];
	ebus_message_t msg;

	CHECK_OK(ebus_topic(bus, "q", &t));
	CHECK_OK(ebus_consumer_create(bus, "q", 0, &c)); /* 0: default capacity */
	CHECK_EQ_INT(ebus_consume(c, big, sizeof big, &msg, 0), EBUS_ERR_EMPTY);
	CHECK_EQ_INT(ebus_consume(c, big, sizeof big, &msg, 1 * MS), EBUS_ERR_TIMEOUT);
	CHECK_EQ_INT(ebus_consume_until(c, big, sizeof big, &msg, ebus_clock_ns() + 1 * MS),
	             EBUS_ERR_TIMEOUT);
	CHECK_EQ_INT(ebus_consume_until(c, big, sizeof big, &msg, 0), EBUS_ERR_TIMEOUT);

	pub_seq(t, 6);                        /* 100 bytes */
	pub_seq(t, 0);                        /* 8 bytes */
	CHECK_OK(ebus_publish(t, NULL, 0));   /* empty */
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(cstats(c).queued, 3);

	memset(&msg, 0, sizeof msg);
	CHECK_EQ_INT(ebus_consume(c, small, sizeof small, &msg, 0), EBUS_ERR_BUFFER);
	CHECK(msg.topic == t);
	CHECK_EQ_U64(msg.len, 100);
	CHECK_EQ_INT(ebus_consume(c, NULL, 0, &msg, EBUS_FOREVER), EBUS_ERR_BUFFER);
	CHECK_EQ_U64(msg.len, 100);
	CHECK_EQ_INT(ebus_consume(c, big, 99, &msg, 0), EBUS_ERR_BUFFER);
	ebus_consumer_stats_t s = cstats(c);
	CHECK_EQ_U64(s.queued, 3);
	CHECK_EQ_U64(s.consumed, 0);
	CHECK_OK(ebus_consume(c, big, 100, &msg, 0)); /* exactly big enough */
	CHECK_EQ_U64(ev_check(big, msg.len), 6);
	CHECK_OK(ebus_consume(c, small, sizeof small, &msg, 0));
	CHECK_EQ_U64(ev_check(small, msg.len), 0);
	msg.len = 99;
	CHECK_OK(ebus_consume(c, NULL, 0, &msg, 0)); /* a 0-byte event fits nothing */
	CHECK_EQ_U64(msg.len, 0);
	CHECK(msg.topic == t);
	CHECK_EQ_INT(ebus_consume_until(c, big, sizeof big, &msg, 0), EBUS_ERR_TIMEOUT);

	/* A deadline already past still takes what is queued. */
	pub_seq(t, 1);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_OK(ebus_consume_until(c, big, sizeof big, &msg, 0));
	CHECK_EQ_U64(ev_check(big, msg.len), 1);
	ebus_consumer_destroy(c);
	endbus(bus);
}

/* ---- full policies on a queue nobody drains -------------------------------- */

static void fill_and_count(int sync, ebus_full_policy pol, uint64_t block_timeout)
{
	const uint64_t n = 10;
	ebus_t *bus = mkbus(sync, 1, pol, block_timeout);
	ebus_topic_t *t;
	ebus_consumer_t *c;
	unsigned char buf[128];
	ebus_message_t msg;

	CHECK_OK(ebus_topic(bus, "fill", &t));
	CHECK_OK(ebus_consumer_create(bus, "fill", 4, &c)); /* holds 3 */
	for (uint64_t i = 0; i < n; i++)
		pub_seq(t, i); /* event 6 is large: its copy must be freed when lost */
	CHECK_OK(ebus_flush(bus, 0));
	ebus_consumer_stats_t s = cstats(c);
	CHECK_EQ_U64(s.received, 3);
	CHECK_EQ_U64(s.queued, 3);
	CHECK_EQ_U64(s.high_water, 3);
	CHECK_EQ_U64(s.dropped_full, pol == EBUS_FULL_DROP ? n - 3 : 0);
	CHECK_EQ_U64(s.rejected_full, pol == EBUS_FULL_FAIL ? n - 3 : 0);
	CHECK_EQ_U64(s.rejected_timeout, pol == EBUS_FULL_BLOCK ? n - 3 : 0);
	CHECK_EQ_U64(s.dropped_shutdown + s.dropped_nomem, 0);
	ebus_stats_t bs = tu_stats(bus);
	CHECK_EQ_U64(bs.delivered, n); /* a consumer's loss is not the bus's */
	CHECK_EQ_U64(bs.handler_errors, 0);
	for (uint64_t i = 0; i < 3; i++) {
		CHECK_OK(ebus_consume(c, buf, sizeof buf, &msg, 0));
		CHECK_EQ_U64(ev_check(buf, msg.len), i);
	}
	CHECK_EQ_INT(ebus_consume(c, buf, sizeof buf, &msg, 0), EBUS_ERR_EMPTY);
	/* Room again: the next event is queued. */
	pub_seq(t, 42);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_OK(ebus_consume(c, buf, sizeof buf, &msg, 0));
	CHECK_EQ_U64(ev_check(buf, msg.len), 42);
	ebus_consumer_destroy(c);
	endbus(bus);
}

static void test_policy_fail(int sync) { fill_and_count(sync, EBUS_FULL_FAIL, 0); }
static void test_policy_drop(int sync) { fill_and_count(sync, EBUS_FULL_DROP, 0); }
static void test_policy_block_timeout(int sync) { fill_and_count(sync, EBUS_FULL_BLOCK, 1 * MS); }

/* Synchronous bus, BLOCK without a timeout: the thread that consumes
 * publishes into its own full queue. Waiting would hang; it is counted as
 * rejected_full instead. */
static void test_block_own_thread(void)
{
	ebus_t *bus = mkbus(1, 1, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *t;
	ebus_consumer_t *c;
	unsigned char buf[128];
	ebus_message_t msg;

	CHECK_OK(ebus_topic(bus, "own", &t));
	CHECK_OK(ebus_consumer_create(bus, "own", 4, &c));
	CHECK_EQ_INT(ebus_consume(c, buf, sizeof buf, &msg, 0), EBUS_ERR_EMPTY); /* now ours */
	for (uint64_t i = 0; i < 10; i++)
		pub_seq(t, i);
	ebus_consumer_stats_t s = cstats(c);
	CHECK_EQ_U64(s.received, 3);
	CHECK_EQ_U64(s.rejected_full, 7);
	CHECK_EQ_U64(s.rejected_timeout + s.dropped_full + s.dropped_shutdown, 0);
	for (uint64_t i = 0; i < 3; i++) {
		CHECK_OK(ebus_consume(c, buf, sizeof buf, &msg, 0));
		CHECK_EQ_U64(ev_check(buf, msg.len), i);
	}
	ebus_consumer_destroy(c);
	endbus(bus);
}

/* ---- BLOCK: released by the consumer, by shutdown, by destroy -------------- */

struct blk {
	ebus_t *bus;
	ebus_topic_t *t;
	uint64_t n;
	_Atomic uint64_t published;
	int rc_last;
};

static void *blk_publisher(void *arg)
{
	struct blk *b = arg;
	for (uint64_t i = 0; i < b->n; i++) {
		unsigned char p[128];
		ev_fill(p, i);
		b->rc_last = ebus_publish(b->t, p, ev_len(i));
		if (b->rc_last != EBUS_OK)
			break;
		atomic_store(&b->published, i + 1);
	}
	return NULL;
}

/* Waits until thread `tid` of this process sleeps in the kernel (state S in
 * /proc: a futex wait, here), so that a test exercises the wake-up rather
 * than a spinning or yielding waiter. An observed state, not a timed sleep.
 * (A sanitizer runtime's own locks can also show S now and then; the test
 * then merely proves less, it cannot fail for it.) */
static void wait_asleep(pid_t tid)
{
	for (;;) {
		char st = tu_thread_state(tid);
		CHECK_MSG(st != '?', "no readable /proc state for thread %d", (int)tid);
		if (st == 'S')
			return;
		sched_yield();
	}
}

/* A subscriber made before the consumer runs before it for each event
 * (subscription order): once it has seen event k, the consumer's handler
 * is running for event k, on the thread it recorded, or about to. */
static _Atomic uint64_t marker_seen;
static _Atomic int marker_tid;
static int marker(const ebus_event_t *ev, void *ctx)
{
	uint64_t seq;
	(void)ctx;
	memcpy(&seq, ev->data, 8);
	atomic_store(&marker_tid, (int)gettid());
	atomic_store(&marker_seen, seq + 1);
	return 0;
}

/* Waits until the consumer's handler sleeps on the full queue with event 3
 * (the queue holds 0..2). */
static void wait_handler_blocked(void)
{
	tu_wait_u64_at_least(&marker_seen, 4);
	wait_asleep(atomic_load(&marker_tid));
}

static void test_block_released_by_consumer(int sync)
{
	struct blk b = {0};
	pthread_t th;
	ebus_consumer_t *c;
	unsigned char buf[128];
	ebus_message_t msg;

	ebus_sub_id sub;

	b.bus = mkbus(sync, 2, EBUS_FULL_BLOCK, 0);
	b.n = 40;
	atomic_store(&marker_seen, 0);
	CHECK_OK(ebus_topic(b.bus, "blk", &b.t));
	CHECK_OK(ebus_subscribe(b.t, marker, NULL, &sub));
	CHECK_OK(ebus_consumer_create(b.bus, "blk", 4, &c));
	tu_thread_create(&th, blk_publisher, &b);
	wait_handler_blocked(); /* and the consumer's take must wake it */
	for (uint64_t i = 0; i < b.n; i++) {
		CHECK_OK(ebus_consume(c, buf, sizeof buf, &msg, EBUS_FOREVER));
		CHECK_EQ_U64(ev_check(buf, msg.len), i);
	}
	tu_thread_join(th);
	CHECK_OK(b.rc_last);
	ebus_consumer_stats_t s = cstats(c);
	CHECK_EQ_U64(s.received, b.n);
	CHECK_EQ_U64(s.consumed, b.n);
	CHECK_EQ_U64(losses(&s), 0);
	CHECK_EQ_U64(s.high_water, 3);
	ebus_consumer_destroy(c);
	CHECK_OK(ebus_unsubscribe(b.bus, sub));
	endbus(b.bus);
}

/* A handler blocked on the full queue (event 3; the queue holds 0..2) gives
 * up when the bus starts shutting down, and so does every later one; the
 * queued events are still consumed, then EBUS_ERR_SHUTDOWN. */
static void test_block_released_by_shutdown(int sync)
{
	struct blk b = {0};
	pthread_t th;
	ebus_consumer_t *c;
	ebus_sub_id sub;
	unsigned char buf[128];
	ebus_message_t msg;

	b.bus = mkbus(sync, 1, EBUS_FULL_BLOCK, 0);
	b.n = sync ? 4 : 10; /* sync: the publisher thread stops inside event 3 */
	atomic_store(&marker_seen, 0);
	CHECK_OK(ebus_topic(b.bus, "blk", &b.t));
	CHECK_OK(ebus_subscribe(b.t, marker, NULL, &sub));
	CHECK_OK(ebus_consumer_create(b.bus, "blk", 4, &c));
	tu_thread_create(&th, blk_publisher, &b);
	wait_handler_blocked();
	if (!sync)
		while (atomic_load(&b.published) < b.n)
			sched_yield();
	CHECK_OK(ebus_shutdown(b.bus, EBUS_SHUTDOWN_DRAIN));
	tu_thread_join(th);
	CHECK_OK(b.rc_last); /* every event was accepted; the consumer lost some */
	ebus_consumer_stats_t s = cstats(c);
	CHECK_EQ_U64(s.received, 3);
	CHECK_EQ_U64(s.dropped_shutdown, b.n - 3);
	CHECK_EQ_U64(s.dropped_full + s.rejected_full + s.rejected_timeout, 0);
	CHECK_EQ_U64(tu_stats(b.bus).handler_calls, 2 * b.n);
	for (uint64_t i = 0; i < 3; i++) {
		CHECK_OK(ebus_consume(c, buf, sizeof buf, &msg, EBUS_FOREVER));
		CHECK_EQ_U64(ev_check(buf, msg.len), i);
	}
	CHECK_EQ_INT(ebus_consume(c, buf, sizeof buf, &msg, EBUS_FOREVER), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_consume(c, buf, sizeof buf, &msg, 0), EBUS_ERR_SHUTDOWN);
	ebus_consumer_destroy(c);
	endbus(b.bus);
}

/* ebus_consumer_destroy releases a handler blocked on the full queue
 * (event 3): the publisher (sync) or the executor (async) goes on, and
 * destroy returns. */
static void test_block_released_by_destroy(int sync)
{
	struct blk b = {0};
	pthread_t th;
	ebus_consumer_t *c;
	ebus_sub_id sub;

	b.bus = mkbus(sync, 1, EBUS_FULL_BLOCK, 0);
	b.n = 10;
	atomic_store(&marker_seen, 0);
	CHECK_OK(ebus_topic(b.bus, "blk", &b.t));
	CHECK_OK(ebus_subscribe(b.t, marker, NULL, &sub));
	CHECK_OK(ebus_consumer_create(b.bus, "blk", 4, &c));
	tu_thread_create(&th, blk_publisher, &b);
	wait_handler_blocked();
	ebus_consumer_destroy(c); /* must not hang on the blocked handler */
	tu_thread_join(th);
	CHECK_OK(b.rc_last);
	CHECK_EQ_U64(atomic_load(&b.published), b.n);
	CHECK_OK(ebus_flush(b.bus, 0));
	ebus_stats_t bs = tu_stats(b.bus);
	CHECK_EQ_U64(bs.published, b.n);
	CHECK_EQ_U64(bs.delivered, b.n); /* the marker is still there */
	/* The marker saw all; the consumer saw at least events 0..3. */
	CHECK(bs.handler_calls >= b.n + 4 && bs.handler_calls <= 2 * b.n);
	CHECK_EQ_U64(bs.handler_errors, 0);
	CHECK_OK(ebus_unsubscribe(b.bus, sub));
	endbus(b.bus);
}

/* ---- from inside a handler ------------------------------------------------- */

static struct {
	ebus_consumer_t *c;
	ebus_t *bus;
	int rc_wait, rc_poll, rc_await_wait, rc_await_poll, rc_until, rc_create;
	uint64_t got;
} hs;

static int h_consume(const ebus_event_t *ev, void *ctx)
{
	unsigned char buf[128];
	ebus_message_t msg;
	ebus_consumer_t *tmp = NULL;
	(void)ev;
	(void)ctx;
	hs.rc_wait = ebus_consume(hs.c, buf, sizeof buf, &msg, 1 * MS);
	hs.rc_until = ebus_consume_until(hs.c, buf, sizeof buf, &msg, EBUS_FOREVER);
	hs.rc_await_wait = ebus_await(hs.bus, "data", buf, sizeof buf, &msg, EBUS_FOREVER);
	hs.rc_await_poll = ebus_await(hs.bus, "data", buf, sizeof buf, &msg, 0);
	hs.rc_poll = ebus_consume(hs.c, buf, sizeof buf, &msg, 0);
	if (hs.rc_poll == EBUS_OK)
		hs.got = ev_check(buf, msg.len);
	/* create and destroy from a handler: no wait, no leak */
	hs.rc_create = ebus_consumer_create(hs.bus, "data", 8, &tmp);
	if (hs.rc_create == EBUS_OK)
		ebus_consumer_destroy(tmp);
	return 0;
}

static void test_from_handler(int sync)
{
	ebus_topic_t *ctl, *data;
	ebus_sub_id sub;
	memset(&hs, 0, sizeof hs);
	hs.bus = mkbus(sync, 2, EBUS_FULL_DEFAULT, 0);
	CHECK_OK(ebus_topic(hs.bus, "ctl", &ctl));
	CHECK_OK(ebus_topic(hs.bus, "data", &data));
	CHECK_OK(ebus_consumer_create(hs.bus, "data", 8, &hs.c));
	pub_seq(data, 3);
	CHECK_OK(ebus_flush(hs.bus, 0));
	CHECK_OK(ebus_subscribe(ctl, h_consume, NULL, &sub));
	CHECK_OK(ebus_publish(ctl, NULL, 0));
	CHECK_OK(ebus_flush(hs.bus, 0));
	CHECK_EQ_INT(hs.rc_wait, EBUS_ERR_DEADLOCK);
	CHECK_EQ_INT(hs.rc_until, EBUS_ERR_DEADLOCK);
	CHECK_EQ_INT(hs.rc_await_wait, EBUS_ERR_DEADLOCK);
	CHECK_EQ_INT(hs.rc_await_poll, EBUS_ERR_EMPTY);
	CHECK_EQ_INT(hs.rc_poll, EBUS_OK);
	CHECK_EQ_U64(hs.got, 3);
	CHECK_EQ_INT(hs.rc_create, EBUS_OK);
	ebus_consumer_stats_t s = cstats(hs.c);
	CHECK_EQ_U64(s.consumed, 1);
	CHECK_EQ_U64(s.queued, 0);
	/* The DEADLOCK calls changed nothing: the consumer still works. */
	pub_seq(data, 4);
	unsigned char buf[128];
	ebus_message_t msg;
	CHECK_OK(ebus_consume(hs.c, buf, sizeof buf, &msg, EBUS_FOREVER));
	CHECK_EQ_U64(ev_check(buf, msg.len), 4);
	CHECK_OK(ebus_unsubscribe(hs.bus, sub));
	ebus_consumer_destroy(hs.c);
	endbus(hs.bus);
}

/* ---- a waiting consumer and ebus_shutdown ----------------------------------- */

struct waiter {
	ebus_consumer_t *c;
	_Atomic int tid;
	uint64_t got[64];
	unsigned ngot;
	int rc_end;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	unsigned char buf[128];
	ebus_message_t msg;
	int rc;
	atomic_store(&w->tid, (int)gettid());
	while ((rc = ebus_consume(w->c, buf, sizeof buf, &msg, EBUS_FOREVER)) == EBUS_OK) {
		CHECK(w->ngot < 64);
		w->got[w->ngot++] = ev_check(buf, msg.len);
	}
	w->rc_end = rc;
	return NULL;
}

static void test_shutdown_wakes_consumer(int sync)
{
	const unsigned n = 20;
	struct waiter w = {0};
	pthread_t th;
	ebus_t *bus = mkbus(sync, 2, EBUS_FULL_DEFAULT, 0);
	ebus_topic_t *t;

	CHECK_OK(ebus_topic(bus, "w", &t));
	CHECK_OK(ebus_consumer_create(bus, "w", 64, &w.c));
	tu_thread_create(&th, waiter_main, &w);
	for (unsigned i = 0; i < n; i++)
		pub_seq(t, i);
	/* It took everything and sleeps: only shutdown can wake it now. */
	while (cstats(w.c).consumed < n || !atomic_load(&w.tid))
		sched_yield();
	wait_asleep(atomic_load(&w.tid));
	CHECK_OK(ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN));
	tu_thread_join(th);
	CHECK_EQ_INT(w.rc_end, EBUS_ERR_SHUTDOWN);
	CHECK_EQ_U64(w.ngot, n);
	for (unsigned i = 0; i < n; i++)
		CHECK_EQ_U64(w.got[i], i);
	ebus_consumer_t *late = NULL;
	CHECK_EQ_INT(ebus_consumer_create(bus, "w", 4, &late), EBUS_ERR_SHUTDOWN);
	CHECK(late == NULL);
	unsigned char buf[16];
	ebus_message_t msg;
	CHECK_EQ_INT(ebus_await(bus, "w", buf, sizeof buf, &msg, EBUS_FOREVER), EBUS_ERR_SHUTDOWN);
	ebus_consumer_destroy(w.c);
	endbus(bus);
}

/* ---- ebus_await ----------------------------------------------------------- */

struct aw {
	ebus_t *bus;
	_Atomic int done;
	int rc;
	ebus_message_t msg;
	uint64_t val;
};

static void *await_main(void *arg)
{
	struct aw *a = arg;
	unsigned char buf[128];
	a->rc = ebus_await(a->bus, "ping.*", buf, sizeof buf, &a->msg, EBUS_FOREVER);
	if (a->rc == EBUS_OK)
		a->val = ev_check(buf, a->msg.len);
	atomic_store(&a->done, 1);
	return NULL;
}

static void test_await(int sync)
{
	struct aw a = {0};
	pthread_t th;
	ebus_topic_t *t;
	uint64_t sent = 0;
	unsigned char buf[128];
	ebus_message_t msg;

	a.bus = mkbus(sync, 2, EBUS_FULL_DEFAULT, 0);
	CHECK_OK(ebus_topic(a.bus, "ping.a", &t));
	CHECK_EQ_INT(ebus_await(a.bus, "ping.a", buf, sizeof buf, &msg, 1 * MS), EBUS_ERR_TIMEOUT);
	CHECK_EQ_INT(ebus_await(a.bus, "ping.*", buf, sizeof buf, &msg, 0), EBUS_ERR_EMPTY);
	tu_thread_create(&th, await_main, &a);
	/* Publish until the awaiting thread has its event. */
	while (!atomic_load(&a.done))
		pub_seq(t, 100 + sent++);
	tu_thread_join(th);
	CHECK_OK(a.rc);
	CHECK(a.msg.topic == t);
	CHECK(a.val >= 100 && a.val < 100 + sent);
	CHECK_OK(ebus_flush(a.bus, 0));
	ebus_stats_t bs = tu_stats(a.bus);
	CHECK_EQ_U64(bs.handler_errors, 0);
	endbus(a.bus); /* the await's consumer is gone: nothing left */
}

/* ---- bad input ----------------------------------------------------------- */

static void test_bad_input(void)
{
	ebus_t *bus = mkbus(0, 1, EBUS_FULL_DEFAULT, 0);
	ebus_consumer_t *c = (ebus_consumer_t *)(uintptr_t)0x1;
	ebus_consumer_t *good;
	ebus_consumer_stats_t s;
	ebus_message_t msg;
	unsigned char buf[8];
	ebus_topic_t *t;

	CHECK_OK(ebus_topic(bus, "a.b", &t));
	int64_t bytes = atomic_load(&g_alloc.bytes);
	CHECK_EQ_INT(ebus_consumer_create(NULL, "a.b", 4, &c), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_consumer_create(bus, NULL, 4, &c), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_consumer_create(bus, "a.b", 4, NULL), EBUS_ERR_NULL);
	const unsigned bad_caps[] = {1, 2, 3, 5, 6, 100, 1u << 25, 0x80000000u, UINT32_MAX};
	for (size_t i = 0; i < sizeof bad_caps / sizeof bad_caps[0]; i++)
		CHECK_EQ_INT(ebus_consumer_create(bus, "a.b", bad_caps[i], &c), EBUS_ERR_CAPACITY);
	CHECK_EQ_INT(ebus_consumer_create(bus, "", 4, &c), EBUS_ERR_TOPIC_EMPTY);
	CHECK_EQ_INT(ebus_consumer_create(bus, "a..b", 4, &c), EBUS_ERR_TOPIC_EMPTY_TOKEN);
	CHECK_EQ_INT(ebus_consumer_create(bus, ".a", 4, &c), EBUS_ERR_TOPIC_EMPTY_TOKEN);
	CHECK_EQ_INT(ebus_consumer_create(bus, "a b", 4, &c), EBUS_ERR_TOPIC_BAD_CHAR);
	CHECK_EQ_INT(ebus_consumer_create(bus, "a.b*", 4, &c), EBUS_ERR_PATTERN_WILDCARD);
	CHECK_EQ_INT(ebus_consumer_create(bus, "a.>.b", 4, &c), EBUS_ERR_PATTERN_GT_LAST);
	atomic_store(&g_alloc.fail, 1);
	CHECK_EQ_INT(ebus_consumer_create(bus, "a.b", 4, &c), EBUS_ERR_NOMEM);
	CHECK_EQ_INT(ebus_await(bus, "a.b", buf, sizeof buf, &msg, 0), EBUS_ERR_NOMEM);
	atomic_store(&g_alloc.fail, 0);
	CHECK(c == (ebus_consumer_t *)(uintptr_t)0x1);
	CHECK_EQ_U64((uint64_t)atomic_load(&g_alloc.bytes), (uint64_t)bytes); /* nothing kept */

	CHECK_EQ_INT(ebus_await(NULL, "a.b", buf, sizeof buf, &msg, 0), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_await(bus, NULL, buf, sizeof buf, &msg, 0), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_await(bus, "a.b", NULL, sizeof buf, &msg, 0), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_await(bus, "a.b", buf, sizeof buf, NULL, 0), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_await(bus, "a..b", buf, sizeof buf, &msg, 0), EBUS_ERR_TOPIC_EMPTY_TOKEN);
	CHECK_EQ_INT(ebus_await(bus, "*x", buf, sizeof buf, &msg, 0), EBUS_ERR_PATTERN_WILDCARD);

	CHECK_OK(ebus_consumer_create(bus, "a.b", 4, &good));
	CHECK_EQ_INT(ebus_consume(NULL, buf, sizeof buf, &msg, 0), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_consume(good, buf, sizeof buf, NULL, 0), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_consume(good, NULL, 1, &msg, 0), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_consume_until(NULL, buf, sizeof buf, &msg, 0), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_consume_until(good, buf, sizeof buf, NULL, EBUS_FOREVER), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_consumer_stats(NULL, &s), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_consumer_stats(good, NULL), EBUS_ERR_NULL);
	ebus_consumer_destroy(NULL);

	/* None of that subscribed anything or touched the good consumer. */
	pub_seq(t, 5);
	CHECK_OK(ebus_flush(bus, 0));
	ebus_stats_t bs = tu_stats(bus);
	CHECK_EQ_U64(bs.handler_calls, 1);
	s = cstats(good);
	CHECK_EQ_U64(s.received, 1);
	CHECK_EQ_U64(s.consumed, 0);
	CHECK_OK(ebus_consume(good, buf, sizeof buf, &msg, 0));
	CHECK_EQ_U64(ev_check(buf, msg.len), 5);
	ebus_consumer_destroy(good);
	endbus(bus);
}

/* Events still queued (large ones hold allocations) are freed by destroy. */
static void test_destroy_with_queued(int sync)
{
	ebus_t *bus = mkbus(sync, 1, EBUS_FULL_DEFAULT, 0);
	ebus_topic_t *t;
	ebus_consumer_t *c;
	CHECK_OK(ebus_topic(bus, "keep", &t));
	CHECK_OK(ebus_consumer_create(bus, "keep", 64, &c));
	for (uint64_t i = 0; i < 30; i++)
		pub_seq(t, i);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(cstats(c).queued, 30);
	ebus_consumer_destroy(c);
	endbus(bus); /* counting allocator: every block given back */
}

int main(void)
{
	g_allocator = tu_allocator(&g_alloc);
	for (int sync = 0; sync <= 1; sync++) {
		const char *m = sync ? "sync" : "async";
		TU_RUN1(test_order, sync, m);
		TU_RUN1(test_poll_timeout_buffer, sync, m);
		TU_RUN1(test_policy_fail, sync, m);
		TU_RUN1(test_policy_drop, sync, m);
		TU_RUN1(test_policy_block_timeout, sync, m);
		TU_RUN1(test_block_released_by_consumer, sync, m);
		TU_RUN1(test_block_released_by_shutdown, sync, m);
		TU_RUN1(test_block_released_by_destroy, sync, m);
		TU_RUN1(test_from_handler, sync, m);
		TU_RUN1(test_shutdown_wakes_consumer, sync, m);
		TU_RUN1(test_await, sync, m);
		TU_RUN1(test_destroy_with_queued, sync, m);
		TU_RUN1(test_multi, sync, m);
		TU_RUN1(test_wildcard, sync, m);
		TU_RUN1(test_pattern_many_producers, sync, m);
	}
	TU_RUN(test_block_own_thread);
	TU_RUN(test_bad_input);
	return tu_finish("test_consumer");
}
