/*
 * The practical limit: a raw Concurrency Kit SPSC ring of 64-byte slots,
 * nothing else. The producer builds each slot in place (typed reserve +
 * untyped commit); the consumer takes batches in place (read p_tail once,
 * call the handler on up to CKR_BATCH slots, store c_head once: research
 * notes 2.4) and spins when empty, as the producer does when full. No
 * wake-ups, no counters, no topics: what ebus adds on top of this is what
 * the ratio measures.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"
#include "slot.h"

#include <ck_pr.h>
#include <ck_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CK_RING_PROTOTYPE(bench_slot, bench_slot)

/* Slots handled per c_head store: ebus's LANE_BATCH, so the two differ in
 * what ebus adds, not in tuning (256 measured the same here). Held slots
 * shrink the producer's free space, so it is also capped at capacity/2. */
#ifndef CKR_BATCH
#define CKR_BATCH 64u
#endif

struct ckr {
	struct ck_ring ring __attribute__((aligned(64)));
	struct bench_slot *buf __attribute__((aligned(64))); /* read-only after init */
	bench_run *run;
	unsigned batch;
	int ready __attribute__((aligned(64))); /* consumer is running */
	char perr[BENCH_ERR_MAX];
};

/* The batched dequeue leans on ck's field names and its 0.7.1 ordering. */
_Static_assert(sizeof(((struct ck_ring *)0)->c_head) == sizeof(unsigned int), "ck_ring layout");

static void *consumer(void *arg)
{
	struct ckr *q = arg;
	struct ck_ring *r = &q->ring;
	struct bench_slot *buf = q->buf;
	const unsigned mask = r->mask, batch = q->batch;
	uint64_t left = q->run->events;
	unsigned spins = 0;

	ck_pr_store_int(&q->ready, 1);
	while (left > 0) {
		unsigned c = r->c_head; /* only this thread writes it */
		unsigned p = ck_pr_load_uint(&r->p_tail);
		unsigned n = p - c;

		if (n == 0) {
			bench_relax(&spins);
			continue;
		}
		spins = 0;
		if (n > batch)
			n = batch;
		ck_pr_fence_load(); /* slot reads after the p_tail read */
		for (unsigned i = 0; i < n; i++) {
			struct bench_slot *s = &buf[(c + i) & mask];
			bench_consume(q->run, bench_slot_data(s), s->len);
			bench_slot_release(s);
		}
		ck_pr_fence_load_store(); /* slot reads before the slots are handed back */
		ck_pr_store_uint(&r->c_head, c + n);
		left -= n;
	}
	return NULL;
}

static void *producer(void *arg)
{
	struct ckr *q = arg;
	bench_run *run = q->run;
	size_t len = run->o->payload;
	uint64_t n = run->events, salt = run->salt, seq;
	unsigned char *buf = bench_payload_buf(len);
	unsigned spins = 0;

	if (!buf) {
		snprintf(q->perr, sizeof q->perr, "producer: out of memory");
		return NULL; /* the consumer never finishes: bench_join reports it */
	}
	while (!ck_pr_load_int(&q->ready))
		bench_relax(&spins);
	run->t_start_ns = bench_now_ns();
	for (seq = 0; seq < n; seq++) {
		struct bench_slot *s;
		bench_fill(buf, len, seq, salt);
		bench_pace(run, buf, seq);
		spins = 0;
		while ((s = ck_ring_enqueue_reserve_spsc_bench_slot(&q->ring, q->buf)) == NULL)
			bench_relax(&spins);
		if (bench_slot_put(s, buf, len) != 0) {
			snprintf(q->perr, sizeof q->perr, "producer: malloc failed at seq %llu",
			         (unsigned long long)seq);
			break;
		}
		ck_ring_enqueue_commit_spsc(&q->ring);
	}
	free(buf);
	return NULL;
}

void bench_ckring_throughput(bench_run *run, bench_result *res)
{
	const bench_opts *o = run->o;
	struct ckr *q = aligned_alloc(64, sizeof *q);
	pthread_t tc, tp;
	int rc;

	if (!q) {
		bench_fail(run, "out of memory");
		goto out;
	}
	memset(q, 0, sizeof *q);
	q->run = run;
	q->buf = aligned_alloc(64, (size_t)o->capacity * sizeof *q->buf);
	if (!q->buf) {
		bench_fail(run, "out of memory for %u slots", o->capacity);
		goto out;
	}
	memset(q->buf, 0, (size_t)o->capacity * sizeof *q->buf);
	ck_ring_init(&q->ring, o->capacity);
	q->batch = CKR_BATCH < o->capacity / 2 ? CKR_BATCH : o->capacity / 2;

	rc = bench_thread_start(&tc, consumer, q, o->cpu_sub);
	if (rc != 0) {
		bench_fail(run, "cannot start the consumer thread (errno %d)", rc);
		goto out;
	}
	rc = bench_thread_start(&tp, producer, q, o->cpu_pub);
	if (rc != 0) {
		bench_fail(run, "cannot start the producer thread (errno %d)", rc);
		bench_join(run, tc, "ck_ring", "consumer"); /* cannot finish: reports and exits */
		goto out;
	}
	bench_join(run, tp, "ck_ring", "producer");
	bench_join(run, tc, "ck_ring", "consumer");
	if (q->perr[0])
		bench_fail(run, "%s", q->perr);
out:
	if (q)
		free(q->buf);
	free(q);
	bench_verify(run, res);
}
