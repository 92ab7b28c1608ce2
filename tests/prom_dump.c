/*
 * Prints the Prometheus text of a bus that has seen a bit of everything
 * (two executors, timestamps, topics whose names need escaping, a handler
 * that fails, losses on a full lane, publishes by an unknown name), for
 * `promtool check metrics` (ctest: promtool). Exit status 1 if the bus
 * misbehaves.
 *
 *   prom_dump          the mixed bus above
 *   prom_dump readme   the README's excerpt: 2 executors, 750 events on
 *                      orders.eu.fill (one subscriber) and 250 on
 *                      orders.us.cancel (none), published in one burst
 */
#include <ebus/ebus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ok_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 0;
}

static int failing_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ctx;
	return ev->len % 2; /* odd payloads fail */
}

static int print(ebus_t *bus)
{
	ebus_snapshot_t *snap;
	size_t len;
	char *text;
	if (ebus_flush(bus, 0) != EBUS_OK || ebus_snapshot(bus, &snap) != EBUS_OK)
		return 1;
	if (ebus_snapshot_prometheus(snap, NULL, 0, &len) != EBUS_ERR_BUFFER)
		return 1;
	text = malloc(len + 1);
	if (!text || ebus_snapshot_prometheus(snap, text, len + 1, &len) != EBUS_OK)
		return 1;
	fwrite(text, 1, len, stdout);
	free(text);
	ebus_snapshot_free(snap);
	return 0;
}

static int readme(void)
{
	ebus_config_t cfg = { .executors = 2, .timestamps = 1 };
	ebus_topic_t *fill, *cancel;
	ebus_sub_id id;
	ebus_t *bus;
	int rc;
	if (ebus_create(&cfg, &bus) != EBUS_OK ||
	    ebus_topic_on(bus, "orders.eu.fill", 1, &fill) != EBUS_OK ||
	    ebus_topic_on(bus, "orders.us.cancel", 0, &cancel) != EBUS_OK ||
	    ebus_subscribe(fill, ok_handler, NULL, &id) != EBUS_OK)
		return 1;
	for (int i = 0; i < 1000; i++)
		if (ebus_publish(i % 4 ? fill : cancel, &i, sizeof i) != EBUS_OK)
			return 1;
	rc = print(bus);
	ebus_destroy(bus);
	return rc;
}

int main(int argc, char **argv)
{
	static const char *names[] = { "orders.eu", "q\"uote", "back\\slash", "md.ticks" };
	ebus_config_t cfg = { .executors = 2, .timestamps = 1, .lane_capacity = 16 };
	ebus_topic_t *t[4];
	ebus_sub_id id;
	ebus_t *bus;
	int rc;

	if (argc > 1 && strcmp(argv[1], "readme") == 0)
		return readme();
	if (ebus_create(&cfg, &bus) != EBUS_OK)
		return 1;
	for (int i = 0; i < 4; i++)
		if (ebus_topic(bus, names[i], &t[i]) != EBUS_OK)
			return 1;
	if (ebus_subscribe(t[0], ok_handler, NULL, &id) != EBUS_OK ||
	    ebus_subscribe(t[1], failing_handler, NULL, &id) != EBUS_OK)
		return 1;
	for (int i = 0; i < 1000; i++) {
		(void)ebus_publish_ex(t[i % 4], "payload", 1 + (size_t)(i % 7), EBUS_FULL_DROP);
		(void)ebus_publish_name(bus, "never.interned", "x", 1);
	}
	rc = print(bus);
	ebus_destroy(bus);
	return rc;
}
