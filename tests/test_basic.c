/*
 * The README tour, checked: create, topic, subscribe, publish payloads of
 * every size class (empty, inline, exactly EBUS_INLINE_MAX, just above it,
 * large, by reference), flush, and check every byte, length, the order, the
 * topic in the event, the subscriber order, handler errors and the error
 * hook, the release callback, and the statistics. Run on an asynchronous bus
 * with 2 executors and on a synchronous bus (delivery on the publishing
 * thread, before publish returns).
 */
#include "testutil.h"

#define NEV 6          /* events 0..5 published on the main topic */
#define NEV_ALL (NEV + 1) /* plus one by name */
#define REF_LEN 5000
#define REF_IDX 5

static const size_t ev_len[NEV_ALL] = {0, 1, EBUS_INLINE_MAX, EBUS_INLINE_MAX + 1, 1000, REF_LEN, 6};

static uint8_t pattern(unsigned idx, size_t pos)
{
	return (uint8_t)tu_mix((uint64_t)idx << 32 | pos);
}

static int synchronous;
static ebus_t *bus;
static ebus_topic_t *topic;
static ebus_sub_id a_id, b_id;
static pthread_t main_thread;
static uint8_t ref_buf[REF_LEN];
static const char byname[6] = {'b', 'y', 'n', 'a', 'm', 'e'};

/* What the subscribers saw; written on the topic's executor (one thread),
 * read by the main thread after ebus_flush. */
static struct {
	unsigned a_calls, b_calls;
	char order[4 * NEV_ALL + 8]; /* "A0B0A1B1...": subscription order, no overlap */
	unsigned norder;
	pthread_t thread;
	int thread_set;
	int in_handler;
} seen;

/* the error hook */
typedef struct hook_call {
	ebus_topic_t *topic;
	ebus_sub_id sub;
	int rc;
	pthread_t thread;
} hook_call;
static hook_call hooks[16];
static _Atomic unsigned nhooks;
static void *hook_arg_seen;
static int hook_arg_token;

static void error_hook(void *arg, ebus_topic_t *t, ebus_sub_id sub, int rc)
{
	unsigned i = atomic_fetch_add(&nhooks, 1);
	CHECK(i < 16);
	hooks[i].topic = t;
	hooks[i].sub = sub;
	hooks[i].rc = rc;
	hooks[i].thread = pthread_self();
	hook_arg_seen = arg;
}

/* B's return value per event: errors are counted, reported, and change nothing */
static int b_rc(unsigned k)
{
	if (k == 4)
		return 7;
	return (k % 2) ? -1 : 0;
}

static void note_thread(void)
{
	if (synchronous) {
		CHECK_MSG(pthread_equal(pthread_self(), main_thread),
		          "synchronous bus: handler not on the publishing thread");
		return;
	}
	CHECK_MSG(!pthread_equal(pthread_self(), main_thread), "asynchronous bus: handler on the publisher");
	if (!seen.thread_set) {
		seen.thread = pthread_self();
		seen.thread_set = 1;
	}
	CHECK_MSG(pthread_equal(pthread_self(), seen.thread), "one topic's events came from two threads");
}

static void check_event(const ebus_event_t *ev, unsigned k)
{
	CHECK(ev->topic == topic);
	CHECK_MSG(ev->len == ev_len[k], "event %u: len %zu, want %zu", k, ev->len, ev_len[k]);
	if (ev->len == 0) {
		CHECK_MSG(ev->data == NULL, "event %u: len 0 but data != NULL", k);
		return;
	}
	CHECK(ev->data != NULL);
	if (k == REF_IDX)
		CHECK_MSG(ev->data == ref_buf, "by-reference event: subscribers must see the buffer itself");
	const uint8_t *d = ev->data;
	if (k == NEV) {
		CHECK(memcmp(d, byname, sizeof byname) == 0);
		return;
	}
	for (size_t i = 0; i < ev->len; i++)
		CHECK_MSG(d[i] == pattern(k, i), "event %u byte %zu: %#x, want %#x", k, i, d[i], pattern(k, i));
}

static int handler_a(const ebus_event_t *ev, void *ctx)
{
	CHECK(ctx == &seen.a_calls);
	CHECK_EQ_INT(seen.in_handler, 0);
	seen.in_handler = 1;
	note_thread();
	unsigned k = seen.a_calls;
	CHECK(k < NEV_ALL);
	check_event(ev, k);
	CHECK(seen.norder + 2 < sizeof seen.order);
	seen.order[seen.norder++] = 'A';
	seen.order[seen.norder++] = (char)('0' + k);
	seen.a_calls++;
	seen.in_handler = 0;
	return 0;
}

static int handler_b(const ebus_event_t *ev, void *ctx)
{
	CHECK(ctx == &seen.b_calls);
	CHECK_EQ_INT(seen.in_handler, 0);
	seen.in_handler = 1;
	note_thread();
	unsigned k = seen.b_calls;
	CHECK(k < NEV_ALL);
	check_event(ev, k);
	seen.order[seen.norder++] = 'B';
	seen.order[seen.norder++] = (char)('0' + k);
	seen.b_calls++;
	seen.in_handler = 0;
	return b_rc(k);
}

static _Atomic unsigned releases;
static int release_arg;
static void release_ref(void *data, size_t len, void *arg)
{
	CHECK(data == ref_buf);
	CHECK_EQ_U64(len, REF_LEN);
	CHECK(arg == &release_arg);
	/* after the last subscriber returned */
	CHECK_MSG(seen.a_calls == REF_IDX + 1 && seen.b_calls == REF_IDX + 1,
	          "release called before both subscribers saw the event (a %u, b %u)", seen.a_calls,
	          seen.b_calls);
	atomic_fetch_add(&releases, 1);
}

/* In synchronous mode, publish has delivered by the time it returns. */
static void after_publish(unsigned k)
{
	if (!synchronous)
		return;
	CHECK_MSG(seen.a_calls == k + 1 && seen.b_calls == k + 1,
	          "synchronous bus: event %u not delivered when publish returned (a %u, b %u)", k,
	          seen.a_calls, seen.b_calls);
}

/* ---- nested publish: handler publishes to another topic ------------------------ */

static ebus_topic_t *outer_t, *inner_t;
static int in_outer;
static unsigned outer_calls, inner_calls;
static uint32_t inner_vals[4];

static int outer_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ctx;
	CHECK(ev->topic == outer_t);
	in_outer = 1;
	outer_calls++;
	for (uint32_t v = 1; v <= 2; v++)
		CHECK_OK(ebus_publish(inner_t, &v, sizeof v));
	/* synchronous bus: handlers never nest, the inner events wait until this
	 * returns (on an asynchronous bus they may run on the other executor now) */
	if (synchronous)
		CHECK_EQ_INT(inner_calls, 0);
	in_outer = 0;
	return 0;
}

static int inner_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ctx;
	CHECK(ev->topic == inner_t);
	CHECK_MSG(!synchronous || !in_outer, "synchronous bus: a handler ran nested inside another");
	CHECK(inner_calls < 4);
	CHECK_EQ_U64(ev->len, sizeof(uint32_t));
	memcpy(&inner_vals[inner_calls], ev->data, sizeof(uint32_t));
	inner_calls++;
	return 0;
}

/* ---- per-topic thread recorder ---------------------------------------------------- */

typedef struct thread_rec {
	pthread_t thread;
	_Atomic unsigned calls;
} thread_rec;

static int thread_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	thread_rec *r = ctx;
	r->thread = pthread_self();
	atomic_fetch_add(&r->calls, 1);
	return 0;
}

static void run(int sync_mode)
{
	synchronous = sync_mode;
	memset(&seen, 0, sizeof seen);
	memset(hooks, 0, sizeof hooks);
	atomic_store(&nhooks, 0);
	atomic_store(&releases, 0);
	outer_calls = inner_calls = 0;
	main_thread = pthread_self();

	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.synchronous = sync_mode;
	cfg.executors = sync_mode ? 0 : 2;
	cfg.error_hook = error_hook;
	cfg.error_hook_arg = &hook_arg_token;
	CHECK_OK(ebus_create(&cfg, &bus));
	const unsigned nexec = ebus_executor_count(bus);
	CHECK_EQ_INT(nexec, sync_mode ? 1 : 2);

	/* topics: interning returns one handle per name */
	CHECK_OK(ebus_topic(bus, "orders.eu.fill", &topic));
	ebus_topic_t *again = NULL;
	CHECK_OK(ebus_topic(bus, "orders.eu.fill", &again));
	CHECK(again == topic);
	CHECK(strcmp(ebus_topic_name(topic), "orders.eu.fill") == 0);
	CHECK(ebus_topic_bus(topic) == bus);
	CHECK(ebus_topic_executor(topic) >= 0 && (unsigned)ebus_topic_executor(topic) < nexec);
	ebus_topic_t *on[2] = {NULL, NULL};
	for (unsigned e = 0; e < nexec; e++) {
		char name[32];
		snprintf(name, sizeof name, "basic.on.%u", e);
		CHECK_OK(ebus_topic_on(bus, name, e, &on[e]));
		CHECK_EQ_INT(ebus_topic_executor(on[e]), e);
		ebus_topic_t *t2 = NULL;
		CHECK_OK(ebus_topic(bus, name, &t2));
		CHECK(t2 == on[e]);
		CHECK_EQ_INT(ebus_topic_executor(t2), e);
	}
	/* many names: every executor index in range */
	for (int i = 0; i < 64; i++) {
		char name[32];
		ebus_topic_t *t = NULL;
		snprintf(name, sizeof name, "spread.%d", i);
		CHECK_OK(ebus_topic(bus, name, &t));
		CHECK(ebus_topic_executor(t) >= 0 && (unsigned)ebus_topic_executor(t) < nexec);
		CHECK(ebus_topic_bus(t) == bus);
	}

	/* subscribers: A then B */
	CHECK_OK(ebus_subscribe(topic, handler_a, &seen.a_calls, &a_id));
	CHECK_OK(ebus_subscribe(topic, handler_b, &seen.b_calls, &b_id));
	CHECK(a_id != 0 && b_id != 0 && a_id != b_id);

	/* publish every size class; the caller's buffer is free on return */
	uint8_t buf[1000];
	for (unsigned k = 0; k < NEV; k++) {
		if (k == REF_IDX) {
			for (size_t i = 0; i < REF_LEN; i++)
				ref_buf[i] = pattern(k, i);
			CHECK_OK(ebus_publish_ref(topic, ref_buf, REF_LEN, release_ref, &release_arg));
			if (sync_mode)
				CHECK_EQ_INT(atomic_load(&releases), 1);
			after_publish(k);
			continue;
		}
		CHECK(ev_len[k] <= sizeof buf);
		for (size_t i = 0; i < ev_len[k]; i++)
			buf[i] = pattern(k, i);
		if (k == 0)
			CHECK_OK(ebus_publish(topic, NULL, 0));
		else if (k == 2)
			CHECK_OK(ebus_publish_ex(topic, buf, ev_len[k], EBUS_FULL_DEFAULT));
		else
			CHECK_OK(ebus_publish(topic, buf, ev_len[k]));
		memset(buf, 0xEE, sizeof buf); /* the bus must have copied it */
		after_publish(k);
	}
	/* by name, to the interned topic */
	CHECK_OK(ebus_publish_name(bus, "orders.eu.fill", byname, sizeof byname));
	after_publish(NEV);
	CHECK_OK(ebus_flush(bus, 0));

	CHECK_EQ_INT(seen.a_calls, NEV_ALL);
	CHECK_EQ_INT(seen.b_calls, NEV_ALL);
	CHECK_EQ_INT(atomic_load(&releases), 1);
	seen.order[seen.norder] = '\0';
	CHECK_MSG(strcmp(seen.order, "A0B0A1B1A2B2A3B3A4B4A5B5A6B6") == 0, "call order %s", seen.order);

	/* the error hook: one call per non-zero return of B, with its topic, id, rc */
	unsigned nerr = 0;
	for (unsigned k = 0; k < NEV_ALL; k++)
		nerr += b_rc(k) != 0;
	CHECK_EQ_INT(atomic_load(&nhooks), nerr);
	unsigned h = 0;
	for (unsigned k = 0; k < NEV_ALL; k++) {
		if (!b_rc(k))
			continue;
		CHECK(hooks[h].topic == topic);
		CHECK_EQ_U64(hooks[h].sub, b_id);
		CHECK_EQ_INT(hooks[h].rc, b_rc(k));
		if (sync_mode)
			CHECK(pthread_equal(hooks[h].thread, main_thread));
		else
			CHECK_MSG(pthread_equal(hooks[h].thread, seen.thread),
			          "the error hook runs on the executor thread");
		h++;
	}
	CHECK(hook_arg_seen == &hook_arg_token);
	/* counted per subscriber: B's failures are B's, and A, subscribed
	 * next to it, has none (it kept receiving every event) */
	uint64_t errs = 99;
	CHECK_OK(ebus_sub_errors(bus, b_id, &errs));
	CHECK_EQ_U64(errs, nerr);
	CHECK_OK(ebus_sub_errors(bus, a_id, &errs));
	CHECK_EQ_U64(errs, 0);
	CHECK_EQ_INT(ebus_sub_errors(bus, 0, &errs), EBUS_ERR_NOT_FOUND);
	CHECK_EQ_INT(ebus_sub_errors(bus, b_id, NULL), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_sub_errors(NULL, b_id, &errs), EBUS_ERR_NULL);

	ebus_stats_t st = tu_stats(bus);
	CHECK_EQ_U64(st.published, NEV_ALL);
	CHECK_EQ_U64(st.delivered, NEV_ALL);
	CHECK_EQ_U64(st.handler_calls, 2 * NEV_ALL);
	CHECK_EQ_U64(st.handler_errors, nerr);
	CHECK_EQ_U64(st.dropped_no_subscriber, 0);
	CHECK_EQ_U64(st.dropped_shutdown, 0);
	CHECK_EQ_U64(st.dropped_full + st.rejected_full + st.rejected_timeout + st.rejected_shutdown, 0);
	CHECK_EQ_U64(st.queued, 0);
	CHECK_STATS_BALANCED(st);

	/* the per-executor numbers add up to the totals */
	ebus_stats_t sum;
	memset(&sum, 0, sizeof sum);
	for (unsigned e = 0; e < nexec; e++) {
		ebus_stats_t se;
		CHECK_OK(ebus_stats(bus, (int)e, &se));
		sum.delivered += se.delivered;
		sum.handler_calls += se.handler_calls;
		sum.handler_errors += se.handler_errors;
		if ((int)e != ebus_topic_executor(topic))
			CHECK_EQ_U64(se.handler_calls, 0);
	}
	CHECK_EQ_U64(sum.delivered, st.delivered);
	CHECK_EQ_U64(sum.handler_calls, st.handler_calls);
	CHECK_EQ_U64(sum.handler_errors, st.handler_errors);

	/* a valid name never interned: accepted, nobody to deliver to */
	CHECK_OK(ebus_publish_name(bus, "never.interned.basic", "x", 1));
	/* an interned topic without subscribers */
	ebus_topic_t *lonely = NULL;
	CHECK_OK(ebus_topic(bus, "lonely", &lonely));
	CHECK_OK(ebus_publish(lonely, "y", 1));
	CHECK_OK(ebus_flush(bus, 0));
	st = tu_stats(bus);
	CHECK_EQ_U64(st.published, NEV_ALL + 2);
	CHECK_EQ_U64(st.dropped_no_subscriber, 2);
	CHECK_EQ_U64(st.delivered, NEV_ALL);
	CHECK_STATS_BALANCED(st);

	/* each executor is its own thread; topics placed on it run there */
	thread_rec recs[2];
	memset(recs, 0, sizeof recs);
	ebus_sub_id rid[2];
	for (unsigned e = 0; e < nexec; e++) {
		CHECK_OK(ebus_subscribe(on[e], thread_handler, &recs[e], &rid[e]));
		CHECK_OK(ebus_publish(on[e], "z", 1));
	}
	CHECK_OK(ebus_flush(bus, 0));
	for (unsigned e = 0; e < nexec; e++) {
		CHECK_EQ_INT(atomic_load(&recs[e].calls), 1);
		CHECK_EQ_INT(!!pthread_equal(recs[e].thread, main_thread), sync_mode);
		CHECK_OK(ebus_unsubscribe(bus, rid[e]));
	}
	if (nexec == 2)
		CHECK_MSG(!pthread_equal(recs[0].thread, recs[1].thread), "two executors share one thread");
	if (!sync_mode)
		CHECK(pthread_equal(recs[ebus_topic_executor(topic)].thread, seen.thread));

	/* a handler that publishes: delivered after it returns, never nested */
	CHECK_OK(ebus_topic(bus, "nest.outer", &outer_t));
	CHECK_OK(ebus_topic(bus, "nest.inner", &inner_t));
	ebus_sub_id oid, iid;
	CHECK_OK(ebus_subscribe(outer_t, outer_handler, NULL, &oid));
	CHECK_OK(ebus_subscribe(inner_t, inner_handler, NULL, &iid));
	CHECK_OK(ebus_publish(outer_t, "o", 1));
	if (sync_mode) /* delivered before the outer publish returns */
		CHECK_EQ_INT(inner_calls, 2);
	/* the first flush covers the outer event; the inner ones were accepted
	 * during it (by the handler), so a second flush covers them */
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_INT(outer_calls, 1);
	CHECK_EQ_INT(inner_calls, 2);
	CHECK_EQ_INT(inner_vals[0], 1);
	CHECK_EQ_INT(inner_vals[1], 2);

	/* unsubscribe B: A alone gets the next event */
	CHECK_OK(ebus_unsubscribe(bus, b_id));
	seen.a_calls = seen.b_calls = 0; /* reuse the pattern checks for event 0 */
	seen.norder = 0;
	CHECK_OK(ebus_publish(topic, NULL, 0));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_INT(seen.a_calls, 1);
	CHECK_EQ_INT(seen.b_calls, 0);
	/* and without subscribers the event is counted as dropped */
	CHECK_OK(ebus_unsubscribe(bus, a_id));
	st = tu_stats(bus);
	CHECK_OK(ebus_publish(topic, NULL, 0));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_INT(seen.a_calls, 1);
	ebus_stats_t st2 = tu_stats(bus);
	CHECK_EQ_U64(st2.published, st.published + 1);
	CHECK_EQ_U64(st2.dropped_no_subscriber, st.dropped_no_subscriber + 1);
	CHECK_EQ_U64(st2.delivered, st.delivered);
	CHECK_STATS_BALANCED(st2);

	ebus_destroy(bus);
	CHECK_EQ_INT(atomic_load(&releases), 1);
	bus = NULL;
}

static void test_async(void)
{
	run(0);
}

static void test_sync(void)
{
	run(1);
}

int main(void)
{
	printf("payload sizes: 0, 1, %d, %d, 1000, %d by reference, 6 by name\n", EBUS_INLINE_MAX,
	       EBUS_INLINE_MAX + 1, REF_LEN);
	TU_RUN(test_async);
	TU_RUN(test_sync);
	return tu_finish("test_basic");
}
