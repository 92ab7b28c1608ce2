/*
 * ebus-bridge: try the NATS bridge from a shell.
 *
 *   ebus-bridge [options] pub TOPIC     each line of stdin is one event on
 *                                       the local topic TOPIC, exported
 *   ebus-bridge [options] sub PATTERN   prints "TOPIC PAYLOAD" for each
 *                                       imported event matching PATTERN
 *
 * Options:
 *   --server URL       NATS server (default nats://127.0.0.1:4222)
 *   --prefix P         subject prefix (default ebus)
 *   --count N          sub: exit after N events
 *   --jetstream        durable mode: pub stores into the JetStream stream
 *                      on PREFIX.>, sub reads it through a durable consumer
 *   --durable NAME     sub with --jetstream: the consumer's name (default
 *                      ebus-bridge); a restarted sub goes on from its last
 *                      acknowledgement
 *   --send-asap        latency mode (EBUS_NATS_SEND_ASAP)
 *   --import-block-ms N  sub: how long an import may wait for the local
 *                      subscriber before it is given up and counted
 *                      (default 5000: this tool's subscriber writes to a
 *                      terminal or a pipe, which may stall)
 *   --metrics ADDR:PORT  serve the Prometheus text of the bus and the
 *                      bridge at http://ADDR:PORT/metrics (libmicrohttpd)
 *   --version
 *
 * Both print the bridge's counters on stderr when they end (pub: at the
 * end of stdin, after everything was flushed to the server; sub: after N
 * events, or on SIGINT / SIGTERM). sub prints "ready" on stderr once its
 * subscription is live at the server.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <ebus/ebus.h>
#include <ebus/nats.h>

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ebus_t *bus;
static ebus_nats_bridge_t *bridge;
static sem_t done;
static _Atomic uint64_t received;
static uint64_t want_count;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void usage(void)
{
	fprintf(stderr, "usage: ebus-bridge [--server URL] [--prefix P] [--count N] [--jetstream] "
	                "[--durable NAME] [--send-asap] [--import-block-ms N] [--metrics ADDR:PORT] pub TOPIC | sub PATTERN\n");
}

static void on_signal(int sig)
{
	(void)sig;
	sem_post(&done); /* async-signal-safe */
}

static int on_event(const ebus_event_t *ev, void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&out_lock);
	fputs(ebus_topic_name(ev->topic), stdout);
	fputc(' ', stdout);
	if (ev->len)
		fwrite(ev->data, 1, ev->len, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	if (atomic_fetch_add(&received, 1) + 1 == want_count)
		sem_post(&done);
	return 0;
}

/* ---- metrics: GET /metrics -> the bus's and the bridge's text ---------------- */

static char *metrics_text(size_t *len)
{
	ebus_snapshot_t *snap = NULL;
	size_t a = 0, b = 0;
	char *text;
	if (ebus_snapshot(bus, &snap) != EBUS_OK)
		return NULL;
	ebus_snapshot_prometheus(snap, NULL, 0, &a);
	ebus_nats_prometheus(bridge, NULL, 0, &b);
	if (!(text = malloc(a + b + 2))) {
		ebus_snapshot_free(snap);
		return NULL;
	}
	if (ebus_snapshot_prometheus(snap, text, a + 1, &a) != EBUS_OK ||
	    ebus_nats_prometheus(bridge, text + a, b + 1, &b) != EBUS_OK) {
		free(text);
		text = NULL;
	}
	ebus_snapshot_free(snap);
	*len = a + b;
	return text;
}

static enum MHD_Result on_http(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **state)
{
	struct MHD_Response *r;
	enum MHD_Result rc;
	char *text;
	size_t len = 0;
	(void)cls;
	(void)version;
	(void)data;
	(void)size;
	(void)state;
	if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0) {
		static const char nf[] = "not found: GET /metrics\n";
		r = MHD_create_response_from_buffer(sizeof nf - 1, (void *)nf, MHD_RESPMEM_PERSISTENT);
		rc = MHD_queue_response(c, MHD_HTTP_NOT_FOUND, r);
		MHD_destroy_response(r);
		return rc;
	}
	if (!(text = metrics_text(&len)))
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
	rc = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

static struct MHD_Daemon *metrics_start(const char *spec)
{
	struct sockaddr_in a;
	char host[64];
	const char *colon = strrchr(spec, ':');
	long port;
	if (!colon || (size_t)(colon - spec) >= sizeof host)
		return NULL;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	port = strtol(colon + 1, NULL, 10);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return NULL;
	return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, on_http,
	                        NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a, MHD_OPTION_END);
}

static void print_counters(void)
{
	ebus_nats_stats_t st;
	if (ebus_nats_stats(bridge, &st) != EBUS_OK)
		return;
	fprintf(stderr,
	        "bridge: exported %llu (while reconnecting %llu), imported %llu, filtered %llu; lost: "
	        "export overflow %llu, export failed %llu (reconnect buffer %llu, closed %llu, "
	        "unacked %llu), gaps %llu (tail %llu, client drops %llu), rejected %llu (full %llu, "
	        "timed out %llu), unmappable %llu; duplicates %llu, reordered %llu, redelivered %llu; "
	        "disconnects %llu, reconnects %llu\n",
	        (unsigned long long)st.exported, (unsigned long long)st.exported_reconnecting,
	        (unsigned long long)st.imported, (unsigned long long)st.filtered,
	        (unsigned long long)st.export_overflow, (unsigned long long)st.export_failed,
	        (unsigned long long)st.export_failed_buffer, (unsigned long long)st.export_failed_closed,
	        (unsigned long long)st.export_unacked, (unsigned long long)st.gaps,
	        (unsigned long long)st.tail_gaps, (unsigned long long)st.import_dropped,
	        (unsigned long long)st.import_rejected, (unsigned long long)st.import_full,
	        (unsigned long long)st.import_timeout, (unsigned long long)st.unmappable,
	        (unsigned long long)st.duplicates, (unsigned long long)st.reordered,
	        (unsigned long long)st.redelivered, (unsigned long long)st.disconnects,
	        (unsigned long long)st.reconnects);
}

int main(int argc, char **argv)
{
	const char *server = "nats://127.0.0.1:4222", *prefix = "ebus", *metrics = NULL;
	const char *durable = "ebus-bridge";
	unsigned long long block_ms = 5000;
	unsigned flags = 0;
	const char *servers[2], *pattern[2] = {NULL, NULL}, *mode, *what;
	ebus_nats_config_t cfg;
	struct MHD_Daemon *http = NULL;
	int i, rc, pub;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("ebus-bridge %s (running ebus %s)\n", EBUS_VERSION_STRING, ebus_version());
			return 0;
		}
		if (strcmp(argv[i], "--jetstream") == 0) {
			flags |= EBUS_NATS_JETSTREAM;
			continue;
		}
		if (strcmp(argv[i], "--send-asap") == 0) {
			flags |= EBUS_NATS_SEND_ASAP;
			continue;
		}
		if (i + 1 >= argc) {
			usage();
			return 2;
		}
		if (strcmp(argv[i], "--server") == 0)
			server = argv[++i];
		else if (strcmp(argv[i], "--prefix") == 0)
			prefix = argv[++i];
		else if (strcmp(argv[i], "--count") == 0)
			want_count = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--metrics") == 0)
			metrics = argv[++i];
		else if (strcmp(argv[i], "--durable") == 0)
			durable = argv[++i];
		else if (strcmp(argv[i], "--import-block-ms") == 0)
			block_ms = strtoull(argv[++i], NULL, 10);
		else {
			usage();
			return 2;
		}
	}
	if (argc - i != 2 || (strcmp(argv[i], "pub") != 0 && strcmp(argv[i], "sub") != 0)) {
		usage();
		return 2;
	}
	mode = argv[i];
	what = argv[i + 1];
	pub = strcmp(mode, "pub") == 0;
	if ((rc = pub ? ebus_topic_validate(what) : ebus_pattern_validate(what)) != EBUS_OK) {
		fprintf(stderr, "ebus-bridge: %s: %s\n", what, ebus_strerror(rc));
		return 2;
	}
	sem_init(&done, 0, 0);
	if ((rc = ebus_create(NULL, &bus)) != EBUS_OK) {
		fprintf(stderr, "ebus-bridge: ebus_create: %s\n", ebus_strerror(rc));
		return 1;
	}
	servers[0] = server;
	servers[1] = NULL;
	pattern[0] = what;
	memset(&cfg, 0, sizeof cfg);
	cfg.servers = servers;
	cfg.prefix = prefix;
	cfg.flags = flags;
	cfg.durable = durable;
	cfg.import_block_ns = block_ms ? block_ms * 1000000u : 0;
	if (pub)
		cfg.exports = pattern;
	else
		cfg.imports = pattern;
	if ((rc = ebus_nats_create(bus, &cfg, &bridge)) != EBUS_OK) {
		fprintf(stderr, "ebus-bridge: %s: %s\n", server, ebus_strerror(rc));
		ebus_destroy(bus);
		return 1;
	}
	if (!pub) {
		ebus_sub_id id;
		if ((rc = ebus_subscribe_pattern(bus, what, on_event, NULL, 0, &id)) != EBUS_OK) {
			fprintf(stderr, "ebus-bridge: subscribe: %s\n", ebus_strerror(rc));
			return 1;
		}
	}
	if ((rc = ebus_nats_start(bridge)) != EBUS_OK) {
		fprintf(stderr, "ebus-bridge: start: %s\n", ebus_strerror(rc));
		return 1;
	}
	if (metrics && !(http = metrics_start(metrics))) {
		fprintf(stderr, "ebus-bridge: cannot serve metrics on %s\n", metrics);
		return 1;
	}
	if (pub) {
		ebus_topic_t *t;
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		if ((rc = ebus_topic(bus, what, &t)) != EBUS_OK) {
			fprintf(stderr, "ebus-bridge: %s: %s\n", what, ebus_strerror(rc));
			return 1;
		}
		while ((n = getline(&line, &cap, stdin)) >= 0) {
			if (n > 0 && line[n - 1] == '\n')
				n--;
			if ((rc = ebus_publish(t, n ? line : NULL, (size_t)n)) != EBUS_OK)
				fprintf(stderr, "ebus-bridge: publish: %s\n", ebus_strerror(rc));
		}
		free(line);
		ebus_flush(bus, 0);
		if (ebus_nats_flush(bridge, 0) != EBUS_OK)
			fprintf(stderr, "ebus-bridge: flush to the server timed out\n");
	} else {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		fprintf(stderr, "ready\n");
		while (sem_wait(&done) != 0 && errno == EINTR)
			;
		ebus_flush(bus, 0);
	}
	ebus_nats_stop(bridge);
	print_counters();
	if (http)
		MHD_stop_daemon(http);
	ebus_nats_destroy(bridge);
	ebus_destroy(bus);
	return 0;
}
