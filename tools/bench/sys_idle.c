/*
 * Scenario "idle": what a bus with nothing to do costs, and how fast it
 * wakes up.
 *
 * 1. Idle CPU. The consumer gets one event (so the lane exists), then has
 *    nothing to do. Once it has parked, the main thread sleeps for --idle-ms
 *    and the process's CPU time over that window (getrusage RUSAGE_SELF,
 *    user + system: the consumer, liburcu's helper threads, everything but
 *    the sleeping main thread) is reported as % of one core.
 * 2. Wake latency. `events` samples: wait until the consumer has parked
 *    again (its park counter moved), let it settle into the kernel, stamp
 *    CLOCK_MONOTONIC into the payload, publish; the handler
 *    (bench_deliver_lat) records stamp -> callback. The main thread sleeps
 *    between samples, so it never competes with the consumer for a core.
 *
 * Systems:
 *   ebus       1 executor with the --wait strategy (default: spin, yield,
 *              park on a futex), ebus_publish
 *   ebus-busy  the same with EBUS_WAIT_BUSY_SPIN: never parks, so it burns
 *              a core; reported for contrast, not a target
 *   ck_futex   the reference: a raw ck SPSC ring whose consumer spins 256
 *              polls, then parks on a futex (sleeping flag, full fence,
 *              re-check, FUTEX_WAIT); the producer commits, fences, and
 *              wakes it when the flag is set: the minimal parking queue
 *
 * Verified: every sample delivered once, in order, checksummed (the sink);
 * for the parking systems, every sample woke a parked consumer (wake-ups
 * >= samples), so each sample measured a wake and not a spinning consumer.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"
#include "slot.h"

#include <ck_pr.h>
#include <ck_ring.h>
#include <ebus/ebus.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SETTLE_NS 200000ull /* after the park counter moved: into the kernel */
#define POLL_NS 20000ull

static void nap(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
	nanosleep(&ts, NULL);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* What a parking consumer looks like to the measuring loop. */
struct idle_ops {
	void *ctx;
	uint64_t (*parks)(void *ctx);                    /* times it went to sleep */
	int (*publish)(void *ctx, const void *buf, size_t len); /* 0 = ok */
};

/* Waits (sleeping) until the consumer's park count exceeds `after`; false
 * past the run's deadline. */
static int wait_parked(bench_run *run, const struct idle_ops *ops, uint64_t after)
{
	while (ops->parks(ops->ctx) <= after) {
		if (bench_now_ns() > run->deadline_ns)
			return 0;
		nap(POLL_NS);
	}
	return 1;
}

/* Waits (sleeping) until the sink has `n` events; false past the deadline. */
static int wait_delivered(bench_run *run, uint64_t n)
{
	while (__atomic_load_n(&run->sink->count, __ATOMIC_ACQUIRE) < n) {
		if (bench_now_ns() > run->deadline_ns)
			return 0;
		nap(POLL_NS);
	}
	return 1;
}

/*
 * The measurement both parts share. parking = 0: the consumer never parks
 * (busy spin); the loop then only sleeps between samples. Fills
 * res->cpu_pct; the samples land in the sink via the handler.
 */
static void measure(bench_run *run, bench_result *res, const struct idle_ops *ops, int parking)
{
	size_t len = run->o->payload;
	unsigned char *buf = bench_payload_buf(len);
	double c0, c1;
	uint64_t w0, w1, parked_at;

	if (!buf) {
		bench_fail(run, "out of memory");
		return;
	}
	/* 1. idle window */
	if (parking && !wait_parked(run, ops, 0)) {
		bench_fail(run, "the consumer did not park within the timeout");
		goto out;
	}
	w0 = bench_now_ns();
	c0 = cpu_seconds();
	nap((uint64_t)run->o->idle_ms * 1000000ull);
	c1 = cpu_seconds();
	w1 = bench_now_ns();
	res->cpu_pct = 100.0 * (c1 - c0) / ((double)(w1 - w0) / 1e9);

	/* 2. wake samples. The consumer is asleep now; after each sample it
	 * parks once more than it had when the sample was published. */
	run->t_start_ns = bench_now_ns();
	parked_at = ops->parks(ops->ctx);
	for (uint64_t seq = 0; seq < run->events; seq++) {
		uint64_t now;
		if (parking && seq > 0 && !wait_parked(run, ops, parked_at)) {
			bench_fail(run, "the consumer did not park before sample %llu", (unsigned long long)seq);
			break;
		}
		parked_at = ops->parks(ops->ctx);
		nap(SETTLE_NS);
		bench_fill(buf, len, seq, run->salt);
		now = bench_now_ns();
		memcpy(buf + 16, &now, 8);
		if (ops->publish(ops->ctx, buf, len) != 0) {
			bench_fail(run, "publish of sample %llu failed", (unsigned long long)seq);
			break;
		}
		if (!wait_delivered(run, seq + 1)) {
			bench_fail(run, "sample %llu was not delivered within the timeout",
			           (unsigned long long)seq);
			break;
		}
	}
out:
	free(buf);
}

/* ---- ebus --------------------------------------------------------------------- */

struct ei {
	ebus_t *bus;
	ebus_topic_t *topic;
	uint64_t warm_calls;
};

static uint64_t ei_parks(void *ctx)
{
	struct ei *e = ctx;
	ebus_stats_t st;
	return ebus_stats(e->bus, -1, &st) == EBUS_OK ? st.parks : 0;
}

static int ei_publish(void *ctx, const void *buf, size_t len)
{
	struct ei *e = ctx;
	return ebus_publish(e->topic, buf, len) != EBUS_OK;
}

static int ei_on_event(const ebus_event_t *ev, void *ctx)
{
	return bench_deliver_lat(ctx, ev->data, ev->len);
}

static int ei_on_warm(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	++*(uint64_t *)ctx;
	return 0;
}

static void ebus_idle(bench_run *run, bench_result *res, ebus_wait wait)
{
	const bench_opts *o = run->o;
	struct ei e;
	struct idle_ops ops = {&e, ei_parks, ei_publish};
	ebus_config_t cfg;
	ebus_topic_t *warm;
	ebus_sub_id id;
	ebus_stats_t st;
	int cpu = o->cpu_sub, rc, parking = wait != EBUS_WAIT_BUSY_SPIN && wait != EBUS_WAIT_SPIN_YIELD;

	memset(&e, 0, sizeof e);
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 1;
	cfg.lane_capacity = o->capacity;
	cfg.wait = wait;
	if (cpu >= 0)
		cfg.cpus = &cpu;
	rc = ebus_create(&cfg, &e.bus);
	if (rc == EBUS_OK)
		rc = ebus_topic(e.bus, "bench.idle", &e.topic);
	if (rc == EBUS_OK)
		rc = ebus_topic(e.bus, "bench.idle.warm", &warm);
	if (rc == EBUS_OK)
		rc = ebus_subscribe(e.topic, ei_on_event, run->sink, &id);
	if (rc == EBUS_OK)
		rc = ebus_subscribe(warm, ei_on_warm, &e.warm_calls, &id);
	/* The lane is created by this untimed event, not by sample 0. */
	if (rc == EBUS_OK)
		rc = ebus_publish(warm, NULL, 0);
	if (rc == EBUS_OK)
		rc = ebus_flush(e.bus, 0);
	if (rc != EBUS_OK) {
		bench_fail(run, "setup: %s", ebus_errname(rc));
		goto out;
	}
	measure(run, res, &ops, parking);
	rc = ebus_flush(e.bus, 0);
	if (rc == EBUS_OK)
		rc = ebus_stats(e.bus, -1, &st);
	if (rc != EBUS_OK) {
		bench_fail(run, "flush/stats: %s", ebus_errname(rc));
		goto out;
	}
	if (st.published != run->events + 1 || st.delivered != run->events + 1 || e.warm_calls != 1 ||
	    st.handler_errors)
		bench_fail(run, "stats: published %llu, delivered %llu, handler errors %llu (expected "
		           "%llu, %llu, 0)",
		           (unsigned long long)st.published, (unsigned long long)st.delivered,
		           (unsigned long long)st.handler_errors, (unsigned long long)run->events + 1,
		           (unsigned long long)run->events + 1);
	if (parking && st.wakeups < run->events)
		bench_fail(run, "only %llu of %llu samples woke a parked executor",
		           (unsigned long long)st.wakeups, (unsigned long long)run->events);
	snprintf(run->note, sizeof run->note, "idle CPU %.3f%% of a core; executor parks %llu, "
	         "wakeups %llu", res->cpu_pct, (unsigned long long)st.parks,
	         (unsigned long long)st.wakeups);
out:
	ebus_destroy(e.bus);
	bench_verify(run, res);
}

void bench_ebus_idle(bench_run *run, bench_result *res)
{
	ebus_idle(run, res, (ebus_wait)run->o->wait);
}

void bench_ebus_idle_busy(bench_run *run, bench_result *res)
{
	ebus_idle(run, res, EBUS_WAIT_BUSY_SPIN);
}

/* ---- the reference: a raw ck ring with a futex-parking consumer -------------- */

CK_RING_PROTOTYPE(islot, bench_slot)

#define CF_SPINS 256

struct cf {
	struct ck_ring ring __attribute__((aligned(64)));
	struct bench_slot *buf __attribute__((aligned(64)));
	bench_run *run;
	uint32_t sleeping __attribute__((aligned(64))); /* futex word */
	int stop;
	uint64_t parks __attribute__((aligned(64)));   /* consumer-written */
	uint64_t wakeups;
};

static void *cf_consumer(void *arg)
{
	struct cf *q = arg;
	struct bench_slot s;
	unsigned idle = 0;

	for (;;) {
		if (ck_ring_dequeue_spsc_islot(&q->ring, q->buf, &s)) {
			bench_consume(q->run, bench_slot_data(&s), s.len);
			bench_slot_release(&s);
			idle = 0;
			continue;
		}
		if (ck_pr_load_int(&q->stop))
			break;
		if (++idle < CF_SPINS) {
			ck_pr_stall();
			continue;
		}
		/* Park: announce, full fence, re-check, sleep. */
		ck_pr_store_32(&q->sleeping, 1);
		ck_pr_fence_memory();
		if (ck_ring_size(&q->ring) != 0 || ck_pr_load_int(&q->stop)) {
			ck_pr_store_32(&q->sleeping, 0);
			continue;
		}
		ck_pr_store_64(&q->parks, q->parks + 1);
		while (ck_pr_load_32(&q->sleeping))
			syscall(SYS_futex, &q->sleeping, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
		ck_pr_store_64(&q->wakeups, q->wakeups + 1);
		idle = 0;
	}
	return NULL;
}

static void cf_wake(struct cf *q)
{
	ck_pr_fence_memory(); /* commit before the sleeping check (Dekker) */
	if (ck_pr_load_32(&q->sleeping) && ck_pr_fas_32(&q->sleeping, 0))
		syscall(SYS_futex, &q->sleeping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static uint64_t cf_parks(void *ctx)
{
	return ck_pr_load_64(&((struct cf *)ctx)->parks);
}

static int cf_publish(void *ctx, const void *buf, size_t len)
{
	struct cf *q = ctx;
	struct bench_slot s;
	if (bench_slot_put(&s, buf, len) != 0)
		return 1;
	if (!ck_ring_enqueue_spsc_islot(&q->ring, q->buf, &s)) {
		bench_slot_release(&s);
		return 1; /* one event in flight: never full */
	}
	cf_wake(q);
	return 0;
}

void bench_ckfutex_idle(bench_run *run, bench_result *res)
{
	struct cf *q = aligned_alloc(64, sizeof *q);
	struct idle_ops ops = {q, cf_parks, cf_publish};
	pthread_t t;
	int rc;

	if (!q) {
		bench_fail(run, "out of memory");
		goto out;
	}
	memset(q, 0, sizeof *q);
	q->run = run;
	q->buf = aligned_alloc(64, (size_t)run->o->capacity * sizeof *q->buf);
	if (!q->buf) {
		bench_fail(run, "out of memory");
		goto out;
	}
	ck_ring_init(&q->ring, run->o->capacity);
	rc = bench_thread_start(&t, cf_consumer, q, run->o->cpu_sub);
	if (rc != 0) {
		bench_fail(run, "cannot start the consumer (errno %d)", rc);
		goto out;
	}
	measure(run, res, &ops, 1);
	ck_pr_store_int(&q->stop, 1);
	cf_wake(q);
	bench_join(run, t, "ck_futex", "consumer");
	if (run->err[0] == '\0' && ck_pr_load_64(&q->wakeups) < run->events)
		bench_fail(run, "only %llu of %llu samples woke a parked consumer",
		           (unsigned long long)q->wakeups, (unsigned long long)run->events);
	snprintf(run->note, sizeof run->note, "idle CPU %.3f%% of a core; consumer parks %llu, "
	         "wakeups %llu", res->cpu_pct, (unsigned long long)q->parks,
	         (unsigned long long)q->wakeups);
out:
	if (q)
		free(q->buf);
	free(q);
	bench_verify(run, res);
}
