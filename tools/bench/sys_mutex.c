/*
 * What most event buses are: a bounded queue behind one mutex and two
 * condition variables. The producer locks per event, waits while full and
 * signals "not empty"; the consumer locks per event, takes one slot out,
 * signals "not full", unlocks, and calls the handler outside the lock.
 * Same 64-byte slots and the same bound as an ebus lane (capacity - 1).
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"
#include "slot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mq {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	struct bench_slot *buf;
	unsigned mask, limit; /* limit = capacity - 1, as an ebus lane holds */
	uint64_t head, tail;  /* under lock */
	int ready;            /* under lock */
	bench_run *run;
	char perr[BENCH_ERR_MAX];
};

static void *consumer(void *arg)
{
	struct mq *q = arg;
	uint64_t left = q->run->events;
	struct bench_slot s;

	pthread_mutex_lock(&q->lock);
	q->ready = 1;
	pthread_cond_broadcast(&q->not_full); /* the producer waits for ready here too */
	pthread_mutex_unlock(&q->lock);
	while (left > 0) {
		pthread_mutex_lock(&q->lock);
		while (q->head == q->tail)
			pthread_cond_wait(&q->not_empty, &q->lock);
		s = q->buf[q->head & q->mask];
		q->head++;
		pthread_cond_signal(&q->not_full);
		pthread_mutex_unlock(&q->lock);
		bench_consume(q->run, bench_slot_data(&s), s.len);
		bench_slot_release(&s);
		left--;
	}
	return NULL;
}

static void *producer(void *arg)
{
	struct mq *q = arg;
	bench_run *run = q->run;
	size_t len = run->o->payload;
	uint64_t n = run->events, salt = run->salt, seq;
	unsigned char *buf = bench_payload_buf(len);
	struct bench_slot s;

	if (!buf) {
		snprintf(q->perr, sizeof q->perr, "producer: out of memory");
		return NULL;
	}
	pthread_mutex_lock(&q->lock);
	while (!q->ready)
		pthread_cond_wait(&q->not_full, &q->lock);
	pthread_mutex_unlock(&q->lock);
	run->t_start_ns = bench_now_ns();
	for (seq = 0; seq < n; seq++) {
		bench_fill(buf, len, seq, salt);
		bench_pace(run, buf, seq);
		if (bench_slot_put(&s, buf, len) != 0) { /* outside the lock, like a real bus */
			snprintf(q->perr, sizeof q->perr, "producer: malloc failed at seq %llu",
			         (unsigned long long)seq);
			break;
		}
		pthread_mutex_lock(&q->lock);
		while (q->tail - q->head >= q->limit)
			pthread_cond_wait(&q->not_full, &q->lock);
		q->buf[q->tail & q->mask] = s;
		q->tail++;
		pthread_cond_signal(&q->not_empty);
		pthread_mutex_unlock(&q->lock);
	}
	free(buf);
	return NULL;
}

void bench_mutex_throughput(bench_run *run, bench_result *res)
{
	const bench_opts *o = run->o;
	struct mq *q = calloc(1, sizeof *q);
	pthread_t tc, tp;
	int rc;

	if (!q) {
		bench_fail(run, "out of memory");
		goto out;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	q->run = run;
	q->mask = o->capacity - 1;
	q->limit = o->capacity - 1;
	q->buf = aligned_alloc(64, (size_t)o->capacity * sizeof *q->buf);
	if (!q->buf) {
		bench_fail(run, "out of memory for %u slots", o->capacity);
		goto out;
	}
	rc = bench_thread_start(&tc, consumer, q, o->cpu_sub);
	if (rc != 0) {
		bench_fail(run, "cannot start the consumer thread (errno %d)", rc);
		goto out;
	}
	rc = bench_thread_start(&tp, producer, q, o->cpu_pub);
	if (rc != 0) {
		bench_fail(run, "cannot start the producer thread (errno %d)", rc);
		bench_join(run, tc, "mutex", "consumer");
		goto out;
	}
	bench_join(run, tp, "mutex", "producer");
	bench_join(run, tc, "mutex", "consumer");
	if (q->perr[0])
		bench_fail(run, "%s", q->perr);
out:
	if (q) {
		free(q->buf);
		pthread_cond_destroy(&q->not_full);
		pthread_cond_destroy(&q->not_empty);
		pthread_mutex_destroy(&q->lock);
	}
	free(q);
	bench_verify(run, res);
}
