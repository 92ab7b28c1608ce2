/*
 * A self-checking publish/subscribe load, shared by test_stress,
 * test_oversubscribe and test_concurrency.
 *
 * P publisher threads publish E events each, round-robin over T topics
 * (event k of publisher p goes to topic (k + p) % T), every topic has S
 * subscribers. Each payload carries (publisher, topic, sequence per
 * (publisher, topic), check = mix(publisher, topic, sequence)), a length
 * derived from them, and filler words derived from the check value, so a
 * subscriber can verify every byte. Every subscriber checks, per publisher,
 * that sequences arrive 0, 1, 2, ... with no gap, no duplicate and no
 * reordering; at the end each has seen exactly its share, and the bus's
 * statistics account for every event. An overlap detector counts calls of
 * one subscription running on two threads at once.
 *
 * Under FAIL/DROP policies a rejected publish is retried with the same
 * sequence number, so a rejected event that was delivered anyway shows up as
 * a duplicate.
 */
#ifndef EBUS_STRESS_COMMON_H
#define EBUS_STRESS_COMMON_H

#include "testutil.h"

typedef struct sc_params {
	const char *label;
	unsigned P, T, S;
	uint64_t E;                   /* events per publisher */
	unsigned executors;
	int synchronous;
	unsigned lane_capacity;       /* 0: default */
	ebus_full_policy bus_policy;  /* the config's full_policy */
	ebus_full_policy call_policy; /* != DEFAULT: publish with ebus_publish_ex */
	ebus_wait wait;
	unsigned yield_every;         /* handler yields every N calls (widens overlap windows) */
	unsigned big_every;           /* every Nth event per (publisher, topic) above EBUS_INLINE_MAX */
	unsigned ref_every;           /* every Nth event by reference */
	unsigned name_every;          /* every Nth event by name */
} sc_params;

typedef struct sc_hdr {
	uint32_t pub;
	uint32_t topic;
	uint64_t seq;
	uint64_t check;
} sc_hdr; /* 24 bytes: with 0..2 filler words the event stays inline */

#define SC_MAX_WORDS 36
#define SC_MAX_LEN (sizeof(sc_hdr) + 8 * SC_MAX_WORDS)

struct sc_run;

typedef struct sc_sub {
	struct sc_run *run;
	unsigned topic;
	uint64_t *next; /* next expected sequence, per publisher */
	uint64_t count;
	_Atomic int in;  /* overlap detector */
	pthread_t thread;
	int thread_set;
	ebus_sub_id id;
} sc_sub;

typedef struct sc_pub {
	struct sc_run *run;
	unsigned idx;
	pthread_t thread;
	uint64_t full_rets, drop_rets, ref_ok;
} sc_pub;

typedef struct sc_run {
	const sc_params *prm;
	ebus_t *bus;
	ebus_topic_t **topics;
	char (*names)[32];
	sc_sub *subs; /* T * S */
	sc_pub *pubs;
	pthread_barrier_t start;
	_Atomic uint64_t overlaps;
	_Atomic uint64_t releases;
} sc_run;

static _Thread_local int sc_my_pub = -1;

static size_t sc_len(const sc_params *prm, uint64_t seq, uint64_t check)
{
	if (prm->big_every && seq % prm->big_every == prm->big_every - 1)
		return sizeof(sc_hdr) + 8 * (size_t)(1 + check % SC_MAX_WORDS);
	return sizeof(sc_hdr) + 8 * (size_t)(check % 3);
}

static int sc_handler(const ebus_event_t *ev, void *ctx)
{
	sc_sub *s = ctx;
	sc_run *r = s->run;
	const sc_params *prm = r->prm;
	if (atomic_fetch_add(&s->in, 1) != 0)
		atomic_fetch_add(&r->overlaps, 1);
	CHECK(ev->topic == r->topics[s->topic]);
	CHECK_MSG(ev->len >= sizeof(sc_hdr) && ev->len <= SC_MAX_LEN, "bad length %zu", ev->len);
	sc_hdr h;
	memcpy(&h, ev->data, sizeof h);
	CHECK_MSG(h.topic == s->topic && h.pub < prm->P, "event for topic %u publisher %u reached topic %u",
	          h.topic, h.pub, s->topic);
	CHECK_MSG(h.check == tu_mix3(h.pub, h.topic, h.seq), "corrupt event (pub %u topic %u seq %" PRIu64 ")",
	          h.pub, h.topic, h.seq);
	CHECK_MSG(ev->len == sc_len(prm, h.seq, h.check), "seq %" PRIu64 ": length %zu, want %zu", h.seq,
	          ev->len, sc_len(prm, h.seq, h.check));
	const unsigned char *w = (const unsigned char *)ev->data + sizeof h;
	for (size_t i = 0; i < (ev->len - sizeof h) / 8; i++) {
		uint64_t x;
		memcpy(&x, w + 8 * i, 8);
		CHECK_MSG(x == tu_mix(h.check + i), "seq %" PRIu64 ": filler word %zu corrupt", h.seq, i);
	}
	CHECK_MSG(h.seq == s->next[h.pub],
	          "topic %u publisher %u: got seq %" PRIu64 ", expected %" PRIu64 " (%s)", s->topic, h.pub,
	          h.seq, s->next[h.pub], h.seq < s->next[h.pub] ? "duplicate or reordered" : "gap: lost events");
	s->next[h.pub]++;
	s->count++;
	if (prm->synchronous) {
		CHECK_MSG(sc_my_pub == (int)h.pub, "synchronous bus: event of publisher %u delivered on thread of %d",
		          h.pub, sc_my_pub);
	} else {
		if (!s->thread_set) {
			s->thread = pthread_self();
			s->thread_set = 1;
		}
		CHECK_MSG(pthread_equal(s->thread, pthread_self()), "topic %u delivered by two threads", s->topic);
	}
	if (prm->yield_every && s->count % prm->yield_every == 0)
		sched_yield();
	atomic_fetch_sub(&s->in, 1);
	return 0;
}

static void sc_release(void *data, size_t len, void *arg)
{
	sc_run *r = arg;
	CHECK(len >= sizeof(sc_hdr));
	free(data);
	atomic_fetch_add(&r->releases, 1);
}

static void *sc_publisher(void *arg)
{
	sc_pub *pb = arg;
	sc_run *r = pb->run;
	const sc_params *prm = r->prm;
	const unsigned p = pb->idx;
	uint64_t *seqs = calloc(prm->T, sizeof *seqs);
	CHECK(seqs);
	uint64_t words[(SC_MAX_LEN + 7) / 8];
	sc_my_pub = (int)p;
	pthread_barrier_wait(&r->start);
	for (uint64_t k = 0; k < prm->E; k++) {
		const unsigned t = (unsigned)((k + p) % prm->T);
		sc_hdr h = {p, t, seqs[t]++, 0};
		h.check = tu_mix3(h.pub, h.topic, h.seq);
		const size_t len = sc_len(prm, h.seq, h.check);
		memcpy(words, &h, sizeof h);
		for (size_t i = 0; i < (len - sizeof h) / 8; i++)
			words[sizeof h / 8 + i] = tu_mix(h.check + i);
		const int by_ref = prm->ref_every && k % prm->ref_every == prm->ref_every / 2;
		const int by_name = !by_ref && prm->name_every && k % prm->name_every == 0;
		void *ref = NULL;
		if (by_ref) {
			ref = malloc(len);
			CHECK(ref);
			memcpy(ref, words, len);
		}
		for (;;) {
			int rc;
			if (by_ref)
				rc = ebus_publish_ref(r->topics[t], ref, len, sc_release, r);
			else if (by_name)
				rc = ebus_publish_name(r->bus, r->names[t], words, len);
			else if (prm->call_policy != EBUS_FULL_DEFAULT)
				rc = ebus_publish_ex(r->topics[t], words, len, prm->call_policy);
			else
				rc = ebus_publish(r->topics[t], words, len);
			if (rc == EBUS_OK)
				break;
			if (rc == EBUS_ERR_FULL)
				pb->full_rets++;
			else if (rc == EBUS_DROPPED)
				pb->drop_rets++;
			else
				CHECK_MSG(0, "publisher %u event %" PRIu64 ": %s", p, k, ebus_errname(rc));
			sched_yield(); /* lane full: let the executor drain, then retry */
		}
		pb->ref_ok += by_ref;
	}
	free(seqs);
	return NULL;
}

/* Events publisher p sends to topic t. */
static uint64_t sc_expected(const sc_params *prm, unsigned p, unsigned t)
{
	uint64_t k0 = (t + prm->T - p % prm->T) % prm->T; /* first k with (k + p) % T == t */
	return k0 < prm->E ? (prm->E - 1 - k0) / prm->T + 1 : 0;
}

static void sc_print(const sc_params *prm)
{
	printf("   %s: P=%u T=%u S=%u E=%" PRIu64 " executors=%u%s lane_capacity=%u bus_policy=%d "
	       "call_policy=%d wait=%d yield_every=%u big_every=%u ref_every=%u name_every=%u\n",
	       prm->label, prm->P, prm->T, prm->S, prm->E, prm->executors,
	       prm->synchronous ? " (synchronous)" : "", prm->lane_capacity, (int)prm->bus_policy,
	       (int)prm->call_policy, (int)prm->wait, prm->yield_every, prm->big_every, prm->ref_every,
	       prm->name_every);
	fflush(stdout);
}

static void sc_run_once(const sc_params *prm)
{
	sc_print(prm);
	CHECK(prm->P > 0 && prm->T > 0 && prm->S > 0);
	sc_run r;
	memset(&r, 0, sizeof r);
	r.prm = prm;
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = prm->executors;
	cfg.synchronous = prm->synchronous;
	cfg.lane_capacity = prm->lane_capacity;
	cfg.full_policy = prm->bus_policy;
	cfg.wait = prm->wait;
	cfg.spin_iterations = 256;
	CHECK_OK(ebus_create(&cfg, &r.bus));

	r.topics = calloc(prm->T, sizeof *r.topics);
	r.names = calloc(prm->T, sizeof *r.names);
	r.subs = calloc((size_t)prm->T * prm->S, sizeof *r.subs);
	r.pubs = calloc(prm->P, sizeof *r.pubs);
	CHECK(r.topics && r.names && r.subs && r.pubs);
	for (unsigned t = 0; t < prm->T; t++) {
		snprintf(r.names[t], sizeof r.names[t], "stress.%s.t%u", prm->synchronous ? "sync" : "async", t);
		CHECK_OK(ebus_topic(r.bus, r.names[t], &r.topics[t]));
		for (unsigned s = 0; s < prm->S; s++) {
			sc_sub *sb = &r.subs[t * prm->S + s];
			sb->run = &r;
			sb->topic = t;
			sb->next = calloc(prm->P, sizeof *sb->next);
			CHECK(sb->next);
			CHECK_OK(ebus_subscribe(r.topics[t], sc_handler, sb, &sb->id));
		}
	}

	CHECK(pthread_barrier_init(&r.start, NULL, prm->P + 1) == 0);
	for (unsigned p = 0; p < prm->P; p++) {
		r.pubs[p].run = &r;
		r.pubs[p].idx = p;
		tu_thread_create(&r.pubs[p].thread, sc_publisher, &r.pubs[p]);
	}
	pthread_barrier_wait(&r.start);
	uint64_t full_rets = 0, drop_rets = 0, ref_ok = 0;
	for (unsigned p = 0; p < prm->P; p++) {
		tu_thread_join(r.pubs[p].thread);
		full_rets += r.pubs[p].full_rets;
		drop_rets += r.pubs[p].drop_rets;
		ref_ok += r.pubs[p].ref_ok;
	}
	CHECK_OK(ebus_flush(r.bus, 0));

	/* never two threads in one subscription's handler */
	CHECK_EQ_U64(atomic_load(&r.overlaps), 0);
	/* exactly once, in order: every subscriber saw each publisher's share */
	const uint64_t total = (uint64_t)prm->P * prm->E;
	uint64_t sum = 0;
	for (unsigned t = 0; t < prm->T; t++)
		for (unsigned s = 0; s < prm->S; s++) {
			sc_sub *sb = &r.subs[t * prm->S + s];
			uint64_t c = 0;
			for (unsigned p = 0; p < prm->P; p++) {
				uint64_t want = sc_expected(prm, p, t);
				CHECK_MSG(sb->next[p] == want,
				          "topic %u subscriber %u publisher %u: %" PRIu64 " events, want %" PRIu64, t,
				          s, p, sb->next[p], want);
				c += want;
			}
			CHECK_EQ_U64(sb->count, c);
			if (s == 0)
				sum += c;
		}
	CHECK_EQ_U64(sum, total);
	CHECK_EQ_U64(atomic_load(&r.releases), ref_ok);

	ebus_stats_t st = tu_stats(r.bus);
	CHECK_EQ_U64(st.published, total);
	CHECK_EQ_U64(st.delivered, total);
	CHECK_EQ_U64(st.handler_calls, total * prm->S);
	CHECK_EQ_U64(st.handler_errors, 0);
	CHECK_EQ_U64(st.dropped_no_subscriber, 0);
	CHECK_EQ_U64(st.dropped_shutdown, 0);
	CHECK_EQ_U64(st.rejected_full, full_rets);
	CHECK_EQ_U64(st.dropped_full, drop_rets);
	CHECK_EQ_U64(st.rejected_timeout, 0);
	CHECK_EQ_U64(st.rejected_shutdown, 0);
	CHECK_EQ_U64(st.queued, 0);
	CHECK_STATS_BALANCED(st);
	printf("   ok: %" PRIu64 " events, %" PRIu64 " handler calls, %" PRIu64 " FULL and %" PRIu64
	       " DROPPED retried, %" PRIu64 " by reference, %" PRIu64 " parks\n",
	       total, st.handler_calls, full_rets, drop_rets, ref_ok, st.parks);

	ebus_destroy(r.bus);
	CHECK_EQ_U64(atomic_load(&r.releases), ref_ok);
	pthread_barrier_destroy(&r.start);
	for (unsigned i = 0; i < prm->T * prm->S; i++)
		free(r.subs[i].next);
	free(r.subs);
	free(r.pubs);
	free(r.topics);
	free(r.names);
}

#endif /* EBUS_STRESS_COMMON_H */
