/*
 * Thousands of short-lived publisher threads: each publishes a few events to
 * two topics (one per executor, so it gets two lanes) and exits. Lanes of
 * exited threads must be reclaimed and their memory returned:
 *   - every event delivered exactly once, in order per thread;
 *   - after the threads are joined and ebus_flush returns: lanes_live == 0,
 *     lanes_created == lanes_reclaimed;
 *   - with counting allocator hooks: every byte allocated on the publisher
 *     threads (lanes, payload buffers) has been freed, and the bus holds
 *     exactly the bytes it held before the first thread started;
 *   - at destroy, allocations and frees balance, sizes included.
 *
 * Parameters:
 *   EBUS_STRESS_THREADS  10000 | 500000   publisher threads in all
 *   EBUS_STRESS_WAVE     64 | 64          threads alive at once
 *   EBUS_STRESS_EVENTS   4 | 8            events per thread
 */
#include "testutil.h"

static uint64_t NTHREADS, WAVE, K;

typedef struct churn_hdr {
	uint64_t thread;
	uint64_t seq;
	uint64_t check;
} churn_hdr;

#define BIG_LEN 200

typedef struct churn_sub {
	unsigned topic;
	ebus_topic_t *handle;
	uint32_t *next; /* per thread */
	uint64_t count;
} churn_sub;

static ebus_t *bus;
static ebus_topic_t *topics[2];
static churn_sub subs[2];

static size_t churn_len(uint64_t seq)
{
	/* the last event of each thread on each topic goes out of line */
	return seq == (K + 1) / 2 - 1 ? BIG_LEN : sizeof(churn_hdr);
}

static int churn_handler(const ebus_event_t *ev, void *ctx)
{
	churn_sub *s = ctx;
	CHECK(ev->topic == s->handle);
	CHECK(ev->len >= sizeof(churn_hdr));
	churn_hdr h;
	memcpy(&h, ev->data, sizeof h);
	CHECK(h.thread < NTHREADS);
	CHECK_MSG(h.check == tu_mix3(h.thread, s->topic, h.seq), "corrupt event");
	CHECK_EQ_U64(ev->len, churn_len(h.seq));
	const unsigned char *d = ev->data;
	for (size_t i = sizeof h; i < ev->len; i++)
		CHECK(d[i] == (unsigned char)(h.check + i));
	CHECK_MSG(h.seq == s->next[h.thread], "topic %u thread %" PRIu64 ": seq %" PRIu64 ", want %u", s->topic,
	          h.thread, h.seq, s->next[h.thread]);
	s->next[h.thread]++;
	s->count++;
	return 0;
}

static void *churn_thread(void *arg)
{
	const uint64_t id = (uint64_t)(uintptr_t)arg;
	tu_alloc_tag = 1; /* what the bus allocates on this thread is tagged */
	uint64_t seq[2] = {0, 0};
	unsigned char buf[BIG_LEN];
	for (uint64_t k = 0; k < K; k++) {
		const unsigned t = (unsigned)(k % 2);
		churn_hdr h = {id, seq[t]++, 0};
		h.check = tu_mix3(h.thread, t, h.seq);
		const size_t len = churn_len(h.seq);
		memcpy(buf, &h, sizeof h);
		for (size_t i = sizeof h; i < len; i++)
			buf[i] = (unsigned char)(h.check + i);
		int rc = ebus_publish(topics[t], buf, len);
		CHECK_MSG(rc == EBUS_OK, "thread %" PRIu64 ": publish %s", id, ebus_errname(rc));
	}
	return NULL;
}

static void check_lanes_reclaimed(const char *when)
{
	ebus_stats_t st = tu_stats(bus);
	CHECK_MSG(st.lanes_live == 0, "%s: lanes_live %" PRIu64 " (created %" PRIu64 ", reclaimed %" PRIu64 ")",
	          when, st.lanes_live, st.lanes_created, st.lanes_reclaimed);
	CHECK_EQ_U64(st.lanes_created, st.lanes_reclaimed);
}

static void test_churn(void)
{
	static tu_alloc al;
	ebus_allocator_t hooks = tu_allocator(&al);
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	cfg.lane_capacity = 64;
	cfg.allocator = &hooks;
	CHECK_OK(ebus_create(&cfg, &bus));
	for (unsigned t = 0; t < 2; t++) {
		char name[32];
		snprintf(name, sizeof name, "churn.%u", t);
		CHECK_OK(ebus_topic_on(bus, name, t, &topics[t]));
		subs[t].topic = t;
		subs[t].handle = topics[t];
		subs[t].next = calloc(NTHREADS, sizeof *subs[t].next);
		CHECK(subs[t].next);
		ebus_sub_id id;
		CHECK_OK(ebus_subscribe(topics[t], churn_handler, &subs[t], &id));
	}
	CHECK_OK(ebus_flush(bus, 0));
	check_lanes_reclaimed("before any thread");
	const int64_t bytes_before = atomic_load(&al.bytes);
	printf("   bus holds %" PRId64 " bytes in %" PRIu64 " blocks before the first thread\n", bytes_before,
	       atomic_load(&al.allocs) - atomic_load(&al.frees));

	pthread_t *th = calloc(WAVE, sizeof *th);
	CHECK(th);
	uint64_t started = 0, waves = 0;
	while (started < NTHREADS) {
		uint64_t n = NTHREADS - started < WAVE ? NTHREADS - started : WAVE;
		for (uint64_t i = 0; i < n; i++)
			tu_thread_create(&th[i], churn_thread, (void *)(uintptr_t)(started + i));
		for (uint64_t i = 0; i < n; i++)
			tu_thread_join(th[i]);
		started += n;
		waves++;
		if (waves <= 4) { /* reclaimed wave by wave, too */
			CHECK_OK(ebus_flush(bus, 0));
			check_lanes_reclaimed("after an early wave");
			CHECK_EQ_U64((uint64_t)atomic_load(&al.tagged_bytes), 0);
		}
	}
	free(th);
	CHECK_OK(ebus_flush(bus, 0));

	ebus_stats_t st = tu_stats(bus);
	printf("   %" PRIu64 " threads in %" PRIu64 " waves: lanes created %" PRIu64 ", reclaimed %" PRIu64
	       ", live %" PRIu64 "\n",
	       started, waves, st.lanes_created, st.lanes_reclaimed, st.lanes_live);
	check_lanes_reclaimed("after all threads");
	CHECK(st.lanes_created >= 1);
	CHECK_MSG(st.lanes_created <= 2 * NTHREADS, "more lanes than (thread, executor) pairs: %" PRIu64,
	          st.lanes_created);

	/* every event exactly once, in order per thread */
	const uint64_t per_topic[2] = {(K + 1) / 2, K / 2};
	for (unsigned t = 0; t < 2; t++) {
		for (uint64_t i = 0; i < NTHREADS; i++)
			CHECK_MSG(subs[t].next[i] == per_topic[t], "topic %u thread %" PRIu64 ": %u events, want %" PRIu64,
			          t, i, subs[t].next[i], per_topic[t]);
		CHECK_EQ_U64(subs[t].count, NTHREADS * per_topic[t]);
	}
	CHECK_EQ_U64(st.published, NTHREADS * K);
	CHECK_EQ_U64(st.delivered, NTHREADS * K);
	CHECK_EQ_U64(st.queued, 0);
	CHECK_STATS_BALANCED(st);

	/* no lane memory left behind */
	CHECK_MSG(atomic_load(&al.tagged_bytes) == 0,
	          "%" PRId64 " bytes allocated on exited publisher threads are still held (%" PRIu64
	          " blocks)",
	          atomic_load(&al.tagged_bytes), atomic_load(&al.tagged_allocs) - atomic_load(&al.tagged_frees));
	CHECK_EQ_U64(atomic_load(&al.tagged_allocs), atomic_load(&al.tagged_frees));
	CHECK_MSG(atomic_load(&al.bytes) == bytes_before,
	          "the bus holds %" PRId64 " bytes after the threads, %" PRId64 " before", atomic_load(&al.bytes),
	          bytes_before);

	ebus_destroy(bus);
	CHECK_ALLOC_BALANCED(&al);
	printf("   allocator: %" PRIu64 " allocations, %" PRIu64 " on publisher threads\n", atomic_load(&al.allocs),
	       atomic_load(&al.tagged_allocs));
	for (unsigned t = 0; t < 2; t++)
		free(subs[t].next);
}

int main(void)
{
	NTHREADS = tu_param("EBUS_STRESS_THREADS", 10000, 500000);
	WAVE = tu_param("EBUS_STRESS_WAVE", 64, 64);
	K = tu_param("EBUS_STRESS_EVENTS", 4, 8);
	CHECK(K >= 2);
	TU_RUN(test_churn);
	return tu_finish("test_thread_churn");
}
