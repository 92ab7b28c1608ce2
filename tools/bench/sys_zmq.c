/*
 * ZeroMQ inproc PUB/SUB, the common in-process messaging peer.
 *
 * Plain PUB drops silently at its high-water mark, and an unbounded HWM
 * would give it a queue no other system has. So the publisher is an XPUB
 * with ZMQ_XPUB_NODROP (a blocking send then waits at the HWM, like BLOCK
 * in ebus) and the HWMs are split between the two ends so the inproc pipe
 * holds about `capacity` messages. The XPUB reads the subscription message
 * before it starts, so no early message can meet a not-yet-subscribed SUB.
 * The context has 0 I/O threads (inproc needs none), so zmq adds no thread
 * of its own to compete for the two cores. zmq_send copies the payload;
 * the SUB hands zmq_msg_data() to the handler in place.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include <ck_pr.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define ZQ_ENDPOINT "inproc://ebus-bench"
#define ZQ_RECV_TIMEOUT_MS 5000 /* a lost message ends the run, not the program */

struct zq {
	void *ctx;
	bench_run *run;
	int bound;  /* the XPUB is bound: the SUB may connect */
	int done;   /* the SUB has everything (or gave up): the XPUB may close */
	char perr[BENCH_ERR_MAX], cerr[BENCH_ERR_MAX];
};

static void *subscriber(void *arg)
{
	struct zq *q = arg;
	bench_run *run = q->run;
	uint64_t left = run->events;
	int hwm = (int)(run->o->capacity - run->o->capacity / 2);
	int tmo = ZQ_RECV_TIMEOUT_MS, zero = 0;
	unsigned spins = 0;
	void *sub = zmq_socket(q->ctx, ZMQ_SUB);
	zmq_msg_t msg;

	if (!sub) {
		snprintf(q->cerr, sizeof q->cerr, "zmq_socket(SUB): %s", zmq_strerror(errno));
		goto out;
	}
	while (!ck_pr_load_int(&q->bound))
		bench_relax(&spins);
	if (zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
	    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &tmo, sizeof tmo) ||
	    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero) || zmq_connect(sub, ZQ_ENDPOINT) ||
	    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0)) {
		snprintf(q->cerr, sizeof q->cerr, "SUB setup: %s", zmq_strerror(errno));
		goto out;
	}
	zmq_msg_init(&msg);
	while (left > 0) {
		if (zmq_msg_recv(&msg, sub, 0) < 0) {
			snprintf(q->cerr, sizeof q->cerr, "zmq_msg_recv: %s after %llu messages",
			         errno == EAGAIN ? "nothing for 5 s" : zmq_strerror(errno),
			         (unsigned long long)(run->events - left));
			break;
		}
		bench_consume(run, zmq_msg_data(&msg), zmq_msg_size(&msg));
		left--;
	}
	zmq_msg_close(&msg);
out:
	ck_pr_store_int(&q->done, 1);
	if (sub)
		zmq_close(sub);
	return NULL;
}

static void *publisher(void *arg)
{
	struct zq *q = arg;
	bench_run *run = q->run;
	size_t len = run->o->payload;
	uint64_t n = run->events, salt = run->salt, seq;
	int hwm = (int)(run->o->capacity / 2), one = 1, zero = 0, tmo = ZQ_RECV_TIMEOUT_MS;
	unsigned char *buf = bench_payload_buf(len), subs[8];
	unsigned spins = 0;
	void *pub = zmq_socket(q->ctx, ZMQ_XPUB);

	if (!buf || !pub) {
		snprintf(q->perr, sizeof q->perr, "publisher setup: %s", buf ? zmq_strerror(errno) : "out of memory");
		ck_pr_store_int(&q->bound, 1); /* let the SUB fail on its own timeout */
		goto out;
	}
	if (zmq_setsockopt(pub, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
	    zmq_setsockopt(pub, ZMQ_XPUB_NODROP, &one, sizeof one) ||
	    zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof zero) ||
	    zmq_setsockopt(pub, ZMQ_RCVTIMEO, &tmo, sizeof tmo) || zmq_bind(pub, ZQ_ENDPOINT)) {
		snprintf(q->perr, sizeof q->perr, "XPUB setup: %s", zmq_strerror(errno));
		ck_pr_store_int(&q->bound, 1);
		goto out;
	}
	ck_pr_store_int(&q->bound, 1);
	/* The subscription message: the SUB is connected and subscribed. */
	if (zmq_recv(pub, subs, sizeof subs, 0) < 1 || subs[0] != 1) {
		snprintf(q->perr, sizeof q->perr, "XPUB: no subscription message: %s", zmq_strerror(errno));
		goto out;
	}
	run->t_start_ns = bench_now_ns();
	for (seq = 0; seq < n; seq++) {
		bench_fill(buf, len, seq, salt);
		bench_pace(run, buf, seq);
		if (zmq_send(pub, buf, len, 0) != (int)len) {
			snprintf(q->perr, sizeof q->perr, "zmq_send(seq %llu): %s", (unsigned long long)seq,
			         zmq_strerror(errno));
			break;
		}
	}
	/* Closing the XPUB early could cut off what is still in the pipe. */
	while (!ck_pr_load_int(&q->done))
		bench_relax(&spins);
out:
	if (pub)
		zmq_close(pub);
	free(buf);
	return NULL;
}

void bench_zmq_throughput(bench_run *run, bench_result *res)
{
	const bench_opts *o = run->o;
	struct zq q;
	pthread_t ts, tp;
	int rc;

	memset(&q, 0, sizeof q);
	q.run = run;
	q.ctx = zmq_ctx_new();
	if (!q.ctx) {
		bench_fail(run, "zmq_ctx_new: %s", zmq_strerror(errno));
		goto out;
	}
	/* inproc needs no I/O thread; only valid before the first socket */
	(void)zmq_ctx_set(q.ctx, ZMQ_IO_THREADS, 0);
	rc = bench_thread_start(&ts, subscriber, &q, o->cpu_sub);
	if (rc != 0) {
		bench_fail(run, "cannot start the subscriber thread (errno %d)", rc);
		goto out;
	}
	rc = bench_thread_start(&tp, publisher, &q, o->cpu_pub);
	if (rc != 0) {
		bench_fail(run, "cannot start the publisher thread (errno %d)", rc);
		bench_join(run, ts, "zmq", "subscriber");
		goto out;
	}
	bench_join(run, tp, "zmq", "publisher");
	bench_join(run, ts, "zmq", "subscriber");
	if (q.perr[0])
		bench_fail(run, "%s", q.perr);
	if (q.cerr[0])
		bench_fail(run, "%s", q.cerr);
out:
	if (q.ctx)
		zmq_ctx_term(q.ctx);
	bench_verify(run, res);
}
