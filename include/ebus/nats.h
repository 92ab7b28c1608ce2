/*
 * ebus::nats - a bridge between an ebus bus and NATS (libebus-nats).
 *
 * A library beside the core: it uses only the public API of ebus.h and
 * libnats; libebus itself never links libnats. Link with
 * `pkg-config --libs ebus-nats` or the CMake target ebus::nats.
 *
 * Mapping: the local topic T is the NATS subject PREFIX.T. Export
 * patterns (ebus syntax, which NATS shares) pick the local topics sent to
 * NATS; import patterns pick the subjects under PREFIX. delivered to the
 * local bus. Every message carries a 24-byte trailer after its payload:
 * the exporting bridge's origin id and its sequence number (one sequence
 * per origin, over all its subjects), so the importer counts gaps,
 * duplicates and reordering per origin, and heartbeats (on PREFIX.$hb)
 * carry the last sequence so that tail loss is counted too.
 *
 * Loops: a bridge never exports what it imported (its import publishes
 * are recognised by their source, ebus_event_t.source), and never receives
 * its own exports (NATS NoEcho).
 *
 * Durability (EBUS_NATS_JETSTREAM): exports go into a JetStream stream
 * on PREFIX.> (named EBUS_ + the prefix, dots as underscores; created by
 * whichever bridge comes first) and count as exported once the server
 * stored them; an importer reads through a durable pull consumer (its
 * name in `durable`), so a restarted process catches up from where its
 * last acknowledgement left off. Delivery to the local bus is
 * at-least-once: what the previous process had received but not yet
 * acknowledged is delivered again and counted (redelivered); within a
 * process, a message seen twice (the server redelivers acknowledged
 * messages after a crash of its own) is counted as a duplicate and not
 * delivered, by its stream sequence. All bridges on one prefix use the
 * same mode.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef EBUS_NATS_H
#define EBUS_NATS_H

#include <ebus/ebus.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ebus_nats_bridge ebus_nats_bridge_t;

/* Bridge configuration. Zero-initialise it and set what you need. */
typedef struct ebus_nats_config_s {
	const char *const *servers; /* NULL-terminated list of URLs, e.g.
	                               "nats://127.0.0.1:4222"; at least one */
	const char *prefix;         /* subject prefix: a valid ebus topic name
	                               (no wildcard, not under "$ebus.") */
	const char *const *exports; /* NULL-terminated ebus patterns, local -> NATS;
	                               NULL: export nothing */
	const char *const *imports; /* NULL-terminated ebus patterns, NATS -> local;
	                               NULL: import nothing */
	unsigned export_buffer;     /* events waiting for the network; 0 = 65536,
	                               a power of two; overflow is counted */
	uint64_t connect_timeout_ns; /* 0 = 2 s: create fails with
	                                EBUS_ERR_UNREACHABLE after it */
	uint64_t heartbeat_ns;      /* 0 = 100 ms */
	unsigned import_pending;    /* messages the NATS client holds for the
	                               import callback before it drops (counted:
	                               import_dropped); 0 = 65536. An import
	                               publishes with the bus's full policy, so
	                               a slow local subscriber under BLOCK makes
	                               them pile up here, bounded. */
	ebus_full_policy import_policy; /* an import's full-lane policy on the
	                               local bus; EBUS_FULL_DEFAULT = the bus's */
	unsigned flags;             /* EBUS_NATS_* below */
	uint64_t import_block_ns;   /* under EBUS_FULL_BLOCK, the longest one
	                               import waits for a full lane before it is
	                               given up (counted: import_timeout), so the
	                               NATS client's thread is never stalled for
	                               ever; 0 = 100 ms; EBUS_FOREVER refused.
	                               JetStream: the importer's own thread
	                               tries again until the bridge stops (the
	                               message stays in the stream, unacknowledged) */
	const char *durable;        /* EBUS_NATS_JETSTREAM with imports: the
	                               durable consumer's name (letters, digits,
	                               '-' and '_', at most 64); one importing
	                               process per name */
	uint64_t ack_wait_ns;       /* EBUS_NATS_JETSTREAM: how long the server
	                               waits for an acknowledgement before it
	                               delivers again; 0 = 5 s */
	uint64_t origin_id;         /* this bridge's origin id in the trailer;
	                               0 = a random one. A durable exporter that
	                               also imports keeps it across restarts so
	                               it never imports its own earlier exports */
	uint64_t reserved_[3];      /* zero */
} ebus_nats_config_t;

/* ebus_nats_config_t.flags */
#define EBUS_NATS_SEND_ASAP 0x1u  /* latency mode: libnats writes each message
                                     at once instead of batching writes for up
                                     to 1 ms (natsOptions_SetSendAsap): a round
                                     trip of ~0.1-0.2 ms instead of ~1 ms, at
                                     a fraction of the throughput */
#define EBUS_NATS_JETSTREAM 0x2u  /* durable mode (see above) */

/* Counters (relaxed reads; not atomic across fields while traffic flows).
 * Every event A takes a sequence number when it is handed to libnats
 * (exported or export_failed); an importer B that has received A's last
 * heartbeat (A sends one when it stops) accounts for each number exactly
 * once, so for an exporter A and an importer B of all of it:
 *   exported(A) + export_failed(A)
 *       == imported(B) + import_rejected(B) + filtered(B) + gaps(B)
 * gaps include the events the NATS client dropped (import_dropped counts
 * those and the heartbeats it dropped), and a late arrival (reordered)
 * takes its gap back.
 * export_overflow events never left A: they are A's own loss.
 * JetStream: exported counts what the server stored, and B accounts by
 * stream sequence (no heartbeats): stored(A) == imported(B) +
 * import_rejected(B) + filtered(B) + gaps(B) over all of B's processes,
 * with duplicates and redelivered as the extra deliveries. */
typedef struct ebus_nats_stats_s {
	uint64_t exported;          /* handed to libnats with NATS_OK */
	uint64_t exported_reconnecting; /* of those, while the connection was
	                               down (libnats buffers them; they arrive
	                               only if the importer is back first) */
	uint64_t export_overflow;   /* lost: the export buffer was full */
	uint64_t export_failed;     /* lost: libnats refused the publish */
	uint64_t imported;          /* published on the local bus */
	uint64_t filtered;          /* received, matched no import pattern */
	uint64_t import_dropped;    /* messages the NATS client dropped (slow
	                               consumer), heartbeats among them */
	uint64_t import_rejected;   /* the local bus refused the publish */
	uint64_t unmappable;        /* subjects ebus cannot name (never interned) */
	uint64_t gaps;              /* events missing, per origin sequence */
	uint64_t duplicates;        /* events seen twice */
	uint64_t reordered;         /* events that arrived after a later one */
	uint64_t heartbeats;        /* heartbeats received */
	uint64_t disconnects, reconnects;
	/* causes, each a part of the total above it */
	uint64_t export_failed_buffer; /* of export_failed: libnats's reconnect
	                               buffer was full (NATS_INSUFFICIENT_BUFFER) */
	uint64_t export_failed_closed; /* of export_failed: the connection was
	                               closed */
	uint64_t export_unacked;    /* of export_failed (JetStream): the server
	                               refused to store it, or had not answered
	                               when the bridge stopped (it may still
	                               have been stored) */
	uint64_t import_full;       /* of import_rejected: EBUS_ERR_FULL or
	                               EBUS_DROPPED from the local bus */
	uint64_t import_timeout;    /* of import_rejected: waited import_block_ns */
	uint64_t tail_gaps;         /* of gaps: found by a heartbeat (the last
	                               events before it never came) */
	uint64_t redelivered;       /* JetStream: delivered again after a restart
	                               (the previous process may have delivered
	                               them: at most this many duplicates) */
	uint64_t reserved_[1];
} ebus_nats_stats_t;

/*
 * Creates a bridge on `bus` and connects (bounded by connect_timeout_ns).
 * Nothing flows until ebus_nats_start.
 * Thread-safety: any thread.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_CONFIG (no server, a reserved word set,
 * export_buffer not a power of two, an unknown flag or import_policy,
 * import_block_ns EBUS_FOREVER, a JetStream importer without a valid
 * durable name, or JetStream not enabled on the server), EBUS_ERR_PREFIX (an invalid prefix),
 * the pattern codes of ebus_pattern_validate, EBUS_ERR_URL (a malformed
 * server URL), EBUS_ERR_UNREACHABLE (no server answered in time),
 * EBUS_ERR_NOMEM, EBUS_ERR_SYSTEM; *out untouched.
 * Ownership: *out is the caller's until ebus_nats_destroy; the bus must
 * outlive the bridge; cfg is copied.
 */
int ebus_nats_create(ebus_t *bus, const ebus_nats_config_t *cfg, ebus_nats_bridge_t **out);

/* Subscribes on both sides and starts the export thread.
 * Thread-safety: one thread, once.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_SHUTDOWN (already started or stopped),
 * EBUS_ERR_NOMEM, EBUS_ERR_SYSTEM.
 * Ownership: nothing changes hands. */
int ebus_nats_start(ebus_nats_bridge_t *b);

/* Copies the counters.
 * Thread-safety: any thread.
 * Errors: EBUS_ERR_NULL.
 * Ownership: *out is the caller's. */
int ebus_nats_stats(ebus_nats_bridge_t *b, ebus_nats_stats_t *out);

/* The counters as Prometheus text (families ebus_nats_*, one sample
 * each; losses as ebus_nats_lost_total{cause=...}), snprintf-style as
 * ebus_snapshot_prometheus: *len gets the length needed without the NUL.
 * Thread-safety: any thread.
 * Errors: EBUS_ERR_NULL (b or len NULL, or buf NULL with cap > 0),
 * EBUS_ERR_BUFFER (too small; *len is the size needed).
 * Ownership: buf is the caller's. */
int ebus_nats_prometheus(ebus_nats_bridge_t *b, char *buf, size_t cap, size_t *len);

/* Blocks until every event exported so far reached the server (a NATS
 * flush; JetStream: until the server answered for each), up to
 * timeout_ns (0: 5 s; EBUS_FOREVER: no limit).
 * Thread-safety: any thread but the bus's handlers.
 * Errors: EBUS_ERR_NULL, EBUS_ERR_TIMEOUT.
 * Ownership: nothing changes hands. */
int ebus_nats_flush(ebus_nats_bridge_t *b, uint64_t timeout_ns);

/* Blocks until the export buffer holds at most max_queued events, up to
 * timeout_ns (0: 5 s; EBUS_FOREVER: no limit). The buffer never blocks
 * an executor: what does not fit is counted as export_overflow. A
 * publisher that must not outrun the network calls this every so often
 * (say every 1024 events, with export_buffer / 2), and waits for the
 * export thread instead of losing events. Events still in the bus's
 * lanes are not in the buffer yet: leave room for them. Returns at once
 * when the bridge is stopped or was never started (nothing is queued).
 * Thread-safety: any thread but the bus's handlers (a handler would
 * stall its executor on the network).
 * Errors: EBUS_ERR_NULL, EBUS_ERR_TIMEOUT.
 * Ownership: nothing changes hands. */
int ebus_nats_export_wait(ebus_nats_bridge_t *b, unsigned max_queued, uint64_t timeout_ns);

/* Stops: no more exports are taken, what is buffered is sent, imports
 * stop, the connection drains and closes. It returns after libnats's last
 * call into the bridge (an import in progress takes at most
 * import_block_ns more), so destroy may follow at once. Idempotent.
 * Thread-safety: one thread, not a handler of the bus.
 * Errors: EBUS_ERR_NULL.
 * Ownership: nothing changes hands. */
int ebus_nats_stop(ebus_nats_bridge_t *b);

/* Stops if needed and frees the bridge. NULL is a no-op.
 * Thread-safety: one thread, after every other call on the bridge.
 * Errors: none.
 * Ownership: frees the bridge. */
void ebus_nats_destroy(ebus_nats_bridge_t *b);

#ifdef __cplusplus
}
#endif

#endif
