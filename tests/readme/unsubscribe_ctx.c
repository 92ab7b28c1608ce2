/* Harness of the README's remove-a-context snippet: a session with three
 * subscriptions (two literal, one pattern); after the snippet none of them
 * is called again and the session is freed. */
#include <ebus/ebus.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct session {
	int calls;
};
static _Atomic int after;
static _Atomic int removed_all;

static int on_event(const ebus_event_t *ev, void *ctx)
{
	struct session *s = ctx;
	(void)ev;
	if (atomic_load(&removed_all))
		atomic_fetch_add(&after, 1);
	else
		s->calls++;
	return 0;
}

static void snippet(ebus_t *bus, struct session *session)
{
/* SNIPPET */
}

int main(void)
{
	ebus_t *bus;
	ebus_topic_t *a, *b;
	ebus_sub_id id;
	struct session *session = calloc(1, sizeof *session);
	if (!session || ebus_create(NULL, &bus) != EBUS_OK || ebus_topic(bus, "s.a", &a) != EBUS_OK ||
	    ebus_topic(bus, "s.b", &b) != EBUS_OK || ebus_subscribe(a, on_event, session, &id) ||
	    ebus_subscribe(b, on_event, session, &id) ||
	    ebus_subscribe_pattern(bus, "s.*", on_event, session, 0, &id))
		return 1;
	ebus_publish(a, "x", 1);
	ebus_flush(bus, 0);
	snippet(bus, session); /* frees session */
	atomic_store(&removed_all, 1);
	ebus_publish(a, "x", 1);
	ebus_publish(b, "x", 1);
	ebus_flush(bus, 0);
	ebus_destroy(bus);
	if (atomic_load(&after) != 0) {
		fprintf(stderr, "%d calls after ebus_unsubscribe_ctx\n", atomic_load(&after));
		return 1;
	}
	return 0;
}
