/*
 * Topic layer: names (NATS subject syntax), patterns, and the registry
 * that interns names into immortal topic handles.
 *
 * Contract:
 *  - ebus_topic_check, ebus_hash and the pattern functions are pure: any
 *    thread.
 *  - Lookups (ebus_registry_find, the topic walk) are lock-free and safe
 *    concurrently with ebus_registry_add, from any thread. Callers of
 *    ebus_registry_add serialise among themselves (subs.h: the control
 *    lock) and looked the name up under that serialisation first.
 *  - A topic lives until ebus_registry_destroy (destroy, alone). Its
 *    fields are written before it is published and never again, except
 *    `subs` (the subscription layer's, under its lock), the counter blocks
 *    (their dispatcher: the topic's executor, or each executor for an
 *    unordered topic) and the publisher-side losses (atomic adds).
 *  - Failure: ebus_registry_add returns EBUS_ERR_NOMEM and adds nothing.
 */
#ifndef EBUS_TOPIC_H
#define EBUS_TOPIC_H

#include "base.h"

#include <ck_stack.h>
#include <urcu/rculfhash.h>

/* Dispatch counters of a topic. One writer: the executor that dispatches
 * (sync: the thread holding the stripe lock). dispatched is derived:
 * delivered + dropped_no_sub + dropped_shutdown. */
struct topic_ctrs {
	ebus_ctr delivered, handler_calls, handler_errors, dropped_no_sub, dropped_shutdown;
} __attribute__((aligned(EBUS_CL)));

struct subarr; /* subs.h */
struct ebus;   /* opaque here: the handle's owner, for the API */

struct ebus_topic_s {
	_Atomic(struct subarr *) subs; /* subs.h writes; the dispatcher reads per event */
	struct ebus *bus;
	unsigned executor;
	unsigned flags; /* EBUS_TOPIC_* | TOPIC_RESERVED */
	/* 0, 1, 2, ... in creation order on its bus: a publisher's index into
	 * its table of sequence numbers (ebus_event_t.seq). */
	uint32_t index;
	uint64_t hash;
	struct cds_lfht_node node; /* registry table, bp flavor */
	ck_stack_entry_t all;      /* registry walk, for destroy and snapshots */
	size_t namelen;
	/* Statistics, away from the line publishers read on every publish. An
	 * ordered topic's counters are on their own line; an unordered topic
	 * (dispatched by every executor) has one block per executor instead,
	 * and this line then only holds the (read-only) pointer. */
	union {
		struct topic_ctrs one;
		struct topic_ctrs *per_exec; /* [nexec], EBUS_TOPIC_UNORDERED */
	} ctrs;
	/* Publisher-side losses on a full lane: slow path only, atomic RMW. */
	_Atomic uint64_t dropped_full, rejected_full, rejected_timeout;
	char name[];
};

/* Internal topic flag: the name is under EBUS_META_PREFIX. */
#define TOPIC_RESERVED 0x100u
/* Interning: return an existing topic whatever its ordering. */
#define TOPIC_ANY_ORDER 0x200u

/* The counter block that executor (or stripe) `who` writes for topic t. */
static inline struct topic_ctrs *topic_ctrs_of(struct ebus_topic_s *t, unsigned who)
{
	if (EBUS_UNLIKELY(t->flags & EBUS_TOPIC_UNORDERED))
		return &t->ctrs.per_exec[who];
	return &t->ctrs.one;
}

/* Counts a publish refused on a full lane against its topic (slow path):
 * EBUS_ERR_FULL / EBUS_ERR_DEADLOCK, EBUS_DROPPED, EBUS_ERR_TIMEOUT. */
void ebus_topic_count_refused(struct ebus_topic_s *t, int rc);

/* Sums the topic's dispatch counters and losses into *o (not the name,
 * not the subscriber count). Any thread. */
void ebus_topic_read_stats(struct ebus_topic_s *t, unsigned nexec, ebus_topic_stats_t *o);

/* ---- names and patterns (pure) ----------------------------------------- */
int ebus_topic_check(const char *name, size_t *len_out);

/* The name hash: FNV-1a, then a 64-bit finaliser so that "hash % executors"
 * and the table's bucket bits both see well-mixed bits. ebus_hash takes a
 * length; ebus_hash_cstr hashes up to the NUL or max + 1 bytes, and says
 * how many it read (a name of max + 1 bytes or more is too long). */
#define EBUS_HASH_SEED 0xcbf29ce484222325ull
static inline uint64_t ebus_hash_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * 0x100000001b3ull;
}
static inline uint64_t ebus_hash_finish(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}
uint64_t ebus_hash(const char *s, size_t n);
static inline uint64_t ebus_hash_cstr(const char *s, size_t max, size_t *n_out)
{
	uint64_t h = EBUS_HASH_SEED;
	size_t n = 0;
	for (; s[n] && n <= max; n++)
		h = ebus_hash_step(h, (unsigned char)s[n]);
	*n_out = n;
	return ebus_hash_finish(h);
}
/* True if `name` (len bytes) is under EBUS_META_PREFIX. */
bool ebus_name_reserved(const char *name, size_t len);

/* NATS subject patterns ('*' one token, '>' one or more trailing tokens).
 * ebus_pattern_check validates (same rules and codes as ebus_topic_check,
 * plus whole-token wildcards; *len_out = strlen on success). The other two
 * take valid strings and their lengths (no NUL needed). A pattern whose
 * first token is a wildcard does not match names under EBUS_META_PREFIX. */
int ebus_pattern_check(const char *pattern, size_t *len_out);
bool ebus_pattern_has_wildcard(const char *pattern, size_t len);
bool ebus_pattern_matches(const char *pattern, size_t plen, const char *name, size_t nlen);

/* ---- the registry ------------------------------------------------------ */
struct ebus_registry {
	struct cds_lfht *table;
	ck_stack_t all; /* every topic, newest first; entries never leave before destroy */
	const ebus_allocator_t *alloc;
	struct ebus *bus; /* stored in each topic, never dereferenced here */
	unsigned nexec;
	uint32_t ntopics; /* topics added; ebus_registry_add (serialised) only */
};

int ebus_registry_init(struct ebus_registry *r, struct ebus *bus, const ebus_allocator_t *a,
                       unsigned nexec);
void ebus_registry_destroy(struct ebus_registry *r);
struct ebus_topic_s *ebus_registry_find(struct ebus_registry *r, const char *name, size_t len,
                                        uint64_t hash);
/* A new topic (executor -1: by hash) whose first subscriber array is
 * `first` (may be NULL), visible to lookups when this returns. */
int ebus_registry_add(struct ebus_registry *r, const char *name, size_t len, uint64_t hash,
                      int executor, unsigned flags, struct subarr *first,
                      struct ebus_topic_s **out);
/* The walk: every topic added before the first call, newest first; safe
 * against concurrent adds (which it may or may not see). */
struct ebus_topic_s *ebus_registry_first(struct ebus_registry *r);
struct ebus_topic_s *ebus_registry_next(struct ebus_topic_s *t);

#endif
