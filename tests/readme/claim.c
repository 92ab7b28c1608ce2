/* Harness of the README's claim snippet: an order encoded straight into
 * the bus (no copy of a finished buffer) reaches the subscriber intact. */
#include <ebus/ebus.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct order {
	uint64_t id;
	uint32_t qty;
	char sym[12];
	double px;
};
static _Atomic int ok;

static size_t encode_order(void *dst, uint64_t id)
{
	struct order o = {id, 100, "ACME", 12.5};
	memcpy(dst, &o, sizeof o);
	return sizeof o;
}

static int on_order(const ebus_event_t *ev, void *ctx)
{
	struct order o;
	(void)ctx;
	memcpy(&o, ev->data, sizeof o);
	if (ev->len == sizeof o && o.id == 42 && o.qty == 100 && strcmp(o.sym, "ACME") == 0)
		atomic_store(&ok, 1);
	return 0;
}

static int snippet(ebus_topic_t *orders)
{
/* SNIPPET */
	return 0;
}

int main(void)
{
	ebus_t *bus;
	ebus_topic_t *t;
	ebus_sub_id id;
	if (ebus_create(NULL, &bus) != EBUS_OK || ebus_topic(bus, "orders.new", &t) != EBUS_OK ||
	    ebus_subscribe(t, on_order, NULL, &id) != EBUS_OK)
		return 1;
	if (snippet(t) != 0)
		return 1;
	ebus_flush(bus, 0);
	ebus_destroy(bus);
	return atomic_load(&ok) ? 0 : 1;
}
