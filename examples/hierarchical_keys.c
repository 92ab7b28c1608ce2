/*
 * Hierarchical keys: the aiopubsub-style demo, in C on ebus.
 *
 * Sensor readings are published on "sensors.<building>.<floor>.<room>.<kind>".
 * Three readers look at the same stream through different keys:
 *   - "sensors.b1.>"           a push subscriber for everything in building 1;
 *   - "sensors.*.*.*.temp"     a push subscriber for every temperature;
 *   - "sensors.b2.>"           a pull consumer, drained by the main thread
 *                              with ebus_consume (a deadline per call);
 * and ebus_await waits for the next alarm on "alarms.>".
 *
 * It checks what each reader got against what was published and exits
 * non-zero on any difference, so the test suite runs it as a test.
 *
 *   hierarchical_keys [rounds]
 */
#include <ebus/ebus.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const buildings[] = {"b1", "b2", "b3"};
static const char *const floors[] = {"f1", "f2"};
static const char *const rooms[] = {"r1", "r2"};
static const char *const kinds[] = {"temp", "humidity"};
#define N(a) (sizeof(a) / sizeof((a)[0]))

struct reading {
	uint32_t round;
	int32_t value; /* tenths of a unit */
};

struct tally {
	uint64_t events;
	int64_t sum;
};

static int count(const ebus_event_t *ev, void *ctx)
{
	struct tally *t = ctx;
	struct reading r;
	if (ev->len != sizeof r)
		return 1;
	memcpy(&r, ev->data, sizeof r);
	t->events++;
	t->sum += r.value;
	return 0;
}

static int32_t value_of(unsigned round, unsigned b, unsigned f, unsigned r, unsigned k)
{
	return (int32_t)(round * 7 + b * 5 + f * 3 + r * 2 + k) % 400 - 100;
}

struct alarm_thread {
	ebus_t *bus;
	atomic_int done;
};

/* Raises alarms until the main thread has seen one. */
static void *raise_alarms(void *arg)
{
	struct alarm_thread *a = arg;
	ebus_topic_t *t;
	const char msg[] = "b2.f1.r2: smoke";
	if (ebus_topic(a->bus, "alarms.fire", &t) != EBUS_OK)
		return NULL;
	while (!atomic_load(&a->done))
		(void)ebus_publish(t, msg, sizeof msg);
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100;
	ebus_config_t cfg = {.executors = 2};
	struct tally b1 = {0, 0}, temps = {0, 0}, b2 = {0, 0};
	struct tally want_b1 = {0, 0}, want_temps = {0, 0}, want_b2 = {0, 0};
	ebus_consumer_t *pull;
	ebus_sub_id s1, s2;
	ebus_t *bus;
	int rc, bad = 0;

	if (rounds == 0 || rounds > 1000000) {
		fprintf(stderr, "usage: %s [rounds 1..1000000]\n", argv[0]);
		return 2;
	}
	if ((rc = ebus_create(&cfg, &bus)) != EBUS_OK ||
	    (rc = ebus_subscribe_pattern(bus, "sensors.b1.>", count, &b1, 0, &s1)) != EBUS_OK ||
	    (rc = ebus_subscribe_pattern(bus, "sensors.*.*.*.temp", count, &temps, 0, &s2)) != EBUS_OK ||
	    (rc = ebus_consumer_create(bus, "sensors.b2.>", 64, &pull)) != EBUS_OK) {
		fprintf(stderr, "setup: %s\n", ebus_strerror(rc));
		return 1;
	}

	for (unsigned round = 0; round < rounds; round++) {
		for (unsigned b = 0; b < N(buildings); b++)
			for (unsigned f = 0; f < N(floors); f++)
				for (unsigned r = 0; r < N(rooms); r++)
					for (unsigned k = 0; k < N(kinds); k++) {
						char name[64];
						struct reading rd = {round, value_of(round, b, f, r, k)};
						snprintf(name, sizeof name, "sensors.%s.%s.%s.%s", buildings[b],
						         floors[f], rooms[r], kinds[k]);
						rc = ebus_publish_name(bus, name, &rd, sizeof rd);
						if (rc == EBUS_OK && b == 1) {
							/* the pull consumer holds 64: drain as we go */
							ebus_message_t msg;
							struct reading got;
							while (ebus_consume(pull, &got, sizeof got, &msg, 0) == EBUS_OK)
								count(&(ebus_event_t){.topic = msg.topic, .data = &got, .len = msg.len}, &b2);
						}
						if (rc != EBUS_OK) {
							fprintf(stderr, "publish %s: %s\n", name, ebus_strerror(rc));
							return 1;
						}
						want_b1.events += b == 0;
						want_b1.sum += b == 0 ? rd.value : 0;
						want_temps.events += k == 0;
						want_temps.sum += k == 0 ? rd.value : 0;
						want_b2.sum += b == 1 ? rd.value : 0;
					}
	}
	want_b2.events = (uint64_t)rounds * N(floors) * N(rooms) * N(kinds);
	/* What is left in the pull consumer, with a deadline per event. Drain
	 * it before ebus_flush: under the default BLOCK policy a full consumer
	 * holds its executor until somebody consumes, and flush would wait for
	 * that executor. */
	while (b2.events < want_b2.events) {
		ebus_message_t msg;
		struct reading got;
		rc = ebus_consume_until(pull, &got, sizeof got, &msg, ebus_clock_ns() + 1000000000u);
		if (rc != EBUS_OK) {
			fprintf(stderr, "ebus_consume_until: %s\n", ebus_strerror(rc));
			break;
		}
		count(&(ebus_event_t){.topic = msg.topic, .data = &got, .len = msg.len}, &b2);
	}
	ebus_flush(bus, 0);

	/* ebus_await: the next alarm published after the call began */
	struct alarm_thread at = {bus, 0};
	pthread_t th;
	char text[64];
	ebus_message_t msg;
	pthread_create(&th, NULL, raise_alarms, &at);
	rc = ebus_await(bus, "alarms.>", text, sizeof text, &msg, 10ull * 1000000000u);
	atomic_store(&at.done, 1);
	pthread_join(th, NULL);
	if (rc == EBUS_OK)
		printf("alarm on %s: %s\n", ebus_topic_name(msg.topic), text);
	else
		bad = 1, fprintf(stderr, "ebus_await: %s\n", ebus_strerror(rc));

	printf("sensors.b1.>        %" PRIu64 " readings, sum %" PRId64 "\n", b1.events, b1.sum);
	printf("sensors.*.*.*.temp  %" PRIu64 " readings, sum %" PRId64 "\n", temps.events, temps.sum);
	printf("sensors.b2.> (pull) %" PRIu64 " readings, sum %" PRId64 "\n", b2.events, b2.sum);
	bad |= b1.events != want_b1.events || b1.sum != want_b1.sum;
	bad |= temps.events != want_temps.events || temps.sum != want_temps.sum;
	bad |= b2.events != want_b2.events || b2.sum != want_b2.sum;
	ebus_consumer_destroy(pull);
	ebus_unsubscribe(bus, s1);
	ebus_unsubscribe(bus, s2);
	ebus_destroy(bus);
	if (bad)
		fprintf(stderr, "hierarchical_keys: a reader missed or duplicated readings\n");
	return bad;
}
