/*
 * C side of the references (see refs.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "refs.h"

#include <ebus/ebus.h>

#include <ck_pr.h>
#include <ck_ring.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-qsbr.h>

struct ref_slot {
	unsigned char *ext; /* NULL: the payload is in data[] */
	uint32_t len;
	uint32_t pad_;
	unsigned char data[EBUS_INLINE_MAX];
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct ref_slot) == 64, "a slot is one cache line, as in ebus");

CK_RING_PROTOTYPE(ref_slot, ref_slot)

/* The batched dequeue reads ck's fields directly, as ebus's executor does. */
_Static_assert(sizeof(((struct ck_ring *)0)->c_head) == sizeof(unsigned int), "ck_ring layout");

typedef void (*ref_handler_fn)(const void *data, size_t len, void *ctx);

struct ref_ring {
	struct ck_ring ring __attribute__((aligned(64)));
	struct ref_slot *buf __attribute__((aligned(64))); /* read-only after init */
	unsigned batch;
	ref_handler_fn handler; /* called through the pointer, like a subscriber */
	pthread_t thread;
	uint64_t produced; /* producer-private */
	uint64_t handled __attribute__((aligned(64))); /* consumer-private count */
	uint64_t consumed __attribute__((aligned(64))); /* published by the consumer */
	int stop __attribute__((aligned(64)));
	int hold; /* consumer reads it once per loop; the rest is under hold_lock */
	int held;
	pthread_mutex_t hold_lock;
	pthread_cond_t hold_cv;
};

static void noop_handler(const void *data, size_t len, void *ctx)
{
	uint64_t *n = ctx;
	(void)data;
	(void)len;
	++*n;
}

static void *consumer(void *arg)
{
	struct ref_ring *r = arg;
	struct ck_ring *ring = &r->ring;
	struct ref_slot *buf = r->buf;
	const unsigned mask = ring->mask, batch = r->batch;
	ref_handler_fn handler = r->handler;
	uint64_t total = 0;

	for (;;) {
		if (ck_pr_load_int(&r->hold)) {
			/* Held: sleep, off the ring and off the CPU. */
			pthread_mutex_lock(&r->hold_lock);
			r->held = 1;
			pthread_cond_broadcast(&r->hold_cv);
			while (ck_pr_load_int(&r->hold))
				pthread_cond_wait(&r->hold_cv, &r->hold_lock);
			r->held = 0;
			pthread_mutex_unlock(&r->hold_lock);
			continue;
		}
		unsigned c = ring->c_head; /* only this thread writes it */
		unsigned p = ck_pr_load_uint(&ring->p_tail);
		unsigned n = p - c;

		if (n == 0) {
			if (ck_pr_load_int(&r->stop))
				break;
			ck_pr_stall();
			continue;
		}
		if (n > batch)
			n = batch;
		ck_pr_fence_load(); /* slot reads after the p_tail read */
		for (unsigned i = 0; i < n; i++) {
			struct ref_slot *s = &buf[(c + i) & mask];
			handler(s->ext ? s->ext : s->data, s->len, &r->handled);
			if (s->ext)
				free(s->ext);
		}
		ck_pr_fence_load_store(); /* slot reads before the slots are handed back */
		ck_pr_store_uint(&ring->c_head, c + n);
		total += n;
		ck_pr_store_64(&r->consumed, total);
	}
	return NULL;
}

ref_ring *ref_ring_create(unsigned capacity, unsigned batch)
{
	struct ref_ring *r;

	if (capacity < 4 || (capacity & (capacity - 1)) || batch == 0)
		return NULL;
	r = aligned_alloc(64, sizeof *r);
	if (!r)
		return NULL;
	memset(r, 0, sizeof *r);
	r->buf = aligned_alloc(64, (size_t)capacity * sizeof *r->buf);
	if (!r->buf) {
		free(r);
		return NULL;
	}
	memset(r->buf, 0, (size_t)capacity * sizeof *r->buf);
	ck_ring_init(&r->ring, capacity);
	r->batch = batch;
	pthread_mutex_init(&r->hold_lock, NULL);
	pthread_cond_init(&r->hold_cv, NULL);
	*(volatile ref_handler_fn *)&r->handler = noop_handler; /* keep the indirect call */
	if (pthread_create(&r->thread, NULL, consumer, r) != 0) {
		pthread_mutex_destroy(&r->hold_lock);
		pthread_cond_destroy(&r->hold_cv);
		free(r->buf);
		free(r);
		return NULL;
	}
	return r;
}

int ref_ring_publish(ref_ring *r, const void *data, size_t len)
{
	struct ref_slot *s;

	while ((s = ck_ring_enqueue_reserve_spsc_ref_slot(&r->ring, r->buf)) == NULL)
		ck_pr_stall();
	s->len = (uint32_t)len;
	if (len <= sizeof s->data) {
		s->ext = NULL;
		memcpy(s->data, data, len);
	} else {
		s->ext = malloc(len);
		if (!s->ext)
			return -1; /* reserved, not committed: nothing happened */
		memcpy(s->ext, data, len);
	}
	ck_ring_enqueue_commit_spsc(&r->ring);
	r->produced++;
	return 0;
}

void ref_ring_drain(ref_ring *r)
{
	while (ck_pr_load_64(&r->consumed) != r->produced)
		ck_pr_stall();
}

void ref_ring_hold(ref_ring *r)
{
	pthread_mutex_lock(&r->hold_lock);
	ck_pr_store_int(&r->hold, 1);
	while (!r->held)
		pthread_cond_wait(&r->hold_cv, &r->hold_lock);
	pthread_mutex_unlock(&r->hold_lock);
}

void ref_ring_unhold(ref_ring *r)
{
	pthread_mutex_lock(&r->hold_lock);
	ck_pr_store_int(&r->hold, 0);
	pthread_cond_broadcast(&r->hold_cv);
	pthread_mutex_unlock(&r->hold_lock);
}

uint64_t ref_ring_consumed(ref_ring *r)
{
	return ck_pr_load_64(&r->consumed);
}

void ref_ring_destroy(ref_ring *r)
{
	if (!r)
		return;
	ck_pr_store_int(&r->stop, 1);
	pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->hold_lock);
	pthread_cond_destroy(&r->hold_cv);
	free(r->buf);
	free(r);
}

void ref_rcu_grace_period(void)
{
	urcu_qsbr_synchronize_rcu();
}
