/* Harness of the README's wildcard snippet: the snippet runs as the body of
 * snippet() (scripts/check-readme.sh puts it at the marker); main checks
 * that each pattern got exactly the topics the snippet's comments say. */
#include <ebus/ebus.h>
#include <stdatomic.h>
#include <stdio.h>

static _Atomic int star, tail;

static int on_order(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	atomic_fetch_add(&star, 1);
	return 0;
}

static int on_any_order(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	atomic_fetch_add(&tail, 1);
	return 0;
}

static void snippet(ebus_t *bus, void *ctx)
{
/* SNIPPET */
}

int main(void)
{
	static const char *const names[] = { "orders.eu", "orders.us", "orders", "orders.eu.fill" };
	ebus_t *bus;
	if (ebus_create(NULL, &bus) != EBUS_OK)
		return 1;
	snippet(bus, NULL);
	for (unsigned i = 0; i < 4; i++)
		if (ebus_publish_name(bus, names[i], "x", 1) != EBUS_OK)
			return 1;
	ebus_flush(bus, 0);
	ebus_destroy(bus);
	if (atomic_load(&star) != 2 || atomic_load(&tail) != 3) {
		fprintf(stderr, "orders.* got %d events (want 2), orders.> got %d (want 3)\n",
		        atomic_load(&star), atomic_load(&tail));
		return 1;
	}
	return 0;
}
