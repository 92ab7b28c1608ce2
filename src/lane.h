/*
 * Lane layer: the slot, the single-producer ring of slots (one per
 * publishing thread and executor), the batched consumer view of a ck_ring
 * (used by the executor for lanes and by consumer.c for pull queues), and
 * the bus's set of live lanes.
 *
 * Contract:
 *  - A lane has one producer (the thread that created it, through the
 *    producer's view below and the producer-side counters)
 *    and one consumer (its executor, through the ring view). Nobody else
 *    writes its ring.
 *  - The lane set owns every lane's memory. Lanes enter it with
 *    ebus_lane_new (any thread) and leave it with ebus_lane_reclaim (the
 *    consumer, once the lane is closed and empty) or ebus_lane_set_fini
 *    (destroy, alone). Its lock orders those against readers that walk it
 *    (flush marks, statistics); it is never held across a wait.
 *  - Failure: ebus_lane_new returns NULL (out of memory) and changes nothing.
 */
#ifndef EBUS_LANE_H
#define EBUS_LANE_H

#include "base.h"

#include <ck_ring.h>
#include <ck_stack.h>
#include <pthread.h>

/* ---- the slot: one cache line, stored inline in the ring ---------------- */
enum { SLOT_INLINE = 0, SLOT_OWNED = 1, SLOT_REF = 2, SLOT_ARENA = 3 };

struct ebus_topic_s;
struct ebus_slot {
	struct ebus_topic_s *topic;
	uint64_t ts;  /* ebus_now_ns() at publish, when the bus stamps events */
	uint64_t seq; /* ebus_event_t.seq */
	uint32_t len;
	uint32_t kind;
	union {
		unsigned char data[EBUS_INLINE_MAX];
		struct {
			void *ptr;
			ebus_release_fn release; /* SLOT_REF only */
			void *arg;
		} ref; /* SLOT_OWNED, SLOT_REF */
		struct {
			void *ptr;    /* in the lane's arena */
			uint64_t end; /* the arena position the consumer frees up to */
		} arena; /* SLOT_ARENA: ptr shares its place with ref.ptr */
	} u;
} __attribute__((aligned(EBUS_CL)));
_Static_assert(sizeof(struct ebus_slot) == EBUS_CL, "a slot is one cache line");

CK_RING_PROTOTYPE(ebus_slot, ebus_slot)

/* Frees an owned copy or calls a reference's release function (an arena
 * slot is given back by its lane: ebus_lane_slot_release). */
static inline void ebus_slot_release(const ebus_allocator_t *a, struct ebus_slot *s)
{
	if (s->kind == SLOT_OWNED)
		ebus_free(a, s->u.ref.ptr, s->len);
	else if (s->kind == SLOT_REF && s->u.ref.release)
		s->u.ref.release(s->u.ref.ptr, s->len, s->u.ref.arg);
}

/*
 * ---- the batched consumer view of a single-consumer ck_ring -------------
 * ck 0.7.1 has no batch API (research notes 2.4). The consumer looks at
 * what is committed, uses the records in place, and releases them with
 * one c_head store, so the producer's cache line of c_head moves once per
 * batch, not once per record. Consumer only.
 */
/* Committed records from *head on (head: the consumer's index). */
static inline unsigned ebus_ring_peek(struct ck_ring *r, unsigned *head)
{
	unsigned c = __atomic_load_n(&r->c_head, __ATOMIC_RELAXED);
	unsigned p = __atomic_load_n(&r->p_tail, __ATOMIC_ACQUIRE);
	*head = c;
	if (p != c)
		EBUS_TSAN_ACQUIRE(&r->p_tail); /* pairs with the producer's commit */
	return p - c;
}

/* Gives every record before `head` back to the producers. */
static inline void ebus_ring_release(struct ck_ring *r, unsigned head)
{
	EBUS_TSAN_RELEASE(&r->c_head); /* record reads before a producer reuses them */
	__atomic_store_n(&r->c_head, head, __ATOMIC_RELEASE);
}

/* Committed and not yet released; any thread (a snapshot of two loads). */
static inline unsigned ebus_ring_queued(struct ck_ring *r)
{
	return __atomic_load_n(&r->p_tail, __ATOMIC_ACQUIRE) -
	       __atomic_load_n(&r->c_head, __ATOMIC_ACQUIRE);
}

/* ---- lanes -------------------------------------------------------------- */
struct lane {
	struct ck_ring ring __attribute__((aligned(EBUS_CL)));
	/* producer-written, own line */
	unsigned c_cache __attribute__((aligned(EBUS_CL))); /* c_head when last read */
	unsigned batch_end; /* ebus_publish_batch: written up to here, not committed */
	bool in_batch;      /* ebus_publish_batch: on this call's list of lanes */
	/* The payload arena (ebus_lane_arena_take): bytes [arena_tail, arena_head)
	 * of a ring of arena_size are in use, positions growing forever. */
	unsigned char *arena;   /* NULL until the first payload that needs it */
	uint64_t arena_head;    /* next free position */
	uint64_t arena_tcache;  /* arena_tail when last read */
	uint64_t arena_mark;    /* ebus_publish_batch: arena_head when it began */
	ebus_ctr payload_allocs;
	ebus_ctr dropped_full;
	ebus_ctr rejected_full;
	ebus_ctr rejected_timeout;
	/* consumer-written, own line: every record ever released (a 64-bit
	 * c_head, written after each c_head store). What was published is
	 * consumed + (p_tail - (unsigned)consumed): ebus_lane_counts. */
	ebus_ctr consumed __attribute__((aligned(EBUS_CL)));
	_Atomic uint64_t arena_tail; /* arena bytes given back, in lane order */
	/* cold */
	struct ebus_slot *buf __attribute__((aligned(EBUS_CL)));
	/* The consuming executor's park word, set by ebus_exec_add_lane: the
	 * publisher reads it after every commit to see whether to wake a parked
	 * executor (exec.h ebus_lane_needs_wake), one load, not three through
	 * the bus. */
	_Atomic uint32_t *park_word;
	_Atomic int closed;     /* the owning thread exited; set after its last commit */
	/* The producer sleeps until this lane is half empty (1), or until the
	 * consumer gives arena bytes back (2). */
	_Atomic int space_wait;
	unsigned exec;          /* index of the consuming executor */
	uint32_t arena_size;    /* bytes, a power of two (the set's) */
	uint64_t source;        /* the producing thread's id (ebus_event_t.source) */
	/* Unique in the set, increasing. The set's list is newest first, so
	 * ids decrease along it: flush finds its lanes again by id, and a
	 * missing id means reclaimed (drained). */
	uint64_t id;
	ck_stack_entry_t link;         /* announcement to the executor (exec.h) */
	struct cds_list_head set_node; /* lane_set.lanes, under lane_set.lock */
};

/*
 * ---- the producer's view of its lane ------------------------------------
 * ck 0.7.1's SPSC reserve reads c_head on every call and its commit reads
 * p_tail again; its layout is what we use (c_head, p_tail, mask; research
 * notes 2.4), with c_head cached on the producer's own line, so the
 * consumer's line is read only when the cached value says the lane is
 * full, and one p_tail store commits a whole batch. Producer only.
 */
/* Free slots from *head on (head: the producer's index), at least `want`
 * if there are: c_head is read again only when the cache shows fewer. */
/* Free slots from position `pos` on (p_tail, or past it by what a batch
 * wrote and has not committed yet), at least `want` if there are: c_head
 * is read again only when the cache shows fewer. */
static inline unsigned ebus_lane_room(struct lane *l, unsigned pos, unsigned want)
{
	unsigned room = l->ring.mask - (pos - l->c_cache);
	if (EBUS_UNLIKELY(room < want)) {
		l->c_cache = __atomic_load_n(&l->ring.c_head, __ATOMIC_ACQUIRE);
		EBUS_TSAN_ACQUIRE(&l->ring.c_head); /* the consumer is done with those slots */
		room = l->ring.mask - (pos - l->c_cache);
	}
	return room;
}

static inline unsigned ebus_lane_space(struct lane *l, unsigned *head, unsigned want)
{
	*head = __atomic_load_n(&l->ring.p_tail, __ATOMIC_RELAXED);
	return ebus_lane_room(l, *head, want);
}

static inline struct ebus_slot *ebus_lane_slot(struct lane *l, unsigned pos)
{
	return &l->buf[pos & l->ring.mask];
}

/* Makes every slot before `end` visible to the consumer. */
static inline void ebus_lane_publish(struct lane *l, unsigned end)
{
	EBUS_TSAN_RELEASE(&l->ring.p_tail);
	__atomic_store_n(&l->ring.p_tail, end, __ATOMIC_RELEASE);
}

/* One slot: the free slot at the producer's index, or NULL when the lane
 * is full; ebus_lane_commit publishes it. */
static inline struct ebus_slot *ebus_lane_reserve(struct lane *l)
{
	unsigned p;
	return ebus_lane_space(l, &p, 1) ? ebus_lane_slot(l, p) : NULL;
}

static inline void ebus_lane_commit(struct lane *l)
{
	ebus_lane_publish(l, __atomic_load_n(&l->ring.p_tail, __ATOMIC_RELAXED) + 1);
}

/*
 * ---- the payload arena ----------------------------------------------------
 * A ring of bytes per lane for payloads above the slot: the producer takes
 * 16-byte-aligned chunks in order (a chunk that would cross the ring's end
 * starts at its beginning, the bytes skipped belong to it), each slot
 * records where its chunk ends, and the consumer, which finishes slots in
 * lane order, gives the arena back up to there. The producer's cached tail
 * is read again only when the cache says full.
 */
void *ebus_lane_arena_new(struct lane *l, const ebus_allocator_t *a); /* NULL: no memory */

/* Where a chunk of len bytes would start (*start) and end (the return). */
static inline uint64_t ebus_lane_arena_span(const struct lane *l, size_t len, uint64_t *start)
{
	uint64_t size = l->arena_size, head = l->arena_head, need = (len + 15) & ~(uint64_t)15;
	uint64_t off = head & (size - 1);
	*start = off + need <= size ? head : head + (size - off);
	return *start + need;
}

/* Producer: the arena (which exists) has room for a chunk of len bytes
 * (len <= arena_size / 4) now. */
static inline bool ebus_lane_arena_fits(struct lane *l, size_t len)
{
	uint64_t start, end = ebus_lane_arena_span(l, len, &start);
	if (EBUS_UNLIKELY(end - l->arena_tcache > l->arena_size)) {
		l->arena_tcache = atomic_load_explicit(&l->arena_tail, memory_order_acquire);
		return end - l->arena_tcache <= l->arena_size;
	}
	return true;
}

/* Producer: a chunk of len bytes of the (existing) arena, or NULL when it
 * has no room now; *end: the slot's arena.end. */
static inline void *ebus_lane_arena_take(struct lane *l, size_t len, uint64_t *end)
{
	uint64_t start;
	if (EBUS_UNLIKELY(!ebus_lane_arena_fits(l, len)))
		return NULL;
	*end = ebus_lane_arena_span(l, len, &start);
	l->arena_head = *end;
	return l->arena + (start & (l->arena_size - 1));
}

/* Consumer: the slot's payload is done with. */
static inline void ebus_lane_slot_release(struct lane *l, const ebus_allocator_t *a,
                                          struct ebus_slot *s)
{
	if (s->kind == SLOT_ARENA)
		atomic_store_explicit(&l->arena_tail, s->u.arena.end, memory_order_release);
	else
		ebus_slot_release(a, s);
}

/* Any thread: events published to the lane so far, and those not yet
 * released by the consumer, as one consistent pair. */
static inline void ebus_lane_counts(struct lane *l, uint64_t *published, unsigned *queued)
{
	uint64_t c = ctr_get_acquire(&l->consumed);
	unsigned q = __atomic_load_n(&l->ring.p_tail, __ATOMIC_ACQUIRE) - (unsigned)c;
	*published = c + q;
	*queued = q;
}

/* ---- the set of a bus's live lanes ------------------------------------- */

/* Totals of one executor's reclaimed lanes (a live lane counts itself). */
struct lane_totals {
	uint64_t published, dropped_full, rejected_full, rejected_timeout, payload_allocs;
	uint64_t created; /* lanes ever made for this executor */
};

struct lane_set {
	pthread_mutex_t lock;
	struct cds_list_head lanes; /* struct lane (set_node), newest first */
	uint64_t last_id;           /* last lane id handed out */
	struct lane_totals *gone;   /* [nexec], under lock */
	const ebus_allocator_t *alloc;
	unsigned capacity, nexec;
	uint32_t arena_size; /* of each lane's arena */
};

int ebus_lane_set_init(struct lane_set *s, const ebus_allocator_t *a, unsigned capacity,
                       unsigned nexec, uint32_t arena_size);
/* Destroy, alone: frees every lane left and the set's own memory. */
void ebus_lane_set_fini(struct lane_set *s);
/* Any thread: a new, empty lane for executor `exec`, already in the set. */
struct lane *ebus_lane_new(struct lane_set *s, unsigned exec);
/* The lane's consumer, once it is closed and empty: adds its counters to
 * the executor's totals and frees it. */
void ebus_lane_reclaim(struct lane_set *s, struct lane *l);
/* Adds executor `exec`'s lanes (live and reclaimed) to *st: published,
 * losses on full lanes, queued, lanes_live, lanes_created. Any thread. */
void ebus_lane_set_stats(struct lane_set *s, unsigned exec, ebus_stats_t *st);

#endif
