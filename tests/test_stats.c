/*
 * Observability: per-topic and per-executor counters, lane high-water,
 * the latency histogram, snapshots and their Prometheus text.
 *
 *  - hist_math: bucket boundaries (contiguous, exact below 16 ns, width at
 *    most 1/16 of the value, clamping past 2^41 ns) and percentiles of known
 *    samples through the internal hook ebus_snapshot_from_samples_ (values
 *    worked out by hand here, not with the library's formulas).
 *  - exact_counts: a known workload over three topics on two executors
 *    (one topic without subscribers, a handler failing on odd payloads, a
 *    publish by name to a never-interned topic): every per-topic,
 *    per-executor and total counter after ebus_flush.
 *  - full_lane: one executor held in a gated handler, a 16-slot lane filled
 *    with events of two topics, then FAIL / DROP / BLOCK-with-timeout
 *    refusals: counted on the right topic by cause, and lane_high_water is
 *    exactly the fill the executor found when released.
 *  - unordered: an EBUS_TOPIC_UNORDERED topic (per-executor counter blocks)
 *    reports executor -1 and the summed counts.
 *  - timestamps: with config.timestamps every dispatched event is one
 *    sample and percentiles are monotonic in p (no timing thresholds);
 *    without it there is no histogram.
 *  - sync: stripes instead of executors, nested publishes, timestamps.
 *  - outlives_bus: a snapshot taken, the bus destroyed, then formatted and
 *    freed through the bus's (counting) allocator: nothing leaks.
 *  - prometheus: every line parses (HELP/TYPE once per family before its
 *    samples, `name{labels} value`), label escaping of '"' and '\' in topic
 *    names round-trips, values match the snapshot, and the EBUS_ERR_BUFFER
 *    size negotiation works.
 *  - concurrent_snapshots: snapshots taken in a loop while two threads
 *    intern topics, subscribe, unsubscribe and publish: sorted, monotonic,
 *    never more than was published; exact after the flush (run under TSan
 *    and ASan by scripts/test.sh).
 *  - bad_input.
 */
#include "testutil.h"

#include "../src/stats.h"

#include <ctype.h>
#include <math.h>

static const ebus_topic_stats_t *find_topic(const ebus_snapshot_t *s, const char *name)
{
	for (size_t i = 0; i < s->ntopics; i++)
		if (strcmp(s->topics[i].name, name) == 0)
			return &s->topics[i];
	CHECK_MSG(0, "topic %s not in the snapshot", name);
	return NULL;
}

static void check_sorted(const ebus_snapshot_t *s)
{
	for (size_t i = 1; i < s->ntopics; i++)
		CHECK_MSG(strcmp(s->topics[i - 1].name, s->topics[i].name) < 0, "%s before %s",
		          s->topics[i - 1].name, s->topics[i].name);
}

/* The per-topic counters add up to the bus totals (no by-name publishes to
 * unknown topics in the bus), and the executor rows too. */
static void check_sums(const ebus_snapshot_t *s)
{
	ebus_stats_t sum;
	memset(&sum, 0, sizeof sum);
	uint64_t disp = 0;
	for (size_t i = 0; i < s->ntopics; i++) {
		const ebus_topic_stats_t *t = &s->topics[i];
		CHECK_EQ_U64(t->dispatched, t->delivered + t->dropped_no_subscriber + t->dropped_shutdown);
		disp += t->dispatched;
		sum.delivered += t->delivered;
		sum.handler_calls += t->handler_calls;
		sum.handler_errors += t->handler_errors;
		sum.dropped_no_subscriber += t->dropped_no_subscriber;
		sum.dropped_shutdown += t->dropped_shutdown;
		sum.dropped_full += t->dropped_full;
		sum.rejected_full += t->rejected_full;
		sum.rejected_timeout += t->rejected_timeout;
	}
	CHECK_EQ_U64(disp, s->total.published);
	CHECK_EQ_U64(sum.delivered, s->total.delivered);
	CHECK_EQ_U64(sum.handler_calls, s->total.handler_calls);
	CHECK_EQ_U64(sum.handler_errors, s->total.handler_errors);
	CHECK_EQ_U64(sum.dropped_no_subscriber, s->total.dropped_no_subscriber);
	CHECK_EQ_U64(sum.dropped_shutdown, s->total.dropped_shutdown);
	CHECK_EQ_U64(sum.dropped_full, s->total.dropped_full);
	CHECK_EQ_U64(sum.rejected_full, s->total.rejected_full);
	CHECK_EQ_U64(sum.rejected_timeout, s->total.rejected_timeout);
	memset(&sum, 0, sizeof sum);
	for (unsigned i = 0; i < s->nexec; i++) {
		sum.published += s->executors[i].published;
		sum.delivered += s->executors[i].delivered;
		sum.handler_calls += s->executors[i].handler_calls;
		sum.dropped_full += s->executors[i].dropped_full;
		if (s->executors[i].lane_high_water > sum.lane_high_water)
			sum.lane_high_water = s->executors[i].lane_high_water;
	}
	CHECK_EQ_U64(sum.published, s->total.published);
	CHECK_EQ_U64(sum.delivered, s->total.delivered);
	CHECK_EQ_U64(sum.handler_calls, s->total.handler_calls);
	CHECK_EQ_U64(sum.dropped_full, s->total.dropped_full);
	CHECK_EQ_U64(sum.lane_high_water, s->total.lane_high_water);
}

static void parse_text(char *text); /* the format check, below */

static char *render(const ebus_snapshot_t *s, size_t *len_out)
{
	size_t len = 0;
	CHECK_EQ_INT(ebus_snapshot_prometheus(s, NULL, 0, &len), EBUS_ERR_BUFFER);
	char *buf = malloc(len + 1);
	CHECK(buf);
	size_t len2 = 0;
	CHECK_OK(ebus_snapshot_prometheus(s, buf, len + 1, &len2));
	CHECK_EQ_U64(len2, len);
	CHECK_EQ_U64(strlen(buf), len);
	if (len_out)
		*len_out = len;
	return buf;
}

/* ---- histogram math ------------------------------------------------------------- */

static void test_hist_math(void)
{
	/* 0..15 ns: one bucket each, exact */
	for (uint64_t v = 0; v < 16; v++) {
		CHECK_EQ_INT(ebus_hist_bucket(v), v);
		CHECK_EQ_U64(ebus_hist_lower((unsigned)v), v);
		CHECK_EQ_U64(ebus_hist_upper((unsigned)v), v);
	}
	/* contiguous, increasing, width <= lower / 16 above 16 ns */
	for (unsigned i = 0; i + 1 < EBUS_HIST_BUCKETS; i++) {
		CHECK_EQ_U64(ebus_hist_lower(i + 1), ebus_hist_upper(i) + 1);
		uint64_t w = ebus_hist_upper(i) - ebus_hist_lower(i) + 1;
		CHECK_MSG(i < 16 ? w == 1 : w * 16 <= ebus_hist_lower(i), "bucket %u: [%" PRIu64 ", %" PRIu64 "]", i,
		          ebus_hist_lower(i), ebus_hist_upper(i));
		CHECK_EQ_INT(ebus_hist_bucket(ebus_hist_lower(i)), i);
		CHECK_EQ_INT(ebus_hist_bucket(ebus_hist_upper(i)), i);
	}
	/* hand-worked buckets: 1000 is in [992, 1023] (width 32 in [512, 1024));
	 * 1e6 in [983040, 1015807] (width 32768 in [2^19, 2^20)) */
	CHECK_EQ_U64(ebus_hist_lower(ebus_hist_bucket(1000)), 992);
	CHECK_EQ_U64(ebus_hist_upper(ebus_hist_bucket(1000)), 1023);
	CHECK_EQ_U64(ebus_hist_lower(ebus_hist_bucket(1000000)), 983040);
	CHECK_EQ_U64(ebus_hist_upper(ebus_hist_bucket(1000000)), 1015807);
	CHECK_EQ_U64(ebus_hist_upper(ebus_hist_bucket(16)), 16);
	CHECK_EQ_U64(ebus_hist_upper(ebus_hist_bucket(33)), 33);   /* [32, 64): width 2 -> [32, 33] */
	CHECK_EQ_U64(ebus_hist_upper(ebus_hist_bucket(34)), 35);
	/* every value up to 2^41 - 1 lies in its bucket, within 1/16 */
	for (uint64_t k = 0; k < 200000; k++) {
		uint64_t v = tu_mix(k) >> (23 + k % 41); /* all magnitudes below 2^41 */
		unsigned b = ebus_hist_bucket(v);
		CHECK(b < EBUS_HIST_BUCKETS);
		CHECK(ebus_hist_lower(b) <= v && v <= ebus_hist_upper(b));
		CHECK((ebus_hist_upper(b) - v) * 16 <= v || v < 16);
	}
	/* range: at least 1 ns .. 2^40 ns; beyond 2^41 - 1 clamps to the last bucket */
	CHECK_EQ_U64(ebus_hist_upper(EBUS_HIST_BUCKETS - 1), (1ull << 41) - 1);
	CHECK_EQ_INT(ebus_hist_bucket((1ull << 41) - 1), EBUS_HIST_BUCKETS - 1);
	CHECK(ebus_hist_bucket(1ull << 40) < EBUS_HIST_BUCKETS - 1);
	CHECK_EQ_INT(ebus_hist_bucket(1ull << 41), EBUS_HIST_BUCKETS - 1);
	CHECK_EQ_INT(ebus_hist_bucket(UINT64_MAX), EBUS_HIST_BUCKETS - 1);

	/* percentiles of 1..10: rank ceil(p% * 10), exact buckets */
	uint64_t ten[10];
	for (int i = 0; i < 10; i++)
		ten[i] = (uint64_t)(10 - i); /* order does not matter */
	ebus_snapshot_t *s;
	uint64_t ns = 0;
	CHECK_OK(ebus_snapshot_from_samples_(ten, 10, &s));
	CHECK_EQ_U64(s->latency_samples, 10);
	static const struct {
		double p;
		uint64_t want;
	} q10[] = { { 0, 1 }, { 10, 1 }, { 10.01, 2 }, { 50, 5 }, { 90, 9 }, { 91, 10 }, { 100, 10 } };
	for (size_t i = 0; i < sizeof q10 / sizeof q10[0]; i++) {
		CHECK_OK(ebus_snapshot_percentile(s, q10[i].p, &ns));
		CHECK_MSG(ns == q10[i].want, "p%g of 1..10: %" PRIu64 ", want %" PRIu64, q10[i].p, ns, q10[i].want);
	}
	ebus_snapshot_free(s);

	/* 99 x 1000 ns and 1 x 1 ms */
	uint64_t mix[100];
	for (int i = 0; i < 99; i++)
		mix[i] = 1000;
	mix[99] = 1000000;
	CHECK_OK(ebus_snapshot_from_samples_(mix, 100, &s));
	CHECK_OK(ebus_snapshot_percentile(s, 50, &ns));
	CHECK_EQ_U64(ns, 1023);
	CHECK_OK(ebus_snapshot_percentile(s, 99, &ns));
	CHECK_EQ_U64(ns, 1023);
	CHECK_OK(ebus_snapshot_percentile(s, 99.5, &ns));
	CHECK_EQ_U64(ns, 1015807);
	CHECK_OK(ebus_snapshot_percentile(s, 100, &ns));
	CHECK_EQ_U64(ns, 1015807);
	/* as a Prometheus histogram: exact cumulative counts at 2^e - 1 ns, and
	 * 99 * 1000 + 1e6 ns = 1.099 ms as the exact sum (not from bucket bounds) */
	char *text = render(s, NULL);
	{
		static const char *const want[] = {
			"ebus_dispatch_latency_seconds_bucket{le=\"1.5e-08\"} 0\n",
			"ebus_dispatch_latency_seconds_bucket{le=\"5.11e-07\"} 0\n",
			"ebus_dispatch_latency_seconds_bucket{le=\"1.023e-06\"} 99\n",
			"ebus_dispatch_latency_seconds_bucket{le=\"0.000524287\"} 99\n",
			"ebus_dispatch_latency_seconds_bucket{le=\"0.001048575\"} 100\n",
			"ebus_dispatch_latency_seconds_bucket{le=\"1099.511627775\"} 100\n",
			"ebus_dispatch_latency_seconds_bucket{le=\"+Inf\"} 100\n",
			"ebus_dispatch_latency_seconds_sum 0.001099\n",
			"ebus_dispatch_latency_seconds_count 100\n",
			"# TYPE ebus_dispatch_latency_seconds histogram\n",
		};
		for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
			CHECK_MSG(strstr(text, want[i]), "no '%s' in:\n%s", want[i], text);
	}
	parse_text(text);
	free(text);
	/* a value past the range: the last bucket */
	ebus_snapshot_free(s);
	uint64_t huge = UINT64_MAX;
	CHECK_OK(ebus_snapshot_from_samples_(&huge, 1, &s));
	CHECK_OK(ebus_snapshot_percentile(s, 50, &ns));
	CHECK_EQ_U64(ns, (1ull << 41) - 1);
	/* bad p, NULLs */
	ns = 77;
	CHECK_EQ_INT(ebus_snapshot_percentile(s, -0.5, &ns), EBUS_ERR_CONFIG);
	CHECK_EQ_INT(ebus_snapshot_percentile(s, 100.001, &ns), EBUS_ERR_CONFIG);
	CHECK_EQ_INT(ebus_snapshot_percentile(s, NAN, &ns), EBUS_ERR_CONFIG);
	CHECK_EQ_INT(ebus_snapshot_percentile(s, 50, NULL), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_snapshot_percentile(NULL, 50, &ns), EBUS_ERR_NULL);
	CHECK_EQ_U64(ns, 77);
	ebus_snapshot_free(s);
	/* no samples */
	CHECK_OK(ebus_snapshot_from_samples_(NULL, 0, &s));
	CHECK_EQ_INT(ebus_snapshot_percentile(s, 50, &ns), EBUS_ERR_EMPTY);
	text = render(s, NULL);
	CHECK_MSG(strstr(text, "ebus_dispatch_latency_seconds_bucket{le=\"+Inf\"} 0\n"), "%s", text);
	CHECK_MSG(strstr(text, "ebus_dispatch_latency_seconds_bucket{le=\"1.5e-08\"} 0\n"), "%s", text);
	CHECK_MSG(strstr(text, "ebus_dispatch_latency_seconds_count 0\n"), "%s", text);
	free(text);
	ebus_snapshot_free(s);
}

/* ---- exact counts of a known workload --------------------------------------------- */

static int ok_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
	return 0;
}

/* Fails on odd payloads. */
static int odd_fails(const ebus_event_t *ev, void *ctx)
{
	(void)ctx;
	uint64_t v;
	memcpy(&v, ev->data, 8);
	return (int)(v & 1);
}

static void test_exact_counts(void)
{
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	ebus_t *bus;
	CHECK_OK(ebus_create(&cfg, &bus));
	ebus_topic_t *a, *b, *c;
	CHECK_OK(ebus_topic_on(bus, "t.a", 0, &a));
	CHECK_OK(ebus_topic_on(bus, "t.b.none", 1, &b));
	CHECK_OK(ebus_topic_on(bus, "t.c", 1, &c));
	_Atomic uint64_t na = 0, nc = 0;
	ebus_sub_id id;
	CHECK_OK(ebus_subscribe(a, ok_handler, &na, &id));
	CHECK_OK(ebus_subscribe(a, odd_fails, NULL, &id));
	CHECK_OK(ebus_subscribe(c, ok_handler, &nc, &id));
	for (uint64_t v = 0; v < 10; v++)
		CHECK_OK(ebus_publish(a, &v, 8));
	for (uint64_t v = 0; v < 7; v++)
		CHECK_OK(ebus_publish(b, &v, 8));
	for (uint64_t v = 0; v < 3; v++)
		CHECK_OK(ebus_publish_name(bus, "t.c", &v, 8));
	CHECK_OK(ebus_publish_name(bus, "never.interned", "x", 1));
	CHECK_OK(ebus_publish_name(bus, "never.interned", "y", 1));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(atomic_load(&na), 10);
	CHECK_EQ_U64(atomic_load(&nc), 3);

	ebus_snapshot_t *s;
	CHECK_OK(ebus_snapshot(bus, &s));
	CHECK(s->taken_ns > 0);
	CHECK_EQ_INT(s->nexec, 2);
	CHECK_EQ_U64(s->ntopics, 3);
	check_sorted(s);
	CHECK(strcmp(s->topics[0].name, "t.a") == 0 && strcmp(s->topics[2].name, "t.c") == 0);

	const ebus_topic_stats_t *ta = find_topic(s, "t.a"), *tb = find_topic(s, "t.b.none"),
	                         *tc = find_topic(s, "t.c");
	CHECK_EQ_INT(ta->executor, 0);
	CHECK_EQ_INT(tb->executor, 1);
	CHECK_EQ_INT(ta->flags, 0);
	CHECK_EQ_U64(ta->subscribers, 2);
	CHECK_EQ_U64(ta->dispatched, 10);
	CHECK_EQ_U64(ta->delivered, 10);
	CHECK_EQ_U64(ta->handler_calls, 20);
	CHECK_EQ_U64(ta->handler_errors, 5);
	CHECK_EQ_U64(ta->dropped_no_subscriber, 0);
	CHECK_EQ_U64(tb->subscribers, 0);
	CHECK_EQ_U64(tb->dispatched, 7);
	CHECK_EQ_U64(tb->delivered, 0);
	CHECK_EQ_U64(tb->handler_calls, 0);
	CHECK_EQ_U64(tb->dropped_no_subscriber, 7);
	CHECK_EQ_U64(tc->subscribers, 1);
	CHECK_EQ_U64(tc->dispatched, 3);
	CHECK_EQ_U64(tc->delivered, 3);
	CHECK_EQ_U64(tc->handler_calls, 3);
	CHECK_EQ_U64(tc->handler_errors, 0);
	for (size_t i = 0; i < 3; i++) {
		CHECK_EQ_U64(s->topics[i].dropped_full, 0);
		CHECK_EQ_U64(s->topics[i].rejected_full, 0);
		CHECK_EQ_U64(s->topics[i].rejected_timeout, 0);
		CHECK_EQ_U64(s->topics[i].dropped_shutdown, 0);
	}
	/* executors: 0 has t.a, 1 has t.b.none and t.c */
	CHECK_EQ_U64(s->executors[0].published, 10);
	CHECK_EQ_U64(s->executors[0].delivered, 10);
	CHECK_EQ_U64(s->executors[0].handler_calls, 20);
	CHECK_EQ_U64(s->executors[0].handler_errors, 5);
	CHECK_EQ_U64(s->executors[1].published, 10);
	CHECK_EQ_U64(s->executors[1].delivered, 3);
	CHECK_EQ_U64(s->executors[1].dropped_no_subscriber, 7);
	/* totals include the two by-name publishes to a never-interned topic */
	CHECK_EQ_U64(s->total.published, 22);
	CHECK_EQ_U64(s->total.delivered, 13);
	CHECK_EQ_U64(s->total.dropped_no_subscriber, 9);
	CHECK_EQ_U64(s->total.handler_errors, 5);
	CHECK_STATS_BALANCED(s->total);
	CHECK(s->total.lane_high_water >= 1 && s->total.lane_high_water <= 10);
	CHECK_EQ_U64(s->latency_samples, 0);
	CHECK(s->latency_ == NULL);
	uint64_t ns;
	CHECK_EQ_INT(ebus_snapshot_percentile(s, 50, &ns), EBUS_ERR_UNSUPPORTED);
	/* ebus_stats agrees with the snapshot */
	ebus_stats_t st;
	CHECK_OK(ebus_stats(bus, 1, &st));
	CHECK_EQ_U64(st.published, 10);
	CHECK_EQ_U64(st.lane_high_water, s->executors[1].lane_high_water);
	ebus_snapshot_free(s);
	ebus_destroy(bus);
}

/* ---- a held executor and a full lane -------------------------------------------- */

static tu_gate gate;
static _Atomic uint64_t held_seen;

static int held_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	if (atomic_fetch_add(&held_seen, 1) == 0)
		tu_gate_pass(&gate); /* stuck here with the first event */
	return 0;
}

static void test_full_lane(void)
{
	const unsigned cap = 16;
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 1;
	cfg.lane_capacity = cap;
	cfg.full_policy = EBUS_FULL_BLOCK;
	cfg.block_timeout_ns = 1000000; /* 1 ms: the held executor never frees a slot */
	ebus_t *bus;
	CHECK_OK(ebus_create(&cfg, &bus));
	ebus_topic_t *held, *other, *quiet;
	CHECK_OK(ebus_topic(bus, "held", &held));
	CHECK_OK(ebus_topic(bus, "other", &other));
	CHECK_OK(ebus_topic(bus, "quiet", &quiet));
	ebus_sub_id id;
	tu_gate_init(&gate);
	atomic_store(&held_seen, 0);
	CHECK_OK(ebus_subscribe(held, held_handler, NULL, &id));
	CHECK_OK(ebus_subscribe(other, held_handler, NULL, &id));
	CHECK_OK(ebus_subscribe(quiet, held_handler, NULL, &id));

	CHECK_OK(ebus_publish(held, "0", 1));
	tu_gate_wait_entered(&gate, 1);
	/* fill the lane, alternating topics, until FAIL says full */
	unsigned fill = 0, n_held = 1, n_other = 0;
	for (;;) {
		ebus_topic_t *t = fill % 2 ? other : held;
		int rc = ebus_publish_ex(t, "f", 1, EBUS_FULL_FAIL);
		if (rc == EBUS_ERR_FULL) {
			CHECK(t == held || t == other);
			break;
		}
		CHECK_OK(rc);
		fill++;
		*(t == held ? &n_held : &n_other) += 1;
		CHECK_MSG(fill < cap, "a %u-slot lane took %u events", cap, fill);
	}
	/* the refusal that ended the loop went to `fill % 2 ? other : held` */
	uint64_t rej_full_held = fill % 2 ? 0 : 1, rej_full_other = fill % 2 ? 1 : 0;
	printf("   lane full after %u events behind the held one\n", fill);
	CHECK_EQ_INT(ebus_publish_ex(held, "x", 1, EBUS_FULL_FAIL), EBUS_ERR_FULL);
	CHECK_EQ_INT(ebus_publish_ex(held, "x", 1, EBUS_FULL_FAIL), EBUS_ERR_FULL);
	rej_full_held += 2;
	CHECK_EQ_INT(ebus_publish_ex(other, "x", 1, EBUS_FULL_DROP), EBUS_DROPPED);
	CHECK_EQ_INT(ebus_publish_ex(other, "x", 1, EBUS_FULL_DROP), EBUS_DROPPED);
	CHECK_EQ_INT(ebus_publish_ex(other, "x", 1, EBUS_FULL_DROP), EBUS_DROPPED);
	CHECK_EQ_INT(ebus_publish(other, "x", 1), EBUS_ERR_TIMEOUT);
	CHECK_EQ_INT(ebus_publish_name(bus, "held", "x", 1), EBUS_ERR_TIMEOUT);

	/* while held: the refusals are visible, the fill is queued */
	ebus_snapshot_t *s;
	CHECK_OK(ebus_snapshot(bus, &s));
	CHECK_EQ_U64(find_topic(s, "held")->rejected_full, rej_full_held);
	CHECK_EQ_U64(find_topic(s, "other")->rejected_full, rej_full_other);
	CHECK_EQ_U64(find_topic(s, "other")->dropped_full, 3);
	CHECK_EQ_U64(find_topic(s, "other")->rejected_timeout, 1);
	CHECK_EQ_U64(find_topic(s, "held")->rejected_timeout, 1);
	CHECK_EQ_U64(s->total.queued, 1 + fill); /* the held one keeps its slot until its batch ends */
	CHECK_EQ_U64(s->total.lane_high_water, 1); /* the executor found 1 event, then got stuck */
	ebus_snapshot_free(s);

	tu_gate_open(&gate);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(atomic_load(&held_seen), 1 + fill);
	CHECK_OK(ebus_snapshot(bus, &s));
	/* released, the executor found exactly the fill in the lane */
	CHECK_EQ_U64(s->executors[0].lane_high_water, fill);
	CHECK_EQ_U64(s->total.lane_high_water, fill);
	CHECK_EQ_U64(s->total.queued, 0);
	const ebus_topic_stats_t *th = find_topic(s, "held"), *to = find_topic(s, "other"),
	                         *tq = find_topic(s, "quiet");
	CHECK_EQ_U64(th->dispatched, n_held);
	CHECK_EQ_U64(th->delivered, n_held);
	CHECK_EQ_U64(th->handler_calls, n_held);
	CHECK_EQ_U64(th->rejected_full, rej_full_held);
	CHECK_EQ_U64(th->rejected_timeout, 1);
	CHECK_EQ_U64(th->dropped_full, 0);
	CHECK_EQ_U64(to->dispatched, n_other);
	CHECK_EQ_U64(to->delivered, n_other);
	CHECK_EQ_U64(to->rejected_full, rej_full_other);
	CHECK_EQ_U64(to->dropped_full, 3);
	CHECK_EQ_U64(to->rejected_timeout, 1);
	CHECK_EQ_U64(tq->dispatched, 0);
	CHECK_EQ_U64(tq->subscribers, 1);
	CHECK_EQ_U64(tq->rejected_full + tq->dropped_full + tq->rejected_timeout, 0);
	CHECK_EQ_U64(s->total.rejected_full, rej_full_held + rej_full_other);
	CHECK_EQ_U64(s->total.dropped_full, 3);
	CHECK_EQ_U64(s->total.rejected_timeout, 2);
	CHECK_STATS_BALANCED(s->total);
	check_sums(s);
	/* the same in the text */
	char *text = render(s, NULL);
	char line[128];
	snprintf(line, sizeof line, "ebus_lane_high_water %u\n", fill);
	CHECK_MSG(strstr(text, line), "no '%s' in\n%s", line, text);
	snprintf(line, sizeof line, "ebus_executor_lane_high_water{executor=\"0\"} %u\n", fill);
	CHECK_MSG(strstr(text, line), "no '%s'", line);
	CHECK(strstr(text, "ebus_topic_dropped_total{topic=\"other\",cause=\"full\"} 3\n"));
	CHECK(strstr(text, "ebus_topic_rejected_total{topic=\"held\",cause=\"timeout\"} 1\n"));
	CHECK(strstr(text, "ebus_dropped_total{cause=\"full\"} 3\n"));
	free(text);
	ebus_snapshot_free(s);
	ebus_destroy(bus);
	tu_gate_destroy(&gate);
}

/* ---- discard at shutdown: per-topic counts add up ---------------------------------- */

static void *shutdown_discard(void *arg)
{
	CHECK_OK(ebus_shutdown((ebus_t *)arg, EBUS_SHUTDOWN_DISCARD));
	return NULL;
}

static void test_discard(void)
{
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 1;
	cfg.lane_capacity = 64;
	ebus_t *bus;
	CHECK_OK(ebus_create(&cfg, &bus));
	ebus_topic_t *held, *other;
	CHECK_OK(ebus_topic(bus, "d.held", &held));
	CHECK_OK(ebus_topic(bus, "d.other", &other));
	ebus_sub_id id;
	tu_gate_init(&gate);
	atomic_store(&held_seen, 0);
	CHECK_OK(ebus_subscribe(held, held_handler, NULL, &id));
	CHECK_OK(ebus_publish(held, "0", 1));
	tu_gate_wait_entered(&gate, 1);
	for (int i = 0; i < 20; i++)
		CHECK_OK(ebus_publish(i % 2 ? other : held, "q", 1));
	pthread_t th;
	tu_thread_create(&th, shutdown_discard, bus);
	/* publish until the bus refuses (shutdown has begun), then release the
	 * handler; what was accepted meanwhile is counted too */
	unsigned late = 0;
	for (;;) {
		int rc = ebus_publish_ex(other, "late", 4, EBUS_FULL_FAIL);
		if (rc == EBUS_ERR_SHUTDOWN)
			break;
		if (rc == EBUS_OK)
			late++;
		else
			CHECK_EQ_INT(rc, EBUS_ERR_FULL);
	}
	tu_gate_open(&gate);
	tu_thread_join(th);
	ebus_snapshot_t *s;
	CHECK_OK(ebus_snapshot(bus, &s));
	const ebus_topic_stats_t *th_ = find_topic(s, "d.held"), *to = find_topic(s, "d.other");
	printf("   after DISCARD: %" PRIu64 " delivered, %" PRIu64 " discarded\n", s->total.delivered,
	       s->total.dropped_shutdown);
	CHECK_EQ_U64(th_->dispatched, 11);
	CHECK_EQ_U64(to->dispatched, 10 + late);
	CHECK_EQ_U64(to->delivered, 0);
	CHECK_EQ_U64(to->dropped_no_subscriber + to->dropped_shutdown, 10 + late);
	CHECK(th_->delivered >= 1);
	CHECK_STATS_BALANCED(s->total);
	check_sums(s);
	ebus_snapshot_free(s);
	ebus_destroy(bus);
	tu_gate_destroy(&gate);
}

/* ---- unordered topics: per-executor counter blocks ------------------------------- */

static void test_unordered(void)
{
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 3;
	ebus_t *bus;
	CHECK_OK(ebus_create(&cfg, &bus));
	ebus_topic_t *u, *o;
	CHECK_OK(ebus_topic_ex(bus, "u.spread", -1, EBUS_TOPIC_UNORDERED, &u));
	CHECK_OK(ebus_topic(bus, "o.plain", &o));
	_Atomic uint64_t nu = 0;
	ebus_sub_id id;
	CHECK_OK(ebus_subscribe_ex(u, ok_handler, &nu, EBUS_SUB_CONCURRENT, &id));
	for (int i = 0; i < 300; i++)
		CHECK_OK(ebus_publish(u, "u", 1));
	for (int i = 0; i < 5; i++)
		CHECK_OK(ebus_publish(o, "o", 1));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(atomic_load(&nu), 300);
	ebus_snapshot_t *s;
	CHECK_OK(ebus_snapshot(bus, &s));
	const ebus_topic_stats_t *tu_ = find_topic(s, "u.spread"), *to = find_topic(s, "o.plain");
	CHECK_EQ_INT(tu_->executor, -1);
	CHECK_EQ_INT(tu_->flags, EBUS_TOPIC_UNORDERED);
	CHECK_EQ_U64(tu_->subscribers, 1);
	CHECK_EQ_U64(tu_->dispatched, 300);
	CHECK_EQ_U64(tu_->delivered, 300);
	CHECK_EQ_U64(tu_->handler_calls, 300);
	CHECK_EQ_INT(to->executor, ebus_topic_executor(o));
	/* the accessor agrees with the snapshot: -1 for an unordered topic,
	 * and -1 (not executor 0) for no topic at all */
	CHECK_EQ_INT(ebus_topic_executor(u), -1);
	CHECK_EQ_INT(ebus_topic_executor(NULL), -1);
	CHECK_EQ_U64(to->dropped_no_subscriber, 5);
	check_sums(s);
	char *text = render(s, NULL);
	CHECK(strstr(text, "ebus_topic_delivered_total{topic=\"u.spread\"} 300\n"));
	free(text);
	ebus_snapshot_free(s);
	ebus_destroy(bus);
}

/* ---- timestamps ---------------------------------------------------------------------- */

static void check_latency(const ebus_snapshot_t *s, uint64_t samples)
{
	CHECK(s->latency_ != NULL);
	CHECK_EQ_U64(s->latency_samples, samples);
	static const double ps[] = { 0, 1, 50, 90, 99, 99.9, 100 };
	uint64_t prev = 0;
	for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
		uint64_t ns = 0;
		CHECK_OK(ebus_snapshot_percentile(s, ps[i], &ns));
		CHECK_MSG(ns >= prev, "p%g = %" PRIu64 " < %" PRIu64, ps[i], ns, prev);
		prev = ns;
	}
	char *text = render(s, NULL);
	char line[96];
	snprintf(line, sizeof line, "ebus_dispatch_latency_seconds_count %" PRIu64 "\n", samples);
	CHECK_MSG(strstr(text, line), "no '%s'", line);
	CHECK(strstr(text, "# TYPE ebus_dispatch_latency_seconds histogram\n"));
	free(text);
}

static void test_timestamps(void)
{
	const uint64_t n = tu_param("EBUS_STRESS_STATS_EVENTS", 20000, 2000000);
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	cfg.timestamps = 1;
	ebus_t *bus;
	CHECK_OK(ebus_create(&cfg, &bus));
	ebus_topic_t *a, *b;
	CHECK_OK(ebus_topic_on(bus, "ts.a", 0, &a));
	CHECK_OK(ebus_topic_on(bus, "ts.b", 1, &b));
	_Atomic uint64_t cnt = 0;
	ebus_sub_id id;
	CHECK_OK(ebus_subscribe(a, ok_handler, &cnt, &id));
	ebus_snapshot_t *s;
	CHECK_OK(ebus_snapshot(bus, &s));
	CHECK(s->latency_ != NULL);
	CHECK_EQ_U64(s->latency_samples, 0);
	uint64_t ns;
	CHECK_EQ_INT(ebus_snapshot_percentile(s, 50, &ns), EBUS_ERR_EMPTY);
	ebus_snapshot_free(s);
	for (uint64_t i = 0; i < n; i++)
		CHECK_OK(ebus_publish(i % 4 ? a : b, &i, 8)); /* b has no subscriber: still dispatched */
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_OK(ebus_snapshot(bus, &s));
	check_latency(s, n);
	ebus_snapshot_free(s);
	ebus_destroy(bus);
}

/* ---- synchronous mode ------------------------------------------------------------------ */

static ebus_topic_t *sync_b;

static int sync_a_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ctx;
	uint64_t v;
	memcpy(&v, ev->data, 8);
	CHECK_OK(ebus_publish(sync_b, &v, 8)); /* queued, delivered after this returns */
	return v % 3 == 0;                      /* fails on multiples of 3 */
}

static void test_sync(void)
{
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	cfg.synchronous = 1;
	cfg.timestamps = 1;
	ebus_t *bus;
	CHECK_OK(ebus_create(&cfg, &bus));
	ebus_topic_t *a, *none;
	CHECK_OK(ebus_topic_on(bus, "s.a", 0, &a));
	CHECK_OK(ebus_topic_on(bus, "s.b", 1, &sync_b));
	CHECK_OK(ebus_topic_on(bus, "s.none", 1, &none));
	_Atomic uint64_t nb = 0;
	ebus_sub_id id;
	CHECK_OK(ebus_subscribe(a, sync_a_handler, NULL, &id));
	CHECK_OK(ebus_subscribe(sync_b, ok_handler, &nb, &id));
	for (uint64_t v = 0; v < 9; v++)
		CHECK_OK(ebus_publish(a, &v, 8));
	for (uint64_t v = 0; v < 4; v++)
		CHECK_OK(ebus_publish(none, &v, 8));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(atomic_load(&nb), 9);
	ebus_snapshot_t *s;
	CHECK_OK(ebus_snapshot(bus, &s));
	CHECK_EQ_INT(s->nexec, 2);
	const ebus_topic_stats_t *ta = find_topic(s, "s.a"), *tb = find_topic(s, "s.b"),
	                         *tn = find_topic(s, "s.none");
	CHECK_EQ_U64(ta->dispatched, 9);
	CHECK_EQ_U64(ta->handler_errors, 3); /* 0, 3, 6 */
	CHECK_EQ_U64(tb->dispatched, 9);
	CHECK_EQ_U64(tb->delivered, 9);
	CHECK_EQ_U64(tn->dropped_no_subscriber, 4);
	CHECK_EQ_U64(s->executors[0].published, 9);
	CHECK_EQ_U64(s->executors[0].handler_errors, 3);
	CHECK_EQ_U64(s->executors[1].published, 13);
	CHECK_EQ_U64(s->executors[1].delivered, 9);
	CHECK_EQ_U64(s->executors[1].dropped_no_subscriber, 4);
	CHECK_EQ_U64(s->total.published, 22);
	CHECK_EQ_U64(s->total.lane_high_water, 0); /* no lanes in synchronous mode */
	CHECK_STATS_BALANCED(s->total);
	check_sums(s);
	check_latency(s, 22); /* direct and queued (nested) publishes alike */
	char *text = render(s, NULL);
	CHECK(strstr(text, "ebus_executor_published_total{executor=\"1\"} 13\n"));
	CHECK(strstr(text, "ebus_topic_handler_errors_total{topic=\"s.a\"} 3\n"));
	free(text);
	ebus_snapshot_free(s);
	ebus_destroy(bus);
}

/* ---- a snapshot outlives its bus ---------------------------------------------------------- */

static void test_outlives_bus(void)
{
	tu_alloc al;
	memset(&al, 0, sizeof al);
	ebus_allocator_t hooks = tu_allocator(&al);
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	cfg.timestamps = 1;
	cfg.allocator = &hooks;
	ebus_t *bus;
	CHECK_OK(ebus_create(&cfg, &bus));
	ebus_topic_t *t;
	CHECK_OK(ebus_topic(bus, "gone.soon", &t));
	ebus_topic_t *u;
	CHECK_OK(ebus_topic_ex(bus, "gone.unordered", -1, EBUS_TOPIC_UNORDERED, &u));
	for (int i = 0; i < 5; i++)
		CHECK_OK(ebus_publish(t, "x", 1));
	CHECK_OK(ebus_flush(bus, 0));
	uint64_t before = atomic_load(&al.allocs);
	ebus_snapshot_t *s;
	CHECK_OK(ebus_snapshot(bus, &s));
	CHECK_EQ_U64(atomic_load(&al.allocs), before + 1); /* one block, from the bus's allocator */
	ebus_destroy(bus);
	CHECK_EQ_U64(atomic_load(&al.allocs) - atomic_load(&al.frees), 1); /* only the snapshot */
	CHECK_EQ_U64(s->ntopics, 2);
	CHECK(strcmp(s->topics[0].name, "gone.soon") == 0);
	CHECK(strcmp(s->topics[1].name, "gone.unordered") == 0);
	CHECK_EQ_U64(s->topics[0].dropped_no_subscriber, 5);
	CHECK_EQ_U64(s->latency_samples, 5);
	char *text = render(s, NULL);
	CHECK(strstr(text, "ebus_topic_dispatched_total{topic=\"gone.soon\"} 5\n"));
	CHECK(strstr(text, "ebus_published_total 5\n"));
	free(text);
	ebus_snapshot_free(s);
	CHECK_ALLOC_BALANCED(&al);

	/* a failing allocator: EBUS_ERR_NOMEM, *out untouched */
	CHECK_OK(ebus_create(&cfg, &bus));
	atomic_store(&al.fail, 1);
	s = (ebus_snapshot_t *)(uintptr_t)0x1;
	CHECK_EQ_INT(ebus_snapshot(bus, &s), EBUS_ERR_NOMEM);
	CHECK(s == (ebus_snapshot_t *)(uintptr_t)0x1);
	atomic_store(&al.fail, 0);
	ebus_destroy(bus);
	CHECK_ALLOC_BALANCED(&al);
}

/* ---- Prometheus text: a small parser -------------------------------------------------------- */

#define MAXFAM 128

struct fam {
	char name[96];
	int help, type;
	int samples;
};

static struct {
	struct fam f[MAXFAM];
	int n;
	int last; /* family of the previous sample, -1 */
	char topics[16][64]; /* unescaped topic label values seen */
	int ntopics;
} pp;

static struct fam *fam_find(const char *name, size_t n)
{
	for (int i = 0; i < pp.n; i++)
		if (strlen(pp.f[i].name) == n && memcmp(pp.f[i].name, name, n) == 0)
			return &pp.f[i];
	return NULL;
}

static struct fam *fam_get(const char *name, size_t n)
{
	struct fam *f = fam_find(name, n);
	if (f)
		return f;
	CHECK(pp.n < MAXFAM && n < sizeof pp.f[0].name);
	f = &pp.f[pp.n++];
	memset(f, 0, sizeof *f);
	memcpy(f->name, name, n);
	return f;
}

static size_t metric_name_len(const char *s)
{
	size_t i = 0;
	if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
		return 0;
	while (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':')
		i++;
	return i;
}

/* Checks one sample line against the families declared so far (a
 * summary's _sum and _count, and a histogram's _bucket, belong to its
 * family). A histogram's buckets must be cumulative, ending in +Inf equal
 * to its _count. */
static uint64_t hist_prev, hist_inf;
static int hist_seen_inf;
static void parse_sample(const char *line)
{
	size_t n = metric_name_len(line);
	CHECK_MSG(n > 0, "bad metric name in '%s'", line);
	const char *p = line + n;
	struct fam *f = fam_find(line, n);
	if (!f && n > 4 && strncmp(line + n - 4, "_sum", 4) == 0)
		f = fam_find(line, n - 4);
	if (!f && n > 6 && strncmp(line + n - 6, "_count", 6) == 0)
		f = fam_find(line, n - 6);
	int bucket = 0, count = n > 6 && strncmp(line + n - 6, "_count", 6) == 0;
	if (!f && n > 7 && strncmp(line + n - 7, "_bucket", 7) == 0) {
		f = fam_find(line, n - 7);
		bucket = 1;
	}
	CHECK_MSG(f && f->type && f->help, "sample before its # HELP and # TYPE: '%s'", line);
	int idx = (int)(f - pp.f);
	CHECK_MSG(pp.last == idx || f->samples == 0, "family %s is not contiguous", f->name);
	pp.last = idx;
	f->samples++;
	if (*p == '{') {
		p++;
		for (;;) {
			size_t k = 0;
			while (isalnum((unsigned char)p[k]) || p[k] == '_')
				k++;
			CHECK_MSG(k > 0 && !isdigit((unsigned char)p[0]), "bad label name in '%s'", line);
			char key[32];
			CHECK(k < sizeof key);
			memcpy(key, p, k);
			key[k] = '\0';
			p += k;
			CHECK_MSG(p[0] == '=' && p[1] == '"', "label without =\" in '%s'", line);
			p += 2;
			char val[128];
			size_t vn = 0;
			while (*p != '"') {
				CHECK_MSG(*p, "unterminated label value in '%s'", line);
				char c = *p++;
				if (c == '\\') {
					c = *p++;
					CHECK_MSG(c == '\\' || c == '"' || c == 'n', "bad escape in '%s'", line);
					if (c == 'n')
						c = '\n';
				}
				CHECK(vn + 1 < sizeof val);
				val[vn++] = c;
			}
			val[vn] = '\0';
			p++;
			if (bucket && strcmp(key, "le") == 0) {
				CHECK_MSG(strcmp(val, "+Inf") == 0 || (strtod(val, NULL) > 0),
				          "bad le in '%s'", line);
				hist_seen_inf = strcmp(val, "+Inf") == 0;
			}
			if (strcmp(key, "topic") == 0) {
				int dup = 0;
				for (int i = 0; i < pp.ntopics; i++)
					dup |= strcmp(pp.topics[i], val) == 0;
				if (!dup) {
					CHECK(pp.ntopics < 16 && vn < 64);
					strcpy(pp.topics[pp.ntopics++], val);
				}
			}
			if (*p == ',') {
				p++;
				continue;
			}
			CHECK_MSG(*p == '}', "bad label list in '%s'", line);
			p++;
			break;
		}
	}
	CHECK_MSG(*p == ' ', "no space before the value in '%s'", line);
	p++;
	if (strcmp(p, "NaN") != 0) {
		char *end;
		errno = 0;
		(void)strtod(p, &end);
		CHECK_MSG(errno == 0 && end != p && *end == '\0', "bad value in '%s'", line);
		int seconds = strcmp(f->name, "ebus_dispatch_latency_seconds") == 0;
		if (!seconds || bucket || count)
			CHECK_MSG(strspn(p, "0123456789") == strlen(p), "count not an integer: '%s'", line);
	}
	if (bucket) {
		uint64_t v = strtoull(p, NULL, 10);
		CHECK_MSG(f->samples == 1 || v >= hist_prev, "bucket counts not cumulative at '%s'", line);
		hist_prev = v;
		if (hist_seen_inf)
			hist_inf = v;
	} else if (count && strcmp(f->name, "ebus_dispatch_latency_seconds") == 0) {
		CHECK_MSG(strtoull(p, NULL, 10) == hist_inf, "+Inf bucket != _count at '%s'", line);
	}
}

static void parse_text(char *text)
{
	memset(&pp, 0, sizeof pp);
	pp.last = -1;
	CHECK(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
	for (char *line = text, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		CHECK(nl);
		*nl = '\0';
		CHECK_MSG(*line, "empty line");
		if (line[0] == '#') {
			int help = strncmp(line, "# HELP ", 7) == 0, type = strncmp(line, "# TYPE ", 7) == 0;
			CHECK_MSG(help || type, "comment that is neither HELP nor TYPE: '%s'", line);
			const char *name = line + 7;
			size_t n = metric_name_len(name);
			CHECK_MSG(n > 0 && name[n] == ' ' && name[n + 1], "bad %s line '%s'", help ? "HELP" : "TYPE", line);
			struct fam *f = fam_get(name, n);
			CHECK_MSG(f->samples == 0, "HELP/TYPE after samples of %s", f->name);
			if (help) {
				CHECK_MSG(!f->help, "second HELP for %s", f->name);
				f->help = 1;
			} else {
				const char *t = name + n + 1;
				CHECK_MSG(!f->type, "second TYPE for %s", f->name);
				CHECK_MSG(!strcmp(t, "counter") || !strcmp(t, "gauge") || !strcmp(t, "summary") ||
				                  !strcmp(t, "histogram"),
				          "type '%s'", t);
				CHECK_MSG(strcmp(t, "counter") != 0 || strstr(f->name, "_total"),
				          "counter %s without _total", f->name);
				f->type = 1;
			}
		} else {
			parse_sample(line);
		}
		*nl = '\n';
	}
	for (int i = 0; i < pp.n; i++)
		CHECK_MSG(pp.f[i].help && pp.f[i].type, "family %s lacks HELP or TYPE", pp.f[i].name);
}

static int sub_count_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 0;
}

static void test_prometheus(void)
{
	static const char *names[] = { "q\"uote", "back\\slash", "plain.topic", "a\\\"b.c" };
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	cfg.timestamps = 1;
	ebus_t *bus;
	CHECK_OK(ebus_create(&cfg, &bus));
	ebus_topic_t *t[4];
	for (int i = 0; i < 4; i++) {
		CHECK_OK(ebus_topic_validate(names[i])); /* '"' and '\' are topic characters */
		CHECK_OK(ebus_topic(bus, names[i], &t[i]));
	}
	ebus_sub_id id;
	CHECK_OK(ebus_subscribe(t[0], sub_count_handler, NULL, &id));
	for (int i = 0; i < 4; i++)
		for (int k = 0; k <= i; k++)
			CHECK_OK(ebus_publish(t[i], "p", 1));
	CHECK_OK(ebus_flush(bus, 0));
	ebus_snapshot_t *s;
	CHECK_OK(ebus_snapshot(bus, &s));
	size_t len;
	char *text = render(s, &len);
	parse_text(text);
	/* every family we promise is there */
	static const char *want[] = { "ebus_published_total", "ebus_delivered_total", "ebus_dropped_total",
		                      "ebus_rejected_total", "ebus_handler_errors_total", "ebus_queued",
		                      "ebus_lanes_live", "ebus_lane_high_water", "ebus_executor_published_total",
		                      "ebus_topic_delivered_total", "ebus_topic_dropped_total",
		                      "ebus_dispatch_latency_seconds" };
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		int found = 0;
		for (int k = 0; k < pp.n; k++)
			found |= strcmp(pp.f[k].name, want[i]) == 0;
		CHECK_MSG(found, "no family %s", want[i]);
	}
	/* topic labels round-trip through the escaping */
	CHECK_EQ_INT(pp.ntopics, 4);
	for (int i = 0; i < 4; i++) {
		int found = 0;
		for (int k = 0; k < pp.ntopics; k++)
			found |= strcmp(pp.topics[k], names[i]) == 0;
		CHECK_MSG(found, "topic %s not among the labels", names[i]);
	}
	CHECK(strstr(text, "ebus_topic_delivered_total{topic=\"q\\\"uote\"} 1\n"));
	CHECK(strstr(text, "ebus_topic_dropped_total{topic=\"back\\\\slash\",cause=\"no_subscriber\"} 2\n"));
	CHECK(strstr(text, "ebus_topic_dispatched_total{topic=\"a\\\\\\\"b.c\"} 4\n"));
	CHECK(strstr(text, "ebus_published_total 10\n"));
	CHECK(strstr(text, "ebus_dropped_total{cause=\"no_subscriber\"} 9\n"));
	CHECK(strstr(text, "ebus_rejected_total{cause=\"shutdown\"} 0\n"));
	CHECK(!strstr(text, "ebus_executor_rejected_total{executor=\"0\",cause=\"shutdown\"}")); /* per bus only */
	CHECK(strstr(text, "ebus_executor_dropped_total{executor=\"1\",cause=\"shutdown\"} 0\n"));
	CHECK(strstr(text, "ebus_dispatch_latency_seconds_count 10\n"));
	{
		char line[80];
		snprintf(line, sizeof line, "ebus_executor_published_total{executor=\"0\"} %" PRIu64 "\n",
		         s->executors[0].published);
		CHECK_MSG(strstr(text, line), "no '%s'", line);
	}

	/* size negotiation: NULL/0 asks; one byte short truncates; exact fits */
	size_t need = 0;
	CHECK_EQ_INT(ebus_snapshot_prometheus(s, NULL, 0, &need), EBUS_ERR_BUFFER);
	CHECK_EQ_U64(need, len);
	char *small = malloc(len + 1);
	CHECK(small);
	memset(small, 'Z', len + 1);
	need = 0;
	CHECK_EQ_INT(ebus_snapshot_prometheus(s, small, len, &need), EBUS_ERR_BUFFER);
	CHECK_EQ_U64(need, len);
	CHECK_EQ_U64(strlen(small), len - 1);
	CHECK(memcmp(small, text, len - 1) == 0);
	memset(small, 'Z', len + 1);
	CHECK_EQ_INT(ebus_snapshot_prometheus(s, small, 100, &need), EBUS_ERR_BUFFER);
	CHECK_EQ_U64(strlen(small), 99);
	CHECK(memcmp(small, text, 99) == 0);
	CHECK(small[100] == 'Z'); /* nothing written past cap */
	CHECK_EQ_INT(ebus_snapshot_prometheus(s, small, 1, &need), EBUS_ERR_BUFFER);
	CHECK_EQ_INT(small[0], '\0');
	CHECK_OK(ebus_snapshot_prometheus(s, small, len + 1, &need));
	CHECK(strcmp(small, text) == 0);
	/* bad input */
	need = 12345;
	CHECK_EQ_INT(ebus_snapshot_prometheus(NULL, small, len + 1, &need), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_snapshot_prometheus(s, small, len + 1, NULL), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_snapshot_prometheus(s, NULL, 10, &need), EBUS_ERR_NULL);
	CHECK_EQ_U64(need, 12345);
	free(small);
	free(text);
	ebus_snapshot_free(s);
	ebus_destroy(bus);
}

/* ---- snapshots while topics are interned, subscriptions change, events flow ---------- */

#define CC_THREADS 2

static struct {
	ebus_t *bus;
	uint64_t topics, events;
	_Atomic int done;
	_Atomic uint64_t calls; /* outlives the workers: their handlers stay subscribed */
} cc;

static void *cc_worker(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;
	for (uint64_t i = 0; i < cc.topics; i++) {
		char name[64];
		snprintf(name, sizeof name, "cc.w%u.t%" PRIu64, w, i);
		ebus_topic_t *t;
		CHECK_OK(ebus_topic(cc.bus, name, &t));
		ebus_sub_id id;
		CHECK_OK(ebus_subscribe(t, ok_handler, &cc.calls, &id)); /* array swaps under the snapshots */
		for (uint64_t k = 0; k < cc.events; k++)
			CHECK_OK(ebus_publish(t, &k, 8));
		if (i % 2)
			CHECK_OK(ebus_unsubscribe(cc.bus, id));
	}
	atomic_fetch_add(&cc.done, 1);
	return NULL;
}

static void test_concurrent_snapshots(void)
{
	cc.topics = tu_param("EBUS_STRESS_STATS_TOPICS", 200, 20000);
	cc.events = 50;
	atomic_store(&cc.done, 0);
	atomic_store(&cc.calls, 0);
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	cfg.timestamps = 1;
	CHECK_OK(ebus_create(&cfg, &cc.bus));
	pthread_t th[CC_THREADS];
	for (unsigned i = 0; i < CC_THREADS; i++)
		tu_thread_create(&th[i], cc_worker, (void *)(uintptr_t)i);
	size_t prev_topics = 0;
	uint64_t prev_pub = 0, prev_samples = 0, rounds = 0;
	while (atomic_load(&cc.done) < CC_THREADS || rounds == 0) {
		ebus_snapshot_t *s;
		CHECK_OK(ebus_snapshot(cc.bus, &s));
		CHECK(s->ntopics >= prev_topics);
		check_sorted(s);
		for (size_t i = 0; i < s->ntopics; i++) {
			CHECK(strncmp(s->topics[i].name, "cc.w", 4) == 0);
			CHECK(s->topics[i].subscribers <= 1);
			CHECK(s->topics[i].dispatched <= cc.events);
		}
		CHECK(s->total.published >= prev_pub);
		CHECK(s->latency_samples >= prev_samples);
		prev_topics = s->ntopics;
		prev_pub = s->total.published;
		prev_samples = s->latency_samples;
		size_t len;
		CHECK_EQ_INT(ebus_snapshot_prometheus(s, NULL, 0, &len), EBUS_ERR_BUFFER);
		ebus_snapshot_free(s);
		rounds++;
	}
	for (unsigned i = 0; i < CC_THREADS; i++)
		tu_thread_join(th[i]);
	CHECK_OK(ebus_flush(cc.bus, 0));
	ebus_snapshot_t *s;
	CHECK_OK(ebus_snapshot(cc.bus, &s));
	printf("   %" PRIu64 " snapshots taken while %u threads interned %" PRIu64 " topics each\n", rounds,
	       CC_THREADS, cc.topics);
	CHECK_EQ_U64(s->ntopics, CC_THREADS * cc.topics);
	CHECK_EQ_U64(s->total.published, CC_THREADS * cc.topics * cc.events);
	CHECK_EQ_U64(s->latency_samples, s->total.published);
	for (size_t i = 0; i < s->ntopics; i++) {
		CHECK_EQ_U64(s->topics[i].dispatched, cc.events);
		/* odd-numbered topics were unsubscribed after their events */
		size_t n = strlen(s->topics[i].name);
		int odd = (s->topics[i].name[n - 1] - '0') % 2;
		CHECK_EQ_U64(s->topics[i].subscribers, odd ? 0 : 1);
	}
	CHECK_EQ_U64(atomic_load(&cc.calls), s->total.handler_calls);
	CHECK_STATS_BALANCED(s->total);
	check_sums(s);
	ebus_snapshot_free(s);
	ebus_destroy(cc.bus);
}

static void test_bad_input(void)
{
	ebus_snapshot_t *s = (ebus_snapshot_t *)(uintptr_t)0x1;
	CHECK_EQ_INT(ebus_snapshot(NULL, &s), EBUS_ERR_NULL);
	CHECK(s == (ebus_snapshot_t *)(uintptr_t)0x1);
	ebus_t *bus;
	CHECK_OK(ebus_create(NULL, &bus));
	CHECK_EQ_INT(ebus_snapshot(bus, NULL), EBUS_ERR_NULL);
	ebus_snapshot_free(NULL);
	ebus_stats_t st;
	CHECK_EQ_INT(ebus_stats(bus, 1, &st), EBUS_ERR_EXECUTOR);
	/* a snapshot after shutdown is fine */
	CHECK_OK(ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN));
	CHECK_OK(ebus_snapshot(bus, &s));
	CHECK_EQ_U64(s->ntopics, 0);
	CHECK_EQ_INT(s->nexec, 1);
	ebus_snapshot_free(s);
	ebus_destroy(bus);
}

int main(void)
{
	TU_RUN(test_hist_math);
	TU_RUN(test_exact_counts);
	TU_RUN(test_full_lane);
	TU_RUN(test_discard);
	TU_RUN(test_unordered);
	TU_RUN(test_timestamps);
	TU_RUN(test_sync);
	TU_RUN(test_outlives_bus);
	TU_RUN(test_prometheus);
	TU_RUN(test_concurrent_snapshots);
	TU_RUN(test_bad_input);
	return tu_finish("test_stats");
}
