/*
 * ebus::nats: the bridge between a bus and NATS (see include/ebus/nats.h).
 *
 * Export: one pattern subscription per export pattern (concurrent: its
 * topics may live on several executors) copies each event into a bounded
 * queue (the producers lock only among themselves, the export thread
 * reads without a lock; never a wait on the network: a full queue is
 * counted as export_overflow) and the export thread publishes it on
 * PREFIX.T with the trailer. The same thread sends a heartbeat every
 * heartbeat_ns with the last sequence number.
 *
 * Import: one NATS subscription on PREFIX.> (so that the per-origin
 * sequence accounts for every message of an origin, whatever the import
 * patterns), delivered on libnats's thread: the trailer is checked against
 * the origin's window, the subject mapped back to a topic name, the
 * import patterns applied, and the event published with
 * ebus_publish_name (which interns only names a subscription matches).
 * The threads that publish imports record their source ids, and the
 * export handler skips events from those sources: no re-export. Small
 * messages are destroyed HOLD at a time (libnats's GC thread is woken
 * once a batch, not once a message); the subscription's completion
 * callback releases the rest, and stop waits for it.
 *
 * JetStream mode: the export thread publishes with js_PublishAsync and
 * counts an event exported when the server's acknowledgement says it is
 * stored (export_failed/export_unacked otherwise); no heartbeats (the
 * exporter knows exactly what was stored). The importer's own thread
 * fetches from a durable pull consumer and accounts by stream sequence
 * instead of the per-origin window: the sequence is contiguous in a
 * stream, so a skip is a gap and a repeat a duplicate, across restarts of
 * the exporters too. On start the consumer is recreated at its ack floor
 * + 1, so what the previous process received but never acknowledged comes
 * at once, in order (counted as redelivered), not after the ack wait.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ebus/nats.h>

#include <errno.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TRAILER 24u
#define MAGIC 0x45425553u /* "EBUS" */
enum { KIND_DATA = 1, KIND_HEARTBEAT = 2 };
#define MAX_IMPORT_SOURCES 16
#define MAX_ORIGINS 64
#define WINDOW 64 /* sequence numbers remembered below the highest */
#define EXPORT_RUN 1024 /* records the export thread sends before it advances qhead */
#define CL_ALIGNED __attribute__((aligned(64))) /* a cache line */
#define HOLD 256         /* imported messages destroyed together (see on_msg) */
#define HOLD_BYTES 1024  /* a message with more data than this is destroyed at once */

struct exp_rec {
	char *buf; /* the subject PREFIX.T, NUL, the payload, room for the trailer;
	              the slot's own buffer, reused by the slot's next record */
	uint32_t slen, len;
	size_t cap;
	bool own; /* buf is the slot's own allocation, not a part of a chunk */
};
#define KEEP_BUF 4096 /* a slot keeps an own buffer up to this size */
#define SMALL 128     /* bytes of each slot in a chunk: a small event's message */
#define CHUNK 64      /* slots per chunk, allocated together on first use */

struct origin {
	uint64_t id;
	uint64_t max;  /* highest sequence seen */
	uint64_t seen; /* bit i: max - i was seen */
	uint64_t tail; /* bit i: max - i was counted as a gap by a heartbeat */
};

struct ebus_nats_bridge {
	ebus_t *bus;
	char *prefix;
	size_t prefix_len;
	char **exports, **imports;
	size_t nexports, nimports;
	uint64_t heartbeat_ns;
	int import_pending;
	unsigned flags;
	ebus_full_policy import_policy;
	uint64_t import_block_ns;
	uint64_t origin_id;
	natsConnection *nc;
	natsSubscription *sub;
	jsCtx *js;                 /* JetStream mode */
	char stream[EBUS_TOPIC_MAX + 8], *durable;
	uint64_t ack_wait_ns;
	pthread_t fetcher;         /* JetStream import */
	bool fetching;
	_Atomic bool fetch_quit;
	uint64_t js_last;          /* stream sequence accounted up to (fetcher) */
	uint64_t js_resumed;       /* the previous process's delivered sequence */
	ebus_sub_id *export_ids;
	bool started, stopped;
	_Atomic bool closing; /* our own close: not a disconnect */
	_Atomic bool down;    /* between a disconnect and the reconnect */
	bool closed;          /* libnats's last callback ran (under m) */

	_Atomic uint64_t import_sources[MAX_IMPORT_SOURCES]; /* read by on_export, rarely written */
	_Atomic unsigned nimport_sources;

	/* The export queue. Producers (on_export, on the executors) take pm
	 * among themselves only; the export thread never takes it: it reads
	 * qtail, sends, then advances qhead, so qtail - qhead counts what is
	 * queued or being sent. m and its condition variables are for
	 * sleeping: the export thread on cv (sleeping set), waiters for room
	 * on idle (room_waiters counted). What one thread writes for each
	 * event has a cache line of its own, apart from what the others
	 * write. */
	struct exp_rec *q;
	char **chunks; /* qcap / CHUNK, each NULL until a slot of it is used */
	unsigned qcap;
	pthread_t thread;
	bool js_published; /* export thread: js_PublishAsync was called */

	/* the producers' */
	pthread_mutex_t pm CL_ALIGNED;
	_Atomic unsigned qtail; /* under pm */

	/* the export thread's */
	_Atomic unsigned qhead CL_ALIGNED;
	uint64_t seq;
	_Atomic uint64_t exported, exported_reconnecting;

	/* for sleeping and waking */
	pthread_mutex_t m CL_ALIGNED;
	pthread_cond_t cv, idle;
	_Atomic unsigned room_waiters; /* in ebus_nats_export_wait or ebus_nats_flush */
	_Atomic bool sleeping;         /* the export thread waits on cv */
	_Atomic bool quit;

	/* import side: origins only on the subscription's delivery thread
	 * (libnats calls one subscription's handler from one thread, one
	 * message at a time), so without a lock */
	struct origin origins[MAX_ORIGINS] CL_ALIGNED;
	unsigned norigins;
	_Atomic uint64_t imported;
	/* natsMsg_Destroy hands a message to libnats's GC thread and wakes it
	 * if it waits: one wake-up per message when the delivery thread is the
	 * slower one. Small messages are destroyed HOLD at a time instead, by
	 * on_msg, and the rest by on_sub_done after the last callback: at
	 * most HOLD * HOLD_BYTES of payload held (bridge run, 1M events:
	 * 1.40 -> 1.50 M events/s, medians of 6; 1430 -> 1300 ms of CPU). */
	natsMsg *held[HOLD];
	unsigned nheld;
	bool sub_done_cb; /* on_sub_done will run (it is set on the subscription) */
	bool sub_done;    /* it ran (under m) */

	_Atomic uint64_t export_overflow CL_ALIGNED, export_failed, filtered, import_rejected,
		unmappable, gaps, duplicates, reordered, heartbeats, disconnects, reconnects,
		export_failed_buffer, export_failed_closed, export_unacked, import_full, import_timeout,
		tail_gaps, redelivered;
	int64_t import_dropped_final; /* read before the subscription goes */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CLOCK_REALTIME + ns, for pthread_cond_timedwait */
static struct timespec realtime_after(uint64_t ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000u);
	ts.tv_nsec += (long)(ns % 1000000000u);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static void add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* The same, for a counter with one writer: no locked instruction. The
 * export thread's exported (on_js_ack's in JetStream mode: never both)
 * and the importing thread's imported (the subscription's delivery
 * thread, or in JetStream mode the fetcher: never both). */
static void add1(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
}

/* ---- configuration ------------------------------------------------------- */

static size_t list_len(const char *const *l)
{
	size_t n = 0;
	while (l && l[n])
		n++;
	return n;
}

static void list_free(char **l, size_t n)
{
	for (size_t i = 0; l && i < n; i++)
		free(l[i]);
	free(l);
}

static int list_copy(const char *const *src, char ***out, size_t *n_out)
{
	size_t n = list_len(src);
	char **l = calloc(n + 1, sizeof *l);
	if (!l)
		return EBUS_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		int rc = ebus_pattern_validate(src[i]);
		if (rc != EBUS_OK || !(l[i] = strdup(src[i]))) {
			list_free(l, n);
			return rc != EBUS_OK ? rc : EBUS_ERR_NOMEM;
		}
	}
	*out = l;
	*n_out = n;
	return EBUS_OK;
}

static int check_config(const ebus_nats_config_t *c)
{
	size_t i;
	if (!c->servers || !c->servers[0])
		return EBUS_ERR_CONFIG;
	for (i = 0; i < sizeof c->reserved_ / sizeof c->reserved_[0]; i++)
		if (c->reserved_[i])
			return EBUS_ERR_CONFIG;
	if (c->export_buffer && (c->export_buffer & (c->export_buffer - 1)))
		return EBUS_ERR_CONFIG;
	if ((c->flags & ~(EBUS_NATS_SEND_ASAP | EBUS_NATS_JETSTREAM)) ||
	    (unsigned)c->import_policy > EBUS_FULL_DROP || c->import_block_ns == EBUS_FOREVER)
		return EBUS_ERR_CONFIG;
	if ((c->flags & EBUS_NATS_JETSTREAM) && c->imports && c->imports[0]) {
		size_t n = c->durable ? strlen(c->durable) : 0;
		if (n == 0 || n > 64 || strspn(c->durable, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                                            "0123456789-_") != n)
			return EBUS_ERR_CONFIG;
	}
	if (!c->prefix || ebus_topic_validate(c->prefix) != EBUS_OK || c->prefix[0] == '$' ||
	    strlen(c->prefix) > EBUS_TOPIC_MAX / 2)
		return EBUS_ERR_PREFIX;
	for (i = 0; c->servers[i]; i++) {
		const char *u = c->servers[i], *hp = strstr(u, "://");
		hp = hp ? hp + 3 : u;
		if (!*hp || strchr(hp, ' ') || strchr(hp, '/') || (strstr(u, "://") && strncmp(u, "nats://", 7) != 0 &&
		                                                   strncmp(u, "tls://", 6) != 0))
			return EBUS_ERR_URL;
	}
	return EBUS_OK;
}

static uint64_t random_id(void)
{
	uint64_t v = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
			v = 0;
		close(fd);
	}
	return v ? v : now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
}

/* ---- connection callbacks ------------------------------------------------ */

static void on_disconnected(natsConnection *nc, void *arg)
{
	struct ebus_nats_bridge *b = arg;
	(void)nc;
	atomic_store_explicit(&b->down, true, memory_order_relaxed);
	if (!atomic_load(&b->closing))
		add(&b->disconnects, 1);
}

static void on_reconnected(natsConnection *nc, void *arg)
{
	(void)nc;
	atomic_store_explicit(&((struct ebus_nats_bridge *)arg)->down, false, memory_order_relaxed);
	add(&((struct ebus_nats_bridge *)arg)->reconnects, 1);
}

/* The connection's last callback: after it and on_sub_done (the import
 * subscription's, on its own thread) libnats never calls back into the
 * bridge, so the bridge may be freed. */
static void on_closed(natsConnection *nc, void *arg)
{
	struct ebus_nats_bridge *b = arg;
	(void)nc;
	pthread_mutex_lock(&b->m);
	b->closed = true;
	pthread_cond_broadcast(&b->idle);
	pthread_mutex_unlock(&b->m);
}

/* Slow-consumer errors are counted from natsSubscription_GetDropped, which
 * is exact; the callback fires far less often than messages are lost. */
static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
	(void)nc;
	(void)sub;
	(void)err;
	(void)arg;
}

static int connect_nats(struct ebus_nats_bridge *b, const ebus_nats_config_t *c)
{
	natsOptions *o = NULL;
	natsStatus s;
	int n = (int)list_len(c->servers);
	int64_t timeout_ms = c->connect_timeout_ns ? (int64_t)(c->connect_timeout_ns / 1000000u) : 2000;
	if (timeout_ms < 1)
		timeout_ms = 1;
	if (natsOptions_Create(&o) != NATS_OK)
		return EBUS_ERR_NOMEM;
	s = natsOptions_SetServers(o, (const char **)c->servers, n);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, timeout_ms);
	if (s == NATS_OK)
		s = natsOptions_SetNoEcho(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetNoRandomize(o, true);
	if (s == NATS_OK && (c->flags & EBUS_NATS_SEND_ASAP))
		s = natsOptions_SetSendAsap(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 50);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(o, on_error, b);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(o, on_closed, b);
	if (s != NATS_OK) {
		natsOptions_Destroy(o);
		return s == NATS_NO_MEMORY ? EBUS_ERR_NOMEM : EBUS_ERR_URL;
	}
	s = natsConnection_Connect(&b->nc, o);
	natsOptions_Destroy(o);
	if (s == NATS_OK)
		return EBUS_OK;
	b->nc = NULL;
	if (s == NATS_NO_MEMORY)
		return EBUS_ERR_NOMEM;
	if (s == NATS_INVALID_ARG)
		return EBUS_ERR_URL;
	return EBUS_ERR_UNREACHABLE;
}

/* ---- JetStream ------------------------------------------------------------ */

static int js_status(natsStatus s)
{
	switch (s) {
	case NATS_OK:
		return EBUS_OK;
	case NATS_NO_MEMORY:
		return EBUS_ERR_NOMEM;
	case NATS_TIMEOUT:
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
		return EBUS_ERR_UNREACHABLE;
	default:
		return EBUS_ERR_CONFIG; /* JetStream off on the server, a stream of
		                           that name on other subjects, ... */
	}
}

static void on_js_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	struct ebus_nats_bridge *b = closure;
	(void)js;
	if (pa && !pae) {
		add(&b->exported, 1);
	} else {
		add(&b->export_failed, 1);
		add(&b->export_unacked, 1);
	}
	natsMsg_Destroy(msg);
}

/* The JetStream context and the stream on PREFIX.>, made if missing. */
static int js_setup(struct ebus_nats_bridge *b)
{
	jsOptions o;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	size_t i;
	if (jsOptions_Init(&o) != NATS_OK)
		return EBUS_ERR_NOMEM;
	o.PublishAsync.MaxPending = b->qcap < 4096 ? (int64_t)b->qcap : 4096;
	o.PublishAsync.AckHandler = on_js_ack;
	o.PublishAsync.AckHandlerClosure = b;
	o.PublishAsync.StallWait = 5000; /* the export thread may wait; executors never do */
	if ((s = natsConnection_JetStream(&b->js, b->nc, &o)) != NATS_OK)
		return js_status(s);
	/* a stream name has no '.', '*', '>', '/', '\\' or blank */
	memcpy(b->stream, "EBUS_", 5);
	for (i = 0; i < b->prefix_len; i++)
		b->stream[5 + i] = strchr("./\\", b->prefix[i]) ? '_' : b->prefix[i];
	b->stream[5 + i] = '\0';
	s = js_GetStreamInfo(&si, b->js, b->stream, NULL, &jerr);
	if (s == NATS_NOT_FOUND) {
		jsStreamConfig sc;
		char subj[EBUS_TOPIC_MAX + 4];
		const char *subjects[1] = {subj};
		memcpy(subj, b->prefix, b->prefix_len);
		memcpy(subj + b->prefix_len, ".>", 3);
		jsStreamConfig_Init(&sc);
		sc.Name = b->stream;
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		s = js_AddStream(&si, b->js, &sc, NULL, &jerr);
		if (s != NATS_OK && jerr == JSStreamNameExistErr)
			s = NATS_OK; /* another bridge made it meanwhile */
	}
	if (si)
		jsStreamInfo_Destroy(si);
	return js_status(s);
}

/* ---- create / destroy ---------------------------------------------------- */

/* Closes the connection and waits for libnats's last callback into the
 * bridge (on its own thread, after Close returns): then b may be freed. */
static void close_nats(struct ebus_nats_bridge *b)
{
	atomic_store(&b->closing, true);
	natsConnection_Close(b->nc);
	pthread_mutex_lock(&b->m);
	while (!b->closed)
		pthread_cond_wait(&b->idle, &b->m);
	pthread_mutex_unlock(&b->m);
}

static void bridge_free(struct ebus_nats_bridge *b)
{
	if (b->js)
		jsCtx_Destroy(b->js);
	free(b->durable);
	if (b->nc)
		natsConnection_Destroy(b->nc);
	list_free(b->exports, b->nexports);
	list_free(b->imports, b->nimports);
	free(b->export_ids);
	for (unsigned i = 0; b->q && i < b->qcap; i++)
		if (b->q[i].own)
			free(b->q[i].buf);
	for (unsigned i = 0; b->chunks && i < (b->qcap + CHUNK - 1) / CHUNK; i++)
		free(b->chunks[i]);
	free(b->chunks);
	free(b->q);
	free(b->prefix);
	pthread_mutex_destroy(&b->pm);
	pthread_mutex_destroy(&b->m);
	pthread_cond_destroy(&b->cv);
	pthread_cond_destroy(&b->idle);
	free(b);
}

int ebus_nats_create(ebus_t *bus, const ebus_nats_config_t *cfg, ebus_nats_bridge_t **out)
{
	struct ebus_nats_bridge *b;
	int rc;
	if (!bus || !cfg || !out)
		return EBUS_ERR_NULL;
	if ((rc = check_config(cfg)) != EBUS_OK)
		return rc;
	if (!(b = aligned_alloc(_Alignof(struct ebus_nats_bridge), sizeof *b)))
		return EBUS_ERR_NOMEM;
	memset(b, 0, sizeof *b);
	pthread_mutex_init(&b->pm, NULL);
	pthread_mutex_init(&b->m, NULL);
	pthread_cond_init(&b->cv, NULL);
	pthread_cond_init(&b->idle, NULL);
	b->bus = bus;
	b->heartbeat_ns = cfg->heartbeat_ns ? cfg->heartbeat_ns : 100000000u;
	b->import_pending = cfg->import_pending && cfg->import_pending < 1u << 30 ? (int)cfg->import_pending
	                                                                         : 65536;
	b->origin_id = cfg->origin_id ? cfg->origin_id : random_id();
	b->flags = cfg->flags;
	b->import_policy = cfg->import_policy;
	b->import_block_ns = cfg->import_block_ns ? cfg->import_block_ns : 100000000u;
	b->ack_wait_ns = cfg->ack_wait_ns ? cfg->ack_wait_ns : 5000000000u;
	if (cfg->durable && !(b->durable = strdup(cfg->durable))) {
		bridge_free(b);
		return EBUS_ERR_NOMEM;
	}
	b->qcap = cfg->export_buffer ? cfg->export_buffer : 65536;
	b->prefix = strdup(cfg->prefix);
	b->prefix_len = b->prefix ? strlen(b->prefix) : 0;
	b->q = calloc(b->qcap, sizeof *b->q);
	b->chunks = calloc((b->qcap + CHUNK - 1) / CHUNK, sizeof *b->chunks);
	if (!b->prefix || !b->q || !b->chunks) {
		bridge_free(b);
		return EBUS_ERR_NOMEM;
	}
	if ((rc = list_copy(cfg->exports, &b->exports, &b->nexports)) != EBUS_OK ||
	    (rc = list_copy(cfg->imports, &b->imports, &b->nimports)) != EBUS_OK) {
		bridge_free(b);
		return rc;
	}
	if (!(b->export_ids = calloc(b->nexports + 1, sizeof *b->export_ids))) {
		bridge_free(b);
		return EBUS_ERR_NOMEM;
	}
	if ((rc = connect_nats(b, cfg)) != EBUS_OK) {
		bridge_free(b);
		return rc;
	}
	if ((b->flags & EBUS_NATS_JETSTREAM) && (rc = js_setup(b)) != EBUS_OK) {
		close_nats(b); /* connected: wait for the closed callback */
		bridge_free(b);
		return rc;
	}
	*out = b;
	return EBUS_OK;
}

/* ---- export ---------------------------------------------------------------- */

static bool imported_here(struct ebus_nats_bridge *b, uint64_t source)
{
	unsigned n = atomic_load_explicit(&b->nimport_sources, memory_order_acquire);
	for (unsigned i = 0; i < n && i < MAX_IMPORT_SOURCES; i++)
		if (atomic_load_explicit(&b->import_sources[i], memory_order_relaxed) == source)
			return true;
	return false;
}

/* Gives slot i a buffer of at least `need` bytes: a part of its chunk
 * for a small message (one allocation for CHUNK slots), else its own.
 * Under pm. */
static bool slot_grow(struct ebus_nats_bridge *b, unsigned i, size_t need)
{
	struct exp_rec *r = &b->q[i];
	char *nb;
	if (need <= SMALL && !r->own) {
		char **ch = &b->chunks[i / CHUNK];
		if (!*ch && !(*ch = malloc((size_t)CHUNK * SMALL)))
			return false;
		r->buf = *ch + (size_t)(i % CHUNK) * SMALL;
		r->cap = SMALL;
		return true;
	}
	if (!(nb = r->own ? realloc(r->buf, need) : malloc(need)))
		return false;
	r->buf = nb;
	r->cap = need;
	r->own = true;
	return true;
}

/* Wakes the export thread if it sleeps. A seq_cst read-modify-write of
 * qtail that adds nothing (a fence TSan can check), after the producers'
 * release stores of qtail, then a seq_cst look at `sleeping`, against the
 * export thread's store to `sleeping` and its second look at qtail: either
 * it sees the events, or this sees it asleep and signals under m, which it
 * holds until it waits. Once per run of events, not once per event. */
static void wake_exporter(struct ebus_nats_bridge *b)
{
	(void)atomic_fetch_add(&b->qtail, 0);
	if (atomic_load(&b->sleeping)) {
		pthread_mutex_lock(&b->m);
		pthread_cond_signal(&b->cv);
		pthread_mutex_unlock(&b->m);
	}
}

static int on_export(const ebus_event_t *ev, void *ctx)
{
	/* the subject PREFIX.T of the last topic this thread exported: a run
	 * of one topic builds it once. Keyed by the bridge's address and its
	 * random origin id (as import_one's cache) and by the topic, which
	 * lives as long as the bus. */
	static _Thread_local struct {
		const struct ebus_nats_bridge *b;
		uint64_t origin;
		const ebus_topic_t *topic;
		size_t slen;
		char subj[EBUS_TOPIC_MAX / 2 + 1 + EBUS_TOPIC_MAX + 1];
	} last;
	struct ebus_nats_bridge *b = ctx;
	struct exp_rec *r;
	size_t need;
	unsigned t, h;
	if (imported_here(b, ev->source))
		goto out; /* never re-export an import */
	if (last.topic != ev->topic || last.b != b || last.origin != b->origin_id) {
		const char *name = ebus_topic_name(ev->topic);
		size_t nlen = strlen(name);
		memcpy(last.subj, b->prefix, b->prefix_len); /* prefix_len <= EBUS_TOPIC_MAX / 2 */
		last.subj[b->prefix_len] = '.';
		memcpy(last.subj + b->prefix_len + 1, name, nlen + 1);
		last.slen = b->prefix_len + 1 + nlen;
		last.b = b;
		last.origin = b->origin_id;
		last.topic = ev->topic;
	}
	need = last.slen + 1 + ev->len + TRAILER;
	pthread_mutex_lock(&b->pm);
	t = atomic_load_explicit(&b->qtail, memory_order_relaxed);
	h = atomic_load_explicit(&b->qhead, memory_order_acquire);
	/* the slot at t is free (the export thread is past it), and so is its
	 * buffer: no allocation in steady state */
	r = &b->q[t & (b->qcap - 1)];
	if (t - h == b->qcap || atomic_load_explicit(&b->quit, memory_order_relaxed) ||
	    (r->cap < need && !slot_grow(b, t & (b->qcap - 1), need))) {
		pthread_mutex_unlock(&b->pm);
		add(&b->export_overflow, 1);
		goto out;
	}
	/* the message as it goes out, but for the trailer (the export thread
	 * numbers it) */
	r->slen = (uint32_t)last.slen;
	r->len = (uint32_t)ev->len;
	memcpy(r->buf, last.subj, last.slen + 1);
	if (ev->len)
		memcpy(r->buf + last.slen + 1, ev->data, ev->len);
	atomic_store_explicit(&b->qtail, t + 1, memory_order_release); /* see wake_exporter */
	pthread_mutex_unlock(&b->pm);
	if (t + 1 - h == b->qcap / 2)
		wake_exporter(b);
out:
	/* one look at the export thread per run of events (the executor's
	 * next call is for another topic, or it has nothing more): not one
	 * per event */
	if (ev->flags & EBUS_EV_END_OF_BATCH)
		wake_exporter(b);
	return 0;
}

static void export_failed(struct ebus_nats_bridge *b, natsStatus s)
{
	add(&b->export_failed, 1);
	if (s == NATS_INSUFFICIENT_BUFFER)
		add(&b->export_failed_buffer, 1);
	else if (s == NATS_CONNECTION_CLOSED)
		add(&b->export_failed_closed, 1);
}

static void put_trailer(unsigned char *t, uint64_t origin, uint64_t seq, uint32_t kind)
{
	uint32_t magic = MAGIC;
	memcpy(t, &origin, 8);
	memcpy(t + 8, &seq, 8);
	memcpy(t + 16, &kind, 4);
	memcpy(t + 20, &magic, 4);
}

/* Publishes msg[0..len) on subj with the trailer written after it (msg
 * has room for it). */
static void send_one(struct ebus_nats_bridge *b, const char *subj, unsigned char *msg, size_t len,
                     uint32_t kind)
{
	natsStatus s;
	if (kind == KIND_HEARTBEAT && b->js)
		return; /* JetStream: the acknowledgements say what was stored */
	if (kind == KIND_DATA)
		b->seq++;
	put_trailer(msg + len, b->origin_id, b->seq, kind);
	if (b->js) { /* counted by on_js_ack */
		b->js_published = true;
		if ((s = js_PublishAsync(b->js, subj, msg, (int)(len + TRAILER), NULL)) != NATS_OK) {
			export_failed(b, s);
			if (s != NATS_INSUFFICIENT_BUFFER && s != NATS_CONNECTION_CLOSED)
				add(&b->export_unacked, 1);
		}
		return;
	}
	s = natsConnection_Publish(b->nc, subj, msg, (int)(len + TRAILER));
	if (kind != KIND_DATA)
		return;
	if (s == NATS_OK) {
		add1(&b->exported);
		if (atomic_load_explicit(&b->down, memory_order_relaxed))
			add(&b->exported_reconnecting, 1);
	} else {
		export_failed(b, s);
	}
}

static void send_heartbeat(struct ebus_nats_bridge *b, const char *subj)
{
	unsigned char t[TRAILER];
	send_one(b, subj, t, 0, KIND_HEARTBEAT);
}

static void *export_main(void *arg)
{
	struct ebus_nats_bridge *b = arg;
	char hb[EBUS_TOPIC_MAX + 8];
	uint64_t next_hb = now_ns() + b->heartbeat_ns;

	memcpy(hb, b->prefix, b->prefix_len);
	memcpy(hb + b->prefix_len, ".$hb", 5);

	for (;;) {
		unsigned h = atomic_load_explicit(&b->qhead, memory_order_relaxed);
		unsigned n = atomic_load_explicit(&b->qtail, memory_order_acquire) - h;
		if (!n) {
			uint64_t now = now_ns();
			/* stop sets quit after the last handler ran: then qtail is final */
			if (atomic_load_explicit(&b->quit, memory_order_acquire) &&
			    atomic_load_explicit(&b->qtail, memory_order_acquire) == h)
				break; /* quit, and everything sent */
			if (now >= next_hb) {
				send_heartbeat(b, hb);
				next_hb = now_ns() + b->heartbeat_ns;
				continue;
			}
			pthread_mutex_lock(&b->m);
			atomic_store(&b->sleeping, true); /* then a second look (wake_exporter) */
			if (atomic_load(&b->qtail) == h && !atomic_load(&b->quit)) {
				struct timespec ts = realtime_after(next_hb - now);
				pthread_cond_timedwait(&b->cv, &b->m, &ts);
			}
			atomic_store_explicit(&b->sleeping, false, memory_order_relaxed);
			pthread_mutex_unlock(&b->m);
			continue;
		}
		/* what is queued, in one go. Producers write only the slot at
		 * qtail, and only while it is outside [qhead, qtail), so these
		 * slots are read without a lock. */
		if (n > EXPORT_RUN)
			n = EXPORT_RUN;
		for (unsigned i = 0; i < n; i++) {
			struct exp_rec *r = &b->q[(h + i) & (b->qcap - 1)];
			send_one(b, r->buf, (unsigned char *)r->buf + r->slen + 1, r->len, KIND_DATA);
			if (r->own && r->cap > KEEP_BUF) { /* big buffers are not kept */
				free(r->buf);
				r->buf = NULL;
				r->cap = 0;
				r->own = false;
			}
		}
		/* seq_cst: pairs with queue_wait's count of room_waiters and its
		 * look at qhead, so a waiter either sees this or is woken */
		atomic_store(&b->qhead, h + n);
		if (atomic_load(&b->room_waiters)) {
			pthread_mutex_lock(&b->m);
			pthread_cond_broadcast(&b->idle);
			pthread_mutex_unlock(&b->m);
		}
	}
	/* a last heartbeat: the importers learn the final sequence */
	send_heartbeat(b, hb);
	return NULL;
}

/* ---- import ---------------------------------------------------------------- */

static void note_import_source(struct ebus_nats_bridge *b)
{
	static _Thread_local struct ebus_nats_bridge *noted;
	uint64_t src;
	unsigned i;
	if (noted == b || ebus_self_source(b->bus, &src) != EBUS_OK)
		return;
	noted = b;
	if (imported_here(b, src))
		return;
	i = atomic_load_explicit(&b->nimport_sources, memory_order_relaxed);
	if (i < MAX_IMPORT_SOURCES) {
		atomic_store_explicit(&b->import_sources[i], src, memory_order_relaxed);
		atomic_store_explicit(&b->nimport_sources, i + 1, memory_order_release);
	}
}

/* Accounts for sequence `seq` of `origin` (a data message, or with hb the
 * origin's last sequence). On the delivery thread. Returns false for a
 * duplicate. */
static bool account(struct ebus_nats_bridge *b, uint64_t origin, uint64_t seq, bool hb)
{
	struct origin *o = NULL;
	for (unsigned i = 0; i < b->norigins; i++)
		if (b->origins[i].id == origin)
			o = &b->origins[i];
	if (!o) {
		if (b->norigins == MAX_ORIGINS)
			return true; /* not tracked */
		o = &b->origins[b->norigins++];
		o->id = origin;
		o->max = 0;
		o->seen = 1; /* sequence 0 is never sent: treat it as seen */
		o->tail = 0;
	}
	if (hb) {
		if (seq > o->max) {
			uint64_t d = seq - o->max;
			add(&b->gaps, d);
			add(&b->tail_gaps, d);
			o->seen = d >= WINDOW ? 0 : o->seen << d;
			o->tail = d >= WINDOW ? ~0ull : (o->tail << d) | ((1ull << d) - 1);
			o->max = seq; /* counted as gaps; a late arrival undoes its share */
		}
		return true;
	}
	if (seq > o->max) {
		uint64_t d = seq - o->max;
		if (d > 1)
			add(&b->gaps, d - 1);
		o->seen = d >= WINDOW ? 1 : (o->seen << d) | 1;
		o->tail = d >= WINDOW ? 0 : o->tail << d;
		o->max = seq;
		return true;
	}
	{
		uint64_t back = o->max - seq;
		if (back >= WINDOW || (o->seen >> back) & 1) {
			add(&b->duplicates, 1);
			return false;
		}
		o->seen |= 1ull << back;
		atomic_fetch_sub_explicit(&b->gaps, 1, memory_order_relaxed);
		if ((o->tail >> back) & 1) {
			o->tail &= ~(1ull << back);
			atomic_fetch_sub_explicit(&b->tail_gaps, 1, memory_order_relaxed);
		}
		add(&b->reordered, 1);
		return true;
	}
}

static bool import_matches(struct ebus_nats_bridge *b, const char *name)
{
	for (size_t i = 0; i < b->nimports; i++) {
		int m = 0;
		if (ebus_pattern_match(b->imports[i], name, &m) == EBUS_OK && m)
			return true;
	}
	return false;
}

/* One message, accounted for already: to the local bus if it maps and
 * matches, with the import policy and its bound. With `retry` (JetStream:
 * our own thread, and the message stays in the stream) a wait that timed
 * out is tried again until the bridge stops; then false: not imported,
 * not counted, and not acknowledged, so the next process gets it. */
static bool import_one(struct ebus_nats_bridge *b, const char *name, const void *data, size_t len,
                       bool retry)
{
	/* the verdict on the last name this thread saw: a stream of one
	 * subject is checked once (the bridge is told by its address and its
	 * random origin id, so a new bridge at a freed one's address is not
	 * taken for it) */
	static _Thread_local struct {
		const struct ebus_nats_bridge *b;
		uint64_t origin;
		size_t len;
		int verdict; /* 0 unmappable, 1 filtered, 2 import */
		char name[EBUS_TOPIC_MAX + 1];
	} last;
	size_t n = strnlen(name, EBUS_TOPIC_MAX + 1);
	int rc;
	/* publishing the thread's own copy of the name, at one address, lets
	 * the bus's per-thread name cache hit on its address */
	if (last.b != b || last.origin != b->origin_id || last.len != n || memcmp(last.name, name, n) != 0) {
		last.verdict = ebus_topic_validate(name) != EBUS_OK || name[0] == '$' ? 0
		               : import_matches(b, name)                          ? 2
		                                                                  : 1;
		last.b = b;
		last.origin = b->origin_id;
		last.len = n <= EBUS_TOPIC_MAX ? n : 0;
		memcpy(last.name, name, last.len);
		last.name[last.len] = '\0';
		if (n > EBUS_TOPIC_MAX)
			last.b = NULL; /* too long to keep: not cached */
	}
	if (last.verdict == 0) {
		add(&b->unmappable, 1); /* never interned */
		return true;
	}
	if (last.verdict == 1) {
		add(&b->filtered, 1);
		return true;
	}
	note_import_source(b);
	do
		rc = ebus_publish_name_ex(b->bus, last.name, len ? data : NULL, len, b->import_policy,
		                          b->import_block_ns);
	while (rc == EBUS_ERR_TIMEOUT && retry &&
	       !atomic_load_explicit(&b->fetch_quit, memory_order_acquire));
	if (rc == EBUS_OK) {
		add1(&b->imported);
		return true;
	}
	if (rc == EBUS_ERR_TIMEOUT && retry)
		return false;
	add(&b->import_rejected, 1);
	if (rc == EBUS_ERR_FULL || rc == EBUS_DROPPED)
		add(&b->import_full, 1);
	else if (rc == EBUS_ERR_TIMEOUT)
		add(&b->import_timeout, 1);
	return true;
}

/* The trailer of a message of `len` bytes: its kind (0: none, a message
 * from outside ebus), origin and sequence. */
static uint32_t trailer(const unsigned char *data, size_t len, uint64_t *origin, uint64_t *seq)
{
	uint32_t kind = 0, magic = 0;
	if (len < TRAILER)
		return 0;
	memcpy(&kind, data + len - 4 - 4, 4);
	memcpy(&magic, data + len - 4, 4);
	if (magic != MAGIC || (kind != KIND_DATA && kind != KIND_HEARTBEAT))
		return 0;
	memcpy(origin, data + len - TRAILER, 8);
	memcpy(seq, data + len - TRAILER + 8, 8);
	return kind;
}

static void release_held(struct ebus_nats_bridge *b)
{
	for (unsigned i = 0; i < b->nheld; i++)
		natsMsg_Destroy(b->held[i]);
	b->nheld = 0;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
	struct ebus_nats_bridge *b = arg;
	const char *subj = natsMsg_GetSubject(msg);
	const unsigned char *data = (const unsigned char *)natsMsg_GetData(msg);
	int dlen = natsMsg_GetDataLength(msg);
	size_t len = dlen > 0 ? (size_t)dlen : 0;
	uint64_t origin = 0, seq = 0;
	uint32_t kind = trailer(data, len, &origin, &seq);
	(void)nc;
	(void)sub;

	if (kind) {
		bool fresh;
		fresh = account(b, origin, seq, kind == KIND_HEARTBEAT);
		if (kind == KIND_HEARTBEAT) {
			add(&b->heartbeats, 1);
			goto out;
		}
		len -= TRAILER;
		if (!fresh)
			goto out;
	}
	(void)import_one(b, subj + b->prefix_len + 1, data, len, false);
out:
	if (dlen > HOLD_BYTES) {
		natsMsg_Destroy(msg);
		return;
	}
	b->held[b->nheld++] = msg;
	if (b->nheld == HOLD)
		release_held(b);
}

/* The subscription's last call, on its delivery thread after the last
 * on_msg returned: what is held goes, and stop may free the bridge. */
static void on_sub_done(void *arg)
{
	struct ebus_nats_bridge *b = arg;
	release_held(b);
	pthread_mutex_lock(&b->m);
	b->sub_done = true;
	pthread_cond_broadcast(&b->idle);
	pthread_mutex_unlock(&b->m);
}

/* JetStream: one fetched message, accounted by its stream sequence.
 * Returns false when the bridge stopped before the local bus took it (it
 * is then neither accounted nor acknowledged). */
static bool js_import(struct ebus_nats_bridge *b, natsMsg *msg, uint64_t sseq)
{
	const unsigned char *data = (const unsigned char *)natsMsg_GetData(msg);
	int dlen = natsMsg_GetDataLength(msg);
	size_t len = dlen > 0 ? (size_t)dlen : 0;
	uint64_t origin = 0, seq = 0;
	uint32_t kind = trailer(data, len, &origin, &seq);
	if (sseq <= b->js_last) {
		add(&b->duplicates, 1); /* delivered already by this process */
		return true;
	}
	if (kind == KIND_DATA) {
		len -= TRAILER;
		if (origin != b->origin_id &&
		    !import_one(b, natsMsg_GetSubject(msg) + b->prefix_len + 1, data, len, true))
			return false;
		if (origin == b->origin_id)
			add(&b->filtered, 1); /* our own export, back from the stream */
	} else if (kind == KIND_HEARTBEAT) {
		add(&b->heartbeats, 1);
	} else if (!import_one(b, natsMsg_GetSubject(msg) + b->prefix_len + 1, data, len, true)) {
		return false;
	}
	if (sseq > b->js_last + 1)
		add(&b->gaps, sseq - b->js_last - 1); /* gone from the stream unread */
	b->js_last = sseq;
	if (sseq <= b->js_resumed)
		add(&b->redelivered, 1);
	return true;
}

static void *fetch_main(void *arg)
{
	struct ebus_nats_bridge *b = arg;
	while (!atomic_load_explicit(&b->fetch_quit, memory_order_acquire)) {
		natsMsgList list = {0};
		jsErrCode jerr = 0;
		natsMsg *last = NULL;
		natsStatus s = natsSubscription_Fetch(&list, b->sub, 256, 100, &jerr);
		if (s != NATS_OK && s != NATS_TIMEOUT) {
			/* disconnected: the client reconnects on its own; retry soon */
			struct timespec ts = {0, 10000000};
			nanosleep(&ts, NULL);
		}
		for (int i = 0; i < list.Count; i++) {
			jsMsgMetaData *md = NULL;
			bool done = true;
			if (natsMsg_GetMetaData(&md, list.Msgs[i]) == NATS_OK) {
				done = js_import(b, list.Msgs[i], md->Sequence.Stream);
				jsMsgMetaData_Destroy(md);
			}
			if (!done)
				break; /* stopping: the rest is the next process's */
			last = list.Msgs[i];
		}
		/* acknowledged once the handlers have run (a crash before it
		 * means the next process gets the batch again), and AckAll: one
		 * acknowledgement for the batch. A flush that times out leaves
		 * it to the next batch's. */
		if (last && ebus_flush(b->bus, b->ack_wait_ns / 2) == EBUS_OK)
			(void)natsMsg_Ack(last, NULL);
		natsMsgList_Destroy(&list);
	}
	return NULL;
}

/* The durable consumer, recreated at its ack floor + 1 so that what the
 * previous process received but did not acknowledge comes first and at
 * once (its numbers up to the old delivered sequence count as
 * redelivered), then the fetching thread. */
static int js_start_import(struct ebus_nats_bridge *b)
{
	jsConsumerInfo *ci = NULL;
	jsConsumerConfig cc;
	jsSubOptions so;
	jsErrCode jerr = 0;
	char filter[EBUS_TOPIC_MAX + 4];
	uint64_t floor = 0;
	natsStatus s;
	memcpy(filter, b->prefix, b->prefix_len);
	memcpy(filter + b->prefix_len, ".>", 3);
	s = js_GetConsumerInfo(&ci, b->js, b->stream, b->durable, NULL, &jerr);
	if (s == NATS_OK) {
		floor = ci->AckFloor.Stream;
		b->js_resumed = ci->Delivered.Stream;
		jsConsumerInfo_Destroy(ci);
		ci = NULL;
		if ((s = js_DeleteConsumer(b->js, b->stream, b->durable, NULL, &jerr)) != NATS_OK)
			return js_status(s);
	} else if (s != NATS_NOT_FOUND) {
		return js_status(s);
	}
	jsConsumerConfig_Init(&cc);
	cc.Durable = b->durable;
	cc.AckPolicy = js_AckAll;
	cc.AckWait = (int64_t)b->ack_wait_ns;
	cc.FilterSubject = filter;
	cc.MaxAckPending = 65536;
	cc.DeliverPolicy = floor ? js_DeliverByStartSequence : js_DeliverAll;
	cc.OptStartSeq = floor ? floor + 1 : 0;
	b->js_last = floor;
	if ((s = js_AddConsumer(&ci, b->js, b->stream, &cc, NULL, &jerr)) != NATS_OK)
		return js_status(s);
	jsConsumerInfo_Destroy(ci);
	jsSubOptions_Init(&so);
	so.Stream = b->stream;
	so.Consumer = b->durable;
	if ((s = js_PullSubscribe(&b->sub, b->js, filter, b->durable, NULL, &so, &jerr)) != NATS_OK)
		return js_status(s);
	if (pthread_create(&b->fetcher, NULL, fetch_main, b) != 0)
		return EBUS_ERR_SYSTEM;
	b->fetching = true;
	return EBUS_OK;
}

/* ---- start / stats / flush / stop ---------------------------------------------- */

int ebus_nats_start(ebus_nats_bridge_t *b)
{
	char subj[EBUS_TOPIC_MAX + 4];
	int rc;
	if (!b)
		return EBUS_ERR_NULL;
	if (b->started || b->stopped)
		return EBUS_ERR_SHUTDOWN;
	b->started = true;
	if (pthread_create(&b->thread, NULL, export_main, b) != 0) {
		b->stopped = true;
		return EBUS_ERR_SYSTEM;
	}
	if (b->nimports && b->js) {
		if ((rc = js_start_import(b)) != EBUS_OK) {
			ebus_nats_stop(b);
			return rc;
		}
		goto exports;
	}
	memcpy(subj, b->prefix, b->prefix_len);
	memcpy(subj + b->prefix_len, ".>", 3);
	if (b->nimports &&
	    natsConnection_Subscribe(&b->sub, b->nc, subj, on_msg, b) != NATS_OK) {
		ebus_nats_stop(b);
		return EBUS_ERR_SYSTEM;
	}
	if (b->sub) {
		b->sub_done_cb = natsSubscription_SetOnCompleteCB(b->sub, on_sub_done, b) == NATS_OK;
		natsSubscription_SetPendingLimits(b->sub, b->import_pending, 256 * 1024 * 1024);
		/* a PING/PONG: the server has the subscription when start returns */
		if (natsConnection_FlushTimeout(b->nc, 5000) != NATS_OK) {
			ebus_nats_stop(b);
			return EBUS_ERR_UNREACHABLE;
		}
	}
exports:
	for (size_t i = 0; i < b->nexports; i++) {
		rc = ebus_subscribe_pattern(b->bus, b->exports[i], on_export, b, EBUS_SUB_CONCURRENT,
		                            &b->export_ids[i]);
		if (rc != EBUS_OK) {
			ebus_nats_stop(b);
			return rc;
		}
	}
	return EBUS_OK;
}

int ebus_nats_stats(ebus_nats_bridge_t *b, ebus_nats_stats_t *o)
{
	int64_t dropped = 0;
	if (!b || !o)
		return EBUS_ERR_NULL;
	memset(o, 0, sizeof *o);
	o->exported = atomic_load(&b->exported);
	o->exported_reconnecting = atomic_load(&b->exported_reconnecting);
	o->export_overflow = atomic_load(&b->export_overflow);
	o->export_failed = atomic_load(&b->export_failed);
	o->imported = atomic_load(&b->imported);
	o->filtered = atomic_load(&b->filtered);
	o->import_rejected = atomic_load(&b->import_rejected);
	o->unmappable = atomic_load(&b->unmappable);
	o->gaps = atomic_load(&b->gaps);
	o->duplicates = atomic_load(&b->duplicates);
	o->reordered = atomic_load(&b->reordered);
	o->heartbeats = atomic_load(&b->heartbeats);
	o->disconnects = atomic_load(&b->disconnects);
	o->reconnects = atomic_load(&b->reconnects);
	o->export_failed_buffer = atomic_load(&b->export_failed_buffer);
	o->export_failed_closed = atomic_load(&b->export_failed_closed);
	o->export_unacked = atomic_load(&b->export_unacked);
	o->import_full = atomic_load(&b->import_full);
	o->import_timeout = atomic_load(&b->import_timeout);
	o->tail_gaps = atomic_load(&b->tail_gaps);
	o->redelivered = atomic_load(&b->redelivered);
	if (b->sub && !b->js && !b->stopped && natsSubscription_GetDropped(b->sub, &dropped) != NATS_OK)
		dropped = 0;
	o->import_dropped = (uint64_t)(b->stopped ? b->import_dropped_final : dropped);
	return EBUS_OK;
}

/* a - b, or 0: the counters are read one by one while traffic flows */
static uint64_t sub0(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

int ebus_nats_prometheus(ebus_nats_bridge_t *b, char *buf, size_t cap, size_t *len)
{
	ebus_nats_stats_t st;
	size_t used = 0;
	const struct {
		const char *name, *type, *help, *label;
		uint64_t v;
	} m[] = {
		{"exported_total", "counter", "Events handed to the NATS client.", NULL, 0},
		{"exported_reconnecting_total", "counter",
		 "Of those, while disconnected (buffered by the client).", NULL, 0},
		{"imported_total", "counter", "Events published on the local bus.", NULL, 0},
		{"filtered_total", "counter", "Messages received that matched no import pattern.", NULL, 0},
		{"heartbeats_total", "counter", "Heartbeats received from other bridges.", NULL, 0},
		{"duplicates_total", "counter", "Messages received twice (not imported again).", NULL, 0},
		{"reordered_total", "counter", "Messages that arrived after a later one.", NULL, 0},
		{"lost_total", "counter",
		 "Events lost, by cause: export buffer full; refused by the NATS client (its reconnect "
		 "buffer full, the connection closed, other); not stored by JetStream; missing at this "
		 "importer (gaps, including the client's slow-consumer drops; tail: found by a "
		 "heartbeat); refused by the local bus (full, timed out, other); subjects with no ebus "
		 "name.",
		 "cause=\"export_overflow\"", 0},
		{"lost_total", NULL, NULL, "cause=\"export_buffer\"", 0},
		{"lost_total", NULL, NULL, "cause=\"export_closed\"", 0},
		{"lost_total", NULL, NULL, "cause=\"export_failed\"", 0},
		{"lost_total", NULL, NULL, "cause=\"export_unacked\"", 0},
		{"lost_total", NULL, NULL, "cause=\"gap\"", 0},
		{"lost_total", NULL, NULL, "cause=\"tail\"", 0},
		{"lost_total", NULL, NULL, "cause=\"import_full\"", 0},
		{"lost_total", NULL, NULL, "cause=\"import_timeout\"", 0},
		{"lost_total", NULL, NULL, "cause=\"import_rejected\"", 0},
		{"lost_total", NULL, NULL, "cause=\"unmappable\"", 0},
		{"client_dropped_total", "counter", "Messages the NATS client dropped (slow consumer).",
		 NULL, 0},
		{"redelivered_total", "counter",
		 "JetStream: messages delivered again after a restart (at most this many duplicates).",
		 NULL, 0},
		{"disconnects_total", "counter", "Connections lost.", NULL, 0},
		{"reconnects_total", "counter", "Connections re-established.", NULL, 0},
	};
	uint64_t v[sizeof m / sizeof m[0]];
	size_t k = 0;
	if (!b || !len || (!buf && cap))
		return EBUS_ERR_NULL;
	ebus_nats_stats(b, &st);
	v[k++] = st.exported;
	v[k++] = st.exported_reconnecting;
	v[k++] = st.imported;
	v[k++] = st.filtered;
	v[k++] = st.heartbeats;
	v[k++] = st.duplicates;
	v[k++] = st.reordered;
	v[k++] = st.export_overflow;
	v[k++] = st.export_failed_buffer;
	v[k++] = st.export_failed_closed;
	v[k++] = sub0(st.export_failed, st.export_failed_buffer + st.export_failed_closed + st.export_unacked);
	v[k++] = st.export_unacked;
	v[k++] = sub0(st.gaps, st.tail_gaps);
	v[k++] = st.tail_gaps;
	v[k++] = st.import_full;
	v[k++] = st.import_timeout;
	v[k++] = sub0(st.import_rejected, st.import_full + st.import_timeout);
	v[k++] = st.unmappable;
	v[k++] = st.import_dropped;
	v[k++] = st.redelivered;
	v[k++] = st.disconnects;
	v[k++] = st.reconnects;
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
		char line[1024];
		int n = 0;
		if (m[i].help)
			n = snprintf(line, sizeof line, "# HELP ebus_nats_%s %s\n# TYPE ebus_nats_%s %s\n",
			             m[i].name, m[i].help, m[i].name, m[i].type);
		n += snprintf(line + n, sizeof line - (size_t)n, "ebus_nats_%s%s%s%s %llu\n", m[i].name,
		              m[i].label ? "{" : "", m[i].label ? m[i].label : "", m[i].label ? "}" : "",
		              (unsigned long long)v[i]);
		if (used + (size_t)n < cap) /* whole lines only, and only while all fit */
			memcpy(buf + used, line, (size_t)n);
		else if (used < cap)
			cap = used + 1; /* nothing after this line is copied */
		used += (size_t)n;
	}
	*len = used;
	if (used >= cap) {
		if (cap)
			buf[cap - 1] = '\0'; /* a prefix of whole lines */
		return EBUS_ERR_BUFFER;
	}
	buf[used] = '\0';
	return EBUS_OK;
}

/* JetStream: waits until every asynchronous publish has its answer. */
static natsStatus js_wait_acks(struct ebus_nats_bridge *b, int64_t ms)
{
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = ms;
	return js_PublishAsyncComplete(b->js, &po);
}

/* now + timeout_ns (0: 5 s), saturating: EBUS_FOREVER never expires */
static uint64_t deadline_after(uint64_t timeout_ns)
{
	uint64_t now = now_ns();
	if (!timeout_ns)
		timeout_ns = 5000000000u;
	return timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
}

/* Events queued or being sent (qhead first: qtail only grows). */
static unsigned queued(ebus_nats_bridge_t *b)
{
	unsigned h = atomic_load(&b->qhead);
	return atomic_load(&b->qtail) - h;
}

/* Waits until at most `max` events are queued for export or being sent
 * (with 0: all of them handed to libnats), or the deadline. */
static int queue_wait(ebus_nats_bridge_t *b, unsigned max, uint64_t deadline)
{
	int rc = EBUS_OK;
	pthread_mutex_lock(&b->m);
	atomic_fetch_add(&b->room_waiters, 1); /* woken after every run of the export thread */
	while (queued(b) > max && rc == EBUS_OK) {
		struct timespec ts = realtime_after(10000000); /* re-check the deadline every 10 ms */
		pthread_cond_timedwait(&b->idle, &b->m, &ts);
		if (now_ns() >= deadline)
			rc = EBUS_ERR_TIMEOUT;
	}
	atomic_fetch_sub(&b->room_waiters, 1);
	pthread_mutex_unlock(&b->m);
	return rc;
}

int ebus_nats_export_wait(ebus_nats_bridge_t *b, unsigned max_queued, uint64_t timeout_ns)
{
	if (!b)
		return EBUS_ERR_NULL;
	return queue_wait(b, max_queued, deadline_after(timeout_ns));
}

int ebus_nats_flush(ebus_nats_bridge_t *b, uint64_t timeout_ns)
{
	uint64_t deadline;
	int rc;
	if (!b)
		return EBUS_ERR_NULL;
	deadline = deadline_after(timeout_ns);
	rc = queue_wait(b, 0, deadline);
	if (rc == EBUS_OK) {
		uint64_t now = now_ns(), left = now < deadline ? deadline - now : 0;
		/* libnats adds this to its clock: INT32_MAX ms (24 days) stands for ever */
		int64_t ms = left / 1000000u > INT32_MAX ? INT32_MAX : (int64_t)(left / 1000000u);
		if (ms < 1 || (b->js && js_wait_acks(b, ms) != NATS_OK) ||
		    natsConnection_FlushTimeout(b->nc, ms) != NATS_OK)
			rc = EBUS_ERR_TIMEOUT;
	}
	return rc;
}

int ebus_nats_stop(ebus_nats_bridge_t *b)
{
	if (!b)
		return EBUS_ERR_NULL;
	if (b->stopped)
		return EBUS_OK;
	for (size_t i = 0; i < b->nexports; i++)
		if (b->export_ids[i])
			(void)ebus_unsubscribe(b->bus, b->export_ids[i]); /* no handler after this */
	if (b->started) {
		pthread_mutex_lock(&b->m);
		atomic_store(&b->quit, true);
		pthread_cond_signal(&b->cv);
		pthread_mutex_unlock(&b->m);
		pthread_join(b->thread, NULL);
	}
	if (b->js && b->js_published) { /* (GetPendingList crashes before any publish) */
		natsMsgList pending = {0};
		/* the answers still to come, then what never got one */
		(void)js_wait_acks(b, 2000);
		if (js_PublishAsyncGetPendingList(&pending, b->js) == NATS_OK) {
			add(&b->export_failed, (uint64_t)pending.Count);
			add(&b->export_unacked, (uint64_t)pending.Count);
			natsMsgList_Destroy(&pending);
		}
	}
	if (b->fetching) {
		atomic_store_explicit(&b->fetch_quit, true, memory_order_release);
		pthread_join(b->fetcher, NULL); /* within one fetch's 100 ms */
		b->fetching = false;
	}
	if (b->sub && b->js) {
		/* no unsubscribe: the durable consumer stays for the next process */
		natsSubscription_Destroy(b->sub);
		b->sub = NULL;
	}
	if (b->sub) {
		int64_t d = 0;
		/* read before the drain: afterwards the subscription is invalid */
		if (natsSubscription_GetDropped(b->sub, &d) == NATS_OK)
			b->import_dropped_final = d;
		/* what is pending is delivered, and no callback runs after this */
		if (natsSubscription_Drain(b->sub) == NATS_OK)
			(void)natsSubscription_WaitForDrainCompletion(b->sub, 2000);
		natsSubscription_Destroy(b->sub);
		b->sub = NULL;
	}
	if (b->nc) {
		natsConnection_FlushTimeout(b->nc, 2000);
		close_nats(b);
	}
	/* the subscription is closed now (drained, or with the connection):
	 * wait for its last call, or, without one, release here */
	pthread_mutex_lock(&b->m);
	while (b->sub_done_cb && !b->sub_done)
		pthread_cond_wait(&b->idle, &b->m);
	pthread_mutex_unlock(&b->m);
	release_held(b);
	b->stopped = true;
	return EBUS_OK;
}

void ebus_nats_destroy(ebus_nats_bridge_t *b)
{
	if (!b)
		return;
	ebus_nats_stop(b);
	bridge_free(b);
}
