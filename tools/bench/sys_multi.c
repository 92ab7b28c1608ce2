/*
 * Scenario "multi": P publisher threads x T topics over E consumer threads.
 * Publisher p publishes, round after round, one event on each topic t; the
 * stream (p, t) carries seq 0, 1, 2, ... and its own salt, and the payload
 * names p and t (bench_deliver_multi routes on them), so order, count and
 * checksum are verified per (publisher, topic).
 *
 *   ebus     E executors, topic t placed on executor t mod E (ebus_topic_on),
 *            one subscription per topic; publishers use ebus_publish (BLOCK)
 *   ck_ring  one raw SPSC ring per (publisher, consumer), consumer c polls
 *            its P rings round-robin, batched in place as in throughput
 *   mutex    one mutex+condvar queue per consumer, shared by P producers
 *
 * All threads start together on a flag; the clock runs from that flag to
 * the last delivery of any stream. --cpus is not applied here.
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

CK_RING_PROTOTYPE(mslot, bench_slot)

#define MULTI_BATCH 64u

/* Shared shape of one multi run. */
struct multi {
	bench_run *run;
	unsigned P, T, E;
	uint64_t per; /* events per stream */
	int go __attribute__((aligned(64)));
	char err[BENCH_ERR_MAX];
	int failed;
};

static void multi_init(struct multi *m, bench_run *run)
{
	memset(m, 0, sizeof *m);
	m->run = run;
	m->P = run->o->publishers;
	m->T = run->o->topics;
	m->E = run->o->executors;
	m->per = run->events;
}

static void multi_fail(struct multi *m, const char *what, unsigned p, uint64_t seq, const char *why)
{
	if (__atomic_exchange_n(&m->failed, 1, __ATOMIC_ACQ_REL) == 0)
		snprintf(m->err, sizeof m->err, "publisher %u: %s(seq %llu): %s", p, what,
		         (unsigned long long)seq, why);
}

static void multi_wait_go(struct multi *m)
{
	unsigned spins = 0;
	while (!ck_pr_load_int(&m->go))
		bench_relax(&spins);
}

static void multi_go(struct multi *m)
{
	m->run->t_start_ns = bench_now_ns();
	ck_pr_store_int(&m->go, 1);
}

/* Fills stream (p, t)'s event seq into buf. */
static inline void multi_fill(const struct multi *m, unsigned char *buf, size_t len, unsigned p,
                              unsigned t, uint64_t seq)
{
	uint32_t pp = p, tt = t;
	bench_fill(buf, len, seq, bench_stream_salt(m->run->salt, p * m->T + t));
	memcpy(buf + 16, &pp, 4);
	memcpy(buf + 20, &tt, 4);
}

struct pub_arg {
	void *sys;
	unsigned p;
};

/* ---- ebus -------------------------------------------------------------------- */

struct em {
	struct multi m;
	ebus_t *bus;
	ebus_topic_t **topics;
	struct em_sub {
		struct em *e;
		int t;
	} *subs;
};

static int em_on_event(const ebus_event_t *ev, void *ctx)
{
	struct em_sub *s = ctx;
	return bench_deliver_multi(s->e->m.run->sinks, s->e->m.P, s->e->m.T, s->t, ev->data, ev->len);
}

static void *em_publisher(void *arg)
{
	struct pub_arg *a = arg;
	struct em *e = a->sys;
	size_t len = e->m.run->o->payload;
	unsigned char *buf = bench_payload_buf(len);
	int rc;

	if (!buf) {
		multi_fail(&e->m, "bench_payload_buf", a->p, 0, "out of memory");
		return NULL;
	}
	multi_wait_go(&e->m);
	for (uint64_t seq = 0; seq < e->m.per; seq++) {
		for (unsigned t = 0; t < e->m.T; t++) {
			multi_fill(&e->m, buf, len, a->p, t, seq);
			rc = ebus_publish(e->topics[t], buf, len);
			if (rc != EBUS_OK) {
				multi_fail(&e->m, "ebus_publish", a->p, seq, ebus_errname(rc));
				goto out;
			}
		}
	}
out:
	free(buf);
	return NULL;
}

void bench_ebus_multi(bench_run *run, bench_result *res)
{
	struct em e;
	ebus_config_t cfg;
	pthread_t *th = NULL;
	struct pub_arg *args = NULL;
	unsigned started = 0;
	int rc;

	memset(&e, 0, sizeof e);
	multi_init(&e.m, run);
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = e.m.E;
	cfg.lane_capacity = run->o->capacity;
	cfg.wait = (ebus_wait)run->o->wait;
	if (run->o->payload > ((size_t)1 << 20))
		cfg.max_payload = run->o->payload;
	e.topics = calloc(e.m.T, sizeof *e.topics);
	e.subs = calloc(e.m.T, sizeof *e.subs);
	th = calloc(e.m.P, sizeof *th);
	args = calloc(e.m.P, sizeof *args);
	if (!e.topics || !e.subs || !th || !args) {
		bench_fail(run, "out of memory");
		goto out;
	}
	rc = ebus_create(&cfg, &e.bus);
	if (rc != EBUS_OK) {
		bench_fail(run, "ebus_create returned %s", ebus_errname(rc));
		goto out;
	}
	for (unsigned t = 0; t < e.m.T; t++) {
		char name[64];
		ebus_sub_id id;
		snprintf(name, sizeof name, "bench.multi.t%u", t);
		e.subs[t].e = &e;
		e.subs[t].t = (int)t;
		rc = ebus_topic_on(e.bus, name, t % e.m.E, &e.topics[t]);
		if (rc == EBUS_OK)
			rc = ebus_subscribe(e.topics[t], em_on_event, &e.subs[t], &id);
		if (rc != EBUS_OK) {
			bench_fail(run, "ebus_topic_on/subscribe(%s) returned %s", name, ebus_errname(rc));
			goto out;
		}
	}
	for (; started < e.m.P; started++) {
		args[started].sys = &e;
		args[started].p = started;
		rc = bench_thread_start(&th[started], em_publisher, &args[started], -1);
		if (rc != 0) {
			bench_fail(run, "cannot start publisher %u (errno %d)", started, rc);
			break;
		}
	}
	multi_go(&e.m);
	for (unsigned p = 0; p < started; p++)
		bench_join(run, th[p], "ebus", "publishers");
	rc = ebus_flush(e.bus, 0);
	if (rc != EBUS_OK)
		bench_fail(run, "ebus_flush returned %s", ebus_errname(rc));
	if (e.m.err[0])
		bench_fail(run, "%s", e.m.err);
	if (run->err[0] == '\0') {
		ebus_stats_t st;
		uint64_t n = e.m.per * e.m.P * e.m.T;
		rc = ebus_stats(e.bus, -1, &st);
		if (rc != EBUS_OK)
			bench_fail(run, "ebus_stats returned %s", ebus_errname(rc));
		else {
			if (st.published != n || st.delivered != n || st.handler_calls != n ||
			    st.handler_errors || st.queued)
				bench_fail(run,
				           "stats: published %llu, delivered %llu, handler_calls %llu (expected "
				           "%llu), handler_errors %llu, queued %llu",
				           (unsigned long long)st.published, (unsigned long long)st.delivered,
				           (unsigned long long)st.handler_calls, (unsigned long long)n,
				           (unsigned long long)st.handler_errors, (unsigned long long)st.queued);
			snprintf(run->note, sizeof run->note, "executor parks %llu, wakeups %llu, lanes %llu",
			         (unsigned long long)st.parks, (unsigned long long)st.wakeups,
			         (unsigned long long)st.lanes_created);
		}
	}
out:
	ebus_destroy(e.bus);
	free(e.topics);
	free(e.subs);
	free(th);
	free(args);
	bench_verify(run, res);
}

/* ---- ck_ring ----------------------------------------------------------------- */

struct cr {
	struct ck_ring ring __attribute__((aligned(64)));
	struct bench_slot *buf __attribute__((aligned(64)));
};

struct cm {
	struct multi m;
	struct cr *rings; /* [p * E + c] */
	unsigned batch;
};

struct con_arg {
	void *sys;
	unsigned c;
	uint64_t events; /* this consumer's share */
};

static void *cm_consumer(void *arg)
{
	struct con_arg *a = arg;
	struct cm *q = a->sys;
	bench_run *run = q->m.run;
	const unsigned P = q->m.P, T = q->m.T, E = q->m.E, batch = q->batch;
	uint64_t left = a->events;
	unsigned spins = 0, p = 0;

	while (left > 0) {
		unsigned got = 0;
		for (unsigned k = 0; k < P; k++, p = (p + 1) % P) {
			struct cr *cr = &q->rings[p * E + a->c];
			struct ck_ring *r = &cr->ring;
			unsigned c = r->c_head;
			unsigned n = ck_pr_load_uint(&r->p_tail) - c;
			if (n == 0)
				continue;
			if (n > batch)
				n = batch;
			ck_pr_fence_load();
			for (unsigned i = 0; i < n; i++) {
				struct bench_slot *s = &cr->buf[(c + i) & r->mask];
				(void)bench_deliver_multi(run->sinks, P, T, -1, bench_slot_data(s), s->len);
				bench_slot_release(s);
			}
			ck_pr_fence_load_store();
			ck_pr_store_uint(&r->c_head, c + n);
			left -= n;
			got += n;
		}
		if (got == 0)
			bench_relax(&spins);
		else
			spins = 0;
	}
	return NULL;
}

static void *cm_producer(void *arg)
{
	struct pub_arg *a = arg;
	struct cm *q = a->sys;
	size_t len = q->m.run->o->payload;
	unsigned char *buf = bench_payload_buf(len);
	unsigned spins;

	if (!buf) {
		multi_fail(&q->m, "bench_payload_buf", a->p, 0, "out of memory");
		return NULL;
	}
	multi_wait_go(&q->m);
	for (uint64_t seq = 0; seq < q->m.per; seq++) {
		for (unsigned t = 0; t < q->m.T; t++) {
			struct cr *cr = &q->rings[a->p * q->m.E + t % q->m.E];
			struct bench_slot *s;
			multi_fill(&q->m, buf, len, a->p, t, seq);
			spins = 0;
			while ((s = ck_ring_enqueue_reserve_spsc_mslot(&cr->ring, cr->buf)) == NULL)
				bench_relax(&spins);
			if (bench_slot_put(s, buf, len) != 0) {
				multi_fail(&q->m, "malloc", a->p, seq, "out of memory");
				goto out; /* the consumer never finishes: bench_join reports it */
			}
			ck_ring_enqueue_commit_spsc(&cr->ring);
		}
	}
out:
	free(buf);
	return NULL;
}

/* Events consumer c gets: streams of the topics t with t mod E == c. */
static uint64_t consumer_share(const struct multi *m, unsigned c)
{
	unsigned topics = 0;
	for (unsigned t = 0; t < m->T; t++)
		topics += t % m->E == c;
	return (uint64_t)topics * m->P * m->per;
}

void bench_ckring_multi(bench_run *run, bench_result *res)
{
	struct cm q;
	unsigned cap = run->o->capacity, np = 0, nc = 0, nr;
	pthread_t *tp = NULL, *tc = NULL;
	struct pub_arg *pa = NULL;
	struct con_arg *ca = NULL;
	int rc;

	memset(&q, 0, sizeof q);
	multi_init(&q.m, run);
	nr = q.m.P * q.m.E;
	q.batch = MULTI_BATCH < cap / 2 ? MULTI_BATCH : cap / 2;
	q.rings = aligned_alloc(64, sizeof *q.rings * nr);
	tp = calloc(q.m.P, sizeof *tp);
	tc = calloc(q.m.E, sizeof *tc);
	pa = calloc(q.m.P, sizeof *pa);
	ca = calloc(q.m.E, sizeof *ca);
	if (!q.rings || !tp || !tc || !pa || !ca) {
		bench_fail(run, "out of memory");
		goto out;
	}
	memset(q.rings, 0, sizeof *q.rings * nr);
	for (unsigned i = 0; i < nr; i++) {
		q.rings[i].buf = aligned_alloc(64, (size_t)cap * sizeof(struct bench_slot));
		if (!q.rings[i].buf) {
			bench_fail(run, "out of memory for rings");
			goto out;
		}
		ck_ring_init(&q.rings[i].ring, cap);
	}
	for (; nc < q.m.E; nc++) {
		ca[nc].sys = &q;
		ca[nc].c = nc;
		ca[nc].events = consumer_share(&q.m, nc);
		rc = bench_thread_start(&tc[nc], cm_consumer, &ca[nc], -1);
		if (rc != 0) {
			bench_fail(run, "cannot start consumer %u (errno %d)", nc, rc);
			goto out; /* (consumers left spinning: only on thread-creation failure) */
		}
	}
	for (; np < q.m.P; np++) {
		pa[np].sys = &q;
		pa[np].p = np;
		rc = bench_thread_start(&tp[np], cm_producer, &pa[np], -1);
		if (rc != 0) {
			bench_fail(run, "cannot start producer %u (errno %d)", np, rc);
			break;
		}
	}
	multi_go(&q.m);
	for (unsigned p = 0; p < np; p++)
		bench_join(run, tp[p], "ck_ring", "producers");
	for (unsigned c = 0; c < nc; c++)
		bench_join(run, tc[c], "ck_ring", "consumers");
	if (q.m.err[0])
		bench_fail(run, "%s", q.m.err);
out:
	if (q.rings)
		for (unsigned i = 0; i < nr; i++)
			free(q.rings[i].buf);
	free(q.rings);
	free(tp);
	free(tc);
	free(pa);
	free(ca);
	bench_verify(run, res);
}

/* ---- mutex ------------------------------------------------------------------- */

struct mqq {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	struct bench_slot *buf;
	unsigned mask, limit;
	uint64_t head, tail;
} __attribute__((aligned(64)));

struct mm {
	struct multi m;
	struct mqq *q; /* [c] */
};

static void *mm_consumer(void *arg)
{
	struct con_arg *a = arg;
	struct mm *x = a->sys;
	struct mqq *q = &x->q[a->c];
	bench_run *run = x->m.run;
	uint64_t left = a->events;
	struct bench_slot s;

	while (left > 0) {
		pthread_mutex_lock(&q->lock);
		while (q->head == q->tail)
			pthread_cond_wait(&q->not_empty, &q->lock);
		s = q->buf[q->head & q->mask];
		q->head++;
		pthread_cond_signal(&q->not_full);
		pthread_mutex_unlock(&q->lock);
		(void)bench_deliver_multi(run->sinks, x->m.P, x->m.T, -1, bench_slot_data(&s), s.len);
		bench_slot_release(&s);
		left--;
	}
	return NULL;
}

static void *mm_producer(void *arg)
{
	struct pub_arg *a = arg;
	struct mm *x = a->sys;
	size_t len = x->m.run->o->payload;
	unsigned char *buf = bench_payload_buf(len);
	struct bench_slot s;

	if (!buf) {
		multi_fail(&x->m, "bench_payload_buf", a->p, 0, "out of memory");
		return NULL;
	}
	multi_wait_go(&x->m);
	for (uint64_t seq = 0; seq < x->m.per; seq++) {
		for (unsigned t = 0; t < x->m.T; t++) {
			struct mqq *q = &x->q[t % x->m.E];
			multi_fill(&x->m, buf, len, a->p, t, seq);
			if (bench_slot_put(&s, buf, len) != 0) {
				multi_fail(&x->m, "malloc", a->p, seq, "out of memory");
				goto out;
			}
			pthread_mutex_lock(&q->lock);
			while (q->tail - q->head >= q->limit)
				pthread_cond_wait(&q->not_full, &q->lock);
			q->buf[q->tail & q->mask] = s;
			q->tail++;
			pthread_cond_signal(&q->not_empty);
			pthread_mutex_unlock(&q->lock);
		}
	}
out:
	free(buf);
	return NULL;
}

void bench_mutex_multi(bench_run *run, bench_result *res)
{
	struct mm x;
	unsigned cap = run->o->capacity, np = 0, nc = 0, ninit = 0;
	pthread_t *tp = NULL, *tc = NULL;
	struct pub_arg *pa = NULL;
	struct con_arg *ca = NULL;
	int rc;

	memset(&x, 0, sizeof x);
	multi_init(&x.m, run);
	x.q = aligned_alloc(64, sizeof *x.q * x.m.E);
	tp = calloc(x.m.P, sizeof *tp);
	tc = calloc(x.m.E, sizeof *tc);
	pa = calloc(x.m.P, sizeof *pa);
	ca = calloc(x.m.E, sizeof *ca);
	if (!x.q || !tp || !tc || !pa || !ca) {
		bench_fail(run, "out of memory");
		goto out;
	}
	memset(x.q, 0, sizeof *x.q * x.m.E);
	for (; ninit < x.m.E; ninit++) {
		struct mqq *q = &x.q[ninit];
		pthread_mutex_init(&q->lock, NULL);
		pthread_cond_init(&q->not_empty, NULL);
		pthread_cond_init(&q->not_full, NULL);
		q->mask = cap - 1;
		q->limit = cap - 1;
		q->buf = aligned_alloc(64, (size_t)cap * sizeof *q->buf);
		if (!q->buf) {
			ninit++;
			bench_fail(run, "out of memory for queues");
			goto out;
		}
	}
	for (; nc < x.m.E; nc++) {
		ca[nc].sys = &x;
		ca[nc].c = nc;
		ca[nc].events = consumer_share(&x.m, nc);
		rc = bench_thread_start(&tc[nc], mm_consumer, &ca[nc], -1);
		if (rc != 0) {
			bench_fail(run, "cannot start consumer %u (errno %d)", nc, rc);
			goto out;
		}
	}
	for (; np < x.m.P; np++) {
		pa[np].sys = &x;
		pa[np].p = np;
		rc = bench_thread_start(&tp[np], mm_producer, &pa[np], -1);
		if (rc != 0) {
			bench_fail(run, "cannot start producer %u (errno %d)", np, rc);
			break;
		}
	}
	multi_go(&x.m);
	for (unsigned p = 0; p < np; p++)
		bench_join(run, tp[p], "mutex", "producers");
	for (unsigned c = 0; c < nc; c++)
		bench_join(run, tc[c], "mutex", "consumers");
	if (x.m.err[0])
		bench_fail(run, "%s", x.m.err);
out:
	if (x.q)
		for (unsigned i = 0; i < ninit; i++) {
			free(x.q[i].buf);
			pthread_cond_destroy(&x.q[i].not_full);
			pthread_cond_destroy(&x.q[i].not_empty);
			pthread_mutex_destroy(&x.q[i].lock);
		}
	free(x.q);
	free(tp);
	free(tc);
	free(pa);
	free(ca);
	bench_verify(run, res);
}
