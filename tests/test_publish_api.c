/*
 * The publish APIs of issue 10 and what a handler learns about each event:
 * the per-(topic, source) sequence number, the source id and the
 * end-of-batch flag (ebus_event_t), batch publish (ebus_publish_batch),
 * zero-copy claim/commit (ebus_claim) and payloads above the inline size
 * (the lane arena). Asserts order, exactly-once, gaps exactly where the bus
 * dropped, error codes, and that bad input changes nothing. Links the
 * hooked library for the failure points (src/testhook.h).
 */
#include "testutil.h"
#include "testhook.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static ebus_sub_id sid_; /* ids the tests do not need */

/* ---- a recorder: every event a handler saw, in call order ----------------- */

typedef struct rec_ev {
	ebus_topic_t *topic;
	uint64_t source, seq;
	unsigned flags;
	size_t len;
	uint64_t value; /* the payload's first 8 bytes (or its length when shorter) */
	int bytes_ok;   /* the payload is fill_payload(value, len) */
} rec_ev;

typedef struct recorder {
	pthread_mutex_t m;
	rec_ev *ev;
	size_t n, cap;
	tu_gate *gate; /* NULL, or the first call waits at it */
} recorder;

static void rec_init(recorder *r, size_t cap)
{
	CHECK(pthread_mutex_init(&r->m, NULL) == 0);
	r->ev = calloc(cap, sizeof *r->ev);
	CHECK(r->ev != NULL);
	r->n = 0;
	r->cap = cap;
	r->gate = NULL;
}

static void rec_fini(recorder *r)
{
	free(r->ev);
	pthread_mutex_destroy(&r->m);
}

/* Payload bytes derived from (value, len): byte i is a mix of both; a
 * payload of 8 bytes or more starts with the value itself. */
static void fill_payload(unsigned char *p, uint64_t value, size_t len)
{
	if (len < 8)
		value = len; /* what rec_handler takes as the value of a short payload */
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(tu_mix3(value, len, i) & 0xff);
	if (len >= 8)
		memcpy(p, &value, 8);
}

static int payload_ok(const unsigned char *p, uint64_t value, size_t len)
{
	for (size_t i = len >= 8 ? 8 : 0; i < len; i++)
		if (p[i] != (unsigned char)(tu_mix3(value, len, i) & 0xff))
			return 0;
	return 1;
}

static int rec_handler(const ebus_event_t *ev, void *ctx)
{
	recorder *r = ctx;
	rec_ev e;
	e.topic = ev->topic;
	e.source = ev->source;
	e.seq = ev->seq;
	e.flags = ev->flags;
	e.len = ev->len;
	e.value = ev->len;
	if (ev->len >= 8)
		memcpy(&e.value, ev->data, 8);
	e.bytes_ok = payload_ok(ev->data, e.value, ev->len);
	if (r->gate) {
		tu_gate *g = r->gate;
		r->gate = NULL; /* only the first call: the executor is the only caller */
		tu_gate_pass(g);
	}
	pthread_mutex_lock(&r->m);
	if (r->n < r->cap)
		r->ev[r->n] = e;
	r->n++;
	pthread_mutex_unlock(&r->m);
	return 0;
}

static size_t rec_count(recorder *r)
{
	pthread_mutex_lock(&r->m);
	size_t n = r->n;
	pthread_mutex_unlock(&r->m);
	return n;
}

static ebus_t *bus_new(unsigned executors, unsigned capacity, ebus_full_policy policy, int sync)
{
	ebus_config_t cfg = {0};
	ebus_t *bus = NULL;
	cfg.executors = executors;
	cfg.lane_capacity = capacity;
	cfg.full_policy = policy;
	cfg.synchronous = sync;
	CHECK_OK(ebus_create(&cfg, &bus));
	return bus;
}

/* ---- sequence numbers and sources ------------------------------------------ */

/* One publisher, two interleaved topics: each topic's numbers are 1..N in
 * order, the source is the same non-zero id on both. */
static void seq_per_topic(int sync)
{
	enum { N = 500 };
	ebus_t *bus = bus_new(2, 0, EBUS_FULL_BLOCK, sync);
	ebus_topic_t *a, *b;
	recorder ra, rb;
	rec_init(&ra, N);
	rec_init(&rb, N);
	CHECK_OK(ebus_topic(bus, "seq.a", &a));
	CHECK_OK(ebus_topic(bus, "seq.b", &b));
	CHECK_OK(ebus_subscribe(a, rec_handler, &ra, &sid_));
	CHECK_OK(ebus_subscribe(b, rec_handler, &rb, &sid_));
	for (uint64_t i = 0; i < N; i++) {
		unsigned char p[16];
		fill_payload(p, i, sizeof p);
		CHECK_OK(ebus_publish(a, p, sizeof p));
		if (i % 2 == 0)
			CHECK_OK(ebus_publish(b, p, sizeof p));
	}
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&ra), N);
	CHECK_EQ_U64(rec_count(&rb), N / 2);
	CHECK(ra.ev[0].source != 0);
	{
		uint64_t self = 0;
		CHECK_OK(ebus_self_source(bus, &self));
		CHECK_EQ_U64(self, ra.ev[0].source);
		CHECK_EQ_INT(ebus_self_source(NULL, &self), EBUS_ERR_NULL);
		CHECK_EQ_INT(ebus_self_source(bus, NULL), EBUS_ERR_NULL);
	}
	for (size_t i = 0; i < N; i++) {
		CHECK_EQ_U64(ra.ev[i].seq, i + 1);
		CHECK_EQ_U64(ra.ev[i].value, i);
		CHECK_EQ_U64(ra.ev[i].source, ra.ev[0].source);
		if (sync)
			CHECK(ra.ev[i].flags & EBUS_EV_END_OF_BATCH);
	}
	for (size_t i = 0; i < N / 2; i++) {
		CHECK_EQ_U64(rb.ev[i].seq, i + 1);
		CHECK_EQ_U64(rb.ev[i].value, 2 * i);
		CHECK_EQ_U64(rb.ev[i].source, ra.ev[0].source);
	}
	ebus_destroy(bus);
	rec_fini(&ra);
	rec_fini(&rb);
}
static void seq_per_topic_async(void) { seq_per_topic(0); }
static void seq_per_topic_sync(void) { seq_per_topic(1); }

/* Several publishing threads on one topic: distinct sources, and each
 * source's numbers arrive as 1..N in order. */
enum { MT_THREADS = 4 };
struct mt_arg {
	ebus_topic_t *t;
	uint64_t n;
	unsigned id;
};

static void *mt_publisher(void *arg)
{
	struct mt_arg *m = arg;
	for (uint64_t i = 0; i < m->n; i++) {
		uint64_t v = (uint64_t)m->id << 32 | i;
		CHECK_OK(ebus_publish(m->t, &v, sizeof v));
	}
	return NULL;
}

static void seq_per_source(int sync)
{
	uint64_t n = tu_param("EBUS_STRESS_SEQ_EVENTS", 2000, 200000);
	ebus_t *bus = bus_new(2, 64, EBUS_FULL_BLOCK, sync);
	ebus_topic_t *t;
	recorder r;
	pthread_t th[MT_THREADS];
	struct mt_arg args[MT_THREADS];
	uint64_t src[MT_THREADS] = {0}, next[MT_THREADS] = {0};

	rec_init(&r, n * MT_THREADS);
	CHECK_OK(ebus_topic(bus, "seq.mt", &t));
	CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
	for (unsigned i = 0; i < MT_THREADS; i++) {
		args[i] = (struct mt_arg){t, n, i};
		tu_thread_create(&th[i], mt_publisher, &args[i]);
	}
	for (unsigned i = 0; i < MT_THREADS; i++)
		tu_thread_join(th[i]);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), n * MT_THREADS);
	for (size_t k = 0; k < r.n; k++) {
		unsigned id = (unsigned)(r.ev[k].value >> 32);
		CHECK(id < MT_THREADS);
		if (!src[id])
			src[id] = r.ev[k].source;
		CHECK_EQ_U64(r.ev[k].source, src[id]);
		CHECK_EQ_U64(r.ev[k].seq, ++next[id]);
		CHECK_EQ_U64(r.ev[k].value & 0xffffffffu, next[id] - 1);
	}
	for (unsigned i = 0; i < MT_THREADS; i++) {
		CHECK(src[i] != 0);
		for (unsigned j = 0; j < i; j++)
			CHECK(src[i] != src[j]);
	}
	ebus_destroy(bus);
	rec_fini(&r);
}
static void seq_per_source_async(void) { seq_per_source(0); }
static void seq_per_source_sync(void) { seq_per_source(1); }

/* A full lane: an event dropped (EBUS_DROPPED) takes its number, so the
 * subscriber sees a gap exactly there; a refused one (EBUS_ERR_FULL) takes
 * none. The executor is held in the first handler call so the lane fills. */
static void seq_gaps(ebus_full_policy policy)
{
	enum { N = 40 };
	ebus_t *bus = bus_new(1, 8, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *t;
	recorder r;
	tu_gate gate;
	uint64_t expect[N + 1], numbered = 0;
	size_t nexpect = 0, refused = 0;

	tu_gate_init(&gate);
	rec_init(&r, N + 1);
	r.gate = &gate;
	CHECK_OK(ebus_topic(bus, "seq.gap", &t));
	CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
	{
		uint64_t v = 1000;
		CHECK_OK(ebus_publish(t, &v, sizeof v));
		expect[nexpect++] = ++numbered;
	}
	tu_gate_wait_entered(&gate, 1); /* the executor is inside the first call */
	for (uint64_t i = 0; i < N; i++) {
		int rc = ebus_publish_ex(t, &i, sizeof i, policy);
		if (rc == EBUS_OK) {
			expect[nexpect++] = ++numbered;
		} else if (rc == EBUS_DROPPED) {
			numbered++;
			refused++;
		} else {
			CHECK_EQ_INT(rc, EBUS_ERR_FULL);
			refused++;
		}
	}
	CHECK(refused > 0); /* 8 slots, N events: some could not go in */
	tu_gate_open(&gate);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), nexpect);
	for (size_t k = 0; k < nexpect; k++)
		CHECK_EQ_U64(r.ev[k].seq, expect[k]);
	if (policy == EBUS_FULL_FAIL) /* no gaps: 1..n */
		CHECK_EQ_U64(r.ev[nexpect - 1].seq, nexpect);
	else
		CHECK_EQ_U64(numbered, N + 1);
	ebus_destroy(bus);
	rec_fini(&r);
	tu_gate_destroy(&gate);
}
static void seq_gap_on_drop(void) { seq_gaps(EBUS_FULL_DROP); }
static void seq_no_gap_on_fail(void) { seq_gaps(EBUS_FULL_FAIL); }

/* ebus_publish_name_ex on a BLOCK bus that never gives up: with the lane
 * full, each call's own policy holds (FAIL: EBUS_ERR_FULL, DROP:
 * EBUS_DROPPED with its number, BLOCK with a bound: EBUS_ERR_TIMEOUT), an
 * unknown policy is EBUS_ERR_CONFIG and changes nothing, and once the
 * executor goes on exactly the accepted events arrive, in order. */
static void name_ex_policies(void)
{
	enum { N = 40 };
	ebus_t *bus = bus_new(1, 8, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *t;
	recorder r;
	tu_gate gate;
	uint64_t expect[N + 1], numbered = 0, v = 1000;
	size_t nexpect = 0;
	int rc;

	tu_gate_init(&gate);
	rec_init(&r, N + 1);
	r.gate = &gate;
	CHECK_OK(ebus_topic(bus, "name.ex", &t));
	CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
	CHECK_OK(ebus_publish_name_ex(bus, "name.ex", &v, sizeof v, EBUS_FULL_DEFAULT, 0));
	expect[nexpect++] = ++numbered;
	tu_gate_wait_entered(&gate, 1);
	CHECK_EQ_INT(ebus_publish_name_ex(bus, "name.ex", &v, sizeof v, (ebus_full_policy)9, 0),
	             EBUS_ERR_CONFIG);
	CHECK_EQ_INT(ebus_publish_name_ex(NULL, "name.ex", &v, sizeof v, EBUS_FULL_FAIL, 0), EBUS_ERR_NULL);
	/* fill the lane (FAIL until it refuses) */
	for (uint64_t i = 0; i < N; i++) {
		rc = ebus_publish_name_ex(bus, "name.ex", &i, sizeof i, EBUS_FULL_FAIL, 0);
		if (rc != EBUS_OK) {
			CHECK_EQ_INT(rc, EBUS_ERR_FULL);
			break;
		}
		expect[nexpect++] = ++numbered;
	}
	CHECK(nexpect < N + 1);
	CHECK_EQ_INT(ebus_publish_name_ex(bus, "name.ex", &v, sizeof v, EBUS_FULL_DROP, 0), EBUS_DROPPED);
	numbered++;
	/* the bus would block forever; this call gives up after 1 ms */
	CHECK_EQ_INT(ebus_publish_name_ex(bus, "name.ex", &v, sizeof v, EBUS_FULL_BLOCK, 1000000),
	             EBUS_ERR_TIMEOUT);
	CHECK_EQ_INT(ebus_publish_name_ex(bus, "name.ex", &v, sizeof v, EBUS_FULL_DEFAULT, 1000000),
	             EBUS_ERR_TIMEOUT);
	tu_gate_open(&gate);
	/* the bound was for those calls only: the bus's own wait is back */
	CHECK_OK(ebus_publish_name(bus, "name.ex", &v, sizeof v));
	expect[nexpect++] = ++numbered;
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), nexpect);
	for (size_t k = 0; k < nexpect; k++)
		CHECK_EQ_U64(r.ev[k].seq, expect[k]);
	ebus_destroy(bus);
	rec_fini(&r);
	tu_gate_destroy(&gate);
}

/* The sequence table cannot grow: EBUS_ERR_NOMEM, nothing published, and
 * the topic's numbers start at 1 once it can. */
static _Atomic int fail_seq;
static int hook_fail_seq(int point, long arg)
{
	(void)arg;
	return point == EBUS_TP_FAIL_SEQ_ALLOC && atomic_load(&fail_seq);
}

static void seq_table_nomem(int sync)
{
	ebus_t *bus = bus_new(1, 0, EBUS_FULL_BLOCK, sync);
	ebus_topic_t *t[40];
	recorder r;
	char name[32];
	uint64_t v = 7;

	rec_init(&r, 8);
	for (unsigned i = 0; i < 40; i++) { /* index 39 is past the first table (16) */
		snprintf(name, sizeof name, "seq.nomem.%u", i);
		CHECK_OK(ebus_topic(bus, name, &t[i]));
	}
	CHECK_OK(ebus_subscribe(t[39], rec_handler, &r, &sid_));
	ebus_test_set_hook(hook_fail_seq);
	atomic_store(&fail_seq, 1);
	CHECK_EQ_INT(ebus_publish(t[39], &v, sizeof v), EBUS_ERR_NOMEM);
	CHECK_EQ_INT(ebus_publish_ex(t[39], &v, sizeof v, EBUS_FULL_FAIL), EBUS_ERR_NOMEM);
	atomic_store(&fail_seq, 0);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 0);
	CHECK_EQ_U64(tu_stats(bus).published, 0);
	CHECK_OK(ebus_publish(t[39], &v, sizeof v));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 1);
	CHECK_EQ_U64(r.ev[0].seq, 1);
	ebus_test_set_hook(NULL);
	ebus_destroy(bus);
	rec_fini(&r);
}
static void seq_table_nomem_async(void) { seq_table_nomem(0); }
static void seq_table_nomem_sync(void) { seq_table_nomem(1); }

/* A publish from inside a synchronous handler is queued and numbered when
 * queued: the nested topic's numbers still run 1, 2, 3. */
static ebus_topic_t *nest_target;
static int nest_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ctx;
	uint64_t v;
	memcpy(&v, ev->data, sizeof v);
	CHECK_OK(ebus_publish(nest_target, &v, sizeof v));
	CHECK_OK(ebus_publish(nest_target, &v, sizeof v));
	return 0;
}

static void seq_sync_nested(void)
{
	ebus_t *bus = bus_new(1, 0, EBUS_FULL_BLOCK, 1);
	ebus_topic_t *outer;
	recorder r;
	rec_init(&r, 16);
	CHECK_OK(ebus_topic(bus, "seq.outer", &outer));
	CHECK_OK(ebus_topic(bus, "seq.inner", &nest_target));
	CHECK_OK(ebus_subscribe(outer, nest_handler, NULL, &sid_));
	CHECK_OK(ebus_subscribe(nest_target, rec_handler, &r, &sid_));
	for (uint64_t i = 0; i < 3; i++)
		CHECK_OK(ebus_publish(outer, &i, sizeof i));
	CHECK_EQ_U64(rec_count(&r), 6);
	for (size_t k = 0; k < 6; k++) {
		CHECK_EQ_U64(r.ev[k].seq, k + 1);
		CHECK_EQ_U64(r.ev[k].value, k / 2);
		CHECK(r.ev[k].source != 0);
		CHECK(r.ev[k].flags & EBUS_EV_END_OF_BATCH);
	}
	ebus_destroy(bus);
	rec_fini(&r);
}

/* An unordered topic: every source's numbers 1..N arrive exactly once. */
static void seq_unordered(void)
{
	enum { N = 3000 };
	ebus_t *bus = bus_new(3, 0, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *t;
	recorder r;
	unsigned char *seen = calloc(N + 1, 1);
	CHECK(seen != NULL);
	rec_init(&r, N);
	CHECK_OK(ebus_topic_ex(bus, "seq.unordered", -1, EBUS_TOPIC_UNORDERED, &t));
	CHECK_OK(ebus_subscribe_ex(t, rec_handler, &r, EBUS_SUB_CONCURRENT, &sid_));
	for (uint64_t i = 0; i < N; i++)
		CHECK_OK(ebus_publish(t, &i, sizeof i));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), N);
	for (size_t k = 0; k < N; k++) {
		CHECK(r.ev[k].seq >= 1 && r.ev[k].seq <= N);
		CHECK_EQ_U64(r.ev[k].value, r.ev[k].seq - 1);
		CHECK(!seen[r.ev[k].seq]);
		seen[r.ev[k].seq] = 1;
	}
	ebus_destroy(bus);
	rec_fini(&r);
	free(seen);
}

/* ---- end of batch ------------------------------------------------------------ */

/* Events queued while the executor is held: A A B A C C on one lane, then
 * released as one batch. The flag marks the end of each run of a topic and
 * the end of the batch; the invariant behind it holds on every event: an
 * event without the flag is followed at once by one of the same topic. */
static void eob_runs(void)
{
	ebus_t *bus = bus_new(1, 64, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *hold, *a, *b, *c;
	recorder r;
	tu_gate gate;
	uint64_t v = 0;
	tu_gate_init(&gate);
	rec_init(&r, 16);
	r.gate = &gate;
	CHECK_OK(ebus_topic(bus, "eob.hold", &hold));
	CHECK_OK(ebus_topic(bus, "eob.a", &a));
	CHECK_OK(ebus_topic(bus, "eob.b", &b));
	CHECK_OK(ebus_topic(bus, "eob.c", &c));
	CHECK_OK(ebus_subscribe_pattern(bus, "eob.>", rec_handler, &r, 0, &sid_));
	CHECK_OK(ebus_publish(hold, &v, sizeof v));
	tu_gate_wait_entered(&gate, 1);
	ebus_topic_t *order[] = {a, a, b, a, c, c};
	unsigned want[] = {0, 1, 1, 1, 0, 1};
	for (unsigned i = 0; i < 6; i++)
		CHECK_OK(ebus_publish(order[i], &v, sizeof v));
	tu_gate_open(&gate);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 7);
	CHECK(r.ev[0].flags & EBUS_EV_END_OF_BATCH); /* the held event was alone */
	for (unsigned i = 0; i < 6; i++) {
		CHECK(r.ev[i + 1].topic == order[i]);
		CHECK_EQ_INT(!!(r.ev[i + 1].flags & EBUS_EV_END_OF_BATCH), (int)want[i]);
	}
	ebus_destroy(bus);
	rec_fini(&r);
	tu_gate_destroy(&gate);
}

/* Under load from several threads on several topics of one executor: every
 * event without the flag is followed at once by one of its topic, and the
 * last event dispatched has it. */
struct eob_pub {
	ebus_topic_t *t[3];
	uint64_t n;
	unsigned id;
};
static void *eob_publisher(void *arg)
{
	struct eob_pub *e = arg;
	for (uint64_t i = 0; i < e->n; i++) {
		uint64_t v = i;
		CHECK_OK(ebus_publish(e->t[tu_mix3(e->id, i, 0) % 3 == 0 ? 0 : (i / 7) % 3], &v, sizeof v));
	}
	return NULL;
}

static void eob_invariant(void)
{
	uint64_t n = tu_param("EBUS_STRESS_EOB_EVENTS", 3000, 300000);
	ebus_t *bus = bus_new(1, 256, EBUS_FULL_BLOCK, 0);
	struct eob_pub args[3];
	pthread_t th[3];
	recorder r;
	ebus_topic_t *t[3];
	size_t ends = 0;
	rec_init(&r, n * 3);
	for (unsigned i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof name, "eob.%u", i);
		CHECK_OK(ebus_topic(bus, name, &t[i]));
	}
	CHECK_OK(ebus_subscribe_pattern(bus, "eob.*", rec_handler, &r, 0, &sid_));
	for (unsigned i = 0; i < 3; i++) {
		args[i] = (struct eob_pub){{t[0], t[1], t[2]}, n, i};
		tu_thread_create(&th[i], eob_publisher, &args[i]);
	}
	for (unsigned i = 0; i < 3; i++)
		tu_thread_join(th[i]);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 3 * n);
	for (size_t k = 0; k + 1 < r.n; k++) {
		if (!(r.ev[k].flags & EBUS_EV_END_OF_BATCH)) {
			CHECK(r.ev[k + 1].topic == r.ev[k].topic);
			CHECK_EQ_U64(r.ev[k + 1].source, r.ev[k].source);
		} else {
			ends++;
		}
	}
	CHECK(r.ev[r.n - 1].flags & EBUS_EV_END_OF_BATCH);
	printf("    %zu events, %zu with the end-of-batch flag\n", r.n, ends + 1);
	ebus_destroy(bus);
	rec_fini(&r);
}

/* ---- batch publish ------------------------------------------------------------ */

/* Payload sizes a batch mixes: empty, inline, the first size past inline, larger. */
static const size_t batch_sizes[] = {0, 1, 8, EBUS_INLINE_MAX, EBUS_INLINE_MAX + 1, 200, 4096};
#define NSIZES (sizeof batch_sizes / sizeof batch_sizes[0])

/* Builds n messages over `nt` topics: message i goes to topic i % nt
 * (or i / run % nt when run > 1) with value i and a size from the table. */
static unsigned char *batch_build(ebus_msg_t *m, size_t n, ebus_topic_t **t, unsigned nt,
                                  size_t run)
{
	size_t total = 0, off = 0;
	unsigned char *buf;
	for (size_t i = 0; i < n; i++)
		total += batch_sizes[i % NSIZES] + 8;
	buf = malloc(total + 1);
	CHECK(buf != NULL);
	for (size_t i = 0; i < n; i++) {
		size_t len = batch_sizes[i % NSIZES];
		fill_payload(buf + off, i, len);
		m[i].topic = t[(run > 1 ? i / run : i) % nt];
		m[i].data = len ? buf + off : NULL;
		m[i].len = len;
		off += len + 8;
	}
	return buf;
}

/* The recorder saw topic `t`'s messages of m, in order, each once, with
 * the right bytes and consecutive sequence numbers from `seq0` + 1. */
static void check_topic_order(recorder *r, const ebus_msg_t *m, size_t n, ebus_topic_t *t,
                              uint64_t seq0)
{
	size_t k = 0;
	uint64_t seq = seq0;
	for (size_t i = 0; i < n; i++) {
		if (m[i].topic != t)
			continue;
		while (k < r->n && r->ev[k].topic != t)
			k++;
		CHECK(k < r->n);
		CHECK_EQ_U64(r->ev[k].len, m[i].len);
		if (m[i].len >= 8)
			CHECK_EQ_U64(r->ev[k].value, i);
		CHECK(r->ev[k].bytes_ok);
		CHECK_EQ_U64(r->ev[k].seq, ++seq);
		k++;
	}
}

static void batch_order(int sync)
{
	enum { N = 700, NT = 5 };
	ebus_t *bus = bus_new(3, 64, EBUS_FULL_BLOCK, sync);
	ebus_topic_t *t[NT];
	ebus_msg_t *m = calloc(N, sizeof *m);
	recorder r;
	size_t accepted = 12345;
	CHECK(m != NULL);
	rec_init(&r, 2 * N);
	for (unsigned i = 0; i < NT; i++) {
		char name[32];
		snprintf(name, sizeof name, "batch.t%u", i);
		CHECK_OK(ebus_topic(bus, name, &t[i]));
	}
	CHECK_OK(ebus_subscribe_pattern(bus, "batch.>", rec_handler, &r, EBUS_SUB_CONCURRENT, &sid_));
	unsigned char *buf = batch_build(m, N, t, NT, 1);
	/* a single publish first: the batch's numbers follow it */
	CHECK_OK(ebus_publish(t[0], "x", 1));
	CHECK_OK(ebus_publish_batch(m, N, EBUS_FULL_DEFAULT, &accepted));
	CHECK_EQ_U64(accepted, N);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), N + 1);
	CHECK_EQ_U64(tu_stats(bus).published, N + 1);
	/* per topic: the batch's order; topic 0 after its single event */
	for (unsigned i = 0; i < NT; i++) {
		if (i == 0) { /* take the single event out of the way */
			size_t k = 0;
			while (r.ev[k].topic != t[0])
				k++;
			CHECK_EQ_U64(r.ev[k].seq, 1);
			CHECK_EQ_U64(r.ev[k].len, 1);
			r.ev[k].topic = NULL;
		}
		check_topic_order(&r, m, N, t[i], i == 0 ? 1 : 0);
	}
	ebus_destroy(bus);
	rec_fini(&r);
	free(buf);
	free(m);
}
static void batch_order_async(void) { batch_order(0); }
static void batch_order_sync(void) { batch_order(1); }

/* One p_tail store per lane: a batch published while the executor is held
 * becomes visible at once, so the executor takes it as one batch and only
 * its last event ends a run. */
static void batch_one_store(void)
{
	enum { N = 20 };
	ebus_t *bus = bus_new(1, 64, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *hold, *t;
	recorder r;
	tu_gate gate;
	ebus_msg_t m[N];
	uint64_t v[N];
	tu_gate_init(&gate);
	rec_init(&r, N + 1);
	r.gate = &gate;
	CHECK_OK(ebus_topic(bus, "one.hold", &hold));
	CHECK_OK(ebus_topic(bus, "one.t", &t));
	CHECK_OK(ebus_subscribe_pattern(bus, "one.*", rec_handler, &r, 0, &sid_));
	CHECK_OK(ebus_publish(hold, "h", 1));
	tu_gate_wait_entered(&gate, 1);
	for (unsigned i = 0; i < N; i++) {
		v[i] = i;
		m[i] = (ebus_msg_t){t, &v[i], sizeof v[i]};
	}
	CHECK_OK(ebus_publish_batch(m, N, EBUS_FULL_FAIL, NULL));
	tu_gate_open(&gate);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), N + 1);
	for (unsigned i = 0; i < N; i++) {
		CHECK_EQ_U64(r.ev[i + 1].value, i);
		CHECK_EQ_INT(!!(r.ev[i + 1].flags & EBUS_EV_END_OF_BATCH), i == N - 1);
	}
	ebus_destroy(bus);
	rec_fini(&r);
	tu_gate_destroy(&gate);
}

/* Bad input changes nothing: no event, no counter, *accepted 0. */
static void batch_bad_input(void)
{
	ebus_t *bus = bus_new(2, 0, EBUS_FULL_BLOCK, 0), *other = bus_new(1, 0, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *t, *u, *o, *meta;
	recorder r;
	size_t acc = 99;
	uint64_t v = 5;
	static unsigned char big[(1u << 20) + 1];
	rec_init(&r, 8);
	CHECK_OK(ebus_topic(bus, "bad.t", &t));
	CHECK_OK(ebus_topic(bus, "bad.u", &u));
	CHECK_OK(ebus_topic(other, "bad.o", &o));
	CHECK_OK(ebus_topic(bus, "$ebus.custom", &meta));
	CHECK_OK(ebus_subscribe_pattern(bus, "bad.*", rec_handler, &r, EBUS_SUB_CONCURRENT, &sid_));
	ebus_msg_t good = {t, &v, sizeof v};
	struct {
		ebus_msg_t bad;
		int rc;
	} cases[] = {
		{{NULL, &v, sizeof v}, EBUS_ERR_NULL},
		{{u, NULL, 4}, EBUS_ERR_NULL},
		{{o, &v, sizeof v}, EBUS_ERR_BUS_MISMATCH},
		{{meta, &v, sizeof v}, EBUS_ERR_RESERVED},
		{{u, big, sizeof big}, EBUS_ERR_TOO_LARGE},
	};
	for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		ebus_msg_t m[3] = {good, good, cases[c].bad}; /* the bad one last */
		acc = 99;
		CHECK_EQ_INT(ebus_publish_batch(m, 3, EBUS_FULL_DEFAULT, &acc), cases[c].rc);
		CHECK_EQ_U64(acc, 0);
	}
	/* after an unordered topic (looked up again for every event) */
	ebus_topic_t *un;
	CHECK_OK(ebus_topic_ex(bus, "bad.unordered", -1, EBUS_TOPIC_UNORDERED, &un));
	{
		ebus_msg_t m[4] = {{un, &v, sizeof v}, {un, &v, sizeof v}, {NULL, &v, sizeof v}, good};
		CHECK_EQ_INT(ebus_publish_batch(m, 4, EBUS_FULL_DEFAULT, &acc), EBUS_ERR_NULL);
		CHECK_EQ_U64(acc, 0);
	}
	ebus_msg_t m1[1] = {good};
	CHECK_EQ_INT(ebus_publish_batch(NULL, 2, EBUS_FULL_DEFAULT, &acc), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_publish_batch(m1, 1, (ebus_full_policy)17, &acc), EBUS_ERR_CONFIG);
	CHECK_EQ_U64(acc, 0);
	CHECK_OK(ebus_publish_batch(NULL, 0, EBUS_FULL_DEFAULT, &acc)); /* nothing to do */
	CHECK_EQ_U64(acc, 0);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 0);
	CHECK_EQ_U64(tu_stats(bus).published, 0);
	CHECK_EQ_U64(tu_stats(other).published, 0);
	/* the same message alone is fine, and numbered 1: the bad calls took none */
	CHECK_OK(ebus_publish_batch(m1, 1, EBUS_FULL_DEFAULT, &acc));
	CHECK_EQ_U64(acc, 1);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 1);
	CHECK_EQ_U64(r.ev[0].seq, 1);
	CHECK_OK(ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN));
	CHECK_EQ_INT(ebus_publish_batch(m1, 1, EBUS_FULL_DEFAULT, &acc), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_U64(acc, 0);
	ebus_destroy(bus);
	ebus_destroy(other);
	rec_fini(&r);
}

/* A lane that fills mid-batch: FAIL stops at the first event that does not
 * fit (everything before it delivered, nothing after); DROP drops each
 * event that does not fit, with its number (gaps), and goes on; BLOCK
 * waits and delivers everything. */
static void batch_full(ebus_full_policy policy)
{
	enum { N = 60 };
	ebus_t *bus = bus_new(1, 8, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *t;
	recorder r;
	tu_gate gate;
	ebus_msg_t m[N];
	uint64_t v[N];
	size_t acc = 0;
	int rc;
	tu_gate_init(&gate);
	rec_init(&r, N + 1);
	r.gate = policy == EBUS_FULL_BLOCK ? NULL : &gate;
	CHECK_OK(ebus_topic(bus, "full.t", &t));
	CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
	if (r.gate) {
		uint64_t h = 1000;
		CHECK_OK(ebus_publish(t, &h, sizeof h));
		tu_gate_wait_entered(&gate, 1);
	}
	for (unsigned i = 0; i < N; i++) {
		v[i] = i;
		m[i] = (ebus_msg_t){t, &v[i], sizeof v[i]};
	}
	rc = ebus_publish_batch(m, N, policy, &acc);
	tu_gate_open(&gate);
	CHECK_OK(ebus_flush(bus, 0));
	ebus_stats_t st = tu_stats(bus);
	if (policy == EBUS_FULL_FAIL) {
		CHECK_EQ_INT(rc, EBUS_ERR_FULL);
		CHECK(acc > 0 && acc < N);
		CHECK_EQ_U64(rec_count(&r), acc + 1);
		for (size_t k = 0; k < acc; k++) {
			CHECK_EQ_U64(r.ev[k + 1].value, k);
			CHECK_EQ_U64(r.ev[k + 1].seq, k + 2);
		}
		CHECK_EQ_U64(st.rejected_full, 1);
	} else if (policy == EBUS_FULL_DROP) {
		uint64_t prev = 1;
		CHECK_EQ_INT(rc, EBUS_DROPPED);
		CHECK(acc > 0 && acc < N);
		CHECK_EQ_U64(rec_count(&r), acc + 1);
		CHECK_EQ_U64(st.dropped_full, N - acc);
		for (size_t k = 0; k < acc; k++) { /* value i has number i + 2: gaps are the drops */
			CHECK_EQ_U64(r.ev[k + 1].seq, r.ev[k + 1].value + 2);
			CHECK(r.ev[k + 1].seq > prev);
			prev = r.ev[k + 1].seq;
		}
	} else {
		CHECK_OK(rc);
		CHECK_EQ_U64(acc, N);
		CHECK_EQ_U64(rec_count(&r), N);
		for (size_t k = 0; k < N; k++)
			CHECK_EQ_U64(r.ev[k].value, k);
	}
	ebus_destroy(bus);
	rec_fini(&r);
	tu_gate_destroy(&gate);
}
static void batch_full_fail(void) { batch_full(EBUS_FULL_FAIL); }
static void batch_full_drop(void) { batch_full(EBUS_FULL_DROP); }
static void batch_full_block(void) { batch_full(EBUS_FULL_BLOCK); }

/* An unordered topic in a batch: spread over the executors, every event
 * exactly once, numbers 1..N. */
static void batch_unordered(void)
{
	enum { N = 500 };
	ebus_t *bus = bus_new(3, 16, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *un, *t;
	recorder r;
	ebus_msg_t m[N];
	uint64_t v[N];
	unsigned char seen[N + 1] = {0};
	size_t acc, nun = 0;
	rec_init(&r, N);
	CHECK_OK(ebus_topic_ex(bus, "bu.un", -1, EBUS_TOPIC_UNORDERED, &un));
	CHECK_OK(ebus_topic(bus, "bu.t", &t));
	CHECK_OK(ebus_subscribe_ex(un, rec_handler, &r, EBUS_SUB_CONCURRENT, &sid_));
	for (unsigned i = 0; i < N; i++) {
		v[i] = i;
		m[i] = (ebus_msg_t){i % 5 == 4 ? t : un, &v[i], sizeof v[i]};
		nun += i % 5 != 4;
	}
	CHECK_OK(ebus_publish_batch(m, N, EBUS_FULL_BLOCK, &acc));
	CHECK_EQ_U64(acc, N);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), nun);
	for (size_t k = 0; k < nun; k++) {
		CHECK(r.ev[k].seq >= 1 && r.ev[k].seq <= nun && !seen[r.ev[k].seq]);
		seen[r.ev[k].seq] = 1;
		CHECK(r.ev[k].value % 5 != 4);
	}
	ebus_destroy(bus);
	rec_fini(&r);
}

/* Several threads publish batches over shared topics on several executors:
 * per (topic, source) the numbers run 1..n in order, every event once. */
struct bt_arg {
	ebus_topic_t **t;
	unsigned nt, id;
	uint64_t rounds;
};
static void *batch_thread(void *arg)
{
	struct bt_arg *a = arg;
	ebus_msg_t m[64];
	uint64_t v[64];
	for (uint64_t r = 0; r < a->rounds; r++) {
		unsigned n = 1 + (unsigned)(tu_mix3(a->id, r, 1) % 64);
		for (unsigned i = 0; i < n; i++) {
			unsigned k = (unsigned)(tu_mix3(a->id, r, i) % a->nt);
			v[i] = (uint64_t)a->id << 56 | (uint64_t)k << 48 | (r * 64 + i);
			m[i] = (ebus_msg_t){a->t[k], &v[i], sizeof v[i]};
		}
		size_t acc;
		CHECK_OK(ebus_publish_batch(m, n, EBUS_FULL_BLOCK, &acc));
		CHECK_EQ_U64(acc, n);
	}
	return NULL;
}

static void batch_threads(void)
{
	enum { NT = 6, TH = 3 };
	uint64_t rounds = tu_param("EBUS_STRESS_BATCH_ROUNDS", 300, 20000);
	ebus_t *bus = bus_new(3, 64, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *t[NT];
	recorder r;
	pthread_t th[TH];
	struct bt_arg args[TH];
	uint64_t next[TH][NT] = {{0}}, lastv[TH][NT];
	rec_init(&r, rounds * 64 * TH);
	for (unsigned i = 0; i < NT; i++) {
		char name[32];
		snprintf(name, sizeof name, "bt.%u", i);
		CHECK_OK(ebus_topic(bus, name, &t[i]));
	}
	CHECK_OK(ebus_subscribe_pattern(bus, "bt.*", rec_handler, &r, EBUS_SUB_CONCURRENT, &sid_));
	for (unsigned i = 0; i < TH; i++) {
		args[i] = (struct bt_arg){t, NT, i, rounds};
		tu_thread_create(&th[i], batch_thread, &args[i]);
	}
	for (unsigned i = 0; i < TH; i++)
		tu_thread_join(th[i]);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK(r.n <= r.cap);
	for (size_t k = 0; k < r.n; k++) {
		unsigned id = (unsigned)(r.ev[k].value >> 56), tk = (unsigned)(r.ev[k].value >> 48) & 0xff;
		CHECK(id < TH && tk < NT);
		CHECK(r.ev[k].topic == t[tk]);
		CHECK_EQ_U64(r.ev[k].seq, ++next[id][tk]);
		if (next[id][tk] > 1)
			CHECK(r.ev[k].value > lastv[id][tk]);
		lastv[id][tk] = r.ev[k].value;
	}
	uint64_t total = 0;
	for (unsigned i = 0; i < TH; i++)
		for (unsigned k = 0; k < NT; k++)
			total += next[i][k];
	CHECK_EQ_U64(total, r.n);
	CHECK_EQ_U64(tu_stats(bus).published, r.n);
	printf("    %zu events in batches\n", r.n);
	ebus_destroy(bus);
	rec_fini(&r);
}

/* ---- zero-copy claims ------------------------------------------------------------ */

static ebus_t *bus_alloc_new(unsigned executors, unsigned capacity, tu_alloc *a,
                             ebus_allocator_t *al)
{
	ebus_config_t cfg = {0};
	ebus_t *bus = NULL;
	memset(a, 0, sizeof *a);
	*al = tu_allocator(a);
	cfg.executors = executors;
	cfg.lane_capacity = capacity;
	cfg.allocator = al;
	CHECK_OK(ebus_create(&cfg, &bus));
	return bus;
}

/* Claim, write in place, commit: delivered with the bytes, numbered like
 * any publish; abort leaves nothing (no event, no number, no memory). */
static void claim_commit_abort(void)
{
	tu_alloc a;
	ebus_allocator_t al;
	ebus_t *bus = bus_alloc_new(1, 0, &a, &al);
	ebus_topic_t *t;
	recorder r;
	ebus_claim_t c;
	const size_t sizes[] = {0, 8, EBUS_INLINE_MAX, EBUS_INLINE_MAX + 1, 5000};
	uint64_t value = 0, expect_seq = 0;
	rec_init(&r, 64);
	CHECK_OK(ebus_topic(bus, "claim.t", &t));
	CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
	for (unsigned k = 0; k < 5; k++) {
		size_t len = sizes[k];
		/* aborted: nothing of it shows */
		CHECK_OK(ebus_claim(t, len, &c));
		CHECK_EQ_U64(c.len, len);
		CHECK(len == 0 ? c.data == NULL : c.data != NULL);
		if (len)
			memset(c.data, 0xAB, len);
		CHECK_OK(ebus_claim_abort(&c));
		CHECK_EQ_INT(ebus_claim_abort(&c), EBUS_ERR_NO_CLAIM);
		CHECK_EQ_INT(ebus_claim_commit(&c), EBUS_ERR_NO_CLAIM);
		/* committed: delivered with what was written, in order */
		CHECK_OK(ebus_claim(t, len, &c));
		fill_payload(c.data, ++value, len);
		CHECK_OK(ebus_claim_commit(&c));
		expect_seq++;
		CHECK_EQ_INT(ebus_claim_commit(&c), EBUS_ERR_NO_CLAIM);
		CHECK_EQ_INT(ebus_claim_abort(&c), EBUS_ERR_NO_CLAIM);
		uint64_t v = ++value;
		CHECK_OK(ebus_publish(t, &v, sizeof v)); /* the lane is free again */
		expect_seq++;
	}
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 10);
	for (unsigned k = 0; k < 10; k++) {
		CHECK_EQ_U64(r.ev[k].seq, k + 1); /* the aborted claims took no number */
		CHECK(r.ev[k].bytes_ok);
		if (k % 2 == 0) {
			CHECK_EQ_U64(r.ev[k].len, sizes[k / 2]);
			if (sizes[k / 2] >= 8)
				CHECK_EQ_U64(r.ev[k].value, k + 1);
		} else {
			CHECK_EQ_U64(r.ev[k].value, k + 1);
		}
	}
	CHECK_EQ_U64(tu_stats(bus).published, expect_seq);
	ebus_destroy(bus);
	CHECK_ALLOC_BALANCED(&a);
	rec_fini(&r);
}

/* While a claim is open: the same lane refuses publishes (EBUS_ERR_CLAIM_OPEN,
 * nothing changes), other executors' lanes take them, a second claim is
 * refused, shutdown from this thread is refused. The claimed event comes
 * before everything published on its lane after the commit. */
static void claim_open_rules(void)
{
	ebus_t *bus = bus_new(2, 0, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *t, *same, *other;
	recorder r;
	ebus_claim_t c, c2;
	uint64_t v = 77;
	char name[32];
	rec_init(&r, 16);
	CHECK_OK(ebus_topic_on(bus, "open.t", 0, &t));
	CHECK_OK(ebus_topic_on(bus, "open.same", 0, &same));
	CHECK_OK(ebus_topic_on(bus, "open.other", 1, &other));
	CHECK_OK(ebus_subscribe_pattern(bus, "open.*", rec_handler, &r, EBUS_SUB_CONCURRENT, &sid_));
	CHECK_OK(ebus_publish(t, &v, sizeof v)); /* the lanes exist, on the fast path */
	CHECK_OK(ebus_publish(other, &v, sizeof v));
	CHECK_OK(ebus_flush(bus, 0));
	r.n = 0;

	CHECK_OK(ebus_claim(t, sizeof v, &c));
	v = 1;
	memcpy(c.data, &v, sizeof v);
	CHECK_EQ_INT(ebus_claim(t, 8, &c2), EBUS_ERR_CLAIM_OPEN);
	CHECK_EQ_INT(ebus_claim(other, 8, &c2), EBUS_ERR_CLAIM_OPEN);
	CHECK_EQ_INT(ebus_publish(t, &v, sizeof v), EBUS_ERR_CLAIM_OPEN);
	CHECK_EQ_INT(ebus_publish(same, &v, sizeof v), EBUS_ERR_CLAIM_OPEN);
	CHECK_EQ_INT(ebus_publish_ex(same, &v, sizeof v, EBUS_FULL_FAIL), EBUS_ERR_CLAIM_OPEN);
	CHECK_EQ_INT(ebus_publish_name(bus, "open.same", &v, sizeof v), EBUS_ERR_CLAIM_OPEN);
	{
		ebus_msg_t m[2] = {{other, &v, sizeof v}, {same, &v, sizeof v}};
		size_t acc = 9;
		CHECK_EQ_INT(ebus_publish_batch(m, 2, EBUS_FULL_DEFAULT, &acc), EBUS_ERR_CLAIM_OPEN);
		CHECK_EQ_U64(acc, 0); /* undone: the event for `other` was not published either */
	}
	CHECK_EQ_INT(ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN), EBUS_ERR_CLAIM_OPEN);
	v = 2;
	CHECK_OK(ebus_publish(other, &v, sizeof v)); /* another executor: fine */
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 1); /* only that one: the claim is not visible */
	CHECK(r.ev[0].topic == other);
	CHECK_OK(ebus_claim_commit(&c));
	v = 3;
	CHECK_OK(ebus_publish(same, &v, sizeof v));
	snprintf(name, sizeof name, "open.same");
	CHECK_OK(ebus_publish_name(bus, name, &v, sizeof v));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 4);
	CHECK(r.ev[1].topic == t && r.ev[1].value == 1 && r.ev[1].seq == 2);
	CHECK(r.ev[2].topic == same && r.ev[2].value == 3 && r.ev[2].seq == 1);
	CHECK(r.ev[3].topic == same && r.ev[3].seq == 2);
	CHECK_OK(ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN));
	ebus_destroy(bus);
	rec_fini(&r);
}

static void claim_bad_input(void)
{
	ebus_t *bus = bus_new(1, 0, EBUS_FULL_BLOCK, 0), *sync = bus_new(1, 0, EBUS_FULL_BLOCK, 1);
	ebus_topic_t *t, *meta, *st;
	ebus_claim_t c = {0}, untouched;
	CHECK_OK(ebus_topic(bus, "cb.t", &t));
	CHECK_OK(ebus_topic(bus, "$ebus.mine", &meta));
	CHECK_OK(ebus_topic(sync, "cb.s", &st));
	memset(&c, 0x5a, sizeof c);
	untouched = c;
	CHECK_EQ_INT(ebus_claim(NULL, 8, &c), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_claim(t, 8, NULL), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_claim(meta, 8, &c), EBUS_ERR_RESERVED);
	CHECK_EQ_INT(ebus_claim(t, (1u << 20) + 1, &c), EBUS_ERR_TOO_LARGE);
	CHECK_EQ_INT(ebus_claim(st, 8, &c), EBUS_ERR_UNSUPPORTED);
	CHECK(memcmp(&c, &untouched, sizeof c) == 0);
	CHECK_EQ_INT(ebus_claim_commit(NULL), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_claim_abort(NULL), EBUS_ERR_NULL);
	memset(&c, 0, sizeof c);
	CHECK_EQ_INT(ebus_claim_commit(&c), EBUS_ERR_NO_CLAIM);
	CHECK_EQ_INT(ebus_claim_abort(&c), EBUS_ERR_NO_CLAIM);
	CHECK_EQ_U64(tu_stats(bus).published, 0);
	CHECK_OK(ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN));
	CHECK_EQ_INT(ebus_claim(t, 8, &c), EBUS_ERR_SHUTDOWN);
	ebus_destroy(bus);
	ebus_destroy(sync);
}

/* A claim belongs to its thread: another thread can neither commit nor
 * abort it, and its own claims are independent. */
struct other_arg {
	ebus_claim_t *c;
	ebus_topic_t *t;
	int commit_rc, abort_rc, own_rc;
};
static void *claim_other_thread(void *arg)
{
	struct other_arg *o = arg;
	ebus_claim_t mine;
	o->commit_rc = ebus_claim_commit(o->c);
	o->abort_rc = ebus_claim_abort(o->c);
	o->own_rc = ebus_claim(o->t, 8, &mine);
	if (o->own_rc == EBUS_OK) {
		uint64_t v = 42;
		memcpy(mine.data, &v, sizeof v);
		CHECK_OK(ebus_claim_commit(&mine));
	}
	return NULL;
}

static void claim_per_thread(void)
{
	ebus_t *bus = bus_new(1, 0, EBUS_FULL_BLOCK, 0);
	ebus_topic_t *t;
	recorder r;
	ebus_claim_t c;
	pthread_t th;
	uint64_t v = 7;
	rec_init(&r, 4);
	CHECK_OK(ebus_topic(bus, "pt.t", &t));
	CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
	CHECK_OK(ebus_claim(t, sizeof v, &c));
	memcpy(c.data, &v, sizeof v);
	struct other_arg o = {&c, t, 0, 0, 0};
	tu_thread_create(&th, claim_other_thread, &o);
	tu_thread_join(th);
	CHECK_EQ_INT(o.commit_rc, EBUS_ERR_NO_CLAIM);
	CHECK_EQ_INT(o.abort_rc, EBUS_ERR_NO_CLAIM);
	CHECK_OK(o.own_rc);
	CHECK_OK(ebus_claim_commit(&c));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 2);
	CHECK_EQ_U64(r.ev[0].value, 42); /* the other thread's lane was free */
	CHECK_EQ_U64(r.ev[1].value, 7);
	CHECK(r.ev[0].source != r.ev[1].source);
	ebus_destroy(bus);
	rec_fini(&r);
}

/* A thread that exits with an open claim aborts it: nothing delivered,
 * nothing leaked, and shutdown does not wait for it. */
static void *claim_and_exit(void *arg)
{
	ebus_claim_t c;
	CHECK_OK(ebus_claim(arg, 3000, &c)); /* a bus-owned buffer */
	memset(c.data, 1, 3000);
	return NULL;
}

static void claim_thread_exit(void)
{
	tu_alloc a;
	ebus_allocator_t al;
	ebus_t *bus = bus_alloc_new(1, 0, &a, &al);
	ebus_topic_t *t;
	recorder r;
	pthread_t th;
	uint64_t v = 9;
	rec_init(&r, 4);
	CHECK_OK(ebus_topic(bus, "exit.t", &t));
	CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
	tu_thread_create(&th, claim_and_exit, t);
	tu_thread_join(th);
	CHECK_OK(ebus_publish(t, &v, sizeof v));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 1);
	CHECK_EQ_U64(r.ev[0].value, 9);
	CHECK_OK(ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN));
	ebus_destroy(bus);
	CHECK_ALLOC_BALANCED(&a);
	rec_fini(&r);
}

/* Shutdown from another thread while claims are open and committed:
 * every committed claim is delivered (shutdown waits for open ones), and
 * after it claims are refused. */
struct race_arg {
	ebus_topic_t *t;
	_Atomic int *stop;
	uint64_t committed, refused;
};
static void *claim_racer(void *arg)
{
	struct race_arg *ra = arg;
	for (uint64_t i = 0;; i++) {
		ebus_claim_t c;
		int rc = ebus_claim(ra->t, sizeof i, &c);
		if (rc == EBUS_ERR_SHUTDOWN) {
			ra->refused++;
			break;
		}
		CHECK_OK(rc);
		memcpy(c.data, &i, sizeof i);
		CHECK_OK(ebus_claim_commit(&c));
		ra->committed++;
		if (i == 200)
			atomic_store(ra->stop, 1);
	}
	return NULL;
}

static void claim_shutdown_race(void)
{
	uint64_t rounds = tu_param("EBUS_STRESS_CLAIM_ROUNDS", 20, 500);
	for (uint64_t round = 0; round < rounds; round++) {
		ebus_t *bus = bus_new(1, 64, EBUS_FULL_BLOCK, 0);
		ebus_topic_t *t;
		recorder r;
		pthread_t th;
		_Atomic int stop = 0;
		rec_init(&r, 1u << 20);
		CHECK_OK(ebus_topic(bus, "race.t", &t));
		CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
		struct race_arg ra = {t, &stop, 0, 0};
		tu_thread_create(&th, claim_racer, &ra);
		while (!atomic_load(&stop))
			sched_yield();
		CHECK_OK(ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN));
		tu_thread_join(th);
		CHECK_EQ_U64(ra.refused, 1);
		CHECK_EQ_U64(rec_count(&r), ra.committed);
		for (size_t k = 0; k < r.n; k++)
			CHECK_EQ_U64(r.ev[k].value, k);
		ebus_destroy(bus);
		rec_fini(&r);
	}
}

/* A full lane under DROP: the claim is dropped (EBUS_DROPPED, counted) and
 * its number is a gap; under FAIL: EBUS_ERR_FULL. */
static void claim_full(void)
{
	for (int pol = 0; pol < 2; pol++) {
		ebus_full_policy policy = pol ? EBUS_FULL_DROP : EBUS_FULL_FAIL;
		ebus_t *bus = bus_new(1, 4, policy, 0);
		ebus_topic_t *t;
		recorder r;
		tu_gate gate;
		ebus_claim_t c;
		uint64_t v = 1;
		int rc;
		tu_gate_init(&gate);
		rec_init(&r, 16);
		r.gate = &gate;
		CHECK_OK(ebus_topic(bus, "cf.t", &t));
		CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
		CHECK_OK(ebus_publish(t, &v, sizeof v));
		tu_gate_wait_entered(&gate, 1);
		while ((rc = ebus_publish(t, &v, sizeof v)) == EBUS_OK)
			;
		CHECK_EQ_INT(rc, pol ? EBUS_DROPPED : EBUS_ERR_FULL);
		CHECK_EQ_INT(ebus_claim(t, 8, &c), rc);
		tu_gate_open(&gate);
		CHECK_OK(ebus_flush(bus, 0));
		CHECK_OK(ebus_claim(t, 8, &c)); /* the lane drained: no claim was left open */
		v = 99;
		memcpy(c.data, &v, sizeof v);
		CHECK_OK(ebus_claim_commit(&c));
		CHECK_OK(ebus_flush(bus, 0));
		size_t n = rec_count(&r);
		CHECK_EQ_U64(r.ev[n - 1].value, 99);
		/* DROP: the failed publish and the failed claim are two gaps */
		CHECK_EQ_U64(r.ev[n - 1].seq, r.ev[n - 2].seq + (pol ? 3 : 1));
		ebus_destroy(bus);
		rec_fini(&r);
		tu_gate_destroy(&gate);
	}
}

/* ---- the lane arena (payloads above the slot) ------------------------------- */

static ebus_t *bus_arena_new(uint64_t arena, unsigned capacity, ebus_full_policy policy)
{
	ebus_config_t cfg = {0};
	ebus_t *bus = NULL;
	cfg.executors = 1;
	cfg.lane_capacity = capacity;
	cfg.full_policy = policy;
	cfg.lane_arena_bytes = arena;
	CHECK_OK(ebus_create(&cfg, &bus));
	return bus;
}

/* Sizes around the arena's quarter (4 KiB of 16 KiB) and far above it,
 * round and round the ring: bytes and order hold, and exactly the payloads
 * above the quarter were copied with the allocator (a full arena waits,
 * it never falls back). */
static void arena_sizes(void)
{
	static const size_t sizes[] = {EBUS_INLINE_MAX + 1, 48, 100, 1000, 4095, 4096, 4097, 20000};
	enum { NS = sizeof sizes / sizeof sizes[0] };
	uint64_t n = tu_param("EBUS_STRESS_ARENA_EVENTS", 4000, 400000);
	ebus_t *bus = bus_arena_new(16384, 64, EBUS_FULL_BLOCK);
	ebus_topic_t *t;
	recorder r;
	static unsigned char buf[20000];
	uint64_t big = 0;
	rec_init(&r, n);
	CHECK_OK(ebus_topic(bus, "arena.t", &t));
	CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
	for (uint64_t i = 0; i < n; i++) {
		size_t len = sizes[i % NS];
		fill_payload(buf, i, len);
		CHECK_OK(ebus_publish(t, buf, len));
		big += len > 4096;
	}
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), n);
	for (size_t k = 0; k < n; k++) {
		CHECK_EQ_U64(r.ev[k].len, sizes[k % NS]);
		CHECK_EQ_U64(r.ev[k].value, k);
		CHECK(r.ev[k].bytes_ok);
		CHECK_EQ_U64(r.ev[k].seq, k + 1);
	}
	ebus_stats_t st = tu_stats(bus);
	CHECK_EQ_U64(st.payload_allocs, big);
	CHECK_EQ_U64(st.rejected_full + st.dropped_full, 0);
	ebus_destroy(bus);
	rec_fini(&r);
}

/* The arena is part of the lane's capacity: with the executor held and
 * slots to spare, 1000-byte payloads fill a 4 KiB arena after 4 (1008
 * bytes each); FAIL then refuses (EBUS_ERR_FULL), DROP drops with a gap,
 * a claim gets the same answer, and everything accepted arrives intact. */
static void arena_full_policy(void)
{
	for (int pol = 0; pol < 2; pol++) {
		ebus_full_policy policy = pol ? EBUS_FULL_DROP : EBUS_FULL_FAIL;
		ebus_t *bus = bus_arena_new(4096, 1024, policy);
		ebus_topic_t *t;
		recorder r;
		tu_gate gate;
		ebus_claim_t c;
		static unsigned char buf[1000];
		uint64_t h = 0;
		unsigned ok = 0;
		int rc;
		tu_gate_init(&gate);
		rec_init(&r, 64);
		r.gate = &gate;
		CHECK_OK(ebus_topic(bus, "af.t", &t));
		CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
		CHECK_OK(ebus_publish(t, &h, sizeof h));
		tu_gate_wait_entered(&gate, 1);
		for (uint64_t i = 1;; i++) {
			fill_payload(buf, i, sizeof buf);
			if ((rc = ebus_publish(t, buf, sizeof buf)) != EBUS_OK)
				break;
			ok++;
		}
		CHECK_EQ_INT(ok, 4);
		CHECK_EQ_INT(rc, pol ? EBUS_DROPPED : EBUS_ERR_FULL);
		CHECK_EQ_INT(ebus_claim(t, sizeof buf, &c), rc);
		CHECK_OK(ebus_publish(t, &h, sizeof h)); /* inline: the slots have room */
		ebus_stats_t st = tu_stats(bus);
		CHECK_EQ_U64(pol ? st.dropped_full : st.rejected_full, 2);
		tu_gate_open(&gate);
		CHECK_OK(ebus_flush(bus, 0));
		CHECK_EQ_U64(rec_count(&r), 6);
		for (unsigned k = 1; k <= 4; k++) {
			CHECK_EQ_U64(r.ev[k].value, k);
			CHECK(r.ev[k].bytes_ok);
		}
		/* DROP: the dropped publish and the dropped claim left two gaps */
		CHECK_EQ_U64(r.ev[5].seq, pol ? 8 : 6);
		CHECK_EQ_U64(tu_stats(bus).payload_allocs, 0);
		ebus_destroy(bus);
		rec_fini(&r);
		tu_gate_destroy(&gate);
	}
}

/* Undo gives the arena back: an aborted claim and a batch undone by bad
 * input leave the next payload at the same place in the arena. */
static void arena_undo(void)
{
	ebus_t *bus = bus_arena_new(16384, 64, EBUS_FULL_BLOCK);
	ebus_topic_t *t;
	recorder r;
	ebus_claim_t c;
	static unsigned char buf[3000];
	void *first;
	rec_init(&r, 8);
	CHECK_OK(ebus_topic(bus, "undo.t", &t));
	CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
	CHECK_OK(ebus_claim(t, sizeof buf, &c));
	first = c.data;
	CHECK_OK(ebus_claim_abort(&c));
	CHECK_OK(ebus_claim(t, sizeof buf, &c));
	CHECK(c.data == first);
	CHECK_OK(ebus_claim_abort(&c));
	{
		ebus_msg_t m[3] = {{t, buf, sizeof buf}, {t, buf, sizeof buf}, {t, NULL, 5}};
		size_t acc = 7;
		CHECK_EQ_INT(ebus_publish_batch(m, 3, EBUS_FULL_DEFAULT, &acc), EBUS_ERR_NULL);
		CHECK_EQ_U64(acc, 0);
	}
	CHECK_OK(ebus_claim(t, sizeof buf, &c));
	CHECK(c.data == first);
	fill_payload(c.data, 11, sizeof buf);
	CHECK_OK(ebus_claim_commit(&c));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), 1);
	CHECK_EQ_U64(r.ev[0].value, 11);
	CHECK(r.ev[0].bytes_ok);
	CHECK_EQ_U64(r.ev[0].seq, 1);
	ebus_destroy(bus);
	rec_fini(&r);
}

/* Batches of large payloads through a small arena under BLOCK: the batch
 * commits what it wrote, waits for arena bytes and goes on. */
static void arena_batch(void)
{
	enum { N = 300 };
	ebus_t *bus = bus_arena_new(8192, 16, EBUS_FULL_BLOCK);
	ebus_topic_t *t;
	recorder r;
	ebus_msg_t m[N];
	static unsigned char bufs[N][1500];
	size_t acc;
	rec_init(&r, N);
	CHECK_OK(ebus_topic(bus, "ab.t", &t));
	CHECK_OK(ebus_subscribe(t, rec_handler, &r, &sid_));
	for (unsigned i = 0; i < N; i++) {
		size_t len = 40 + (i * 37) % 1460;
		fill_payload(bufs[i], i, len);
		m[i] = (ebus_msg_t){t, bufs[i], len};
	}
	CHECK_OK(ebus_publish_batch(m, N, EBUS_FULL_DEFAULT, &acc));
	CHECK_EQ_U64(acc, N);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(rec_count(&r), N);
	for (unsigned k = 0; k < N; k++) {
		CHECK_EQ_U64(r.ev[k].value, k);
		CHECK_EQ_U64(r.ev[k].len, m[k].len);
		CHECK(r.ev[k].bytes_ok);
	}
	CHECK_EQ_U64(tu_stats(bus).payload_allocs, 0);
	ebus_destroy(bus);
	rec_fini(&r);
}

int main(void)
{
	printf("test_publish_api (%s tier)\n", tu_tier_name());
	TU_RUN(seq_per_topic_async);
	TU_RUN(seq_per_topic_sync);
	TU_RUN(seq_per_source_async);
	TU_RUN(seq_per_source_sync);
	TU_RUN(seq_gap_on_drop);
	TU_RUN(seq_no_gap_on_fail);
	TU_RUN(name_ex_policies);
	TU_RUN(seq_table_nomem_async);
	TU_RUN(seq_table_nomem_sync);
	TU_RUN(seq_sync_nested);
	TU_RUN(seq_unordered);
	TU_RUN(eob_runs);
	TU_RUN(eob_invariant);
	TU_RUN(batch_order_async);
	TU_RUN(batch_order_sync);
	TU_RUN(batch_one_store);
	TU_RUN(batch_bad_input);
	TU_RUN(batch_full_fail);
	TU_RUN(batch_full_drop);
	TU_RUN(batch_full_block);
	TU_RUN(batch_unordered);
	TU_RUN(batch_threads);
	TU_RUN(claim_commit_abort);
	TU_RUN(claim_open_rules);
	TU_RUN(claim_bad_input);
	TU_RUN(claim_per_thread);
	TU_RUN(claim_thread_exit);
	TU_RUN(claim_shutdown_race);
	TU_RUN(claim_full);
	TU_RUN(arena_sizes);
	TU_RUN(arena_full_policy);
	TU_RUN(arena_undo);
	TU_RUN(arena_batch);
	return tu_finish("test_publish_api");
}
