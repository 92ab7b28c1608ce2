/*
 * Publishing (bus layer, beside bus.c): every way an event enters a bus.
 * ebus_publish's fast path, the general path (every payload kind and full
 * policy), by name (with the thread's topic cache), batches and claims.
 * Each call validates its arguments first (bad input changes nothing),
 * then works on the calling thread's lanes through the producer's view of
 * lane.h; a synchronous bus goes to sync.c.
 */
#include "bus.h"

#include <stdlib.h>

/* ---- publish --------------------------------------------------------------- */

/*
 * Copies 1..EBUS_INLINE_MAX bytes with fixed-size moves (the last one
 * overlapping when len is not a multiple), so the hot path calls no memcpy.
 */
_Static_assert(EBUS_INLINE_MAX >= 32 && EBUS_INLINE_MAX <= 48, "copy_small covers 1..48 bytes");
static inline void copy_small(unsigned char *d, const unsigned char *src, size_t len)
{
	if (EBUS_LIKELY(len >= 16)) {
		memcpy(d, src, 16);
		if (len > 32)
			memcpy(d + 16, src + 16, 16);
		memcpy(d + len - 16, src + len - 16, 16);
	} else if (len >= 8) {
		memcpy(d, src, 8);
		memcpy(d + len - 8, src + len - 8, 8);
	} else if (len >= 4) {
		memcpy(d, src, 4);
		memcpy(d + len - 4, src + len - 4, 4);
	} else if (len) {
		d[0] = src[0];
		d[len / 2] = src[len / 2];
		d[len - 1] = src[len - 1];
	}
}

static inline void slot_fill_inline(struct ebus_slot *s, struct ebus_topic_s *t, const void *data,
                                    size_t len)
{
	s->topic = t;
	s->len = (uint32_t)len;
	s->kind = SLOT_INLINE;
	copy_small(s->u.data, data, len);
}

/* Room for a payload above the slot: a chunk of the lane's arena (made on
 * first use), or for a payload above a quarter of the arena a buffer from
 * the allocator (counted). Sets the slot's kind and pointer (*out).
 * EBUS_ERR_FULL: the arena has no room now (the caller applies the full
 * policy: the arena is part of the lane's capacity); EBUS_ERR_NOMEM.
 * Either leaves nothing behind. */
static int slot_payload(struct ebus *bus, struct lane *lane, struct ebus_slot *s, size_t len,
                        void **out)
{
	void *p;
	if (EBUS_LIKELY(len <= lane->arena_size / 4)) {
		if (EBUS_UNLIKELY(!lane->arena) && !ebus_lane_arena_new(lane, &bus->alloc))
			return EBUS_ERR_NOMEM;
		if (!(p = ebus_lane_arena_take(lane, len, &s->u.arena.end)))
			return EBUS_ERR_FULL;
		s->kind = SLOT_ARENA;
		s->u.arena.ptr = p;
		*out = p;
		return EBUS_OK;
	}
	if (!(p = ebus_alloc(&bus->alloc, len, 16)))
		return EBUS_ERR_NOMEM;
	ctr_add(&lane->payload_allocs, 1);
	s->kind = SLOT_OWNED;
	s->u.ref.ptr = p;
	*out = p;
	return EBUS_OK;
}

/* Gives back what slot_payload took for a slot that will not be committed
 * (the producer's side: the arena chunk was the last one taken). */
static void slot_payload_undo(struct ebus *bus, struct lane *lane, struct ebus_slot *s,
                              uint64_t arena_head)
{
	if (s->kind == SLOT_OWNED)
		ebus_free(&bus->alloc, s->u.ref.ptr, s->len);
	else if (s->kind == SLOT_ARENA)
		lane->arena_head = arena_head;
}

/* Fills a reserved slot in the general case: a reference, an inline copy
 * or a copy into the arena or an allocated buffer. EBUS_ERR_NOMEM and
 * EBUS_ERR_FULL (the arena: see slot_payload) leave the slot uncommitted
 * (nothing happened). */
static int slot_fill(struct ebus *bus, struct lane *lane, struct ebus_slot *s,
                     struct ebus_topic_s *t, const void *data, size_t len, bool by_ref,
                     ebus_release_fn release, void *arg)
{
	if (EBUS_UNLIKELY(bus->timestamps)) /* same line as bus->state: no extra miss */
		s->ts = ebus_now_ns();
	if (!by_ref && EBUS_LIKELY(len <= EBUS_INLINE_MAX)) {
		slot_fill_inline(s, t, data, len);
		return EBUS_OK;
	}
	s->topic = t;
	s->len = (uint32_t)len;
	if (by_ref) {
		s->kind = SLOT_REF;
		s->u.ref.ptr = (void *)data;
		s->u.ref.release = release;
		s->u.ref.arg = arg;
	} else {
		void *copy;
		int rc = slot_payload(bus, lane, s, len, &copy);
		if (rc)
			return rc;
		memcpy(copy, data, len);
	}
	return EBUS_OK;
}

/* A block timeout for this thread's current publish, set only by
 * ebus_publish_name_ex for the length of its call (0: the bus's). Read on
 * the full-lane path alone, so the fast path does not pay for it. */
static _Thread_local uint64_t tls_block_ns;

/* The lane is full (arena_need 0: no slot; *s gets one if the policy
 * waits for it), or its arena has no room for arena_need bytes (the
 * caller's slot stays reserved meanwhile): the publish's policy decides. */
static int lane_full(struct ebus *bus, struct lane *lane, ebus_full_policy policy,
                     size_t arena_need, struct ebus_slot **s)
{
	switch (policy ? policy : bus->policy) {
	case EBUS_FULL_FAIL:
		ctr_add(&lane->rejected_full, 1);
		return EBUS_ERR_FULL;
	case EBUS_FULL_DROP:
		ctr_add(&lane->dropped_full, 1);
		return EBUS_DROPPED;
	default:
		return ebus_exec_wait_space(bus->exec[lane->exec], lane,
		                            ebus_deadline_after(EBUS_UNLIKELY(tls_block_ns) ? tls_block_ns
		                                                                            : bus->block_timeout_ns),
		                            arena_need, s);
	}
}

static void count_shutdown(struct ebus *bus)
{
	atomic_fetch_add_explicit(&bus->rejected_shutdown, 1, memory_order_relaxed);
}

/*
 * The start of a general publish or claim: the Dekker with ebus_shutdown
 * (announce in busy, light fence, then look at the state) and the calling
 * thread's lane for t (the next executor for an unordered topic), made on
 * first use. busy is 1 on return, whatever the result: the caller's exit
 * clears it.
 */
static inline int publish_enter(struct ebus *bus, struct producer *p, struct ebus_topic_s *t,
                                struct lane **out)
{
	unsigned exec;
	atomic_store_explicit(&p->busy, 1, memory_order_relaxed);
	ebus_fence_light();
	if (EBUS_UNLIKELY(atomic_load_explicit(&bus->state, memory_order_relaxed) != BUS_OPEN)) {
		count_shutdown(bus);
		return EBUS_ERR_SHUTDOWN;
	}
	exec = t->executor;
	if (EBUS_UNLIKELY(t->flags & EBUS_TOPIC_UNORDERED)) {
		/* Spread over the executors, round-robin per publishing thread. */
		exec = p->spread;
		p->spread = exec + 1 < bus->nexec ? exec + 1 : 0;
	}
	*out = p->lanes[exec];
	if (EBUS_UNLIKELY(!*out) && !(*out = ebus_producer_lane(bus, p, exec)))
		return EBUS_ERR_NOMEM;
	return EBUS_OK;
}

/* A full lane or arena refused the event (rc from lane_full):
 * counted, and a drop takes its sequence number (a gap, ebus_event_t.seq). */
static int publish_refused(struct ebus *bus, struct ebus_topic_s *t, uint64_t *seq, int rc)
{
	if (rc == EBUS_ERR_SHUTDOWN)
		count_shutdown(bus);
	else if (rc == EBUS_DROPPED)
		++*seq;
	ebus_topic_count_refused(t, rc);
	return rc;
}

/* The general asynchronous publish: every payload kind and full policy. */
static int publish_async(struct ebus_topic_s *t, const void *data, size_t len, bool by_ref,
                         ebus_release_fn release, void *arg, ebus_full_policy policy)
{
	struct ebus *bus = t->bus;
	struct producer *p = ebus_producer_get(bus);
	struct lane *lane;
	struct ebus_slot *s;
	uint64_t *seq;
	int rc;

	if (EBUS_UNLIKELY(!p || !(seq = ebus_producer_seq(p, t))))
		return EBUS_ERR_NOMEM;
	if ((rc = publish_enter(bus, p, t, &lane)) != EBUS_OK)
		goto out;
	if (EBUS_UNLIKELY(lane == p->claim_lane)) {
		rc = EBUS_ERR_CLAIM_OPEN; /* its slot is the next one: nothing may pass it */
		goto out;
	}
	s = ebus_lane_reserve(lane);
	if (EBUS_UNLIKELY(!s) && (rc = lane_full(bus, lane, policy, 0, &s)) != EBUS_OK) {
		publish_refused(bus, t, seq, rc);
		goto out;
	}
	while ((rc = slot_fill(bus, lane, s, t, data, len, by_ref, release, arg)) == EBUS_ERR_FULL) {
		/* the arena: the same policy as for slots */
		if ((rc = lane_full(bus, lane, policy, len, &s)) != EBUS_OK) {
			publish_refused(bus, t, seq, rc);
			goto out;
		}
	}
	if (rc)
		goto out;
	s->seq = ++*seq;
	ebus_lane_commit(lane);
	if (ebus_lane_needs_wake(lane))
		ebus_lane_wake(lane);
out:
	/* An open claim stays inside (shutdown waits for it). */
	atomic_store_explicit(&p->busy, p->claim_lane != NULL, memory_order_release);
	return rc;
}

static int publish(struct ebus_topic_s *t, const void *data, size_t len, bool by_ref,
                   ebus_release_fn release, void *arg, ebus_full_policy policy)
{
	if (EBUS_UNLIKELY(!t || (!data && len)))
		return EBUS_ERR_NULL;
	if (EBUS_UNLIKELY(t->flags & TOPIC_RESERVED))
		return EBUS_ERR_RESERVED;
	if (EBUS_UNLIKELY(len > (by_ref ? UINT32_MAX : t->bus->max_payload)))
		return EBUS_ERR_TOO_LARGE;
	if (EBUS_UNLIKELY((unsigned)policy > EBUS_FULL_DROP))
		return EBUS_ERR_CONFIG;
	if (t->bus->sync)
		return ebus_sync_publish(t, data, len, by_ref ? SLOT_REF : SLOT_INLINE, release, arg);
	return publish_async(t, data, len, by_ref, release, arg, policy);
}

static __attribute__((noinline)) int publish_slow(struct ebus_topic_s *t, const void *data,
                                                  size_t len)
{
	return publish(t, data, len, false, NULL, NULL, EBUS_FULL_DEFAULT);
}

/* Wakes a parked executor, then ends the publish call (busy = 0 only after
 * the wake: shutdown, once it sees busy = 0, may stop and free the
 * executor). Out of line, so the fast path saves no registers. */
static __attribute__((noinline)) int publish_wake(struct lane *lane, struct producer *p)
{
	ebus_lane_wake(lane);
	atomic_store_explicit(&p->busy, 0, memory_order_release);
	return EBUS_OK;
}

/* The two ways out of a fast path (the inline one and the arena one):
 * commit slot `pos` (and wake the executor if it parks), or give up
 * before anything was reserved and take the general way. */
static inline __attribute__((always_inline)) int fast_commit(struct lane *lane, struct producer *p,
                                                             unsigned pos)
{
	ebus_lane_publish(lane, pos + 1);
	if (ebus_lane_needs_wake(lane))
		return publish_wake(lane, p);
	atomic_store_explicit(&p->busy, 0, memory_order_release);
	return EBUS_OK;
}

static inline __attribute__((always_inline)) int fast_bail(struct producer *p,
                                                           struct ebus_topic_s *t,
                                                           const void *data, size_t len)
{
	atomic_store_explicit(&p->busy, 0, memory_order_release);
	return publish_slow(t, data, len);
}

/*
 * ebus_publish's path for a payload above the slot (the caller checked the
 * fast-path conditions and the length): the same steps with a chunk of
 * the lane's arena taken in line, and the copy. Anything unusual (no
 * arena yet, a chunk that would wrap the ring, a stale tail cache, a
 * payload above a quarter of the arena, a full lane) goes the general way
 * from the start, as the inline path does.
 */
static __attribute__((noinline)) int publish_arena(struct ebus_topic_s *t, const void *data,
                                                   size_t len, struct producer *p)
{
	struct ebus *bus = t->bus;
	struct lane *lane;
	struct ebus_slot *s;
	uint64_t head, need = (len + 15) & ~(uint64_t)15, off, size;
	unsigned pos;

	atomic_store_explicit(&p->busy, 1, memory_order_relaxed);
	ebus_fence_light();
	if (EBUS_UNLIKELY(atomic_load_explicit(&bus->state, memory_order_relaxed) != BUS_OPEN))
		goto bail;
	lane = p->lanes[t->executor];
	if (EBUS_UNLIKELY(!lane) || EBUS_UNLIKELY(!lane->arena))
		goto bail;
	size = lane->arena_size;
	head = lane->arena_head;
	off = head & (size - 1);
	if (EBUS_UNLIKELY(need > size / 4 || off + need > size ||
	                  head + need - lane->arena_tcache > size) ||
	    EBUS_UNLIKELY(!ebus_lane_space(lane, &pos, 1)))
		goto bail;
	lane->arena_head = head + need;
	s = ebus_lane_slot(lane, pos);
	s->topic = t;
	s->len = (uint32_t)len;
	s->kind = SLOT_ARENA;
	s->u.arena.ptr = lane->arena + off;
	s->u.arena.end = head + need;
	memcpy(s->u.arena.ptr, data, len);
	s->seq = ++p->seq[t->index];
	return fast_commit(lane, p, pos);
bail:
	return fast_bail(p, t, data, len);
}

/*
 * The hot path, top to bottom: an inline payload on an open asynchronous
 * bus whose calling thread already has its lane. The same steps as
 * publish_async (busy flag and light fence for the shutdown Dekker,
 * reserve, fill, commit, light fence and the park-word check), with no
 * call on the way. Anything else (first publish of the thread, a full
 * lane, a closing bus, a larger or empty payload, bad arguments, a
 * synchronous bus, a topic with flags) goes the general way, from the
 * start: nothing has been reserved when it bails out.
 */
int ebus_publish(ebus_topic_t *t, const void *data, size_t len)
{
	struct ebus *bus;
	struct producer *p;
	struct lane *lane;
	struct ebus_slot *s;
	uint64_t *seq;
	unsigned pos;

	if (EBUS_UNLIKELY(!t || !data))
		return publish_slow(t, data, len);
	bus = t->bus;
	p = ebus_tls_last;
	if (EBUS_UNLIKELY(t->flags || !p || p->bus_id != bus->id || t->index >= p->nseq))
		return publish_slow(t, data, len);
	if (EBUS_UNLIKELY(len - 1 >= bus->fast_max)) {
		if (bus->fast_max == EBUS_INLINE_MAX && len <= bus->max_payload)
			return publish_arena(t, data, len, p);
		return publish_slow(t, data, len);
	}
	seq = &p->seq[t->index];
	atomic_store_explicit(&p->busy, 1, memory_order_relaxed);
	ebus_fence_light();
	if (EBUS_UNLIKELY(atomic_load_explicit(&bus->state, memory_order_relaxed) != BUS_OPEN))
		goto bail;
	lane = p->lanes[t->executor];
	if (EBUS_UNLIKELY(!lane) || EBUS_UNLIKELY(!ebus_lane_space(lane, &pos, 1)))
		goto bail;
	s = ebus_lane_slot(lane, pos);
	slot_fill_inline(s, t, data, len);
	s->seq = ++*seq;
	return fast_commit(lane, p, pos);
bail:
	return fast_bail(p, t, data, len);
}

int ebus_publish_ex(ebus_topic_t *t, const void *data, size_t len, ebus_full_policy policy)
{
	return publish(t, data, len, false, NULL, NULL, policy);
}

int ebus_publish_ref(ebus_topic_t *t, void *data, size_t len, ebus_release_fn release, void *arg)
{
	return publish(t, data, len, true, release, arg, EBUS_FULL_DEFAULT);
}

int ebus_publish_internal(struct ebus_topic_s *t, const void *data, size_t len)
{
	if (t->bus->sync)
		return ebus_sync_publish(t, data, len, SLOT_INLINE, NULL, NULL);
	return publish_async(t, data, len, false, NULL, NULL, EBUS_FULL_DROP);
}

int ebus_self_source(ebus_t *bus, uint64_t *out)
{
	struct producer *p;
	if (!bus || !out)
		return EBUS_ERR_NULL;
	if (!(p = ebus_producer_get(bus)))
		return EBUS_ERR_NOMEM;
	*out = p->id;
	return EBUS_OK;
}

/* ---- batches ---------------------------------------------------------------- */

/*
 * ebus_publish_batch writes each lane's events past its p_tail and commits
 * every lane once at the end, so until something is committed the batch
 * can be undone. Messages are checked as they are reached (a topic once
 * per run of it); a bad one before any commit undoes the batch, so bad
 * input changes nothing. A lane found full commits everything written so
 * far (so that executors drain it and nothing of this batch waits behind a
 * blocked publish), and before that the rest of the batch is checked:
 * from then on only a failed copy (EBUS_ERR_NOMEM) or the full-lane policy
 * can stop it, and those report how many were accepted.
 */

/* Which check a message fails (the slow half of the checks). */
static int msg_error(const struct ebus *bus, const ebus_msg_t *m)
{
	if (!m->topic || (!m->data && m->len))
		return EBUS_ERR_NULL;
	if (m->topic->bus != bus)
		return EBUS_ERR_BUS_MISMATCH;
	if (m->topic->flags & TOPIC_RESERVED)
		return EBUS_ERR_RESERVED;
	return EBUS_ERR_TOO_LARGE;
}

static inline bool msg_bad(const struct ebus *bus, const ebus_msg_t *m)
{
	const struct ebus_topic_s *t = m->topic;
	return !t || t->bus != bus || (t->flags & TOPIC_RESERVED) || (!m->data && m->len) ||
	       m->len > bus->max_payload;
}

struct batch {
	struct ebus *bus;
	struct producer *p;
	ebus_full_policy policy;
	bool committed; /* something is visible: no undo from here on */
	unsigned nl;
	struct lane *lanes[EBUS_MAX_EXECUTORS]; /* written, in first-use order */
};

/* Checks msgs[0..n) and grows the sequence table for them (slow path:
 * before the first commit). */
static int batch_check_rest(struct batch *b, const ebus_msg_t *m, size_t n)
{
	uint32_t mx = 0;
	for (size_t i = 0; i < n; i++) {
		if (msg_bad(b->bus, &m[i]))
			return msg_error(b->bus, &m[i]);
		mx = m[i].topic->index > mx ? m[i].topic->index : mx;
	}
	if (mx >= b->p->nseq)
		return ebus_producer_seq_grow(b->p, mx);
	return EBUS_OK;
}

/* Commits what the batch wrote to each of its lanes (one p_tail store per
 * lane) and wakes their executors if parked. `last`: the lanes leave the
 * batch's list. */
static void batch_commit(struct batch *b, bool last)
{
	for (unsigned i = 0; i < b->nl; i++) {
		struct lane *l = b->lanes[i];
		unsigned p = __atomic_load_n(&l->ring.p_tail, __ATOMIC_RELAXED);
		if (l->batch_end != p) {
			if (EBUS_UNLIKELY(b->bus->timestamps)) /* one clock read per commit */
				for (uint64_t ts = ebus_now_ns(); p != l->batch_end; p++)
					ebus_lane_slot(l, p)->ts = ts;
			ebus_lane_publish(l, l->batch_end);
			if (ebus_lane_needs_wake(l))
				ebus_lane_wake(l);
			b->committed = true;
		}
		if (last)
			l->in_batch = false;
	}
}

/* Undoes an uncommitted batch: msgs[0..n) were written (their numbers
 * taken, owned copies made); nothing of it was visible. */
static __attribute__((noinline)) void batch_undo(struct batch *b, const ebus_msg_t *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b->p->seq[m[i].topic->index]--;
	for (unsigned i = 0; i < b->nl; i++) {
		struct lane *l = b->lanes[i];
		unsigned p = __atomic_load_n(&l->ring.p_tail, __ATOMIC_RELAXED);
		for (; p != l->batch_end; p++)
			slot_payload_undo(b->bus, l, ebus_lane_slot(l, p), l->arena_mark);
		l->arena_head = l->arena_mark;
		l->batch_end = __atomic_load_n(&l->ring.p_tail, __ATOMIC_RELAXED);
		l->in_batch = false;
	}
	b->nl = 0;
}

/* The batch's lane to executor `exec` (created on first use); its write
 * position is lane->batch_end. NULL: out of memory, or the lane of this
 * thread's open claim (the caller tells them apart). */
static struct lane *batch_lane(struct batch *b, unsigned exec)
{
	struct lane *l = b->p->lanes[exec];
	if (EBUS_UNLIKELY(!l) && !(l = ebus_producer_lane(b->bus, b->p, exec)))
		return NULL;
	if (EBUS_UNLIKELY(l == b->p->claim_lane))
		return NULL;
	if (!l->in_batch) {
		l->in_batch = true;
		l->batch_end = __atomic_load_n(&l->ring.p_tail, __ATOMIC_RELAXED);
		l->arena_mark = l->arena_head;
		b->lanes[b->nl++] = l;
	}
	return l;
}

/* No room at the lane's write position (lane->batch_end), or with
 * arena_need > 0 none in its arena: check the rest of the batch
 * (msgs[i..n)) if nothing is committed yet, commit, then the policy.
 * EBUS_OK: there is room now. */
static __attribute__((noinline)) int batch_full(struct batch *b, struct lane *lane,
                                                const ebus_msg_t *m, size_t left,
                                                size_t arena_need)
{
	struct ebus_slot *s;
	int rc;
	if (!b->committed && (rc = batch_check_rest(b, m, left)) != EBUS_OK)
		return rc;
	batch_commit(b, false);
	b->committed = true;
	rc = lane_full(b->bus, lane, b->policy, arena_need, &s);
	if (rc == EBUS_ERR_SHUTDOWN)
		count_shutdown(b->bus);
	if (rc != EBUS_OK)
		ebus_topic_count_refused(m->topic, rc);
	return rc;
}

/*
 * The loop. Per message: the topic compared with the previous one (a new
 * topic is checked, and its executor, lane and sequence number are looked
 * up, once per run), the length checked, the slot filled. The current
 * lane's write position, room and the run's sequence number stay in
 * registers.
 */
static int batch_async(struct batch *b, const ebus_msg_t *msgs, size_t n, size_t *accepted)
{
	struct ebus *bus = b->bus;
	struct producer *p = b->p;
	/* t: the current message's topic; run: what the next message's topic
	 * is compared with (no topic at all after an unordered one, whose next
	 * event goes to the next executor) */
	static const char no_run;
	struct ebus_topic_s *t = NULL;
	const void *run = &no_run;
	struct lane *lane = NULL;
	struct ebus_slot *buf = NULL;
	const ebus_msg_t *m = msgs, *end = msgs + n;
	uint64_t seq = 0, *seqp = NULL;
	size_t inline_max = bus->max_payload < EBUS_INLINE_MAX ? bus->max_payload : EBUS_INLINE_MAX;
	size_t dropped = 0;
	unsigned pos = 0, limit = 0, mask = 0; /* the lane's write position; room up to limit */
	int rc = EBUS_OK;

	for (; m != end; m++) {
		struct ebus_slot *s;
		size_t len = m->len;
		if (EBUS_UNLIKELY((const void *)m->topic != run)) {
			unsigned exec;
			if (seqp)
				*seqp = seq;
			run = t = m->topic;
			if (EBUS_UNLIKELY(!t || t->bus != bus || (t->flags & TOPIC_RESERVED))) {
				rc = msg_error(bus, m);
				break;
			}
			if (EBUS_UNLIKELY(t->index >= p->nseq) &&
			    (rc = ebus_producer_seq_grow(p, t->index)) != EBUS_OK)
				break;
			seqp = &p->seq[t->index];
			seq = *seqp;
			exec = t->executor;
			if (EBUS_UNLIKELY(t->flags & EBUS_TOPIC_UNORDERED)) {
				exec = p->spread;
				p->spread = exec + 1 < bus->nexec ? exec + 1 : 0;
				run = &no_run;
			}
			if (!lane || exec != lane->exec) {
				if (lane)
					lane->batch_end = pos;
				if (!(lane = batch_lane(b, exec))) {
					rc = p->lanes[exec] && p->lanes[exec] == p->claim_lane
					             ? EBUS_ERR_CLAIM_OPEN
					             : EBUS_ERR_NOMEM;
					break;
				}
				buf = lane->buf;
				mask = lane->ring.mask;
				pos = lane->batch_end;
				limit = pos + (mask - (pos - lane->c_cache));
			}
		}
		if (EBUS_UNLIKELY(pos == limit)) {
			unsigned room = ebus_lane_room(lane, pos, 1);
			if (room == 0) {
				lane->batch_end = pos;
				*seqp = seq;
				rc = batch_full(b, lane, m, (size_t)(end - m), 0); /* commits: pos is p_tail now */
				seqp = &p->seq[t->index];                      /* the table may have grown */
				if (rc == EBUS_DROPPED) {
					seq = ++*seqp; /* the gap of a drop */
					dropped++;
					rc = EBUS_OK;
					goto next;
				}
				if (rc != EBUS_OK)
					break;
				room = ebus_lane_room(lane, pos, 1); /* at least the slot lane_full found */
			}
			limit = pos + room;
		}
		s = &buf[pos & mask];
		if (EBUS_LIKELY(len - 1 < inline_max) && EBUS_LIKELY(m->data != NULL)) {
			slot_fill_inline(s, t, m->data, len);
		} else if (EBUS_UNLIKELY(msg_bad(bus, m))) {
			rc = msg_error(bus, m);
			break;
		} else if ((rc = slot_fill(bus, lane, s, t, m->data, len, false, NULL, NULL)) !=
		           EBUS_OK) {
			if (rc != EBUS_ERR_FULL)
				break;
			/* the arena is full: as for a full lane, then this message again */
			lane->batch_end = pos;
			*seqp = seq;
			rc = batch_full(b, lane, m, (size_t)(end - m), len);
			seqp = &p->seq[t->index];
			if (rc == EBUS_DROPPED) {
				seq = ++*seqp;
				dropped++;
				rc = EBUS_OK;
				goto next;
			}
			if (rc != EBUS_OK)
				break;
			m--; /* the slot at pos is still free: fill it now */
			goto next;
		}
		s->seq = ++seq;
		pos++;
	next:;
	}
	if (seqp)
		*seqp = seq;
	if (lane)
		lane->batch_end = pos;
	*accepted = (size_t)(m - msgs) - dropped;
	if (rc != EBUS_OK && !b->committed) {
		/* Bad input or out of memory before anything was visible. */
		batch_undo(b, msgs, *accepted);
		*accepted = 0;
	}
	batch_commit(b, true);
	return rc == EBUS_OK && dropped ? EBUS_DROPPED : rc;
}

int ebus_publish_batch(const ebus_msg_t *msgs, size_t n, ebus_full_policy policy,
                       size_t *accepted)
{
	struct ebus *bus;
	struct batch b;
	size_t ok = 0;
	int rc = EBUS_OK;

	if (accepted)
		*accepted = 0;
	if (n == 0)
		return EBUS_OK;
	if (!msgs || !msgs[0].topic)
		return EBUS_ERR_NULL;
	if ((unsigned)policy > EBUS_FULL_DROP)
		return EBUS_ERR_CONFIG;
	bus = msgs[0].topic->bus;
	if (bus->sync) {
		for (size_t i = 0; i < n; i++)
			if (msg_bad(bus, &msgs[i]))
				return msg_error(bus, &msgs[i]);
		for (size_t i = 0; i < n && rc == EBUS_OK; i++) {
			rc = ebus_sync_publish(msgs[i].topic, msgs[i].data, msgs[i].len, SLOT_INLINE,
			                       NULL, NULL);
			ok += rc == EBUS_OK;
		}
		goto out;
	}
	b.bus = bus;
	b.policy = policy;
	b.committed = false;
	b.nl = 0;
	if (!(b.p = ebus_producer_get(bus)))
		return EBUS_ERR_NOMEM;
	/* Dekker with ebus_shutdown, once for the batch (as publish_async). */
	atomic_store_explicit(&b.p->busy, 1, memory_order_relaxed);
	ebus_fence_light();
	if (EBUS_UNLIKELY(atomic_load_explicit(&bus->state, memory_order_relaxed) != BUS_OPEN)) {
		rc = batch_check_rest(&b, msgs, n); /* bad input first, as ebus_publish */
		if (rc == EBUS_OK) {
			count_shutdown(bus);
			rc = EBUS_ERR_SHUTDOWN;
		}
	} else {
		rc = batch_async(&b, msgs, n, &ok);
	}
	atomic_store_explicit(&b.p->busy, b.p->claim_lane != NULL, memory_order_release);
out:
	if (accepted)
		*accepted = ok;
	return rc;
}

/* ---- claims ----------------------------------------------------------------- */

_Thread_local struct producer *ebus_tls_claim __attribute__((tls_model("initial-exec")));

int ebus_claim(ebus_topic_t *t, size_t len, ebus_claim_t *c)
{
	struct ebus *bus;
	struct producer *p;
	struct lane *lane;
	struct ebus_slot *s;
	uint64_t *seq;
	int rc = EBUS_OK;

	if (!t || !c)
		return EBUS_ERR_NULL;
	bus = t->bus;
	if (t->flags & TOPIC_RESERVED)
		return EBUS_ERR_RESERVED;
	if (len > bus->max_payload)
		return EBUS_ERR_TOO_LARGE;
	if (bus->sync)
		return EBUS_ERR_UNSUPPORTED;
	if (ebus_tls_claim)
		return EBUS_ERR_CLAIM_OPEN;
	p = ebus_producer_get(bus);
	if (!p || !(seq = ebus_producer_seq(p, t)))
		return EBUS_ERR_NOMEM;
	if ((rc = publish_enter(bus, p, t, &lane)) != EBUS_OK)
		goto fail;
	s = ebus_lane_reserve(lane);
	if (EBUS_UNLIKELY(!s) && (rc = lane_full(bus, lane, EBUS_FULL_DEFAULT, 0, &s)) != EBUS_OK) {
		publish_refused(bus, t, seq, rc);
		goto fail;
	}
	s->topic = t;
	s->len = (uint32_t)len;
	p->claim_arena_head = lane->arena_head;
	if (len <= EBUS_INLINE_MAX) {
		s->kind = SLOT_INLINE;
		c->data = len ? s->u.data : NULL;
	} else {
		while ((rc = slot_payload(bus, lane, s, len, &c->data)) == EBUS_ERR_FULL &&
		       (rc = lane_full(bus, lane, EBUS_FULL_DEFAULT, len, &s)) == EBUS_OK)
			;
		if (rc != EBUS_OK) {
			if (rc != EBUS_ERR_NOMEM)
				publish_refused(bus, t, seq, rc);
			goto fail;
		}
	}
	c->len = len;
	c->priv_[0] = p;
	c->priv_[1] = s;
	c->priv_[2] = bus;
	p->claim_lane = lane;
	p->claim_slot = s;
	p->claim_topic = t;
	ebus_tls_claim = p;
	if (ebus_tls_last == p)
		ebus_tls_last = NULL; /* the fast path would not look for the claim */
	return EBUS_OK; /* busy stays 1 until the commit or abort */
fail:
	atomic_store_explicit(&p->busy, 0, memory_order_release);
	return rc;
}

/* The calling thread's open claim, if `c` is it. */
static struct producer *claim_of(const ebus_claim_t *c)
{
	struct producer *p = ebus_tls_claim;
	if (!p || c->priv_[0] != p || c->priv_[1] != p->claim_slot)
		return NULL;
	return p;
}

static void claim_close(struct producer *p, ebus_claim_t *c)
{
	p->claim_lane = NULL;
	p->claim_slot = NULL;
	p->claim_topic = NULL;
	ebus_tls_claim = NULL;
	if (c)
		c->priv_[0] = c->priv_[1] = c->priv_[2] = NULL;
	ebus_tls_last = p;
}

int ebus_claim_commit(ebus_claim_t *c)
{
	struct producer *p;
	struct lane *lane;
	struct ebus_slot *s;
	struct ebus *bus;
	if (!c)
		return EBUS_ERR_NULL;
	if (!(p = claim_of(c)))
		return EBUS_ERR_NO_CLAIM;
	bus = c->priv_[2];
	lane = p->claim_lane;
	s = p->claim_slot;
	s->seq = ++p->seq[p->claim_topic->index];
	if (EBUS_UNLIKELY(bus->timestamps))
		s->ts = ebus_now_ns();
	claim_close(p, c);
	ebus_lane_commit(lane);
	if (ebus_lane_needs_wake(lane))
		ebus_lane_wake(lane);
	atomic_store_explicit(&p->busy, 0, memory_order_release);
	return EBUS_OK;
}

void ebus_claim_drop(struct ebus *bus, struct producer *p)
{
	slot_payload_undo(bus, p->claim_lane, p->claim_slot, p->claim_arena_head);
	claim_close(p, NULL);
	atomic_store_explicit(&p->busy, 0, memory_order_release);
}

int ebus_claim_abort(ebus_claim_t *c)
{
	struct producer *p;
	if (!c)
		return EBUS_ERR_NULL;
	if (!(p = claim_of(c)))
		return EBUS_ERR_NO_CLAIM;
	ebus_claim_drop(c->priv_[2], p);
	c->priv_[0] = c->priv_[1] = c->priv_[2] = NULL;
	return EBUS_OK;
}

/*
 * The calling thread's cache of topics it published to by name, so that a
 * hit skips validation, the reserved-prefix check (an interned name passed
 * both, and publish() refuses reserved topics) and the registry's read
 * section. Two direct-mapped tables: by the address of the caller's name
 * (a string literal, say: no hashing at all) and by the name's hash (a name
 * built in a reused buffer). Either way the hit is confirmed by comparing
 * the caller's bytes, NUL included, with the topic's own name: an address
 * or a hash is only a hint. An entry is (bus id, topic): topics live as
 * long as their bus and bus ids are never reused, so an entry of a
 * destroyed bus only ever misses and is never dereferenced. The tables
 * are allocated on a thread's first publish by name (calloc; none: no
 * cache) and freed at its exit (a pthread key).
 */
#define NAME_CACHE 32u
struct name_cache_entry {
	uint64_t bus_id;
	struct ebus_topic_s *t;
	const char *name; /* by_addr only */
};
struct name_cache {
	struct name_cache_entry by_addr[NAME_CACHE], by_hash[NAME_CACHE];
};
static _Thread_local struct name_cache *tls_names __attribute__((tls_model("initial-exec")));
static pthread_key_t names_key;
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void names_free(void *p)
{
	free(p);
	tls_names = NULL;
}

static void names_key_init(void)
{
	(void)pthread_key_create(&names_key, names_free);
}

static struct name_cache *names_get(void)
{
	struct name_cache *c = tls_names;
	if (EBUS_LIKELY(c != NULL))
		return c;
	pthread_once(&names_once, names_key_init);
	c = calloc(1, sizeof *c);
	if (c && pthread_setspecific(names_key, c) != 0) {
		free(c);
		c = NULL;
	}
	tls_names = c;
	return c;
}

static unsigned addr_slot(const char *name)
{
	return (unsigned)(((uintptr_t)name >> 3) ^ ((uintptr_t)name >> 11)) & (NAME_CACHE - 1);
}

/* The entry's topic, if it is this bus's (checked first: only then is the
 * topic alive) and named exactly `name` (strcmp: the caller's string may be
 * shorter than the topic's name). */
static inline struct ebus_topic_s *addr_hit(const struct name_cache_entry *e,
                                            const struct ebus *bus, const char *name)
{
	if (e->name != name || e->bus_id != bus->id || strcmp(e->t->name, name) != 0)
		return NULL;
	return e->t;
}

/* The same by hash, with the caller's length known (n bytes, then NUL). */
static inline struct ebus_topic_s *hash_hit(const struct name_cache_entry *e,
                                            const struct ebus *bus, const char *name, size_t n,
                                            uint64_t hash)
{
	struct ebus_topic_s *t;
	if (e->bus_id != bus->id)
		return NULL;
	t = e->t;
	if (t->hash != hash || t->namelen != n || memcmp(t->name, name, n) != 0)
		return NULL;
	return t;
}

static void entry_set(struct name_cache_entry *e, const struct ebus *bus,
                      struct ebus_topic_s *t, const char *name)
{
	e->bus_id = bus->id;
	e->t = t;
	e->name = name;
}

static void names_remember(struct ebus *bus, const char *name, uint64_t hash,
                           struct ebus_topic_s *t)
{
	struct name_cache *c = names_get();
	if (!c)
		return;
	entry_set(&c->by_addr[addr_slot(name)], bus, t, name);
	entry_set(&c->by_hash[hash & (NAME_CACHE - 1)], bus, t, NULL);
}

/* The general way: validate, then find or intern (if a pattern matches). */
static __attribute__((noinline)) int publish_name_slow(struct ebus *bus, const char *name,
                                                       const void *data, size_t len,
                                                       ebus_full_policy policy)
{
	size_t n;
	uint64_t hash;
	struct ebus_topic_s *t;
	int rc;

	rc = ebus_topic_check(name, &n);
	if (rc)
		return rc;
	if (ebus_name_reserved(name, n))
		return EBUS_ERR_RESERVED;
	hash = ebus_hash(name, n);
	t = ebus_registry_find(&bus->reg, name, n, hash);
	if (!t && (rc = ebus_subs_intern_matched(&bus->subs, name, n, hash, &t)) != EBUS_OK) {
		if (rc == EBUS_ERR_SHUTDOWN)
			count_shutdown(bus);
		return rc;
	}
	if (t) {
		names_remember(bus, name, hash, t);
		return publish(t, data, len, false, NULL, NULL, policy);
	}
	if (!data && len)
		return EBUS_ERR_NULL;
	if (len > bus->max_payload)
		return EBUS_ERR_TOO_LARGE;
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN) {
		count_shutdown(bus);
		return EBUS_ERR_SHUTDOWN;
	}
	/* Never interned, so nobody can be subscribed: accepted and counted. */
	atomic_fetch_add_explicit(&bus->unknown_name_drops, 1, memory_order_relaxed);
	return EBUS_OK;
}

static inline int publish_name(ebus_t *bus, const char *name, const void *data, size_t len,
                               ebus_full_policy policy)
{
	struct name_cache *c = tls_names;
	struct name_cache_entry *e;
	struct ebus_topic_s *t;
	uint64_t hash;
	size_t n;

	if (!bus || !name)
		return EBUS_ERR_NULL;
	if (EBUS_LIKELY(c != NULL)) {
		e = &c->by_addr[addr_slot(name)];
		if ((t = addr_hit(e, bus, name)))
			return policy ? ebus_publish_ex(t, data, len, policy) : ebus_publish(t, data, len);
		hash = ebus_hash_cstr(name, EBUS_TOPIC_MAX, &n);
		if (n && n <= EBUS_TOPIC_MAX &&
		    (t = hash_hit(&c->by_hash[hash & (NAME_CACHE - 1)], bus, name, n, hash))) {
			entry_set(e, bus, t, name); /* this address, from now on */
			return policy ? ebus_publish_ex(t, data, len, policy) : ebus_publish(t, data, len);
		}
	}
	return publish_name_slow(bus, name, data, len, policy);
}

int ebus_publish_name(ebus_t *bus, const char *name, const void *data, size_t len)
{
	return publish_name(bus, name, data, len, EBUS_FULL_DEFAULT);
}

int ebus_publish_name_ex(ebus_t *bus, const char *name, const void *data, size_t len,
                         ebus_full_policy policy, uint64_t block_timeout_ns)
{
	int rc;
	if ((unsigned)policy > EBUS_FULL_DROP)
		return EBUS_ERR_CONFIG;
	tls_block_ns = block_timeout_ns;
	rc = publish_name(bus, name, data, len, policy);
	tls_block_ns = 0;
	return rc;
}
