/* Harness of the README's batch snippet: three quotes published in one
 * call reach their topics' subscribers, in order per topic. */
#include <ebus/ebus.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

struct quote {
	char sym[8];
	double px;
};
static _Atomic int calls;
static double seen[3];

static int on_quote(const ebus_event_t *ev, void *ctx)
{
	struct quote q;
	(void)ctx;
	memcpy(&q, ev->data, sizeof q);
	seen[atomic_fetch_add(&calls, 1)] = q.px;
	return 0;
}

static int snippet(ebus_topic_t *eurusd, ebus_topic_t *usdjpy, const struct quote *q)
{
/* SNIPPET */
	return 0;
}

int main(void)
{
	ebus_t *bus;
	ebus_topic_t *a, *b;
	ebus_sub_id id;
	struct quote q[3] = {{"EURUSD", 1.1}, {"USDJPY", 150.0}, {"EURUSD", 1.2}};
	if (ebus_create(NULL, &bus) != EBUS_OK || ebus_topic(bus, "fx.eurusd", &a) != EBUS_OK ||
	    ebus_topic(bus, "fx.usdjpy", &b) != EBUS_OK ||
	    ebus_subscribe_pattern(bus, "fx.*", on_quote, NULL, 0, &id) != EBUS_OK)
		return 1;
	if (snippet(a, b, q) != 0)
		return 1;
	ebus_flush(bus, 0);
	ebus_destroy(bus);
	if (atomic_load(&calls) != 3 || seen[0] != 1.1 || seen[1] != 150.0 || seen[2] != 1.2) {
		fprintf(stderr, "calls %d\n", atomic_load(&calls));
		return 1;
	}
	return 0;
}
