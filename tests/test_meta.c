/*
 * Meta events: with config.meta_events the bus reports subscriptions added
 * and removed (topic or pattern, current count), executors started, idle
 * and stopped, and handler errors, on "$ebus." topics that nobody else may
 * publish to. Checks each event's fields, where it is delivered (stopped:
 * on the executor that owns its topic, last to stop), that meta subscribers' own errors
 * emit nothing, the synchronous bus, and a bus without meta events.
 */
#include "testutil.h"

#define MAXM 256

static struct {
	pthread_mutex_t m;
	ebus_meta_t ev[MAXM];
	pthread_t thread[MAXM];
	unsigned n;
} log_;
static tu_counter nmeta;
static int fail_idle; /* the meta handler reports an error for idle events */

static int meta_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ctx;
	CHECK_EQ_INT((int)ev->len, (int)sizeof(ebus_meta_t));
	CHECK(strncmp(ebus_topic_name(ev->topic), EBUS_META_PREFIX, strlen(EBUS_META_PREFIX)) == 0);
	pthread_mutex_lock(&log_.m);
	CHECK(log_.n < MAXM);
	memcpy(&log_.ev[log_.n], ev->data, sizeof(ebus_meta_t));
	log_.thread[log_.n] = pthread_self();
	int kind = log_.ev[log_.n].kind;
	log_.n++;
	pthread_mutex_unlock(&log_.m);
	tu_counter_add(&nmeta, 1);
	return fail_idle && kind == EBUS_META_KIND_EXECUTOR_IDLE ? 5 : 0;
}

static void log_reset(void)
{
	pthread_mutex_lock(&log_.m);
	log_.n = 0;
	pthread_mutex_unlock(&log_.m);
	tu_counter_destroy(&nmeta);
	tu_counter_init(&nmeta);
}

/* Index of the first logged event of `kind` with `name` (NULL: any) at or
 * after `from`, or -1. */
static int find(int kind, const char *name, unsigned from)
{
	int r = -1;
	pthread_mutex_lock(&log_.m);
	for (unsigned i = from; i < log_.n && r < 0; i++)
		if (log_.ev[i].kind == kind && (!name || strcmp(log_.ev[i].name, name) == 0))
			r = (int)i;
	pthread_mutex_unlock(&log_.m);
	return r;
}

static unsigned count_kind(int kind)
{
	unsigned n = 0;
	pthread_mutex_lock(&log_.m);
	for (unsigned i = 0; i < log_.n; i++)
		n += log_.ev[i].kind == kind;
	pthread_mutex_unlock(&log_.m);
	return n;
}

/* Waits (on the counter, not on time) until an event of `kind` is logged. */
static int wait_for(int kind, const char *name)
{
	for (uint64_t seen = 0;; seen++) {
		int i = find(kind, name, 0);
		if (i >= 0)
			return i;
		tu_counter_wait(&nmeta, seen + 1);
	}
}

/* Same, for the event of `kind` about subscription `sub`. */
static int wait_sub(int kind, ebus_sub_id sub)
{
	for (;;) {
		int r = -1;
		uint64_t seen = tu_counter_get(&nmeta);
		pthread_mutex_lock(&log_.m);
		for (unsigned i = 0; i < log_.n && r < 0; i++)
			if (log_.ev[i].kind == kind && log_.ev[i].sub == sub)
				r = (int)i;
		pthread_mutex_unlock(&log_.m);
		if (r >= 0)
			return r;
		tu_counter_wait(&nmeta, seen + 1);
	}
}

static int failing(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 7;
}

static int quiet(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 0;
}

static void test_async(void)
{
	ebus_config_t cfg = {0};
	ebus_t *b;
	ebus_topic_t *t, *m;
	ebus_sub_id lit, pat, id2;
	uint32_t v = 1;
	int i;

	log_reset();
	fail_idle = 1;
	cfg.executors = 2;
	cfg.meta_events = 1;
	cfg.meta_handler = meta_handler;
	CHECK_OK(ebus_create(&cfg, &b));
	/* both executors reported, each once */
	for (unsigned e = 0; e < 2; e++) {
		unsigned n;
		do {
			n = 0;
			pthread_mutex_lock(&log_.m);
			for (unsigned k = 0; k < log_.n; k++)
				n += log_.ev[k].kind == EBUS_META_KIND_EXECUTOR_STARTED &&
				     log_.ev[k].executor == (int)e;
			pthread_mutex_unlock(&log_.m);
			if (!n)
				tu_counter_wait(&nmeta, tu_counter_get(&nmeta) + 1);
		} while (!n);
		CHECK_EQ_INT(n, 1);
	}

	CHECK_OK(ebus_topic_on(b, "a.b", 1, &t));
	CHECK_OK(ebus_subscribe(t, failing, NULL, &lit));
	i = wait_for(EBUS_META_KIND_SUB_ADDED, "a.b");
	CHECK_EQ_U64(log_.ev[i].sub, lit);
	CHECK_EQ_U64(log_.ev[i].count, 1);
	CHECK_EQ_INT(log_.ev[i].executor, -1);
	CHECK_OK(ebus_subscribe_pattern(b, "a.*", quiet, NULL, 0, &pat));
	i = wait_for(EBUS_META_KIND_SUB_ADDED, "a.*");
	CHECK_EQ_U64(log_.ev[i].sub, pat);
	CHECK_EQ_U64(log_.ev[i].count, 1);
	CHECK_OK(ebus_subscribe_pattern(b, "a.*", quiet, &v, 0, &id2));
	i = wait_sub(EBUS_META_KIND_SUB_ADDED, id2);
	CHECK_EQ_U64(log_.ev[i].count, 2); /* two subscriptions on "a.*" now */
	CHECK(strcmp(log_.ev[i].name, "a.*") == 0);

	/* a failing handler: one handler.error per failure, with its fields */
	const unsigned nfail = 3;
	for (unsigned k = 0; k < nfail; k++)
		CHECK_OK(ebus_publish(t, &v, sizeof v));
	CHECK_OK(ebus_flush(b, 0));
	while (count_kind(EBUS_META_KIND_HANDLER_ERROR) < nfail)
		tu_counter_wait(&nmeta, tu_counter_get(&nmeta) + 1);
	i = -1;
	for (unsigned k = 1; k <= nfail; k++) {
		i = find(EBUS_META_KIND_HANDLER_ERROR, "a.b", (unsigned)(i + 1));
		CHECK(i >= 0);
		CHECK_EQ_U64(log_.ev[i].sub, lit);
		CHECK_EQ_INT(log_.ev[i].rc, 7);
		CHECK_EQ_INT(log_.ev[i].executor, 1);
		CHECK_EQ_U64(log_.ev[i].count, k);
	}
	uint64_t errs = 0;
	CHECK_OK(ebus_sub_errors(b, lit, &errs));
	CHECK_EQ_U64(errs, nfail);

	/* executor 1 handled ordinary events, then went idle: it may have gone
	 * idle between the publishes too, but its idle events count ordinary
	 * work only, so they rise and one of them reports all nfail events */
	for (;;) {
		uint64_t seen = tu_counter_get(&nmeta), last = 0;
		int done = 0;
		pthread_mutex_lock(&log_.m);
		for (unsigned k = 0; k < log_.n; k++) {
			if (log_.ev[k].kind != EBUS_META_KIND_EXECUTOR_IDLE || log_.ev[k].executor != 1)
				continue;
			CHECK(log_.ev[k].count > last);
			CHECK(log_.ev[k].count <= nfail);
			last = log_.ev[k].count;
			done = last == nfail;
		}
		pthread_mutex_unlock(&log_.m);
		if (done)
			break;
		tu_counter_wait(&nmeta, seen + 1);
	}

	/* removal: the count left on the topic (the pattern "a.*" matches it) */
	CHECK_OK(ebus_unsubscribe(b, lit));
	i = wait_sub(EBUS_META_KIND_SUB_REMOVED, lit);
	CHECK(strcmp(log_.ev[i].name, "a.b") == 0);
	CHECK_EQ_U64(log_.ev[i].sub, lit);
	CHECK_EQ_U64(log_.ev[i].count, 2);
	CHECK_OK(ebus_unsubscribe(b, pat));
	i = wait_sub(EBUS_META_KIND_SUB_REMOVED, pat);
	CHECK_EQ_U64(log_.ev[i].count, 1);
	CHECK(strcmp(log_.ev[i].name, "a.*") == 0);
	CHECK_OK(ebus_unsubscribe(b, id2));

	/* nobody else publishes under the prefix */
	CHECK_OK(ebus_topic(b, EBUS_META_SUB_ADDED, &m));
	CHECK_EQ_INT(ebus_publish(m, &v, sizeof v), EBUS_ERR_RESERVED);

	/* stopped: once per executor, all on one executor thread (the one
	 * that owns the topic, last to stop), never on this thread */
	CHECK_OK(ebus_flush(b, 0));
	CHECK_OK(ebus_shutdown(b, EBUS_SHUTDOWN_DRAIN));
	int have_home = 0;
	pthread_t home;
	for (unsigned e = 0; e < 2; e++) {
		unsigned n = 0;
		pthread_mutex_lock(&log_.m);
		for (unsigned k = 0; k < log_.n; k++)
			if (log_.ev[k].kind == EBUS_META_KIND_EXECUTOR_STOPPED && log_.ev[k].executor == (int)e) {
				n++;
				CHECK(!pthread_equal(log_.thread[k], pthread_self()));
				if (!have_home) {
					home = log_.thread[k];
					have_home = 1;
				}
				CHECK(pthread_equal(log_.thread[k], home));
			}
		pthread_mutex_unlock(&log_.m);
		CHECK_EQ_INT(n, 1);
	}
	/* the meta handler failed on idle events: no handler.error for those */
	CHECK_EQ_INT(count_kind(EBUS_META_KIND_HANDLER_ERROR), nfail);
	ebus_stats_t st = tu_stats(b);
	CHECK_STATS_BALANCED(st);
	ebus_destroy(b);
}

static void test_sync(void)
{
	ebus_config_t cfg = {0};
	ebus_t *b;
	ebus_topic_t *t;
	ebus_sub_id id;
	uint32_t v = 1;

	log_reset();
	fail_idle = 0;
	cfg.executors = 2;
	cfg.synchronous = 1;
	cfg.meta_events = 1;
	cfg.meta_handler = meta_handler;
	CHECK_OK(ebus_create(&cfg, &b));
	CHECK_OK(ebus_topic(b, "s.t", &t));
	CHECK_OK(ebus_subscribe(t, failing, NULL, &id));
	/* synchronous: delivered before subscribe returned, on this thread */
	int i = find(EBUS_META_KIND_SUB_ADDED, "s.t", 0);
	CHECK(i >= 0);
	CHECK(pthread_equal(log_.thread[i], pthread_self()));
	CHECK_OK(ebus_publish(t, &v, sizeof v));
	i = find(EBUS_META_KIND_HANDLER_ERROR, "s.t", 0);
	CHECK(i >= 0);
	CHECK_EQ_INT(log_.ev[i].rc, 7);
	CHECK_EQ_INT(log_.ev[i].executor, -1);
	CHECK_OK(ebus_unsubscribe(b, id));
	CHECK(find(EBUS_META_KIND_SUB_REMOVED, "s.t", 0) >= 0);
	CHECK_OK(ebus_shutdown(b, EBUS_SHUTDOWN_DRAIN));
	CHECK_EQ_INT(count_kind(EBUS_META_KIND_EXECUTOR_STARTED), 0);
	CHECK_EQ_INT(count_kind(EBUS_META_KIND_EXECUTOR_STOPPED), 0);
	ebus_destroy(b);
}

static void test_disabled(void)
{
	ebus_config_t cfg = {0};
	ebus_t *b = (ebus_t *)&cfg;
	ebus_topic_t *t;
	ebus_sub_id id, mid;

	cfg.meta_handler = meta_handler; /* without meta_events */
	CHECK_EQ_INT(ebus_create(&cfg, &b), EBUS_ERR_CONFIG);
	CHECK(b == (ebus_t *)&cfg);
	cfg.meta_handler = NULL;
	CHECK_OK(ebus_create(&cfg, &b));
	log_reset();
	CHECK_OK(ebus_subscribe_pattern(b, "$ebus.>", meta_handler, NULL, 0, &mid));
	CHECK_OK(ebus_topic(b, "d.t", &t));
	CHECK_OK(ebus_subscribe(t, failing, NULL, &id));
	uint32_t v = 0;
	CHECK_OK(ebus_publish(t, &v, sizeof v));
	CHECK_OK(ebus_flush(b, 0));
	CHECK_OK(ebus_unsubscribe(b, id));
	CHECK_OK(ebus_shutdown(b, EBUS_SHUTDOWN_DRAIN));
	CHECK_EQ_INT(log_.n, 0);
	ebus_destroy(b);
}

int main(void)
{
	pthread_mutex_init(&log_.m, NULL);
	tu_counter_init(&nmeta);
	TU_RUN(test_async);
	TU_RUN(test_sync);
	TU_RUN(test_disabled);
	tu_counter_destroy(&nmeta);
	return tu_finish("test_meta");
}
