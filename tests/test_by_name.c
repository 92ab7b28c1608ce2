/*
 * ebus_publish_name's per-thread cache of topics (bus.c): whatever the
 * cache remembers, every event reaches the topic its name names, exactly
 * once, on the bus it was published on.
 *  - one buffer reused for different names (the address hint must be
 *    confirmed by the bytes), a shorter name in it included (no read past
 *    the caller's string: ASan);
 *  - names that share cache slots, published in turns;
 *  - a bus destroyed and another created (perhaps at the same address):
 *    the old bus's entries are never used (ASan: no use of freed topics);
 *  - many threads, each with its own cache, freed at thread exit (ASan's
 *    leak check).
 * Async and synchronous buses.
 */
#include "testutil.h"

#define NAMES 48 /* more than a cache table holds: slots are shared */

typedef struct {
	_Atomic uint64_t calls;
	_Atomic uint64_t bad;
	int index;
} counter;

static counter counters[NAMES];

static int count(const ebus_event_t *ev, void *ctx)
{
	counter *c = ctx;
	int got;
	memcpy(&got, ev->data, sizeof got);
	if (got != c->index)
		atomic_fetch_add(&c->bad, 1);
	atomic_fetch_add(&c->calls, 1);
	return 0;
}

static void name_of(char *buf, size_t cap, int i)
{
	/* lengths differ, so a shorter name lands where a longer one was */
	snprintf(buf, cap, "by.name.%d%s", i, i % 3 == 0 ? ".long.tail.x" : "");
}

static ebus_t *make_bus(int sync)
{
	ebus_config_t cfg;
	ebus_t *bus;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	cfg.synchronous = sync;
	CHECK_OK(ebus_create(&cfg, &bus));
	for (int i = 0; i < NAMES; i++) {
		char n[64];
		ebus_topic_t *t;
		ebus_sub_id id;
		name_of(n, sizeof n, i);
		counters[i].index = i;
		CHECK_OK(ebus_topic(bus, n, &t));
		CHECK_OK(ebus_subscribe(t, count, &counters[i], &id));
	}
	return bus;
}

static void check_counts(uint64_t each)
{
	for (int i = 0; i < NAMES; i++) {
		CHECK_EQ_U64(atomic_load(&counters[i].bad), 0);
		CHECK_EQ_U64(atomic_load(&counters[i].calls), each);
		atomic_store(&counters[i].calls, 0);
	}
}

/* One reused buffer, names in a shuffled order, several rounds. */
static void publish_all(ebus_t *bus, int rounds)
{
	char buf[64];
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < NAMES; k++) {
			int i = (k * 7 + r) % NAMES;
			name_of(buf, sizeof buf, i);
			CHECK_OK(ebus_publish_name(bus, buf, &i, sizeof i));
		}
}

/* Literal-like names: a fixed address per name. */
static void publish_fixed(ebus_t *bus, char (*names)[64], int rounds)
{
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < NAMES; i++)
			CHECK_OK(ebus_publish_name(bus, names[i], &i, sizeof i));
}

static void *thread_body(void *arg)
{
	publish_all(arg, 3);
	return NULL;
}

static void test_bus(int sync)
{
	static char names[NAMES][64];
	for (int i = 0; i < NAMES; i++)
		name_of(names[i], sizeof names[i], i);

	for (int gen = 0; gen < 3; gen++) {
		/* a new bus each time, possibly where the last one was */
		ebus_t *bus = make_bus(sync);
		publish_all(bus, 5);
		publish_fixed(bus, names, 5);
		CHECK_OK(ebus_flush(bus, 0));
		check_counts(10);
		/* the same name, to a name that is not interned: not delivered,
		 * and the cache does not make it so */
		CHECK_OK(ebus_publish_name(bus, "by.name.none", "x", 1));
		pthread_t th[4];
		for (int k = 0; k < 4; k++)
			tu_thread_create(&th[k], thread_body, bus);
		for (int k = 0; k < 4; k++)
			tu_thread_join(th[k]);
		CHECK_OK(ebus_flush(bus, 0));
		check_counts(12);
		ebus_destroy(bus);
	}
}

static void test_async(void)
{
	test_bus(0);
}

static void test_sync(void)
{
	test_bus(1);
}

int main(void)
{
	TU_RUN(test_async);
	TU_RUN(test_sync);
	return tu_finish("test_by_name");
}
