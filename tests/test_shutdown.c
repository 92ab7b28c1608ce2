/*
 * Shutdown and flush (DESIGN 2.6, ebus.h ebus_shutdown / ebus_flush).
 *
 * 1. Under load (publisher threads with the BLOCK policy on small lanes, some
 *    events by reference) the main thread shuts down:
 *    DRAIN:   every publish that returned EBUS_OK is delivered, in order,
 *             exactly once; DISCARD: what is delivered is a gapless prefix
 *             per publisher, and delivered + dropped_shutdown == accepted.
 *    Both: once a publisher got EBUS_ERR_SHUTDOWN every later publish (all
 *    variants) gets it too; rejected_shutdown counts them; no handler runs
 *    after ebus_shutdown returned; every accepted by-reference payload is
 *    released exactly once (refused ones never).
 * 2. A publisher blocked on a full lane returns EBUS_ERR_SHUTDOWN while the
 *    executor is still stuck in a handler (DRAIN and DISCARD).
 * 3. ebus_flush with a timeout while a handler is blocked: EBUS_ERR_TIMEOUT;
 *    after the handler is released, ebus_flush(bus, 0) is EBUS_OK.
 * 4. ebus_flush / ebus_shutdown from a handler of the bus: EBUS_ERR_DEADLOCK,
 *    the bus keeps working (async and sync); flushing ANOTHER bus from a
 *    handler is fine.
 *
 * Parameters:
 *   EBUS_STRESS_PUBLISHERS  4 | 16
 *   EBUS_STRESS_EVENTS      20000 | 1000000  accepted events before shutdown starts
 */
#include "testutil.h"

#define MAXP 32
#define NT 4

static unsigned P;
static uint64_t THRESH;

/* ---- 1. shutdown under load ------------------------------------------------------- */

typedef struct ref_rec {
	_Atomic int released;
	int accepted;
	uint64_t payload[3];
} ref_rec;

typedef struct ld_hdr {
	uint32_t pub, topic;
	uint64_t seq, check;
} ld_hdr;

typedef struct ld_pub {
	unsigned idx;
	pthread_t th;
	uint64_t accepted[NT];
	uint64_t rejected; /* EBUS_ERR_SHUTDOWN returns */
	ref_rec **refs;
	size_t nrefs, caprefs;
} ld_pub;

typedef struct ld_sub {
	unsigned topic;
	uint64_t next[MAXP];
	uint64_t calls;
	uint64_t sink;
} ld_sub;

static struct {
	ebus_t *bus;
	ebus_topic_t *topics[NT];
	char names[NT][32];
	ld_sub subs[NT];
	ld_pub pubs[MAXP];
	_Atomic uint64_t accepted_total;
	_Atomic int shutdown_returned;
	_Atomic uint64_t late_calls; /* handler calls after ebus_shutdown returned */
} ld;

static int ld_handler(const ebus_event_t *ev, void *ctx)
{
	ld_sub *s = ctx;
	if (atomic_load(&ld.shutdown_returned))
		atomic_fetch_add(&ld.late_calls, 1);
	CHECK(ev->topic == ld.topics[s->topic]);
	CHECK_EQ_U64(ev->len, sizeof(ld_hdr));
	ld_hdr h;
	memcpy(&h, ev->data, sizeof h);
	CHECK(h.pub < P && h.topic == s->topic);
	CHECK_MSG(h.check == tu_mix3(h.pub, h.topic, h.seq), "corrupt event");
	CHECK_MSG(h.seq == s->next[h.pub], "topic %u publisher %u: seq %" PRIu64 ", want %" PRIu64, s->topic, h.pub,
	          h.seq, s->next[h.pub]);
	s->next[h.pub]++;
	s->calls++;
	/* a little work, so the lanes fill up and DISCARD finds events queued */
	uint64_t x = h.check;
	for (int i = 0; i < 64; i++)
		x = tu_mix(x);
	s->sink ^= x;
	return 0;
}

static void ld_release(void *data, size_t len, void *arg)
{
	ref_rec *r = arg;
	CHECK(data == r->payload && len == sizeof(ld_hdr));
	CHECK_MSG(atomic_fetch_add(&r->released, 1) == 0, "by-reference payload released twice");
}

static void *ld_publisher(void *arg)
{
	ld_pub *pb = arg;
	const unsigned p = pb->idx;
	uint64_t k = 0;
	for (;;) {
		const unsigned t = (unsigned)((k + p) % NT);
		ld_hdr h = {p, t, pb->accepted[t], 0};
		h.check = tu_mix3(h.pub, h.topic, h.seq);
		int rc;
		ref_rec *rec = NULL;
		if (k % 8 == 3) {
			rec = calloc(1, sizeof *rec);
			CHECK(rec);
			memcpy(rec->payload, &h, sizeof h);
			if (pb->nrefs == pb->caprefs) {
				pb->caprefs = pb->caprefs ? 2 * pb->caprefs : 256;
				pb->refs = realloc(pb->refs, pb->caprefs * sizeof *pb->refs);
				CHECK(pb->refs);
			}
			pb->refs[pb->nrefs++] = rec;
			rc = ebus_publish_ref(ld.topics[t], rec->payload, sizeof h, ld_release, rec);
		} else if (k % 8 == 5) {
			rc = ebus_publish_name(ld.bus, ld.names[t], &h, sizeof h);
		} else {
			rc = ebus_publish(ld.topics[t], &h, sizeof h);
		}
		k++;
		if (rc == EBUS_OK) {
			if (rec)
				rec->accepted = 1;
			pb->accepted[t]++;
			atomic_fetch_add_explicit(&ld.accepted_total, 1, memory_order_relaxed);
			continue;
		}
		CHECK_MSG(rc == EBUS_ERR_SHUTDOWN, "publisher %u: %s", p, ebus_errname(rc));
		pb->rejected++;
		break;
	}
	/* from now on, every publish is refused */
	ld_hdr h = {p, 0, pb->accepted[0], 0};
	h.check = tu_mix3(h.pub, h.topic, h.seq);
	ref_rec never = {0};
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(ebus_publish(ld.topics[0], &h, sizeof h), EBUS_ERR_SHUTDOWN);
		CHECK_EQ_INT(ebus_publish_ex(ld.topics[0], &h, sizeof h, EBUS_FULL_FAIL), EBUS_ERR_SHUTDOWN);
		CHECK_EQ_INT(ebus_publish_ref(ld.topics[0], never.payload, sizeof h, ld_release, &never),
		             EBUS_ERR_SHUTDOWN);
		CHECK_EQ_INT(ebus_publish_name(ld.bus, ld.names[0], &h, sizeof h), EBUS_ERR_SHUTDOWN);
		pb->rejected += 4;
	}
	CHECK_EQ_INT(atomic_load(&never.released), 0);
	return NULL;
}

static void under_load(ebus_shutdown_mode mode)
{
	memset(&ld, 0, sizeof ld);
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	cfg.lane_capacity = 64;
	cfg.full_policy = EBUS_FULL_BLOCK;
	cfg.spin_iterations = 64;
	CHECK_OK(ebus_create(&cfg, &ld.bus));
	for (unsigned t = 0; t < NT; t++) {
		snprintf(ld.names[t], sizeof ld.names[t], "shutdown.load.%u", t);
		CHECK_OK(ebus_topic(ld.bus, ld.names[t], &ld.topics[t]));
		ld.subs[t].topic = t;
		ebus_sub_id id;
		CHECK_OK(ebus_subscribe(ld.topics[t], ld_handler, &ld.subs[t], &id));
	}
	for (unsigned p = 0; p < P; p++) {
		ld.pubs[p].idx = p;
		tu_thread_create(&ld.pubs[p].th, ld_publisher, &ld.pubs[p]);
	}
	/* shut down in the middle of the load */
	tu_wait_u64_at_least(&ld.accepted_total, THRESH);
	CHECK_OK(ebus_shutdown(ld.bus, mode));
	atomic_store(&ld.shutdown_returned, 1);
	CHECK_EQ_INT(ebus_shutdown(ld.bus, mode), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_publish(ld.topics[1], "late", 4), EBUS_ERR_SHUTDOWN);
	for (unsigned p = 0; p < P; p++)
		tu_thread_join(ld.pubs[p].th);

	uint64_t accepted = 0, rejected = 1 /* the main thread's */, delivered = 0;
	for (unsigned p = 0; p < P; p++) {
		rejected += ld.pubs[p].rejected;
		for (unsigned t = 0; t < NT; t++) {
			accepted += ld.pubs[p].accepted[t];
			const uint64_t got = ld.subs[t].next[p];
			if (mode == EBUS_SHUTDOWN_DRAIN)
				CHECK_MSG(got == ld.pubs[p].accepted[t],
				          "DRAIN: publisher %u topic %u: %" PRIu64 " accepted, %" PRIu64 " delivered", p, t,
				          ld.pubs[p].accepted[t], got);
			else
				CHECK_MSG(got <= ld.pubs[p].accepted[t],
				          "DISCARD: publisher %u topic %u: %" PRIu64 " accepted, %" PRIu64 " delivered", p,
				          t, ld.pubs[p].accepted[t], got);
		}
	}
	for (unsigned t = 0; t < NT; t++)
		delivered += ld.subs[t].calls;
	CHECK_EQ_U64(atomic_load(&ld.late_calls), 0);

	ebus_stats_t st = tu_stats(ld.bus);
	printf("   %s: %" PRIu64 " accepted, %" PRIu64 " delivered, %" PRIu64 " discarded, %" PRIu64 " refused\n",
	       mode == EBUS_SHUTDOWN_DRAIN ? "DRAIN" : "DISCARD", accepted, delivered, st.dropped_shutdown,
	       rejected);
	CHECK(accepted >= THRESH);
	CHECK_EQ_U64(st.published, accepted);
	CHECK_EQ_U64(st.delivered, delivered);
	CHECK_EQ_U64(st.handler_calls, delivered);
	CHECK_EQ_U64(st.dropped_no_subscriber, 0);
	CHECK_EQ_U64(st.rejected_shutdown, rejected);
	CHECK_EQ_U64(st.queued, 0);
	if (mode == EBUS_SHUTDOWN_DRAIN)
		CHECK_EQ_U64(st.dropped_shutdown, 0);
	CHECK_EQ_U64(st.delivered + st.dropped_shutdown, accepted);
	CHECK_STATS_BALANCED(st);
	/* drained: every accepted by-reference payload was delivered and released */
	if (mode == EBUS_SHUTDOWN_DRAIN)
		for (unsigned p = 0; p < P; p++)
			for (size_t i = 0; i < ld.pubs[p].nrefs; i++)
				CHECK_EQ_INT(atomic_load(&ld.pubs[p].refs[i]->released), ld.pubs[p].refs[i]->accepted);

	ebus_destroy(ld.bus);
	uint64_t nref = 0;
	for (unsigned p = 0; p < P; p++) {
		for (size_t i = 0; i < ld.pubs[p].nrefs; i++) {
			ref_rec *r = ld.pubs[p].refs[i];
			CHECK_MSG(atomic_load(&r->released) == r->accepted,
			          "by-reference payload (accepted %d) released %d times", r->accepted,
			          atomic_load(&r->released));
			nref += r->accepted;
			free(r);
		}
		free(ld.pubs[p].refs);
	}
	printf("   %" PRIu64 " accepted by reference, each released once\n", nref);
}

static void test_drain_under_load(void)
{
	under_load(EBUS_SHUTDOWN_DRAIN);
}

static void test_discard_under_load(void)
{
	under_load(EBUS_SHUTDOWN_DISCARD);
}

/* ---- 2. a publisher blocked on a full lane ------------------------------------------ */

static struct {
	ebus_t *bus;
	ebus_topic_t *topic;
	tu_gate gate;
	uint64_t calls;
	ref_rec recs[16];
	unsigned nrecs_accepted, nfull;
	_Atomic int blocking;
	ebus_shutdown_mode mode;
	int same_lane;
	int shutdown_rc;
} bl;

static int bl_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	if (bl.calls++ == 0)
		tu_gate_pass(&bl.gate);
	return 0;
}

static void bl_release(void *data, size_t len, void *arg)
{
	ref_rec *r = arg;
	CHECK(data == r->payload && len == 8);
	CHECK_MSG(atomic_fetch_add(&r->released, 1) == 0, "by-reference payload released twice");
}

static void *bl_publisher(void *arg)
{
	(void)arg;
	if (bl.same_lane) {
		/* the gated event comes from this thread's lane: the executor's batch
		 * ends with it, so what follows stays queued until it looks again */
		uint64_t first = 0;
		CHECK_OK(ebus_publish(bl.topic, &first, sizeof first));
		tu_gate_wait_entered(&bl.gate, 1);
	}
	/* fill the lane by reference with the bus's FAIL policy until it is full */
	for (unsigned i = 0; i < 16; i++) {
		ref_rec *r = &bl.recs[i];
		r->payload[0] = i;
		int rc = ebus_publish_ref(bl.topic, r->payload, 8, bl_release, r);
		if (rc == EBUS_OK) {
			r->accepted = 1;
			bl.nrecs_accepted++;
			continue;
		}
		CHECK_EQ_INT(rc, EBUS_ERR_FULL);
		bl.nfull++;
		break;
	}
	CHECK_MSG(bl.nfull == 1, "a lane of capacity 4 never filled up");
	/* now block (no timeout) on the full lane */
	atomic_store(&bl.blocking, 1);
	uint64_t v = 99;
	int rc = ebus_publish_ex(bl.topic, &v, sizeof v, EBUS_FULL_BLOCK);
	CHECK_MSG(rc == EBUS_ERR_SHUTDOWN, "blocked publisher: %s, want EBUS_ERR_SHUTDOWN", ebus_errname(rc));
	return NULL;
}

static void *bl_shutdown(void *arg)
{
	(void)arg;
	bl.shutdown_rc = ebus_shutdown(bl.bus, bl.mode);
	return NULL;
}

static void blocked_publisher(ebus_shutdown_mode mode, int same_lane)
{
	memset(&bl, 0, sizeof bl);
	bl.mode = mode;
	bl.same_lane = same_lane;
	tu_gate_init(&bl.gate);
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 1;
	cfg.lane_capacity = 4;
	cfg.full_policy = EBUS_FULL_FAIL;
	CHECK_OK(ebus_create(&cfg, &bl.bus));
	CHECK_OK(ebus_topic(bl.bus, "shutdown.blocked", &bl.topic));
	ebus_sub_id id;
	CHECK_OK(ebus_subscribe(bl.topic, bl_handler, NULL, &id));
	pthread_t pub, sd;
	if (!same_lane) {
		/* the executor gets stuck in the handler with the main thread's event */
		uint64_t first = 0;
		CHECK_OK(ebus_publish(bl.topic, &first, sizeof first));
		tu_gate_wait_entered(&bl.gate, 1);
	}
	tu_thread_create(&pub, bl_publisher, NULL);
	while (!atomic_load(&bl.blocking))
		sched_yield();
	for (int i = 0; i < 1000; i++) /* let it reach the wait (not needed for correctness) */
		sched_yield();
	tu_thread_create(&sd, bl_shutdown, NULL);
	/* the blocked publisher returns while the executor is still stuck */
	tu_thread_join(pub);
	/* give the shutdown time to tell the executor (only makes a DISCARD of the
	 * queued events likelier; the checks hold either way) */
	for (int i = 0; i < 10000; i++)
		sched_yield();
	tu_gate_open(&bl.gate);
	tu_thread_join(sd);
	CHECK_OK(bl.shutdown_rc);

	ebus_stats_t st = tu_stats(bl.bus);
	const uint64_t accepted = 1 + bl.nrecs_accepted;
	printf("   %s%s: lane took %u by reference, then FULL; %" PRIu64 " delivered, %" PRIu64 " discarded\n",
	       mode == EBUS_SHUTDOWN_DRAIN ? "DRAIN" : "DISCARD", same_lane ? " (same lane)" : "",
	       bl.nrecs_accepted, bl.calls, st.dropped_shutdown);
	if (same_lane) /* the event in dispatch may still hold its slot */
		CHECK(bl.nrecs_accepted == 2 || bl.nrecs_accepted == 3);
	else /* the publisher's own lane, never taken from: capacity 4 holds 3 */
		CHECK_EQ_INT(bl.nrecs_accepted, 3);
	CHECK_EQ_U64(st.published, accepted);
	CHECK_EQ_U64(st.rejected_full, 1);
	CHECK_EQ_U64(st.rejected_shutdown, 1);
	CHECK_EQ_U64(st.delivered, bl.calls);
	CHECK_EQ_U64(st.delivered + st.dropped_shutdown, accepted);
	if (mode == EBUS_SHUTDOWN_DRAIN)
		CHECK_EQ_U64(bl.calls, accepted);
	CHECK_STATS_BALANCED(st);
	ebus_destroy(bl.bus);
	for (unsigned i = 0; i < 16; i++)
		CHECK_MSG(atomic_load(&bl.recs[i].released) == bl.recs[i].accepted,
		          "by-reference payload %u (accepted %d) released %d times", i, bl.recs[i].accepted,
		          atomic_load(&bl.recs[i].released));
	tu_gate_destroy(&bl.gate);
}

static void test_blocked_publisher_drain(void)
{
	blocked_publisher(EBUS_SHUTDOWN_DRAIN, 0);
	blocked_publisher(EBUS_SHUTDOWN_DRAIN, 1);
}

static void test_blocked_publisher_discard(void)
{
	blocked_publisher(EBUS_SHUTDOWN_DISCARD, 0);
	blocked_publisher(EBUS_SHUTDOWN_DISCARD, 1);
}

/* ---- 3. flush with a timeout -------------------------------------------------------- */

static tu_gate ft_gate;
static _Atomic uint64_t ft_calls;

static int ft_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	if (atomic_fetch_add(&ft_calls, 1) == 0)
		tu_gate_pass(&ft_gate);
	return 0;
}

static void test_flush_timeout(void)
{
	tu_gate_init(&ft_gate);
	atomic_store(&ft_calls, 0);
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = 2;
	ebus_t *bus = NULL;
	CHECK_OK(ebus_create(&cfg, &bus));
	ebus_topic_t *t = NULL;
	CHECK_OK(ebus_topic(bus, "shutdown.flush", &t));
	ebus_sub_id id;
	CHECK_OK(ebus_subscribe(t, ft_handler, NULL, &id));
	CHECK_OK(ebus_publish(t, "a", 1));
	CHECK_OK(ebus_publish(t, "b", 1));
	tu_gate_wait_entered(&ft_gate, 1);
	/* the handler cannot return before the gate opens: the flush must time out */
	CHECK_EQ_INT(ebus_flush(bus, 1000000), EBUS_ERR_TIMEOUT);
	CHECK_EQ_INT(ebus_flush(bus, 1), EBUS_ERR_TIMEOUT);
	CHECK_EQ_U64(atomic_load(&ft_calls), 1);
	tu_gate_open(&ft_gate);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(atomic_load(&ft_calls), 2);
	/* nothing queued: a timed flush succeeds */
	CHECK_OK(ebus_flush(bus, 1000000));
	ebus_stats_t st = tu_stats(bus);
	CHECK_EQ_U64(st.delivered, 2);
	CHECK_STATS_BALANCED(st);
	ebus_destroy(bus);
	tu_gate_destroy(&ft_gate);
}

/* ---- 4. flush / shutdown from inside a handler ----------------------------------------- */

static struct {
	ebus_t *bus, *other;
	ebus_topic_t *other_topic;
	int rc_flush, rc_flush_timed, rc_drain, rc_discard, rc_other_flush;
	unsigned calls;
	_Atomic unsigned other_calls;
} ih;

static int ih_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ctx;
	ih.calls++;
	if (ev->len == 1 && *(const char *)ev->data == 'x') {
		ih.rc_flush = ebus_flush(ih.bus, 0);
		ih.rc_flush_timed = ebus_flush(ih.bus, 1000000);
		ih.rc_drain = ebus_shutdown(ih.bus, EBUS_SHUTDOWN_DRAIN);
		ih.rc_discard = ebus_shutdown(ih.bus, EBUS_SHUTDOWN_DISCARD);
		/* another bus is not this handler's: flushing it is fine */
		CHECK_OK(ebus_publish(ih.other_topic, "o", 1));
		ih.rc_other_flush = ebus_flush(ih.other, 0);
		CHECK_EQ_INT(atomic_load(&ih.other_calls), 1);
	}
	return 0;
}

static int ih_other_handler(const ebus_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	atomic_fetch_add(&ih.other_calls, 1);
	return 0;
}

static void from_handler(int synchronous)
{
	memset(&ih, 0, sizeof ih);
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.synchronous = synchronous;
	cfg.executors = synchronous ? 0 : 2;
	CHECK_OK(ebus_create(&cfg, &ih.bus));
	ebus_config_t ocfg;
	memset(&ocfg, 0, sizeof ocfg);
	ocfg.executors = 1;
	CHECK_OK(ebus_create(&ocfg, &ih.other));
	ebus_topic_t *t = NULL;
	CHECK_OK(ebus_topic(ih.bus, "shutdown.inside", &t));
	CHECK_OK(ebus_topic(ih.other, "other.bus", &ih.other_topic));
	ebus_sub_id id;
	CHECK_OK(ebus_subscribe(t, ih_handler, NULL, &id));
	CHECK_OK(ebus_subscribe(ih.other_topic, ih_other_handler, NULL, &id));
	CHECK_OK(ebus_publish(t, "x", 1));
	CHECK_OK(ebus_flush(ih.bus, 0));
	CHECK_EQ_INT(ih.calls, 1);
	CHECK_EQ_INT(ih.rc_flush, EBUS_ERR_DEADLOCK);
	CHECK_EQ_INT(ih.rc_flush_timed, EBUS_ERR_DEADLOCK);
	CHECK_EQ_INT(ih.rc_drain, EBUS_ERR_DEADLOCK);
	CHECK_EQ_INT(ih.rc_discard, EBUS_ERR_DEADLOCK);
	CHECK_EQ_INT(ih.rc_other_flush, EBUS_OK);
	/* the bus was not shut down */
	CHECK_OK(ebus_publish(t, "y", 1));
	CHECK_OK(ebus_flush(ih.bus, 0));
	CHECK_EQ_INT(ih.calls, 2);
	CHECK_OK(ebus_shutdown(ih.bus, EBUS_SHUTDOWN_DRAIN));
	ebus_stats_t st = tu_stats(ih.bus);
	CHECK_EQ_U64(st.published, 2);
	CHECK_EQ_U64(st.delivered, 2);
	CHECK_EQ_U64(st.rejected_shutdown, 0);
	ebus_destroy(ih.bus);
	ebus_destroy(ih.other);
}

static void test_from_handler_async(void)
{
	from_handler(0);
}

static void test_from_handler_sync(void)
{
	from_handler(1);
}

int main(void)
{
	P = (unsigned)tu_param("EBUS_STRESS_PUBLISHERS", 4, 16);
	THRESH = tu_param("EBUS_STRESS_EVENTS", 20000, 1000000);
	CHECK(P >= 1 && P <= MAXP);
	TU_RUN(test_flush_timeout);
	TU_RUN(test_from_handler_async);
	TU_RUN(test_from_handler_sync);
	TU_RUN(test_blocked_publisher_drain);
	TU_RUN(test_blocked_publisher_discard);
	TU_RUN(test_drain_under_load);
	TU_RUN(test_discard_under_load);
	return tu_finish("test_shutdown");
}
