/* Harness of the README's unordered-topic snippet: the snippet subscribes
 * a concurrent handler to an unordered topic; every event reaches it once. */
#include <ebus/ebus.h>
#include <stdatomic.h>
#include <stdio.h>

static _Atomic int ticks_seen;

static int on_tick(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	atomic_fetch_add(&ticks_seen, 1);
	return 0;
}

static int snippet(ebus_t *bus, void *ctx)
{
	ebus_sub_id id;
/* SNIPPET */
	for (int i = 0; i < 100; i++)
		if (ebus_publish(ticks, &i, sizeof i) != EBUS_OK)
			return 1;
	return ebus_flush(bus, 0);
}

int main(void)
{
	ebus_config_t cfg = { .executors = 2 };
	ebus_t *bus;
	int rc;
	if (ebus_create(&cfg, &bus) != EBUS_OK)
		return 1;
	rc = snippet(bus, NULL);
	ebus_destroy(bus);
	if (rc != EBUS_OK || atomic_load(&ticks_seen) != 100) {
		fprintf(stderr, "rc %d, %d of 100 ticks delivered\n", rc, atomic_load(&ticks_seen));
		return 1;
	}
	return 0;
}
