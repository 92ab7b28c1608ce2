/*
 * ebus itself: an asynchronous bus with one executor, one topic, one
 * subscriber; the publisher uses ebus_publish with the bus's default full
 * policy (BLOCK) and ends with ebus_flush.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include <ebus/ebus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ebus_pub {
	bench_run *run;
	ebus_t *bus;
	ebus_topic_t *topic;
	char err[BENCH_ERR_MAX];
};

/* The bus's handler signature around the shared handler. */
static int on_event(const ebus_event_t *ev, void *ctx)
{
	return bench_deliver(ctx, ev->data, ev->len);
}

static int on_event_lat(const ebus_event_t *ev, void *ctx)
{
	return bench_deliver_lat(ctx, ev->data, ev->len);
}

static void *publisher(void *arg)
{
	struct ebus_pub *p = arg;
	bench_run *run = p->run;
	size_t len = run->o->payload;
	uint64_t n = run->events, salt = run->salt, seq;
	unsigned char *buf = bench_payload_buf(len);
	int rc;

	if (!buf) {
		snprintf(p->err, sizeof p->err, "publisher: out of memory");
		return NULL;
	}
	run->t_start_ns = bench_now_ns();
	for (seq = 0; seq < n; seq++) {
		bench_fill(buf, len, seq, salt);
		bench_pace(run, buf, seq);
		rc = run->by_name ? ebus_publish_name(p->bus, "bench.throughput", buf, len)
		                  : ebus_publish(p->topic, buf, len);
		if (rc != EBUS_OK) {
			snprintf(p->err, sizeof p->err, "%s(seq %llu) returned %s",
			         run->by_name ? "ebus_publish_name" : "ebus_publish", (unsigned long long)seq,
			         ebus_errname(rc));
			break;
		}
	}
	/* Delivery is timed by the handler; flush only makes the run complete. */
	rc = ebus_flush(p->bus, 0);
	if (rc != EBUS_OK && p->err[0] == '\0')
		snprintf(p->err, sizeof p->err, "ebus_flush returned %s", ebus_errname(rc));
	free(buf);
	return NULL;
}

/* The bus's own counters must agree with the handler's. */
static void check_stats(bench_run *run, ebus_t *bus)
{
	ebus_stats_t st;
	int rc = ebus_stats(bus, -1, &st);
	uint64_t n = run->events;

	if (rc != EBUS_OK) {
		bench_fail(run, "ebus_stats returned %s", ebus_errname(rc));
		return;
	}
	if (st.published != n || st.delivered != n || st.handler_calls != n * run->nsubs)
		bench_fail(run, "stats: published %llu, delivered %llu, handler_calls %llu, expected "
		           "%llu, %llu, %llu",
		           (unsigned long long)st.published, (unsigned long long)st.delivered,
		           (unsigned long long)st.handler_calls, (unsigned long long)n,
		           (unsigned long long)n, (unsigned long long)(n * run->nsubs));
	if (st.dropped_no_subscriber || st.dropped_shutdown || st.dropped_full || st.rejected_full ||
	    st.rejected_timeout || st.rejected_shutdown)
		bench_fail(run,
		           "stats: dropped no_sub %llu shutdown %llu full %llu, rejected full %llu "
		           "timeout %llu shutdown %llu",
		           (unsigned long long)st.dropped_no_subscriber,
		           (unsigned long long)st.dropped_shutdown, (unsigned long long)st.dropped_full,
		           (unsigned long long)st.rejected_full, (unsigned long long)st.rejected_timeout,
		           (unsigned long long)st.rejected_shutdown);
	if (st.handler_errors)
		bench_fail(run, "stats: %llu handler errors", (unsigned long long)st.handler_errors);
	snprintf(run->note, sizeof run->note, "executor parks %llu, wakeups %llu",
	         (unsigned long long)st.parks, (unsigned long long)st.wakeups);
	if (st.queued)
		bench_fail(run, "stats: %llu events still queued after flush",
		           (unsigned long long)st.queued);
}

void bench_ebus_throughput(bench_run *run, bench_result *res)
{
	const bench_opts *o = run->o;
	ebus_config_t cfg;
	struct ebus_pub pub;
	ebus_sub_id id;
	pthread_t t;
	int cpu = o->cpu_sub, rc;

	memset(&cfg, 0, sizeof cfg);
	memset(&pub, 0, sizeof pub);
	cfg.executors = 1;
	cfg.lane_capacity = o->capacity;
	cfg.wait = (ebus_wait)o->wait;
	if (cpu >= 0)
		cfg.cpus = &cpu;
	if (o->payload > ((size_t)1 << 20)) /* the default max_payload */
		cfg.max_payload = o->payload;
	pub.run = run;

	/* Setup is outside the timed region, as for every system. */
	rc = ebus_create(&cfg, &pub.bus);
	if (rc != EBUS_OK) {
		bench_fail(run, "ebus_create returned %s", ebus_errname(rc));
		goto out;
	}
	rc = ebus_topic(pub.bus, "bench.throughput", &pub.topic);
	for (unsigned k = 0; rc == EBUS_OK && k < run->nsubs; k++)
		rc = ebus_subscribe(pub.topic, run->latency ? on_event_lat : on_event, &run->sinks[k],
		                    &id);
	if (rc != EBUS_OK) {
		bench_fail(run, "ebus_topic/subscribe returned %s", ebus_errname(rc));
		goto out;
	}
	rc = bench_thread_start(&t, publisher, &pub, o->cpu_pub);
	if (rc != 0) {
		bench_fail(run, "cannot start the publisher thread (errno %d)", rc);
		goto out;
	}
	bench_join(run, t, "ebus", "publisher and ebus_flush");
	if (pub.err[0])
		bench_fail(run, "%s", pub.err);
	check_stats(run, pub.bus);
out:
	ebus_destroy(pub.bus); /* NULL is a no-op */
	bench_verify(run, res);
}
