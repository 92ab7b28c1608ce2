/*
 * ebus-cost: one workload, sized for callgrind, so that instructions per
 * event can be counted for ebus and for a raw ck_ring side by side
 * (scripts/cost.sh runs it at two sizes and takes the difference, which
 * cancels set-up and tear-down).
 *
 *   ebus-cost SCENARIO SYSTEM EVENTS
 *     SCENARIO  throughput (1 subscriber), fanout (4 subscribers),
 *               by-name (1 subscriber, published by name),
 *               batch (1 subscriber, ebus_publish_batch of 64 messages
 *               built in the loop; ebus only),
 *               claim (1 subscriber, ebus_claim + memcpy + ebus_claim_commit;
 *               ebus only),
 *               large (1 subscriber, LARGE-byte payloads, which travel in
 *               the lane's arena; ebus only)
 *     SYSTEM    ebus, or ring (a raw ck SPSC ring of 64-byte slots whose
 *               consumer drains batches of 64 and calls the same handler
 *               through a pointer, once per subscriber)
 *
 * The consumer is held off the lane until every event is in it (a gate:
 * ebus's executor blocks in a handler on a semaphore; the ring's consumer
 * waits on one before it starts), so it never polls an empty lane while
 * events are counted: the consumer thread's instructions are transport and
 * dispatch plus the handler bodies, and nothing that depends on timing.
 * The publisher's loop is the function publish_loop (callgrind: its
 * inclusive cost). The lane (ring) holds every event: capacity above
 * EVENTS.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <ck_md.h>
#include <ck_pr.h>
#include <ck_ring.h>
#include <ebus/ebus.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD 32
#define LARGE 256
#define BATCH 64
#define MAX_SUBS 4

static sem_t gate, gate_entered;
/* The payload length, read at run time on both sides: ebus takes any length,
 * so the reference must not copy a length the compiler knows. */
static volatile size_t payload_len = PAYLOAD;

/* The measured handler: the same body for every system (scripts/cost.sh
 * subtracts its own instructions). */
static __attribute__((noinline)) int cost_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 0;
}

static int gate_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	sem_post(&gate_entered);
	while (sem_wait(&gate) != 0 && errno == EINTR)
		;
	return 0;
}

static unsigned pow2_above(uint64_t n)
{
	unsigned c = 4;
	while (c <= n + 2)
		c <<= 1;
	return c;
}

/* ---- ebus ------------------------------------------------------------------ */

enum mode { SINGLE, BY_NAME, BATCH_MODE, CLAIM_MODE };

static __attribute__((noinline, noclone)) void publish_loop(ebus_topic_t *t, ebus_t *bus, const char *name,
                                            uint64_t n, const unsigned char *payload)
{
	size_t len = payload_len;
	for (uint64_t i = 0; i < n; i++) {
		int rc = name ? ebus_publish_name(bus, name, payload, len) : ebus_publish(t, payload, len);
		if (rc != EBUS_OK)
			abort();
	}
}

/* Batches of BATCH messages (the last one shorter), each built here: the
 * caller's share of the work is counted as for publish_loop's arguments. */
static __attribute__((noinline, noclone)) void batch_loop(ebus_topic_t *t, uint64_t n,
                                          const unsigned char *payload)
{
	size_t len = payload_len;
	ebus_msg_t m[BATCH];
	for (uint64_t i = 0; i < n; i += BATCH) {
		size_t k = n - i < BATCH ? (size_t)(n - i) : BATCH, acc;
		for (size_t j = 0; j < k; j++) {
			m[j].topic = t;
			m[j].data = payload;
			m[j].len = len;
		}
		if (ebus_publish_batch(m, k, EBUS_FULL_DEFAULT, &acc) != EBUS_OK || acc != k)
			abort();
	}
}

/* ebus_claim, the payload written in place, ebus_claim_commit. */
static __attribute__((noinline, noclone)) void claim_loop(ebus_topic_t *t, uint64_t n,
                                                   const unsigned char *payload)
{
	size_t len = payload_len;
	for (uint64_t i = 0; i < n; i++) {
		ebus_claim_t c;
		if (ebus_claim(t, len, &c) != EBUS_OK)
			abort();
		memcpy(c.data, payload, len);
		if (ebus_claim_commit(&c) != EBUS_OK)
			abort();
	}
}

static int run_ebus(unsigned subs, enum mode mode, uint64_t n)
{
	ebus_config_t cfg;
	ebus_t *bus;
	ebus_topic_t *t, *g;
	ebus_sub_id id;
	static unsigned char payload[LARGE] = { 1 };
	static char ctx[MAX_SUBS];

	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 1;
	cfg.lane_capacity = pow2_above(n);
	if (payload_len > EBUS_INLINE_MAX) /* the arena holds every event too */
		cfg.lane_arena_bytes = (uint64_t)pow2_above(n * ((payload_len + 15) / 16)) * 16;
	cfg.wait = EBUS_WAIT_SPIN_PARK;
	cfg.spin_iterations = 1;
	if (ebus_create(&cfg, &bus) != EBUS_OK || ebus_topic(bus, "cost.t", &t) != EBUS_OK ||
	    ebus_topic(bus, "cost.gate", &g) != EBUS_OK ||
	    ebus_subscribe(g, gate_handler, NULL, &id) != EBUS_OK)
		return 1;
	for (unsigned k = 0; k < subs; k++)
		if (ebus_subscribe(t, cost_handler, &ctx[k], &id) != EBUS_OK)
			return 1;
	/* The lane exists and the executor is inside the gate handler. */
	if (ebus_publish(g, payload, PAYLOAD) != EBUS_OK)
		return 1;
	while (sem_wait(&gate_entered) != 0 && errno == EINTR)
		;
	if (mode == BATCH_MODE)
		batch_loop(t, n, payload);
	else if (mode == CLAIM_MODE)
		claim_loop(t, n, payload);
	else
		publish_loop(t, bus, mode == BY_NAME ? "cost.t" : NULL, n, payload);
	sem_post(&gate);
	{
		ebus_stats_t st;
		if (ebus_flush(bus, 0) != EBUS_OK || ebus_stats(bus, -1, &st) != EBUS_OK)
			return 1;
		ebus_destroy(bus);
		/* every event reached every subscriber (and the gate event its one) */
		return st.handler_calls == n * subs + 1 && st.delivered == n + 1 ? 0 : 1;
	}
}

/* ---- the raw ring reference --------------------------------------------------- */

struct slot {
	void *topic;
	uint64_t ts;
	uint32_t len, kind;
	unsigned char data[40];
} __attribute__((aligned(64)));
CK_RING_PROTOTYPE(cslot, slot)

struct ref {
	struct ck_ring ring;
	struct slot *buf;
	unsigned subs;
	uint64_t n;
	ebus_handler_fn fn[MAX_SUBS];
	void *ctx[MAX_SUBS];
	uint64_t calls;
};

static void *ref_consumer(void *arg)
{
	struct ref *r = arg;
	uint64_t done = 0;
	while (sem_wait(&gate) != 0 && errno == EINTR)
		;
	while (done < r->n) {
		unsigned c = ck_pr_load_uint(&r->ring.c_head);
		unsigned p = ck_pr_load_uint(&r->ring.p_tail);
		unsigned k = p - c;
		ck_pr_fence_load();
		if (k > BATCH)
			k = BATCH;
		for (unsigned i = 0; i < k; i++) {
			struct slot *s = &r->buf[(c + i) & r->ring.mask];
			ebus_event_t ev = { .topic = NULL, .data = s->data, .len = s->len };
			for (unsigned j = 0; j < r->subs; j++)
				r->calls += r->fn[j](&ev, r->ctx[j]) == 0;
		}
		ck_pr_fence_store();
		ck_pr_store_uint(&r->ring.c_head, c + k);
		done += k;
	}
	return NULL;
}

static __attribute__((noinline, noclone)) void ring_publish_loop(struct ref *r, uint64_t n,
                                                 const unsigned char *payload)
{
	size_t len = payload_len;
	for (uint64_t i = 0; i < n; i++) {
		struct slot *s = ck_ring_enqueue_reserve_spsc_cslot(&r->ring, r->buf);
		if (!s)
			abort();
		s->len = (uint32_t)len;
		s->kind = 0;
		memcpy(s->data, payload, len);
		ck_ring_enqueue_commit_spsc(&r->ring);
	}
}

static int run_ring(unsigned subs, uint64_t n)
{
	static char ctx[MAX_SUBS];
	unsigned char payload[PAYLOAD] = { 1 };
	unsigned cap = pow2_above(n);
	struct ref r;
	pthread_t th;

	memset(&r, 0, sizeof r);
	r.buf = aligned_alloc(64, (size_t)cap * sizeof *r.buf);
	if (!r.buf)
		return 1;
	ck_ring_init(&r.ring, cap);
	r.subs = subs;
	r.n = n;
	for (unsigned k = 0; k < subs; k++) {
		r.fn[k] = cost_handler;
		r.ctx[k] = &ctx[k];
	}
	if (pthread_create(&th, NULL, ref_consumer, &r) != 0)
		return 1;
	ring_publish_loop(&r, n, payload);
	sem_post(&gate);
	pthread_join(th, NULL);
	free(r.buf);
	return r.calls == n * subs ? 0 : 1;
}

int main(int argc, char **argv)
{
	unsigned subs;
	uint64_t n;
	enum mode mode = SINGLE;
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("ebus-cost %s (running ebus %s, ck %s)\n", EBUS_VERSION_STRING, ebus_version(),
		       CK_VERSION);
		return 0;
	}
	if (argc != 4 || (n = strtoull(argv[3], NULL, 10)) == 0) {
		fprintf(stderr, "usage: ebus-cost throughput|fanout|by-name|batch|claim|large ebus|ring EVENTS\n");
		return 2;
	}
	if (strcmp(argv[1], "throughput") == 0) {
		subs = 1;
	} else if (strcmp(argv[1], "fanout") == 0) {
		subs = 4;
	} else if (strcmp(argv[1], "by-name") == 0) {
		subs = 1;
		mode = BY_NAME;
	} else if (strcmp(argv[1], "batch") == 0) {
		subs = 1;
		mode = BATCH_MODE;
	} else if (strcmp(argv[1], "claim") == 0) {
		subs = 1;
		mode = CLAIM_MODE;
	} else if (strcmp(argv[1], "large") == 0) {
		subs = 1;
		payload_len = LARGE;
	} else {
		fprintf(stderr, "ebus-cost: unknown scenario '%s'\n", argv[1]);
		return 2;
	}
	sem_init(&gate, 0, 0);
	sem_init(&gate_entered, 0, 0);
	if (strcmp(argv[2], "ebus") == 0)
		return run_ebus(subs, mode, n);
	if (strcmp(argv[2], "ring") == 0)
		return mode != SINGLE || payload_len != PAYLOAD ? 2 : run_ring(subs, n);
	fprintf(stderr, "ebus-cost: unknown system '%s'\n", argv[2]);
	return 2;
}
