/* Shared by the pull-consumer harnesses: a bus whose meta handler notes
 * when a subscription to `watch` exists, and a publisher thread that then
 * publishes the events of `script` to `topic`, flushes and shuts the bus
 * down; handle() records what the snippet took. A watchdog turns a snippet
 * that never returns into a failure with a message. */
#include <ebus/ebus.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *watch, *topic;
static const size_t *script;
static size_t nscript;
static _Atomic int subscribed;
static size_t got_len[16];
static unsigned char got_first[16];
static unsigned ngot;

static int on_meta(const ebus_event_t *ev, void *ctx)
{
	const ebus_meta_t *m = ev->data;
	(void)ctx;
	if (m->kind == EBUS_META_KIND_SUB_ADDED && strcmp(m->name, watch) == 0)
		atomic_store(&subscribed, 1);
	return 0;
}

static void handle(const char *name, const void *data, size_t len)
{
	if (strcmp(name, topic) != 0 || ngot == 16)
		abort();
	got_len[ngot] = len;
	got_first[ngot] = len ? *(const unsigned char *)data : 0;
	ngot++;
}

static void *publisher(void *arg)
{
	ebus_t *bus = arg;
	static unsigned char payload[1024];
	while (!atomic_load(&subscribed))
		sched_yield();
	for (size_t i = 0; i < nscript; i++) {
		memset(payload, (int)(i + 1), sizeof payload);
		if (ebus_publish_name(bus, topic, payload, script[i]) != EBUS_OK)
			abort();
	}
	ebus_flush(bus, 0);
	ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN);
	return NULL;
}

static void watchdog(int sig)
{
	static const char msg[] = "the snippet did not return within 20 s\n";
	(void)sig;
	(void)!write(2, msg, sizeof msg - 1);
	_exit(3);
}

static void snippet(ebus_t *bus);

/* Runs the snippet against the script; 0 if it took every event, whole. */
static int run(const char *w, const char *t, const size_t *lens, size_t n, size_t want)
{
	ebus_config_t cfg = { .meta_events = 1, .meta_handler = on_meta };
	ebus_t *bus;
	pthread_t th;
	watch = w;
	topic = t;
	script = lens;
	nscript = n;
	signal(SIGALRM, watchdog);
	alarm(20);
	if (ebus_create(&cfg, &bus) != EBUS_OK || pthread_create(&th, NULL, publisher, bus) != 0)
		return 1;
	snippet(bus);
	atomic_store(&subscribed, 1); /* the publisher goes on if the snippet never subscribed */
	pthread_join(th, NULL);
	ebus_destroy(bus);
	if (ngot != want) {
		fprintf(stderr, "the snippet took %u events, want %zu\n", ngot, want);
		return 1;
	}
	for (unsigned i = 0; i < ngot; i++) {
		if (got_len[i] != lens[i] || (lens[i] && got_first[i] != i + 1)) {
			fprintf(stderr, "event %u: %zu bytes, want %zu\n", i, got_len[i], lens[i]);
			return 1;
		}
	}
	return 0;
}
