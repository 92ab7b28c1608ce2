/*
 * Counter aggregator: the classic event-bus demo (geeteventbus's
 * counter_aggregator), in C on ebus.
 *
 * Producer threads post counter updates ("agg.counter.<name>", an int64
 * increment); one aggregating subscriber, a pattern subscription on
 * "agg.>", keeps per-counter totals and prints them on every "agg.tick",
 * which a ticker thread publishes every interval. The pattern's topics live
 * on different executors, yet the aggregator never runs on two threads at
 * once (it is not declared concurrent), so it needs no lock of its own.
 *
 * At the end it checks that every update was counted exactly once and
 * exits non-zero otherwise, so the test suite runs it as a test.
 *
 *   counter_aggregator [producers] [updates-per-producer] [interval-ms]
 */
#define _POSIX_C_SOURCE 200809L
#include <ebus/ebus.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NCOUNTERS 4
static const char *const counter_names[NCOUNTERS] = {"requests", "errors", "bytes", "retries"};

struct aggregator {
	int64_t total[NCOUNTERS];    /* since the start */
	int64_t interval[NCOUNTERS]; /* since the last tick */
	unsigned ticks;
};

static int aggregate(const ebus_event_t *ev, void *ctx)
{
	struct aggregator *a = ctx;
	const char *name = ebus_topic_name(ev->topic) + strlen("agg.");
	int64_t v;

	if (strcmp(name, "tick") == 0) {
		printf("interval %u:", ++a->ticks);
		for (int i = 0; i < NCOUNTERS; i++) {
			printf(" %s=%" PRId64, counter_names[i], a->interval[i]);
			a->interval[i] = 0;
		}
		printf("\n");
		return 0;
	}
	if (ev->len != sizeof v)
		return 1; /* counted as a handler error */
	memcpy(&v, ev->data, sizeof v);
	for (int i = 0; i < NCOUNTERS; i++) {
		if (strcmp(name + strlen("counter."), counter_names[i]) == 0) {
			a->total[i] += v;
			a->interval[i] += v;
			return 0;
		}
	}
	return 1;
}

struct producer {
	ebus_topic_t *topics[NCOUNTERS];
	unsigned id;
	uint64_t updates;
	int64_t sent[NCOUNTERS];
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	for (uint64_t i = 0; i < p->updates; i++) {
		int c = (int)((i + p->id) % NCOUNTERS);
		int64_t v = (int64_t)(i % 7) + 1;
		if (ebus_publish(p->topics[c], &v, sizeof v) != EBUS_OK)
			return p; /* the check at the end reports it */
		p->sent[c] += v;
	}
	return NULL;
}

static atomic_int stop_ticker;

struct ticker {
	ebus_topic_t *tick;
	long interval_ms;
};

static void *tick(void *arg)
{
	struct ticker *t = arg;
	struct timespec ts = {t->interval_ms / 1000, (t->interval_ms % 1000) * 1000000L};
	while (!atomic_load(&stop_ticker)) {
		nanosleep(&ts, NULL); /* the demo's clock, not synchronisation */
		(void)ebus_publish(t->tick, NULL, 0);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned nprod = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 4;
	uint64_t updates = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
	long interval_ms = argc > 3 ? strtol(argv[3], NULL, 10) : 100;
	ebus_config_t cfg = {.executors = 2};
	struct aggregator agg = {{0}, {0}, 0};
	struct producer *prods;
	struct ticker tk = {NULL, interval_ms > 0 ? interval_ms : 100};
	pthread_t *th, ticker_th;
	ebus_t *bus;
	ebus_sub_id sub;
	ebus_stats_t st;
	int rc, bad = 0;

	if (nprod == 0 || nprod > 256 || updates == 0) {
		fprintf(stderr, "usage: %s [producers 1..256] [updates>0] [interval-ms]\n", argv[0]);
		return 2;
	}
	if ((rc = ebus_create(&cfg, &bus)) != EBUS_OK) {
		fprintf(stderr, "ebus_create: %s\n", ebus_strerror(rc));
		return 1;
	}
	rc = ebus_subscribe_pattern(bus, "agg.>", aggregate, &agg, 0, &sub);
	if (rc == EBUS_OK)
		rc = ebus_topic(bus, "agg.tick", &tk.tick);
	prods = calloc(nprod, sizeof *prods);
	th = calloc(nprod, sizeof *th);
	if (rc != EBUS_OK || !prods || !th) {
		fprintf(stderr, "setup: %s\n", rc ? ebus_strerror(rc) : "out of memory");
		return 1;
	}
	for (unsigned p = 0; p < nprod; p++) {
		prods[p].id = p;
		prods[p].updates = updates;
		for (int c = 0; c < NCOUNTERS; c++) {
			char name[64];
			snprintf(name, sizeof name, "agg.counter.%s", counter_names[c]);
			if ((rc = ebus_topic(bus, name, &prods[p].topics[c])) != EBUS_OK) {
				fprintf(stderr, "ebus_topic: %s\n", ebus_strerror(rc));
				return 1;
			}
		}
	}
	pthread_create(&ticker_th, NULL, tick, &tk);
	for (unsigned p = 0; p < nprod; p++)
		pthread_create(&th[p], NULL, produce, &prods[p]);
	for (unsigned p = 0; p < nprod; p++) {
		void *failed;
		pthread_join(th[p], &failed);
		bad |= failed != NULL;
	}
	atomic_store(&stop_ticker, 1);
	pthread_join(ticker_th, NULL);
	ebus_flush(bus, 0);

	printf("total:");
	for (int c = 0; c < NCOUNTERS; c++) {
		int64_t want = 0;
		for (unsigned p = 0; p < nprod; p++)
			want += prods[p].sent[c];
		printf(" %s=%" PRId64, counter_names[c], agg.total[c]);
		if (agg.total[c] != want) {
			printf(" (expected %" PRId64 ")", want);
			bad = 1;
		}
	}
	ebus_stats(bus, -1, &st);
	printf("\n%u producers x %" PRIu64 " updates, %u intervals, %" PRIu64 " events, %" PRIu64
	       " handler errors\n",
	       nprod, updates, agg.ticks, st.published, st.handler_errors);
	bad |= st.handler_errors != 0 || st.delivered != st.published;
	ebus_unsubscribe(bus, sub);
	ebus_destroy(bus);
	free(prods);
	free(th);
	if (bad)
		fprintf(stderr, "counter_aggregator: totals do not add up\n");
	return bad;
}
