/*
 * Scenario "pingpong": round trips between thread A and a responder B.
 * A fills event seq, takes t0, sends it as "ping"; B's handler verifies it
 * (sink 0) and sends it back as "pong"; the pong is verified (sink 1) and
 * A, seeing it, takes t1 and records t1 - t0. One round trip in flight.
 *
 *   ebus     2 executors: "bench.ping" on executor 0 (its handler is B and
 *            publishes the pong from the handler), "bench.pong" on executor 1
 *            (its handler verifies and sets an atomic A spins on). Three
 *            threads: A, and the two executors. ebus-busy: BUSY_SPIN
 *            executors; ebus-wait: the --wait strategy.
 *   ck_ring  two raw SPSC rings, A->B and B->A; B and A spin on them
 *   mutex    two one-slot mailboxes, each a mutex + condvar
 *
 * A's spin is bench_relax (a sched_yield every 1024 stalls), as in every
 * reference, so the systems with more threads than cores can still move.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"
#include "slot.h"

#include <ck_pr.h>
#include <ck_ring.h>
#include <ebus/ebus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <time.h>
#include <unistd.h>

CK_RING_PROTOTYPE(pslot, bench_slot)

static inline uint64_t seq_of(const void *data)
{
	uint64_t s;
	memcpy(&s, data, 8);
	return s;
}

/* ---- ebus: what both variants share ----------------------------------------- */

/* The bus of both variants: 2 executors with `wait` (cpus: NULL or one CPU
 * per executor), "bench.ping" on executor 0, "bench.pong" on executor 1,
 * each with its handler and ctx. */
static int pp_open(bench_run *run, ebus_wait wait, const int *cpus, ebus_handler_fn on_ping,
                   ebus_handler_fn on_pong, void *ctx, ebus_t **bus, ebus_topic_t **ping,
                   ebus_topic_t **pong)
{
	ebus_config_t cfg;
	ebus_sub_id id;
	int rc;

	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	cfg.lane_capacity = run->o->capacity;
	cfg.wait = wait;
	cfg.cpus = cpus;
	if (run->o->payload > ((size_t)1 << 20))
		cfg.max_payload = run->o->payload;
	rc = ebus_create(&cfg, bus);
	if (rc != EBUS_OK) {
		bench_fail(run, "ebus_create returned %s", ebus_errname(rc));
		return -1;
	}
	rc = ebus_topic_on(*bus, "bench.ping", 0, ping);
	if (rc == EBUS_OK)
		rc = ebus_topic_on(*bus, "bench.pong", 1, pong);
	if (rc == EBUS_OK)
		rc = ebus_subscribe(*ping, on_ping, ctx, &id);
	if (rc == EBUS_OK)
		rc = ebus_subscribe(*pong, on_pong, ctx, &id);
	if (rc != EBUS_OK) {
		bench_fail(run, "ebus_topic_on/subscribe returned %s", ebus_errname(rc));
		return -1;
	}
	return 0;
}

/* After the round trips: flush, and the bus's counters must agree (every
 * ping and pong published, delivered, handled once, no handler error). */
static void pp_check(bench_run *run, ebus_t *bus)
{
	ebus_stats_t st;
	uint64_t n = 2 * run->events;
	int rc = ebus_flush(bus, 0);

	if (rc != EBUS_OK)
		bench_fail(run, "ebus_flush returned %s", ebus_errname(rc));
	rc = ebus_stats(bus, -1, &st);
	if (rc != EBUS_OK) {
		bench_fail(run, "ebus_stats returned %s", ebus_errname(rc));
		return;
	}
	if (run->err[0] == '\0' &&
	    (st.published != n || st.delivered != n || st.handler_calls != n || st.handler_errors))
		bench_fail(run,
		           "stats: published %llu, delivered %llu, handler_calls %llu (expected %llu), "
		           "handler_errors %llu",
		           (unsigned long long)st.published, (unsigned long long)st.delivered,
		           (unsigned long long)st.handler_calls, (unsigned long long)n,
		           (unsigned long long)st.handler_errors);
	snprintf(run->note, sizeof run->note, "executor parks %llu, wakeups %llu",
	         (unsigned long long)st.parks, (unsigned long long)st.wakeups);
}

/* ---- ebus-3t: A is a third thread ------------------------------------------------ */

struct ep {
	bench_run *run;
	ebus_topic_t *ping, *pong;
	uint64_t got __attribute__((aligned(64))); /* seq + 1 of the last pong */
	int pong_err __attribute__((aligned(64))); /* written by executor 0 only */
	char err[BENCH_ERR_MAX];
};

static int on_ping(const ebus_event_t *ev, void *ctx)
{
	struct ep *e = ctx;
	int bad = bench_deliver(&e->run->sinks[0], ev->data, ev->len);
	int rc = ebus_publish(e->pong, ev->data, ev->len);
	if (rc != EBUS_OK && e->pong_err == 0)
		e->pong_err = rc;
	return bad;
}

static int on_pong(const ebus_event_t *ev, void *ctx)
{
	struct ep *e = ctx;
	int bad = bench_deliver(&e->run->sinks[1], ev->data, ev->len);
	ck_pr_store_64(&e->got, seq_of(ev->data) + 1);
	return bad;
}

static void *ep_a(void *arg)
{
	struct ep *e = arg;
	bench_run *run = e->run;
	size_t len = run->o->payload;
	unsigned char *buf = bench_payload_buf(len);
	unsigned spins;
	int rc;

	if (!buf) {
		snprintf(e->err, sizeof e->err, "thread A: out of memory");
		return NULL;
	}
	run->t_start_ns = bench_now_ns();
	for (uint64_t seq = 0; seq < run->events; seq++) {
		uint64_t t0;
		bench_fill(buf, len, seq, run->salt);
		t0 = bench_now_ns();
		rc = ebus_publish(e->ping, buf, len);
		if (rc != EBUS_OK) {
			snprintf(e->err, sizeof e->err, "ebus_publish(ping %llu) returned %s",
			         (unsigned long long)seq, ebus_errname(rc));
			break;
		}
		spins = 0;
		while (ck_pr_load_64(&e->got) != seq + 1)
			bench_relax(&spins);
		run->samples[seq] = bench_now_ns() - t0;
	}
	free(buf);
	return NULL;
}

static void ebus_pingpong(bench_run *run, bench_result *res, ebus_wait wait)
{
	struct ep *e = aligned_alloc(64, sizeof *e);
	ebus_t *bus = NULL;
	pthread_t t;
	int rc;

	if (!e) {
		bench_fail(run, "out of memory");
		goto out;
	}
	memset(e, 0, sizeof *e);
	e->run = run;
	if (pp_open(run, wait, NULL, on_ping, on_pong, e, &bus, &e->ping, &e->pong) != 0)
		goto out;
	rc = bench_thread_start(&t, ep_a, e, run->o->cpu_pub);
	if (rc != 0) {
		bench_fail(run, "cannot start thread A (errno %d)", rc);
		goto out;
	}
	bench_join(run, t, "ebus", "thread A (round trips)");
	if (e->err[0])
		bench_fail(run, "%s", e->err);
	if (e->pong_err)
		bench_fail(run, "ebus_publish(pong) from the handler returned %s",
		           ebus_errname(e->pong_err));
	pp_check(run, bus);
out:
	ebus_destroy(bus);
	free(e);
	bench_verify(run, res);
}

void bench_ebus_pingpong_3t(bench_run *run, bench_result *res)
{
	ebus_pingpong(run, res, EBUS_WAIT_BUSY_SPIN);
}

void bench_ebus_pingpong_3t_wait(bench_run *run, bench_result *res)
{
	ebus_pingpong(run, res, (ebus_wait)run->o->wait);
}

const char *bench_ebus_pingpong_3t_skip(const bench_opts *o)
{
	cpu_set_t set;
	(void)o;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < 3)
		return "3 spinning threads need 3 CPUs";
	return NULL;
}

/* ---- ebus, executor-driven: A is executor 1 --------------------------------------
 * The pong handler on executor 1 records the round trip and publishes the
 * next ping itself, so only the two executors take part (2 threads, like
 * the references). The main thread publishes ping 0 and then blocks on a
 * semaphore the last handler posts: no periodic wake-up of a third thread
 * that would preempt an executor on a 2-core machine. */

struct ed {
	bench_run *run;
	ebus_topic_t *ping, *pong;
	unsigned char *buf; /* executor 1's (and, for ping 0, main's) payload buffer */
	uint64_t t0;        /* written by whoever publishes the current ping */
	int err;            /* first publish error */
	sem_t finished;     /* posted once, by ed_finish */
	int done __attribute__((aligned(64)));
};

static void ed_finish(struct ed *e, int rc)
{
	if (rc != EBUS_OK && e->err == 0)
		e->err = rc;
	if (!ck_pr_fas_int(&e->done, 1))
		sem_post(&e->finished);
}

static int ed_on_ping(const ebus_event_t *ev, void *ctx)
{
	struct ed *e = ctx;
	int bad = bench_deliver(&e->run->sinks[0], ev->data, ev->len);
	int rc = ebus_publish(e->pong, ev->data, ev->len);
	if (rc != EBUS_OK)
		ed_finish(e, rc);
	return bad;
}

static int ed_on_pong(const ebus_event_t *ev, void *ctx)
{
	struct ed *e = ctx;
	bench_run *run = e->run;
	int bad = bench_deliver(&run->sinks[1], ev->data, ev->len);
	uint64_t now = bench_now_ns(), seq = seq_of(ev->data);
	int rc;

	if (seq < run->events)
		run->samples[seq] = now - e->t0;
	if (seq + 1 >= run->events) {
		ed_finish(e, EBUS_OK);
		return bad;
	}
	bench_fill(e->buf, run->o->payload, seq + 1, run->salt);
	e->t0 = bench_now_ns();
	rc = ebus_publish(e->ping, e->buf, run->o->payload);
	if (rc != EBUS_OK)
		ed_finish(e, rc);
	return bad;
}

/* Blocks until ed_finish; past the run's deadline the run is a hang. */
static void ed_wait(bench_run *run, struct ed *e)
{
	uint64_t now = bench_now_ns();
	uint64_t left = run->deadline_ns > now ? run->deadline_ns - now : 0;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until); /* sem_timedwait's clock */
	until.tv_sec += (time_t)(left / 1000000000ull);
	until.tv_nsec += (long)(left % 1000000000ull);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (sem_timedwait(&e->finished, &until) != 0) {
		if (errno == EINTR)
			continue;
		fflush(stdout);
		fprintf(stderr,
		        "\nebus-bench: FAILED: ebus pingpong did not finish within %u s: %llu of %llu "
		        "round trips\n",
		        run->o->timeout_s,
		        (unsigned long long)__atomic_load_n(&run->sinks[1].count, __ATOMIC_RELAXED),
		        (unsigned long long)run->events);
		_exit(2);
	}
}

static void ebus_pingpong_exec(bench_run *run, bench_result *res, ebus_wait wait)
{
	struct ed *e = aligned_alloc(64, sizeof *e);
	ebus_t *bus = NULL;
	int rc, cpus[2], sem = 0;

	if (!e) {
		bench_fail(run, "out of memory");
		goto out;
	}
	memset(e, 0, sizeof *e);
	e->run = run;
	e->buf = bench_payload_buf(run->o->payload);
	if (!e->buf || sem_init(&e->finished, 0, 0) != 0) {
		bench_fail(run, "out of memory");
		goto out;
	}
	sem = 1;
	cpus[0] = run->o->cpu_sub; /* B (executor 0) on C, A (executor 1) on P */
	cpus[1] = run->o->cpu_pub;
	if (pp_open(run, wait, run->o->cpu_pub >= 0 ? cpus : NULL, ed_on_ping, ed_on_pong, e, &bus,
	            &e->ping, &e->pong) != 0)
		goto out;
	bench_fill(e->buf, run->o->payload, 0, run->salt);
	e->t0 = run->t_start_ns = bench_now_ns();
	rc = ebus_publish(e->ping, e->buf, run->o->payload);
	if (rc != EBUS_OK) {
		bench_fail(run, "ebus_publish(ping 0) returned %s", ebus_errname(rc));
		goto out;
	}
	ed_wait(run, e);
	if (e->err)
		bench_fail(run, "ebus_publish from a handler returned %s", ebus_errname(e->err));
	pp_check(run, bus);
out:
	ebus_destroy(bus);
	if (e) {
		if (sem)
			sem_destroy(&e->finished);
		free(e->buf);
	}
	free(e);
	bench_verify(run, res);
}

void bench_ebus_pingpong_busy(bench_run *run, bench_result *res)
{
	ebus_pingpong_exec(run, res, EBUS_WAIT_BUSY_SPIN);
}

void bench_ebus_pingpong_wait(bench_run *run, bench_result *res)
{
	ebus_pingpong_exec(run, res, (ebus_wait)run->o->wait);
}

/* ---- the references: what both share ------------------------------------------ */

/* B's loop: take the ping, verify it, send it back. Inlined into each
 * reference with its own take/put, so neither pays an indirect call. */
static inline __attribute__((always_inline)) void
ref_b_loop(bench_run *run, void *q, void (*take)(void *q, int dir, struct bench_slot *s),
           void (*put)(void *q, int dir, const struct bench_slot *s))
{
	struct bench_slot s;

	for (uint64_t i = 0; i < run->events; i++) {
		take(q, 0, &s);
		(void)bench_deliver(&run->sinks[0], bench_slot_data(&s), s.len);
		put(q, 1, &s);
	}
}

/* A's loop: fill ping seq, stamp t0, send it, wait for the pong, verify
 * it, record the round trip. Direction 0 is A->B, 1 is B->A. */
static inline __attribute__((always_inline)) void
ref_a_loop(bench_run *run, void *q, char *err, size_t errlen,
           void (*take)(void *q, int dir, struct bench_slot *s),
           void (*put)(void *q, int dir, const struct bench_slot *s))
{
	size_t len = run->o->payload;
	unsigned char *buf = bench_payload_buf(len);
	struct bench_slot s;

	if (!buf) {
		snprintf(err, errlen, "thread A: out of memory");
		return;
	}
	run->t_start_ns = bench_now_ns();
	for (uint64_t seq = 0; seq < run->events; seq++) {
		uint64_t t0;
		bench_fill(buf, len, seq, run->salt);
		t0 = bench_now_ns();
		if (bench_slot_put(&s, buf, len) != 0) {
			snprintf(err, errlen, "thread A: malloc failed");
			break;
		}
		put(q, 0, &s);
		take(q, 1, &s);
		(void)bench_deliver(&run->sinks[1], bench_slot_data(&s), s.len);
		bench_slot_release(&s);
		run->samples[seq] = bench_now_ns() - t0;
	}
	free(buf);
}

/* Starts B, then A; joins both. */
static void ref_run_pair(bench_run *run, const char *sys, void *(*a)(void *), void *(*b)(void *),
                         void *q)
{
	pthread_t ta, tb;
	int rc = bench_thread_start(&tb, b, q, run->o->cpu_sub);

	if (rc != 0) {
		bench_fail(run, "cannot start thread B (errno %d)", rc);
		return;
	}
	rc = bench_thread_start(&ta, a, q, run->o->cpu_pub);
	if (rc != 0) {
		bench_fail(run, "cannot start thread A (errno %d)", rc);
		bench_join(run, tb, sys, "thread B");
		return;
	}
	bench_join(run, ta, sys, "thread A (round trips)");
	bench_join(run, tb, sys, "thread B");
}

/* ---- ck_ring ----------------------------------------------------------------- */

struct pr {
	struct ck_ring ring __attribute__((aligned(64)));
	struct bench_slot *buf __attribute__((aligned(64)));
};

struct cp {
	struct pr dir[2]; /* 0: A->B, 1: B->A */
	bench_run *run;
	int ready __attribute__((aligned(64)));
	char err[BENCH_ERR_MAX];
};

static void cp_take(void *arg, int dir, struct bench_slot *s)
{
	struct pr *r = &((struct cp *)arg)->dir[dir];
	unsigned spins = 0;
	while (!ck_ring_dequeue_spsc_pslot(&r->ring, r->buf, s))
		bench_relax(&spins);
}

static void cp_put(void *arg, int dir, const struct bench_slot *s)
{
	struct pr *r = &((struct cp *)arg)->dir[dir];
	unsigned spins = 0;
	while (!ck_ring_enqueue_spsc_pslot(&r->ring, r->buf, (struct bench_slot *)s))
		bench_relax(&spins);
}

static void *cp_b(void *arg)
{
	struct cp *q = arg;
	ck_pr_store_int(&q->ready, 1);
	ref_b_loop(q->run, q, cp_take, cp_put);
	return NULL;
}

static void *cp_a(void *arg)
{
	struct cp *q = arg;
	unsigned spins = 0;
	while (!ck_pr_load_int(&q->ready))
		bench_relax(&spins);
	ref_a_loop(q->run, q, q->err, sizeof q->err, cp_take, cp_put);
	return NULL;
}

void bench_ckring_pingpong(bench_run *run, bench_result *res)
{
	unsigned cap = run->o->capacity;
	struct cp *q = aligned_alloc(64, sizeof *q);

	if (!q) {
		bench_fail(run, "out of memory");
		goto out;
	}
	memset(q, 0, sizeof *q);
	q->run = run;
	for (int d = 0; d < 2; d++) {
		q->dir[d].buf = aligned_alloc(64, (size_t)cap * sizeof(struct bench_slot));
		if (!q->dir[d].buf) {
			bench_fail(run, "out of memory for rings");
			goto out;
		}
		ck_ring_init(&q->dir[d].ring, cap);
	}
	ref_run_pair(run, "ck_ring", cp_a, cp_b, q);
	if (q->err[0])
		bench_fail(run, "%s", q->err);
out:
	if (q) {
		free(q->dir[0].buf);
		free(q->dir[1].buf);
	}
	free(q);
	bench_verify(run, res);
}

/* ---- mutex ------------------------------------------------------------------- */

struct box {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct bench_slot s;
	int full;
} __attribute__((aligned(64)));

struct mp {
	struct box dir[2]; /* 0: A->B, 1: B->A */
	bench_run *run;
	char err[BENCH_ERR_MAX];
};

static void box_put(void *arg, int dir, const struct bench_slot *s)
{
	struct box *b = &((struct mp *)arg)->dir[dir];
	pthread_mutex_lock(&b->lock);
	b->s = *s; /* one round trip in flight: the box is empty here */
	b->full = 1;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->lock);
}

static void box_take(void *arg, int dir, struct bench_slot *s)
{
	struct box *b = &((struct mp *)arg)->dir[dir];
	pthread_mutex_lock(&b->lock);
	while (!b->full)
		pthread_cond_wait(&b->cv, &b->lock);
	*s = b->s;
	b->full = 0;
	pthread_mutex_unlock(&b->lock);
}

static void *mp_b(void *arg)
{
	struct mp *q = arg;
	ref_b_loop(q->run, q, box_take, box_put);
	return NULL;
}

static void *mp_a(void *arg)
{
	struct mp *q = arg;
	ref_a_loop(q->run, q, q->err, sizeof q->err, box_take, box_put);
	return NULL;
}

void bench_mutex_pingpong(bench_run *run, bench_result *res)
{
	struct mp *q = aligned_alloc(64, sizeof *q);

	if (!q) {
		bench_fail(run, "out of memory");
		goto out;
	}
	memset(q, 0, sizeof *q);
	q->run = run;
	for (int d = 0; d < 2; d++) {
		pthread_mutex_init(&q->dir[d].lock, NULL);
		pthread_cond_init(&q->dir[d].cv, NULL);
	}
	ref_run_pair(run, "mutex", mp_a, mp_b, q);
	if (q->err[0])
		bench_fail(run, "%s", q->err);
	for (int d = 0; d < 2; d++) {
		pthread_cond_destroy(&q->dir[d].cv);
		pthread_mutex_destroy(&q->dir[d].lock);
	}
out:
	free(q);
	bench_verify(run, res);
}
