/*
 * ebus: a lock-free, in-process event bus for low-latency systems.
 *
 * This is the only public header. Everything it names starts with ebus_ or
 * EBUS_. Each function's comment says what it does and then, on tagged
 * lines, who may call it concurrently with what (Thread-safety:), what it
 * returns on failure (Errors:) and who owns what it takes or gives
 * (Ownership:). The README's thread-safety table is generated from those
 * lines (scripts/check-api-docs.sh keeps the two equal).
 *
 * Vocabulary
 *   bus        owns N executor threads (or none, in synchronous mode).
 *   topic      an interned name ("orders.eu.fill") that lives as long as its
 *              bus; it is owned by exactly one executor, so its events are
 *              delivered by one thread, in publish order per publisher.
 *   lane       a single-producer ring from one publishing thread to one
 *              executor. Created on a thread's first publish to that
 *              executor, reclaimed after the thread exits.
 *   accepted   a publish call returned EBUS_OK. Every accepted event is
 *              delivered exactly once to each subscriber present when it is
 *              dispatched, or counted as dropped (no subscriber, or discarded
 *              by ebus_shutdown(EBUS_SHUTDOWN_DISCARD)). Nothing else drops it.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef EBUS_EBUS_H
#define EBUS_EBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EBUS_VERSION_MAJOR 0
#define EBUS_VERSION_MINOR 3
#define EBUS_VERSION_PATCH 0
#define EBUS_VERSION_STRING "0.3.0"

/*
 * ABI. From 1.0 on, a minor release only adds: functions, enum values,
 * flags, and struct fields, which take the place of `reserved_` words in
 * the structs that callers allocate (ebus_config_t, ebus_stats_t,
 * ebus_consumer_stats_t, ebus_topic_stats_t), so their size never changes,
 * or go at the end of structs that only the library allocates (ebus_event_t,
 * ebus_meta_t, ebus_snapshot_t; ev->len says how much of an ebus_meta_t
 * there is). A release that changes or removes anything is a new major
 * version and a new SONAME. Before 1.0 each minor release may break the
 * ABI, so the SONAME is libebus.so.0.MINOR. README: "ABI policy".
 */

#if defined(EBUS_STATIC_DEFINE)
#define EBUS_API
#elif defined(EBUS_BUILDING)
#define EBUS_API __attribute__((visibility("default")))
#else
#define EBUS_API
#endif

/* Limits. */
#define EBUS_TOPIC_MAX 255      /* bytes in a topic name, without the NUL */
#define EBUS_INLINE_MAX 32      /* payloads up to this size travel in the slot */
#define EBUS_MAX_EXECUTORS 256

/*
 * Error codes. EBUS_OK is 0; every other code is positive and names one cause.
 * ebus_strerror() gives a static string for each (never NULL).
 */
#define EBUS_ERRORS(X)                                                              \
	X(EBUS_OK, 0, "success")                                                        \
	X(EBUS_ERR_NULL, 1, "a required argument is NULL")                              \
	X(EBUS_ERR_NOMEM, 2, "out of memory (allocator returned NULL)")                 \
	X(EBUS_ERR_TOPIC_EMPTY, 3, "topic name is empty")                               \
	X(EBUS_ERR_TOPIC_TOO_LONG, 4, "topic name is longer than EBUS_TOPIC_MAX")       \
	X(EBUS_ERR_TOPIC_EMPTY_TOKEN, 5, "topic has an empty token (leading, trailing or double '.')") \
	X(EBUS_ERR_TOPIC_BAD_CHAR, 6, "topic has a space, control or non-ASCII byte")  \
	X(EBUS_ERR_TOPIC_WILDCARD, 7, "wildcard '*' or '>' in a literal topic")         \
	X(EBUS_ERR_TOO_LARGE, 8, "payload is larger than the bus's max_payload")        \
	X(EBUS_ERR_CAPACITY, 9, "lane capacity is not a power of two in [4, 2^24]")     \
	X(EBUS_ERR_CPU, 10, "CPU id is negative, too large or not allowed for this process") \
	X(EBUS_ERR_CONFIG, 11, "invalid configuration value")                           \
	X(EBUS_ERR_EXECUTOR, 12, "executor index out of range")                         \
	X(EBUS_ERR_EXISTS, 13, "topic already exists on a different executor")          \
	X(EBUS_ERR_DUPLICATE, 14, "same handler, context and topic already subscribed") \
	X(EBUS_ERR_NOT_FOUND, 15, "no such subscription (never existed or already removed)") \
	X(EBUS_ERR_SHUTDOWN, 16, "the bus is shut down or shutting down")               \
	X(EBUS_ERR_FULL, 17, "lane is full (fail-fast policy)")                         \
	X(EBUS_DROPPED, 18, "lane is full; event dropped and counted (drop-newest policy)") \
	X(EBUS_ERR_TIMEOUT, 19, "timed out")                                            \
	X(EBUS_ERR_DEADLOCK, 20, "the call would wait on the calling executor thread itself") \
	X(EBUS_ERR_SYSTEM, 21, "a system call failed (thread creation, affinity)")      \
	X(EBUS_ERR_PATTERN_WILDCARD, 22, "a wildcard '*' or '>' must be a whole token")  \
	X(EBUS_ERR_PATTERN_GT_LAST, 23, "'>' may only be the last token of a pattern")   \
	X(EBUS_ERR_RESERVED, 24, "topics under \"$ebus.\" are published by the bus only") \
	X(EBUS_ERR_NOT_CONCURRENT, 25, "an unordered topic accepts only EBUS_SUB_CONCURRENT subscribers") \
	X(EBUS_ERR_ORDERING, 26, "topic already exists with the other ordering (ordered vs unordered)") \
	X(EBUS_ERR_EMPTY, 27, "no event is available (poll)")                           \
	X(EBUS_ERR_BUFFER, 28, "buffer too small for the event; the size needed is reported") \
	X(EBUS_ERR_FLAGS, 29, "unknown flag bits")                                       \
	X(EBUS_ERR_UNSUPPORTED, 30, "not supported by this bus (synchronous mode or a disabled feature)") \
	X(EBUS_ERR_BUS_MISMATCH, 31, "the topics of one call belong to different buses")  \
	X(EBUS_ERR_CLAIM_OPEN, 32, "this thread holds an open claim on that lane: commit or abort it first") \
	X(EBUS_ERR_NO_CLAIM, 33, "no open claim (already committed or aborted, or never made)") \
	X(EBUS_ERR_PREFIX, 34, "the bridge's subject prefix is not a valid topic name")    \
	X(EBUS_ERR_URL, 35, "a server URL is malformed")                                   \
	X(EBUS_ERR_UNREACHABLE, 36, "no server answered within the connect timeout")

typedef enum ebus_err {
#define EBUS_ERR_ENUM_(name, value, text) name = value,
	EBUS_ERRORS(EBUS_ERR_ENUM_)
#undef EBUS_ERR_ENUM_
	EBUS_ERR_COUNT_
} ebus_err;

/* Static text for a code; "unknown ebus error" for values outside the enum.
 * Thread-safety: any thread (a pure function).
 * Errors: none (never NULL).
 * Ownership: a static string, never freed. */
EBUS_API const char *ebus_strerror(int err);
/* The enumerator's name ("EBUS_ERR_FULL").
 * Thread-safety: any thread (a pure function).
 * Errors: NULL for a value outside the enum.
 * Ownership: a static string, never freed. */
EBUS_API const char *ebus_errname(int err);
/* The library's version, "MAJOR.MINOR.PATCH": that of the library linked
 * at run time, which may be newer than EBUS_VERSION_STRING of the header
 * compiled against (same major version: see the README's ABI policy).
 * Thread-safety: any thread (a pure function).
 * Errors: none.
 * Ownership: a static string, never freed. */
EBUS_API const char *ebus_version(void);

typedef struct ebus ebus_t;
typedef struct ebus_topic_s ebus_topic_t;
typedef uint64_t ebus_sub_id; /* 0 is never a valid id */

/* ebus_event_t.flags */
/* The executor's next call is not for this topic: the last event of the
 * topic in what the executor took from this publisher's lane at once (a
 * run of one topic ends, or the batch does). A subscriber that buffers
 * until it sees the flag (a journal, a socket writer) never holds data
 * while the executor idles or serves another topic. Set on every event a
 * synchronous bus delivers and on meta events. */
#define EBUS_EV_END_OF_BATCH 0x1u

/* What a handler sees. Valid only during the call; copy what you keep.
 * The library allocates it: fields may be added at the end (ABI policy). */
typedef struct ebus_event {
	ebus_topic_t *topic;
	const void *data; /* NULL when len == 0 */
	size_t len;
	/* The publishing thread's id on this bus: non-zero, never reused while
	 * the bus lives (0 only for executor.stopped, dispatched by the bus). */
	uint64_t source;
	/* 1, 2, 3, ... per (topic, source): every event the source published to
	 * the topic takes the next number when the bus accepts it, or when it
	 * is dropped on a full lane (EBUS_DROPPED), so a subscriber sees a gap
	 * exactly where events were dropped before it. Refused publishes (any
	 * error code) take no number. On an ordered topic a subscriber sees
	 * each source's numbers in increasing order; on an unordered topic
	 * they may arrive out of order. */
	uint64_t seq;
	unsigned flags; /* EBUS_EV_* */
} ebus_event_t;

/* A handler returns 0, or non-zero to report an error (counted, and passed
 * to the error hook); the bus delivers on regardless. */
typedef int (*ebus_handler_fn)(const ebus_event_t *ev, void *ctx);

/* Called once for a by-reference payload after the last subscriber returned
 * (or when the event was dropped or discarded after being accepted). */
typedef void (*ebus_release_fn)(void *data, size_t len, void *arg);

/* Called when an asynchronously removed subscriber's ctx may be freed. */
typedef void (*ebus_released_fn)(void *ctx);

/* Called on the executor thread after a handler returned rc != 0. */
typedef void (*ebus_error_hook_fn)(void *arg, ebus_topic_t *topic, ebus_sub_id sub, int rc);

/* Allocator hooks: alloc returns memory aligned to `align` (a power of two,
 * at most 4096) or NULL; free receives the size that was asked for. */
typedef struct ebus_allocator {
	void *(*alloc)(size_t size, size_t align, void *ctx);
	void (*free)(void *ptr, size_t size, void *ctx);
	void *ctx;
} ebus_allocator_t;

typedef enum ebus_wait {
	EBUS_WAIT_DEFAULT = 0, /* = EBUS_WAIT_SPIN_PARK */
	EBUS_WAIT_BUSY_SPIN,   /* never sleeps: lowest latency, burns its core */
	EBUS_WAIT_SPIN_YIELD,  /* spins, then sched_yield(); still burns a core */
	EBUS_WAIT_SPIN_PARK    /* spins, yields, then sleeps on a futex; 0% CPU idle */
} ebus_wait;

typedef enum ebus_full_policy {
	EBUS_FULL_DEFAULT = 0, /* in the config: EBUS_FULL_BLOCK; per publish: the bus's */
	EBUS_FULL_BLOCK,       /* wait for space (spin, yield, futex) up to block_timeout_ns */
	EBUS_FULL_FAIL,        /* return EBUS_ERR_FULL at once; counted as rejected_full */
	EBUS_FULL_DROP         /* return EBUS_DROPPED; counted as dropped_full */
} ebus_full_policy;

/*
 * Bus configuration. Zero-initialise it and set what you need: every zero
 * field means the documented default.
 */
typedef struct ebus_config {
	unsigned executors;         /* executor threads; 0 = 1; at most EBUS_MAX_EXECUTORS */
	unsigned lane_capacity;     /* slots per lane, power of two in [4, 2^24]; 0 = 1024.
	                               A lane holds capacity - 1 events. */
	const int *cpus;            /* NULL, or `executors` CPU ids to pin executor i to;
	                               -1 leaves executor i unpinned */
	ebus_wait wait;             /* idle strategy of the executors */
	unsigned spin_iterations;   /* idle polls before yielding/parking; 0 = 256 */
	ebus_full_policy full_policy;
	uint64_t block_timeout_ns;  /* EBUS_FULL_BLOCK gives up after this; 0 or
	                               EBUS_FOREVER = never (saturating: no wrap) */
	size_t max_payload;         /* 0 = 1 MiB; at most UINT32_MAX (4 GiB - 1),
	                               EBUS_ERR_CONFIG above */
	int synchronous;            /* non-zero: no executors; publish delivers on the
	                               calling thread (see ebus_publish) */
	const ebus_allocator_t *allocator; /* NULL = malloc/free; copied at create */
	ebus_error_hook_fn error_hook;     /* NULL = none */
	void *error_hook_arg;
	int timestamps;             /* non-zero: stamp every event at publish and keep a
	                               publish-to-dispatch latency histogram (snapshot);
	                               costs one clock read (vDSO) per publish and one
	                               per dispatch */
	int meta_events;            /* non-zero: the bus publishes meta events on the
	                               reserved "$ebus." topics (see EBUS_META_*) */
	ebus_handler_fn meta_handler; /* with meta_events: subscribed to "$ebus.>"
	                               before the executors start, so it sees
	                               every meta event, executor.started included */
	void *meta_handler_ctx;
	uint64_t lane_arena_bytes;  /* each lane's arena for payloads above
	                               EBUS_INLINE_MAX (see ebus_publish): a power
	                               of two in [4 KiB, 1 GiB]; 0 = 256 KiB.
	                               Allocated on a lane's first such event. */
	uint64_t reserved_[7];      /* zero (EBUS_ERR_CONFIG otherwise): room for
	                               later fields without an ABI break */
} ebus_config_t;

/* ---- lifecycle --------------------------------------------------------- */

/*
 * Creates a bus and starts its executors. cfg may be NULL (all defaults).
 * On error nothing is left behind and *out is untouched.
 * Thread-safety: any thread, concurrently with anything.
 * Errors: EBUS_ERR_NULL (out NULL, or an allocator without alloc or free),
 * EBUS_ERR_CONFIG (executors above EBUS_MAX_EXECUTORS, an unknown wait or
 * full policy, max_payload above UINT32_MAX, meta_handler without
 * meta_events, cpus on a synchronous bus), EBUS_ERR_CAPACITY,
 * EBUS_ERR_CPU (a CPU this process may not use), EBUS_ERR_NOMEM,
 * EBUS_ERR_SYSTEM (an executor thread could not be started).
 * Ownership: *out is the caller's until ebus_destroy; cfg is copied (and
 * cfg->allocator with it), cfg->cpus is read during the call only.
 */
EBUS_API int ebus_create(const ebus_config_t *cfg, ebus_t **out);

typedef enum ebus_shutdown_mode {
	EBUS_SHUTDOWN_DRAIN = 0, /* deliver every accepted event, then stop */
	EBUS_SHUTDOWN_DISCARD    /* drop what is still queued, counted as dropped_shutdown */
} ebus_shutdown_mode;

/*
 * Stops accepting (publish returns EBUS_ERR_SHUTDOWN from here on), waits
 * for publish calls in progress, drains or discards what is queued, and
 * joins the executors. Publishers blocked on a full lane return
 * EBUS_ERR_SHUTDOWN. Subscriptions stay; no handler runs after it returns.
 * Thread-safety: any thread except this bus's handlers (for a synchronous
 * bus: any handler); concurrent callers: one wins, the others get
 * EBUS_ERR_SHUTDOWN. No handler runs after it returns.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_CONFIG (unknown mode),
 * EBUS_ERR_SHUTDOWN (already shut down, or shutting down),
 * EBUS_ERR_DEADLOCK (from a handler, as above).
 * Ownership: the bus stays the caller's (ebus_destroy frees it).
 */
EBUS_API int ebus_shutdown(ebus_t *bus, ebus_shutdown_mode mode);

/*
 * Shuts down (draining) if needed, waits for deferred frees (rcu_barrier)
 * and frees everything. NULL is a no-op.
 * Thread-safety: one thread, after every other call on the bus, its
 * topics, subscriptions and consumers has returned, and with none to
 * follow; from this bus's handlers (for a synchronous bus: from any
 * handler) it does nothing, as it would wait for the calling thread.
 * Errors: none.
 * Ownership: frees the bus, its topics and subscriptions (released
 * callbacks of pending asynchronous unsubscribes run first); snapshots
 * stay valid.
 */
EBUS_API void ebus_destroy(ebus_t *bus);

/*
 * Returns when every event accepted before the call has been delivered (or
 * dropped and counted), whatever other threads publish meanwhile, and lanes
 * of exited threads have been reclaimed; or EBUS_ERR_TIMEOUT after
 * timeout_ns (0 or EBUS_FOREVER = no limit). It waits for each lane's
 * position at the call, not for a count.
 * Thread-safety: any thread except this bus's handlers, concurrently with
 * everything.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_TIMEOUT, EBUS_ERR_DEADLOCK (from a
 * handler of this bus, or of a synchronous bus).
 * Ownership: nothing changes hands.
 */
EBUS_API int ebus_flush(ebus_t *bus, uint64_t timeout_ns);

/* Number of executors (the `executors` of the config, 0 meaning 1; in
 * synchronous mode, the number of stripes).
 * Thread-safety: any thread (read-only).
 * Errors: 0 for a NULL bus.
 * Ownership: nothing changes hands. */
EBUS_API unsigned ebus_executor_count(const ebus_t *bus);

/* ---- topics ------------------------------------------------------------ */

/*
 * Interns `name` and returns its handle, creating the topic on first use.
 * Its executor is a hash of the name modulo the executor count. The handle
 * lives until ebus_destroy. Names: 1..EBUS_TOPIC_MAX bytes of printable
 * ASCII without space, tokens separated by '.', no empty token, no '*' or
 * '>' (those are for patterns). Finding an existing topic is a lock-free
 * lookup; creating one takes the bus's control mutex (matching patterns).
 * Thread-safety: any thread, concurrently, including handlers.
 * Errors: EBUS_ERR_NULL, the name's validation code (as
 * ebus_topic_validate), EBUS_ERR_SHUTDOWN (shutdown has begun),
 * EBUS_ERR_NOMEM; *out untouched.
 * Ownership: the handle belongs to the bus and lives until ebus_destroy;
 * name is copied.
 */
EBUS_API int ebus_topic(ebus_t *bus, const char *name, ebus_topic_t **out);

/*
 * As ebus_topic, but places a new topic on `executor` explicitly.
 * Thread-safety: as ebus_topic.
 * Errors: those of ebus_topic; EBUS_ERR_EXECUTOR (executor >= the executor
 * count); EBUS_ERR_EXISTS if the topic exists on another executor (and
 * *out is set to it).
 * Ownership: as ebus_topic.
 */
EBUS_API int ebus_topic_on(ebus_t *bus, const char *name, unsigned executor, ebus_topic_t **out);

/* Checks a topic name without a bus: EBUS_OK or the reason it is invalid.
 * Thread-safety: any thread (a pure function).
 * Errors: EBUS_ERR_NULL, EBUS_ERR_TOPIC_EMPTY, EBUS_ERR_TOPIC_TOO_LONG,
 * EBUS_ERR_TOPIC_EMPTY_TOKEN, EBUS_ERR_TOPIC_BAD_CHAR,
 * EBUS_ERR_TOPIC_WILDCARD.
 * Ownership: nothing changes hands. */
EBUS_API int ebus_topic_validate(const char *name);

/*
 * Topic flags for ebus_topic_ex.
 * EBUS_TOPIC_UNORDERED: the topic's events are spread over all executors
 * (round-robin per publishing thread) for throughput; there is no order
 * between them, and only subscribers declared EBUS_SUB_CONCURRENT may
 * subscribe (a literal subscription without it: EBUS_ERR_NOT_CONCURRENT; a
 * pattern subscription without it does not match unordered topics).
 */
#define EBUS_TOPIC_UNORDERED 0x1u

/*
 * The general form of ebus_topic/ebus_topic_on: executor < 0 places a new
 * topic by hash. (ebus_topic and ebus_topic_on return an existing topic
 * whatever its ordering, and create ordered ones.) On a synchronous bus an
 * unordered topic is delivered on the publishing thread like any other.
 * Thread-safety: as ebus_topic.
 * Errors: those of ebus_topic_on; EBUS_ERR_ORDERING for an existing topic
 * with the other ordering (*out is set to it); EBUS_ERR_FLAGS for unknown
 * flags.
 * Ownership: as ebus_topic.
 */
EBUS_API int ebus_topic_ex(ebus_t *bus, const char *name, int executor, unsigned flags,
                           ebus_topic_t **out);

/* The topic's EBUS_TOPIC_* flags.
 * Thread-safety: any thread (read-only).
 * Errors: 0 for a NULL topic.
 * Ownership: nothing changes hands. */
EBUS_API unsigned ebus_topic_flags(const ebus_topic_t *topic);

/* The topic's name, NUL-terminated.
 * Thread-safety: any thread (read-only).
 * Errors: NULL for a NULL topic.
 * Ownership: the bus's; valid until ebus_destroy. */
EBUS_API const char *ebus_topic_name(const ebus_topic_t *topic);

/* The executor (stripe) that delivers the topic's events, in
 * [0, ebus_executor_count), as the snapshot's `executor`.
 * Thread-safety: any thread (read-only).
 * Errors: -1 for an unordered topic (every executor delivers it) and for
 * a NULL topic.
 * Ownership: nothing changes hands. */
EBUS_API int ebus_topic_executor(const ebus_topic_t *topic);

/* The bus the topic belongs to.
 * Thread-safety: any thread (read-only).
 * Errors: NULL for a NULL topic.
 * Ownership: the caller's bus, as returned by ebus_create. */
EBUS_API ebus_t *ebus_topic_bus(const ebus_topic_t *topic);

/* ---- publishing -------------------------------------------------------- */

/*
 * Publishes len bytes (copied; the caller's buffer is free on return).
 * Up to EBUS_INLINE_MAX bytes travel inside the ring slot. Larger payloads
 * (up to max_payload) are copied into the lane's arena, a ring of bytes
 * freed in lane order as the executor finishes each event (config
 * lane_arena_bytes); one above a quarter of the arena, or one that finds
 * it full, is copied into a buffer from the allocator instead (counted as
 * payload_allocs). Either way no allocation in steady state unless the
 * arena is too small for the load.
 *
 * Asynchronous bus: returns once the event is in the calling thread's lane
 * to the topic's executor. No lock, no CAS, no RCU on this path. A full lane
 * follows the bus's full policy (see ebus_publish_ex to override).
 * Synchronous bus: delivers to the subscribers on the calling thread before
 * returning; a publish made from inside a handler is queued on the thread
 * and delivered after the current handler returns (before the outer
 * publish returns), so handlers never nest and per-topic order holds.
 *
 * No lock, no CAS, no allocation (asynchronous bus; see above for large
 * payloads); it blocks only under EBUS_FULL_BLOCK.
 * Thread-safety: any thread, concurrently, including handlers.
 * Errors: EBUS_ERR_SHUTDOWN, EBUS_ERR_TOO_LARGE, EBUS_ERR_NULL (NULL
 * topic, or NULL data with len > 0), EBUS_ERR_RESERVED (a "$ebus." topic),
 * EBUS_ERR_NOMEM, or, on a full lane, EBUS_ERR_FULL / EBUS_DROPPED /
 * EBUS_ERR_TIMEOUT / EBUS_ERR_DEADLOCK (blocking from an executor thread
 * on a lane that only that thread, or a cycle of executors waiting on
 * each other, drains). EBUS_OK means accepted.
 * Ownership: data is copied; the caller's buffer is free on return.
 */
EBUS_API int ebus_publish(ebus_topic_t *topic, const void *data, size_t len);

/* As ebus_publish, with a full-lane policy for this call
 * (EBUS_FULL_DEFAULT = the bus's).
 * Thread-safety: as ebus_publish.
 * Errors: those of ebus_publish; EBUS_ERR_CONFIG for an unknown policy.
 * Ownership: as ebus_publish. */
EBUS_API int ebus_publish_ex(ebus_topic_t *topic, const void *data, size_t len,
                             ebus_full_policy policy);

/*
 * Publishes by name: looks the topic up (one hash-table lookup, no lock).
 * A valid name that was never interned is interned first if a pattern
 * subscription matches it (it has subscribers); otherwise nothing is
 * created, and the event is accepted and counted as dropped_no_subscriber
 * on the bus; EBUS_OK. The lookup is lock-free (liburcu bp read side); a
 * name a pattern matches is interned once (control mutex). Each thread
 * keeps a small cache of the names it published to (by the name's address
 * and by its hash, always confirmed by comparing the bytes), so a repeated
 * name costs a compare, not a lookup; the cache is freed at thread exit.
 * Thread-safety: as ebus_publish.
 * Errors: EBUS_ERR_NULL, the name's validation code, EBUS_ERR_RESERVED
 * (names under "$ebus."), and those of ebus_publish.
 * Ownership: as ebus_publish; name is not kept.
 */
EBUS_API int ebus_publish_name(ebus_t *bus, const char *name, const void *data, size_t len);

/*
 * As ebus_publish_name, with a full-lane policy for this call
 * (EBUS_FULL_DEFAULT = the bus's) and, when that policy is EBUS_FULL_BLOCK,
 * a bound on the wait for this call (0 = the bus's block_timeout_ns;
 * EBUS_FOREVER = never gives up). For a thread that must not block longer
 * than it can afford, such as a network client's delivery thread.
 * Thread-safety: as ebus_publish.
 * Errors: those of ebus_publish_name; EBUS_ERR_CONFIG for an unknown
 * policy; EBUS_ERR_TIMEOUT when the bound passed with the lane still full.
 * Ownership: as ebus_publish_name.
 */
EBUS_API int ebus_publish_name_ex(ebus_t *bus, const char *name, const void *data, size_t len,
                                  ebus_full_policy policy, uint64_t block_timeout_ns);

/*
 * The calling thread's source id on `bus`: the ebus_event_t.source of the
 * events it publishes there (so a handler can tell its own thread's events,
 * and a bridge the events it imported). Makes the thread's record on the
 * bus if it has none yet (as its first publish would).
 * Thread-safety: any thread.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_NOMEM; *out untouched.
 * Ownership: nothing changes hands.
 */
EBUS_API int ebus_self_source(ebus_t *bus, uint64_t *out);

/* One event of a batch: the arguments of ebus_publish. */
typedef struct ebus_msg {
	ebus_topic_t *topic;
	const void *data; /* may be NULL when len == 0 */
	size_t len;
} ebus_msg_t;

/*
 * Publishes msgs[0..n) in order, as ebus_publish_ex would one at a time,
 * with one producer-index store and at most one wake-up per lane for the
 * whole batch: the executors see it at once. Topics may differ and live
 * on different executors, but belong to one bus; per-topic order is the
 * order in msgs. Every message is checked before the first is published,
 * so bad input changes nothing. A lane found full follows `policy`
 * (EBUS_FULL_DEFAULT: the bus's) for the event that does not fit, once
 * everything before it is committed: EBUS_FULL_BLOCK waits for space and
 * goes on (or stops with EBUS_ERR_TIMEOUT / EBUS_ERR_SHUTDOWN /
 * EBUS_ERR_DEADLOCK); EBUS_FULL_FAIL stops there with EBUS_ERR_FULL;
 * EBUS_FULL_DROP drops that event (counted as dropped_full, and it takes
 * its sequence number: a gap) and goes on, and the call returns
 * EBUS_DROPPED. Events are copied as by ebus_publish (inline up to
 * EBUS_INLINE_MAX, else into a bus-owned buffer). A synchronous bus
 * delivers them one by one on the calling thread.
 * Thread-safety: as ebus_publish.
 * Errors: EBUS_OK (all n accepted); before anything is published:
 * EBUS_ERR_NULL (msgs NULL with n > 0, a NULL topic, NULL data with len >
 * 0), EBUS_ERR_BUS_MISMATCH, EBUS_ERR_RESERVED, EBUS_ERR_TOO_LARGE,
 * EBUS_ERR_CONFIG (unknown policy), EBUS_ERR_SHUTDOWN, EBUS_ERR_NOMEM;
 * after some: the full-lane codes above, EBUS_ERR_NOMEM (a bus-owned copy),
 * EBUS_ERR_CLAIM_OPEN (an event for the lane of this thread's open claim).
 * Ownership: every payload is copied; the caller's buffers are free on
 * return. *accepted (may be NULL) is always set to the number of events
 * accepted: under EBUS_FULL_DROP every message was taken and n - *accepted
 * of them dropped; otherwise msgs[0..*accepted) were published and none
 * after them.
 */
EBUS_API int ebus_publish_batch(const ebus_msg_t *msgs, size_t n, ebus_full_policy policy,
                                size_t *accepted);

/*
 * Zero-copy publishing: ebus_claim reserves the next slot of the calling
 * thread's lane to the topic's executor and returns where to write the
 * payload (in the slot itself up to EBUS_INLINE_MAX bytes, else in a
 * bus-owned buffer); ebus_claim_commit publishes it, ebus_claim_abort
 * gives it back and leaves nothing behind (no event, no sequence number,
 * no counter). Like the Disruptor's next()/publish(), Aeron's tryClaim and
 * iceoryx's loan. A thread holds at most one open claim (on any bus), and
 * while it does, its other publishes to the same lane (the topic's
 * executor) return EBUS_ERR_CLAIM_OPEN and change nothing; publishes to
 * other executors and other buses go on. Hold a claim briefly: the
 * executor delivers that lane's later events only after the commit, and
 * ebus_shutdown waits for open claims (from the claiming thread it returns
 * EBUS_ERR_CLAIM_OPEN). A thread that exits with an open claim aborts it.
 */
typedef struct ebus_claim_s {
	void *data;     /* write len bytes here before the commit (NULL if len == 0) */
	size_t len;
	void *priv_[3]; /* the bus's */
} ebus_claim_t;

/*
 * Claims room for one event of len bytes on topic (see above). A full
 * lane follows the bus's full policy: EBUS_FULL_BLOCK waits (up to
 * block_timeout_ns); FAIL returns EBUS_ERR_FULL, DROP returns EBUS_DROPPED
 * (the event is dropped, counted, and takes its sequence number: a gap),
 * and neither makes a claim.
 * Thread-safety: as ebus_publish; the claim belongs to the calling thread.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_RESERVED, EBUS_ERR_TOO_LARGE (above
 * max_payload), EBUS_ERR_UNSUPPORTED (synchronous bus), EBUS_ERR_CLAIM_OPEN
 * (this thread holds a claim), EBUS_ERR_SHUTDOWN, EBUS_ERR_NOMEM, and the
 * full-lane codes of ebus_publish; on error *claim is untouched.
 * Ownership: claim->data is the caller's to write until the commit or
 * abort, the bus's after.
 */
EBUS_API int ebus_claim(ebus_topic_t *topic, size_t len, ebus_claim_t *claim);

/* Publishes the claimed event with the bytes written to claim->data.
 * Thread-safety: the thread that made the claim.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_NO_CLAIM (not this thread's open claim:
 * committed or aborted already, or never made).
 * Ownership: the payload is the bus's from here on; *claim is spent. */
EBUS_API int ebus_claim_commit(ebus_claim_t *claim);

/* Gives the claimed slot back: no event is published.
 * Thread-safety: the thread that made the claim.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_NO_CLAIM (as ebus_claim_commit).
 * Ownership: claim->data is invalid from here on; *claim is spent. */
EBUS_API int ebus_claim_abort(ebus_claim_t *claim);

/*
 * Publishes by reference: subscribers see `data` itself, which must stay
 * valid until release(data, len, arg) is called, exactly once, after the
 * last subscriber returned or the event was dropped after acceptance.
 * release may be NULL. len may exceed max_payload (up to UINT32_MAX).
 * Thread-safety: as ebus_publish; release runs on the executor that
 * delivered the event (sync: the publishing thread), or on the thread
 * that discarded it.
 * Errors: those of ebus_publish (EBUS_ERR_TOO_LARGE above UINT32_MAX).
 * Ownership: on EBUS_OK the bus holds data until release is called; on
 * any other return release is not called and the caller still owns data.
 */
EBUS_API int ebus_publish_ref(ebus_topic_t *topic, void *data, size_t len,
                              ebus_release_fn release, void *arg);

/* ---- subscribing ------------------------------------------------------- */

/*
 * Adds handler(ev, ctx) to topic. Events dispatched after this returns reach
 * it; events queued before may or may not. The same (handler, ctx, topic)
 * twice: EBUS_ERR_DUPLICATE. Subscribers of a topic are called in
 * subscription order, one at a time, on the topic's executor: a handler is
 * never running on two threads at once for one subscription. Cost:
 * O(subscribers of the topic), serialised with other subscription changes
 * on the bus's control mutex (never against dispatch), and never a wait
 * for a grace period.
 * Thread-safety: any thread, including handlers; concurrently with
 * everything.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_DUPLICATE, EBUS_ERR_SHUTDOWN (shutdown
 * has begun), EBUS_ERR_NOMEM; *out untouched.
 * Ownership: ctx stays the caller's; do not free it before the
 * subscription is removed (ebus_unsubscribe).
 */
EBUS_API int ebus_subscribe(ebus_topic_t *topic, ebus_handler_fn handler, void *ctx,
                            ebus_sub_id *out);

/* Subscription flags.
 * EBUS_SUB_CONCURRENT: the handler may run on several threads at once
 * (needed for unordered topics; lets a pattern subscription skip the
 * serialisation described at ebus_subscribe_pattern). */
#define EBUS_SUB_CONCURRENT 0x1u

/* ebus_subscribe with flags.
 * Thread-safety: as ebus_subscribe.
 * Errors: those of ebus_subscribe; EBUS_ERR_FLAGS for unknown flags;
 * EBUS_ERR_NOT_CONCURRENT on an unordered topic without
 * EBUS_SUB_CONCURRENT.
 * Ownership: as ebus_subscribe. */
EBUS_API int ebus_subscribe_ex(ebus_topic_t *topic, ebus_handler_fn handler, void *ctx,
                               unsigned flags, ebus_sub_id *out);

/*
 * Subscribes to every topic whose name matches `pattern` (NATS subject
 * syntax): tokens separated by '.', '*' matches exactly one token, '>'
 * matches one or more trailing tokens and only as the last token. A pattern
 * without wildcards matches one name. Topics interned later get the
 * subscription too; ebus_unsubscribe removes it from every topic. Matching
 * costs O(topics) here and O(patterns) when a topic is interned, never
 * anything per event. A pattern whose first token is a wildcard does not
 * match reserved "$ebus." topics (subscribe to "$ebus.>" for those).
 * Without EBUS_SUB_CONCURRENT the handler still never runs on two threads
 * at once, even for topics on different executors: on a bus with more
 * than one executor (or stripe, in synchronous mode) its calls are
 * serialised by a per-subscription spin lock, and it does not match
 * unordered topics.
 * Thread-safety: as ebus_subscribe.
 * Errors: EBUS_ERR_NULL, the pattern's validation code (as
 * ebus_pattern_validate), EBUS_ERR_FLAGS, EBUS_ERR_DUPLICATE (the same
 * handler, ctx and pattern), EBUS_ERR_SHUTDOWN, EBUS_ERR_NOMEM.
 * Ownership: as ebus_subscribe; pattern is copied.
 */
EBUS_API int ebus_subscribe_pattern(ebus_t *bus, const char *pattern, ebus_handler_fn handler,
                                    void *ctx, unsigned flags, ebus_sub_id *out);

/*
 * Checks a pattern without a bus: EBUS_OK or the reason it is invalid.
 * The rules and codes of ebus_topic_validate, except that '*' and '>' are
 * allowed as whole tokens ('>' only last): a wildcard sharing its token
 * with other bytes is EBUS_ERR_PATTERN_WILDCARD, a '>' followed by '.' is
 * EBUS_ERR_PATTERN_GT_LAST. Every valid topic name is a valid pattern.
 * When several errors apply, the first offending byte from the left
 * decides (">." is GT_LAST, "a*. " is PATTERN_WILDCARD), and a string with
 * no such byte in its first EBUS_TOPIC_MAX bytes but more bytes after them
 * is EBUS_ERR_TOPIC_TOO_LONG; at most EBUS_TOPIC_MAX + 1 bytes are read.
 * Thread-safety: any thread (a pure function).
 * Errors: as ebus_topic_validate, plus EBUS_ERR_PATTERN_WILDCARD and
 * EBUS_ERR_PATTERN_GT_LAST (no EBUS_ERR_TOPIC_WILDCARD).
 * Ownership: nothing changes hands.
 */
EBUS_API int ebus_pattern_validate(const char *pattern);

/*
 * *matched = 1 if `topic` (a literal name) matches `pattern`, else 0, with
 * the rules of ebus_subscribe_pattern (including the "$ebus." rule).
 * Thread-safety: any thread (a pure function).
 * Errors: EBUS_ERR_NULL if matched is NULL, else the pattern's validation
 * error, else the topic's (EBUS_ERR_TOPIC_WILDCARD if it has wildcards);
 * on error *matched is untouched.
 * Ownership: nothing changes hands.
 */
EBUS_API int ebus_pattern_match(const char *pattern, const char *topic, int *matched);

/* Handler calls of one subscription that returned non-zero, so far.
 * Thread-safety: any thread, concurrently with everything.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_NOT_FOUND (never issued by this bus, or
 * unsubscribed).
 * Ownership: nothing changes hands. */
EBUS_API int ebus_sub_errors(ebus_t *bus, ebus_sub_id id, uint64_t *errors);

/*
 * Removes a subscription. From a thread that is not running a handler of
 * any ebus bus: when it returns, the handler is not running and will never
 * run again for this subscription, and ctx may be freed (it waits one RCU
 * grace period: until every handler call running at the time has returned).
 * From inside a handler it does not wait (and cannot deadlock): the handler
 * is never invoked again for this subscription after the call returns (a
 * non-concurrent pattern subscription whose guard another executor waits
 * for included), except that an EBUS_SUB_CONCURRENT subscription may still
 * be entered once by another executor that had already begun dispatching
 * to it; an invocation on another executor may also still be finishing, so
 * do not free ctx then; use ebus_unsubscribe_async to learn when you may.
 * Thread-safety: any thread, including handlers, concurrently with
 * everything; outside handlers it waits for running handler calls, so do
 * not call it holding a lock a handler may take.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_NOT_FOUND (twice, never issued by this
 * bus), EBUS_ERR_NOMEM (nothing changed).
 * Ownership: ctx is the caller's again when it returns (outside a handler).
 */
EBUS_API int ebus_unsubscribe(ebus_t *bus, ebus_sub_id id);

/*
 * As ebus_unsubscribe, and calls released(ctx) once ctx may be freed: from
 * a handler, later, on a liburcu call_rcu thread (async bus) or, on a
 * synchronous bus, on the handler's own thread at the end of its outermost
 * publish (from an executor thread of another bus: at a later publish or
 * subscription change of the synchronous bus); from any other thread,
 * before it returns. released may be NULL.
 * Thread-safety: as ebus_unsubscribe.
 * Errors: as ebus_unsubscribe; on an error released is never called.
 * Ownership: ctx is the caller's again when released(ctx) runs.
 */
EBUS_API int ebus_unsubscribe_async(ebus_t *bus, ebus_sub_id id, ebus_released_fn released);

/*
 * Removes every subscription (literal and pattern) whose ctx is `ctx`, in
 * one call, with the guarantee of ebus_unsubscribe for each: outside a
 * handler, when it returns none of those handlers is running or will run
 * again (one RCU grace period for all of them); inside a handler, none is
 * invoked again after the call returns. *removed (if not NULL) gets how
 * many were removed; none is not an error. A subscription made with this
 * ctx while the call runs may or may not be removed. Pull consumers are
 * not touched (their subscriptions' ctx is the consumer).
 * Thread-safety: as ebus_unsubscribe.
 * Errors: EBUS_ERR_NULL (bus NULL), EBUS_ERR_NOMEM (the ones removed
 * before the failure stay removed, and *removed says how many).
 * Ownership: as ebus_unsubscribe: ctx is the caller's again when it
 * returns outside a handler.
 */
EBUS_API int ebus_unsubscribe_ctx(ebus_t *bus, void *ctx, size_t *removed);

/* ---- statistics -------------------------------------------------------- */

/*
 * Counters. Each is written by one thread (a publisher's lane or an
 * executor) and read with relaxed loads: reading never slows the hot path,
 * and a snapshot taken while events flow is not atomic across fields.
 * After ebus_flush with no publisher running:
 *   published == delivered + dropped_no_subscriber + dropped_shutdown
 * Events that were not accepted are counted apart (rejected_*, dropped_full).
 */
typedef struct ebus_stats_s {
	uint64_t published;             /* accepted */
	uint64_t delivered;             /* accepted and dispatched to >= 1 subscriber */
	uint64_t handler_calls;         /* subscriber invocations */
	uint64_t handler_errors;        /* invocations that returned non-zero */
	uint64_t dropped_no_subscriber; /* accepted, nobody subscribed at dispatch */
	uint64_t dropped_shutdown;      /* accepted, discarded by EBUS_SHUTDOWN_DISCARD */
	uint64_t dropped_full;          /* not accepted: full lane, drop-newest */
	uint64_t rejected_full;         /* not accepted: full lane, fail-fast, or
	                                   EBUS_ERR_DEADLOCK from a blocking publish */
	uint64_t rejected_timeout;      /* not accepted: full lane, block timed out */
	uint64_t rejected_shutdown;     /* not accepted: published after shutdown began */
	uint64_t queued;                /* events in lanes now (approximate while running) */
	uint64_t lanes_live;            /* lanes not yet reclaimed */
	uint64_t lanes_created;
	uint64_t lanes_reclaimed;
	uint64_t parks;                 /* times an executor went to sleep (futex) */
	uint64_t wakeups;               /* times it woke from such a sleep */
	uint64_t lane_high_water;       /* most events the executor found queued in
	                                   one lane when it began draining it (max
	                                   over lanes since create; totals: max over
	                                   executors; 0 in synchronous mode) */
	uint64_t payload_allocs;        /* events above EBUS_INLINE_MAX copied with
	                                   the allocator instead of the lane's arena
	                                   (arena full, or the payload above a
	                                   quarter of it); by-reference events
	                                   are not counted */
	uint64_t reserved_[7];          /* zero: room for later counters */
} ebus_stats_t;

/* Totals over all executors (executor < 0) or one executor (stripe).
 * Thread-safety: any thread, concurrently with everything but ebus_destroy;
 * relaxed reads of single-writer counters, never slowing the hot path.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_EXECUTOR (out of range).
 * Ownership: *out is the caller's. */
EBUS_API int ebus_stats(ebus_t *bus, int executor, ebus_stats_t *out);

/* ---- pull consumers --------------------------------------------------------- */

/*
 * A pull consumer is a subscription with its own bounded queue: the bus
 * copies each matching event into it, and the application takes events
 * out with ebus_consume on a thread of its choosing. A full queue follows
 * the bus's full_policy (a per-publish override of ebus_publish_ex does not
 * reach consumers): BLOCK waits (up to block_timeout_ns) for the consumer
 * to make room, FAIL and DROP lose the event for this consumer only; each
 * loss is counted by cause (ebus_consumer_stats). A loss is never a handler
 * error: the bus counts the event as delivered. A handler blocked on a full
 * queue gives up (dropped_shutdown) when the consumer is destroyed or the
 * bus starts shutting down, and does not wait at all on the thread that
 * last called ebus_consume on it (rejected_full): that thread is the one
 * that would make room. Under BLOCK, a consuming thread that waits for the
 * bus (ebus_flush, a blocking publish, ebus_unsubscribe) while its queue is
 * full waits for a handler that waits for it, until block_timeout_ns.
 * Destroy every consumer before ebus_destroy of its bus.
 */
typedef struct ebus_consumer ebus_consumer_t;

/* What ebus_consume took: the topic, and the event's size in bytes. */
typedef struct ebus_message {
	ebus_topic_t *topic;
	size_t len;
} ebus_message_t;

#define EBUS_FOREVER UINT64_MAX /* a timeout that never expires */

/*
 * Creates a consumer of every topic matching `pattern` (a literal name is a
 * pattern too). capacity: a power of two in [4, 2^24], 0 = 1024; the queue
 * holds capacity - 1 events (as a lane does). Events dispatched after it
 * returns are queued.
 * Thread-safety: any thread, including handlers; a subscription, as
 * ebus_subscribe_pattern.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_CAPACITY, the pattern's validation code,
 * EBUS_ERR_SHUTDOWN, EBUS_ERR_NOMEM; nothing is left behind.
 * Ownership: *out is the caller's until ebus_consumer_destroy, which must
 * come before ebus_destroy.
 */
EBUS_API int ebus_consumer_create(ebus_t *bus, const char *pattern, unsigned capacity,
                                  ebus_consumer_t **out);

/*
 * Takes the oldest queued event: copies its payload into buf (cap bytes;
 * buf may be NULL when cap is 0) and describes it in *msg. timeout_ns: 0
 * polls, EBUS_FOREVER waits as long as needed, anything else is a relative
 * limit. Events from one publishing thread on one ordered topic come out
 * in publish order.
 * Thread-safety: one consuming thread at a time per consumer, concurrently
 * with publishers, handlers and ebus_consumer_stats; waiting only outside
 * this bus's handlers.
 * Errors: EBUS_ERR_EMPTY (poll, nothing queued), EBUS_ERR_TIMEOUT,
 * EBUS_ERR_BUFFER (the event stays queued; msg->topic and msg->len, the
 * size needed, are set), EBUS_ERR_SHUTDOWN (ebus_shutdown has completed
 * and the queue is empty: what was queued before is returned first, and a
 * call waiting when shutdown completes wakes up), EBUS_ERR_NULL, or
 * EBUS_ERR_DEADLOCK: a call with timeout_ns != 0 from an executor thread
 * of the same bus, or from a handler of a synchronous bus, fails at once
 * whether or not an event is queued (polling is allowed).
 * Ownership: the payload is copied into buf; msg->topic is the bus's.
 */
EBUS_API int ebus_consume(ebus_consumer_t *c, void *buf, size_t cap, ebus_message_t *msg,
                          uint64_t timeout_ns);

/* As ebus_consume with an absolute deadline on ebus_clock_ns()'s clock
 * (EBUS_FOREVER: none). A deadline already past takes what is queued
 * without waiting.
 * Thread-safety: as ebus_consume.
 * Errors: as ebus_consume; EBUS_ERR_TIMEOUT (not EBUS_ERR_EMPTY) when the
 * deadline has passed and nothing is queued.
 * Ownership: as ebus_consume. */
EBUS_API int ebus_consume_until(ebus_consumer_t *c, void *buf, size_t cap, ebus_message_t *msg,
                                uint64_t deadline_ns);

/* Counters of one consumer. Once no handler runs for it:
 *   received == consumed + queued, and every event dispatched to it is in
 *   received or in exactly one loss counter. */
typedef struct ebus_consumer_stats_s {
	uint64_t received;         /* events put in the queue */
	uint64_t consumed;         /* events taken out by ebus_consume */
	uint64_t queued;           /* in the queue now */
	uint64_t high_water;       /* most events ever queued at once */
	uint64_t dropped_full;     /* queue full, drop-newest policy */
	uint64_t rejected_full;    /* queue full, fail-fast policy (or a wait that would deadlock) */
	uint64_t rejected_timeout; /* queue full, block policy timed out */
	uint64_t dropped_shutdown; /* queue full, block policy, and the consumer was being
	                              destroyed or the bus shutting down */
	uint64_t dropped_nomem;    /* a payload over 48 bytes could not be copied */
	uint64_t reserved_[8];     /* zero: room for later counters */
} ebus_consumer_stats_t;

/* The consumer's counters: relaxed reads, not atomic across fields while
 * events flow.
 * Thread-safety: any thread, concurrently with everything but
 * ebus_consumer_destroy.
 * Errors: EBUS_ERR_NULL.
 * Ownership: *out is the caller's. */
EBUS_API int ebus_consumer_stats(const ebus_consumer_t *c, ebus_consumer_stats_t *out);

/*
 * Unsubscribes, drops what is queued and frees the consumer. NULL is a
 * no-op. Handlers blocked on its full queue give up first (counted as
 * dropped_shutdown). From a thread that is not running a handler it waits
 * as ebus_unsubscribe does and has freed everything when it returns; from
 * inside a handler it does not wait (and cannot deadlock): the consumer is
 * freed once no handler can still be using it. Either way c must not be
 * used after the call.
 * Thread-safety: any thread, including handlers, but not concurrently
 * with another call on the same consumer; before ebus_destroy of its bus.
 * Errors: none; out of memory, the consumer stays subscribed but closed
 * (every event it gets is counted as dropped_shutdown) and is freed by
 * ebus_destroy.
 * Ownership: frees c (queued payload copies included).
 */
EBUS_API void ebus_consumer_destroy(ebus_consumer_t *c);

/*
 * Waits for the next event on a topic matching `pattern` that is
 * dispatched after the subscription is in place (early in the call), and
 * copies it out as ebus_consume does: a one-shot consumer of capacity 4
 * that drops what it does not need, so it never holds up the bus.
 * Thread-safety: any thread; from a handler of the bus only with
 * timeout_ns 0 (else EBUS_ERR_DEADLOCK).
 * Errors: those of ebus_consumer_create and ebus_consume;
 * EBUS_ERR_BUFFER reports the size, but the event is gone.
 * Ownership: as ebus_consume; the one-shot consumer is freed before it
 * returns.
 */
EBUS_API int ebus_await(ebus_t *bus, const char *pattern, void *buf, size_t cap,
                        ebus_message_t *msg, uint64_t timeout_ns);

/* CLOCK_MONOTONIC in nanoseconds: the clock of deadlines and timestamps.
 * Thread-safety: any thread.
 * Errors: none.
 * Ownership: nothing changes hands. */
EBUS_API uint64_t ebus_clock_ns(void);

/* ---- meta events ---------------------------------------------------------------- */

/*
 * With config.meta_events, the bus publishes an ebus_meta_t on these
 * reserved topics (subscribe to them by name, to "$ebus.>", or with
 * config.meta_handler). Nobody else may publish under "$ebus."
 * (EBUS_ERR_RESERVED). Meta events never block the bus: one that finds
 * its lane full is dropped and counted (dropped_full), one emitted after
 * shutdown began is counted as rejected_shutdown. Like any event they are
 * delivered on the meta topic's executor; executor.stopped (one per
 * executor) is dispatched by that executor as it stops, last, after every
 * other executor has stopped, so its handlers run under the rules of every
 * handler. Handler errors of meta subscribers emit nothing (no loops).
 * Idle: an executor that ran out of work after handling ordinary (non-meta)
 * events, once per busy period, when its spin phase ends.
 * Synchronous mode has no executor events; the others are delivered on the
 * thread that caused them, as any synchronous publish.
 */
#define EBUS_META_PREFIX "$ebus."
#define EBUS_META_SUB_ADDED "$ebus.sub.added"
#define EBUS_META_SUB_REMOVED "$ebus.sub.removed"
#define EBUS_META_EXECUTOR_STARTED "$ebus.executor.started"
#define EBUS_META_EXECUTOR_STOPPED "$ebus.executor.stopped"
#define EBUS_META_EXECUTOR_IDLE "$ebus.executor.idle"
#define EBUS_META_HANDLER_ERROR "$ebus.handler.error"

typedef enum ebus_meta_kind {
	EBUS_META_KIND_SUB_ADDED = 1,
	EBUS_META_KIND_SUB_REMOVED,
	EBUS_META_KIND_EXECUTOR_STARTED,
	EBUS_META_KIND_EXECUTOR_STOPPED,
	EBUS_META_KIND_EXECUTOR_IDLE,  /* the executor ran out of work after some */
	EBUS_META_KIND_HANDLER_ERROR
} ebus_meta_kind;

typedef struct ebus_meta {
	int kind;            /* ebus_meta_kind */
	int executor;        /* the executor concerned, or -1 */
	ebus_sub_id sub;     /* subscription events, handler errors; else 0 */
	uint64_t count;      /* sub added/removed: subscriptions now on that topic
	                        (patterns included) or with that pattern; handler
	                        error: that subscription's errors so far; idle:
	                        ordinary events the executor has handled */
	int rc;              /* handler error: what the handler returned */
	char name[EBUS_TOPIC_MAX + 1]; /* the topic or pattern, or "" */
} ebus_meta_t;

/* ---- snapshots ------------------------------------------------------------------ */

typedef struct ebus_topic_stats {
	const char *name;              /* a copy, valid as long as the snapshot */
	unsigned flags;                /* EBUS_TOPIC_* */
	int executor;                  /* -1 for unordered topics */
	uint64_t subscribers;          /* subscriptions on the topic when taken */
	uint64_t dispatched;           /* events taken from lanes (or published, sync):
	                                  delivered + dropped_no_subscriber + dropped_shutdown */
	uint64_t delivered;
	uint64_t handler_calls;
	uint64_t handler_errors;
	uint64_t dropped_no_subscriber;
	uint64_t dropped_shutdown;
	uint64_t dropped_full;         /* not accepted: full lane, drop-newest */
	uint64_t rejected_full;
	uint64_t rejected_timeout;
	uint64_t reserved_[8];         /* zero: room for later counters (the
	                                  array's element size stays the same) */
} ebus_topic_stats_t;

typedef struct ebus_snapshot_s {
	uint64_t taken_ns;             /* ebus_clock_ns() when taken */
	ebus_stats_t total;
	unsigned nexec;
	const ebus_stats_t *executors; /* [nexec] */
	size_t ntopics;
	const ebus_topic_stats_t *topics; /* [ntopics], in name order */
	uint64_t latency_samples;      /* 0 unless config.timestamps */
	const void *latency_;          /* the histogram; use ebus_snapshot_percentile */
} ebus_snapshot_t;

/*
 * Copies every counter of the bus, its executors (stripes, in synchronous
 * mode), its topics (sorted by name) and the merged latency histogram into
 * one block from the bus's allocator. The snapshot is immutable and
 * self-contained: it may outlive the bus (free it with ebus_snapshot_free,
 * before or after ebus_destroy). Works after ebus_shutdown too. Totals and
 * each executor row are read one after the other, so they add up exactly
 * only when the bus is quiescent (after ebus_flush with no publisher).
 * Thread-safety: any thread, including handlers, concurrently with
 * everything but ebus_destroy; never slows publishers or executors (relaxed
 * loads of single-writer counters; it takes the control mutex briefly for
 * each topic's subscriber count).
 * Errors: EBUS_ERR_NULL, EBUS_ERR_NOMEM (*out untouched).
 * Ownership: *out is the caller's: free it with ebus_snapshot_free, before
 * or after ebus_destroy (it keeps a copy of the bus's allocator).
 */
EBUS_API int ebus_snapshot(ebus_t *bus, ebus_snapshot_t **out);
/* Frees a snapshot. NULL is a no-op.
 * Thread-safety: any thread, once per snapshot, after every other use.
 * Errors: none.
 * Ownership: frees snap (through the allocator of its bus). */
EBUS_API void ebus_snapshot_free(ebus_snapshot_t *snap);

/* Publish-to-dispatch latency at percentile p in [0, 100], in ns: the upper
 * bound of the histogram bucket holding the sample of rank ceil(p% * n),
 * within 1/16 of the value (values from 2^41 ns, about 36 minutes, report
 * 2^41 - 1). The time runs from the moment the event is written into its
 * lane slot (sync: from the publish call) to the start of its dispatch.
 * Thread-safety: any thread (read-only).
 * Errors: EBUS_ERR_EMPTY with no samples yet, EBUS_ERR_UNSUPPORTED if the
 * bus was created without config.timestamps, EBUS_ERR_CONFIG for p
 * outside [0, 100] or NaN, EBUS_ERR_NULL.
 * Ownership: nothing changes hands. */
EBUS_API int ebus_snapshot_percentile(const ebus_snapshot_t *snap, double p, uint64_t *ns);

/*
 * Renders the snapshot as Prometheus text exposition (version 0.0.4) into
 * buf, snprintf-style: *len gets the length needed without the NUL; if that
 * does not fit in cap, EBUS_ERR_BUFFER and buf (if cap > 0) holds a
 * NUL-terminated prefix. buf may be NULL when cap is 0 (size query).
 * Families: bus totals ebus_*, per executor ebus_executor_*{executor="i"},
 * per topic ebus_topic_*{topic="name"} (label values escaped), and with
 * timestamps the histogram ebus_dispatch_latency_seconds (buckets at
 * 2^e - 1 ns, exact counts); README lists them.
 * Thread-safety: any thread (read-only).
 * Errors: EBUS_ERR_NULL for a NULL snap or len, or a NULL buf with cap > 0;
 * EBUS_ERR_BUFFER (too small; *len is the size needed).
 * Ownership: buf is the caller's.
 */
EBUS_API int ebus_snapshot_prometheus(const ebus_snapshot_t *snap, char *buf, size_t cap,
                                      size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* EBUS_EBUS_H */
