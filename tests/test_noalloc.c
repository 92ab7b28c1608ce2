/*
 * The publish and dispatch paths do not allocate, for inline payloads
 * (<= EBUS_INLINE_MAX bytes) and for larger ones up to a quarter of the
 * lane arena (64 KiB by default): after a warm-up (topics, subscriptions and the
 * publishing thread's lanes exist), publishing and delivering a million
 * inline events, with the executors parking and waking and the publisher
 * blocking on full lanes, and the final ebus_flush, make zero allocator calls.
 * Every event is also checked (content, order, count).
 *
 * Parameters:
 *   EBUS_STRESS_EVENTS  1000000 | 100000000
 */
#include "testutil.h"

static uint64_t N;

typedef struct na_sub {
	ebus_topic_t *topic;
	unsigned idx;
	uint64_t next;
} na_sub;

static unsigned char payload_byte(uint64_t seq, size_t i)
{
	return (unsigned char)(tu_mix(seq) >> (8 * (i % 8))) ^ (unsigned char)i;
}

/* Inline payloads (8 .. EBUS_INLINE_MAX), or with `large` payloads above
 * the slot up to a quarter of the default lane arena (64 KiB), which travel
 * in the lane's arena. */
static int large;
static const size_t large_sizes[] = {EBUS_INLINE_MAX + 1, 100, 1000, 4096, 20000, 65536};
static size_t payload_len(uint64_t seq)
{
	if (large)
		return large_sizes[seq % (sizeof large_sizes / sizeof large_sizes[0])];
	return 8 + (size_t)(seq % (EBUS_INLINE_MAX - 8 + 1)); /* 8 .. EBUS_INLINE_MAX */
}

static int na_handler(const ebus_event_t *ev, void *ctx)
{
	na_sub *s = ctx;
	CHECK(ev->topic == s->topic);
	uint64_t seq;
	CHECK(ev->len >= 8);
	memcpy(&seq, ev->data, 8);
	CHECK_MSG(seq == s->next, "topic %u: seq %" PRIu64 ", want %" PRIu64, s->idx, seq, s->next);
	CHECK_EQ_U64(ev->len, payload_len(seq));
	const unsigned char *d = ev->data;
	for (size_t i = 8; i < ev->len; i++)
		CHECK(d[i] == payload_byte(seq, i));
	s->next++;
	return 0;
}

static void publish_range(ebus_topic_t **topics, uint64_t *seqs, uint64_t from, uint64_t to)
{
	static unsigned char buf[65536];
	for (uint64_t k = from; k < to; k++) {
		unsigned t = (unsigned)(k % 2);
		uint64_t seq = seqs[t]++;
		size_t len = payload_len(seq);
		memcpy(buf, &seq, 8);
		for (size_t i = 8; i < len; i++)
			buf[i] = payload_byte(seq, i);
		int rc = ebus_publish(topics[t], buf, len);
		CHECK_MSG(rc == EBUS_OK, "publish %" PRIu64 ": %s", k, ebus_errname(rc));
	}
}

static void run(ebus_wait wait, unsigned lane_capacity, uint64_t n)
{
	static tu_alloc al;
	memset(&al, 0, sizeof al);
	ebus_allocator_t hooks = tu_allocator(&al);
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	cfg.allocator = &hooks;
	cfg.wait = wait;
	cfg.spin_iterations = 64; /* park often */
	cfg.lane_capacity = lane_capacity;
	ebus_t *bus = NULL;
	CHECK_OK(ebus_create(&cfg, &bus));
	ebus_topic_t *topics[2];
	na_sub subs[2][2];
	for (unsigned t = 0; t < 2; t++) {
		char name[32];
		snprintf(name, sizeof name, "noalloc.%u", t);
		CHECK_OK(ebus_topic_on(bus, name, t, &topics[t]));
		for (unsigned s = 0; s < 2; s++) {
			subs[t][s].topic = topics[t];
			subs[t][s].idx = t;
			subs[t][s].next = 0;
			ebus_sub_id id;
			CHECK_OK(ebus_subscribe(topics[t], na_handler, &subs[t][s], &id));
		}
	}
	uint64_t seqs[2] = {0, 0};
	const uint64_t warm = 4000;
	publish_range(topics, seqs, 0, warm);
	CHECK_OK(ebus_flush(bus, 0));

	const uint64_t a0 = atomic_load(&al.allocs), f0 = atomic_load(&al.frees);
	publish_range(topics, seqs, warm, warm + n);
	CHECK_OK(ebus_flush(bus, 0));
	const uint64_t a1 = atomic_load(&al.allocs), f1 = atomic_load(&al.frees);

	ebus_stats_t st = tu_stats(bus);
	printf("   %" PRIu64 " %s events: %" PRIu64 " allocations, %" PRIu64 " frees; %" PRIu64
	       " parks, %" PRIu64 " wakeups\n",
	       n, large ? "arena" : "inline", a1 - a0, f1 - f0, st.parks, st.wakeups);
	CHECK_MSG(a1 == a0, "%" PRIu64 " allocations while publishing", a1 - a0);
	CHECK_MSG(f1 == f0, "%" PRIu64 " frees while publishing", f1 - f0);
	CHECK_EQ_U64(st.payload_allocs, 0);

	for (unsigned t = 0; t < 2; t++)
		for (unsigned s = 0; s < 2; s++)
			CHECK_EQ_U64(subs[t][s].next, seqs[t]);
	CHECK_EQ_U64(st.published, warm + n);
	CHECK_EQ_U64(st.delivered, warm + n);
	CHECK_EQ_U64(st.handler_calls, 2 * (warm + n));
	CHECK_STATS_BALANCED(st);
	ebus_destroy(bus);
	CHECK_ALLOC_BALANCED(&al);
}

static void test_park_default_lanes(void)
{
	run(EBUS_WAIT_SPIN_PARK, 0, N);
}

static void test_park_small_lanes(void)
{
	/* the publisher blocks on full lanes all the time */
	run(EBUS_WAIT_SPIN_PARK, 16, N / 4 ? N / 4 : 1);
}

static void test_park_arena_payloads(void)
{
	/* payloads above the slot, up to 64 KiB: the lane's arena fills and
	 * the publisher waits for it, and still nothing is allocated */
	large = 1;
	run(EBUS_WAIT_SPIN_PARK, 64, N / 100 ? N / 100 : 1);
	large = 0;
}

int main(void)
{
	N = tu_param("EBUS_STRESS_EVENTS", 1000000, 100000000);
	TU_RUN(test_park_default_lanes);
	TU_RUN(test_park_small_lanes);
	TU_RUN(test_park_arena_payloads);
	return tu_finish("test_noalloc");
}
