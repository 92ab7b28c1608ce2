/*
 * Statistics (bus layer, beside bus.c): ebus_stats, snapshots and their
 * Prometheus text rendering. Every counter is its owner's (lanes, executors,
 * stripes, topics, the bus), read here through the owner's read function.
 *
 * Writers never synchronise with readers. Every counter has one writer (a
 * publisher's lane, an executor, or the thread holding a stripe lock in
 * synchronous mode) that updates it with a relaxed load and store
 * (ctr_add); readers use relaxed loads. The exceptions are the per-topic
 * losses on a full lane (dropped_full, rejected_*), which any publisher of
 * the topic may hit: those happen on the slow path only, where an atomic
 * fetch_add costs nothing that matters.
 *
 * Topic counters sit on their own cache line in the topic (publishers read
 * the topic's first line on every publish). An unordered topic is
 * dispatched by every executor, so it gets one block per executor, indexed
 * by the dispatching executor (topic_ctrs_of in topic.h); a snapshot
 * sums them.
 */
#include "bus.h"
#include "stats.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- ebus_stats ------------------------------------------------------------- */

int ebus_stats(ebus_t *bus, int executor, ebus_stats_t *out)
{
	if (!bus || !out)
		return EBUS_ERR_NULL;
	if (executor >= 0 && (unsigned)executor >= bus->nexec)
		return EBUS_ERR_EXECUTOR;
	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < bus->nexec; i++) {
		if (executor >= 0 && (unsigned)executor != i)
			continue;
		if (bus->sync) {
			ebus_sync_stats(bus, i, out);
		} else {
			ebus_exec_stats(bus->exec[i], out);
			ebus_lane_set_stats(&bus->lanes, i, out);
		}
	}
	if (executor < 0) {
		uint64_t u = atomic_load_explicit(&bus->unknown_name_drops, memory_order_relaxed);
		out->published += u;
		out->dropped_no_subscriber += u;
		out->rejected_shutdown = atomic_load_explicit(&bus->rejected_shutdown, memory_order_relaxed);
	}
	return EBUS_OK;
}

static struct ebus_hist *hist_of(struct ebus *bus, unsigned i)
{
	return bus->sync ? ebus_sync_hist(bus, i) : ebus_exec_hist(bus->exec[i]);
}

/* ---- snapshots -------------------------------------------------------------- */

struct snap_hist {
	uint64_t count, sum;
	uint64_t bucket[EBUS_HIST_BUCKETS];
};

/*
 * One allocation: this header, then ebus_stats_t[nexec], then
 * ebus_topic_stats_t[ntopics], then the topic names. The bus's allocator is
 * copied in, because the snapshot may outlive the bus.
 */
struct snap_block {
	ebus_snapshot_t snap; /* first: the public pointer is the block's */
	ebus_allocator_t alloc; /* zero: malloc/free */
	size_t size;
	struct snap_hist hist;
};

static size_t round8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static struct snap_block *block_alloc(struct ebus *bus, size_t size)
{
	struct snap_block *b;
	if (bus)
		b = ebus_zalloc(&bus->alloc, size, _Alignof(struct snap_block));
	else
		b = calloc(1, size);
	if (!b)
		return NULL;
	if (bus)
		b->alloc = bus->alloc;
	b->size = size;
	return b;
}

void ebus_snapshot_free(ebus_snapshot_t *snap)
{
	struct snap_block *b = (struct snap_block *)snap;
	if (!b)
		return;
	if (b->alloc.free)
		b->alloc.free(b, b->size, b->alloc.ctx);
	else
		free(b);
}

static int topic_cmp(const void *a, const void *b)
{
	return strcmp(((const ebus_topic_stats_t *)a)->name, ((const ebus_topic_stats_t *)b)->name);
}

int ebus_snapshot(ebus_t *bus, ebus_snapshot_t **out)
{
	struct ebus_topic_s *first, *t;
	size_t ntopics = 0, names = 0, off_exec, off_topics, off_names, size, k;
	struct snap_block *b;
	ebus_stats_t *ex;
	ebus_topic_stats_t *ts;
	char *np;

	if (!bus || !out)
		return EBUS_ERR_NULL;
	/* Topics added during the call are left out: both walks start from the
	 * same first topic and see the same list (topic.h). */
	first = ebus_registry_first(&bus->reg);
	for (t = first; t; t = ebus_registry_next(t)) {
		ntopics++;
		names += t->namelen + 1;
	}
	off_exec = round8(sizeof(struct snap_block));
	off_topics = round8(off_exec + bus->nexec * sizeof(ebus_stats_t));
	off_names = off_topics + ntopics * sizeof(ebus_topic_stats_t);
	size = off_names + names;
	b = block_alloc(bus, size);
	if (!b)
		return EBUS_ERR_NOMEM;
	ex = (ebus_stats_t *)(void *)((char *)b + off_exec);
	ts = (ebus_topic_stats_t *)(void *)((char *)b + off_topics);
	np = (char *)b + off_names;

	b->snap.taken_ns = ebus_now_ns();
	b->snap.nexec = bus->nexec;
	b->snap.executors = ex;
	b->snap.ntopics = ntopics;
	b->snap.topics = ts;
	/* Each executor row and the total are read separately: equal sums once
	 * the bus is quiescent (after a flush). */
	for (unsigned i = 0; i < bus->nexec; i++)
		(void)ebus_stats(bus, (int)i, &ex[i]);
	(void)ebus_stats(bus, -1, &b->snap.total);

	for (t = first, k = 0; t; t = ebus_registry_next(t), k++) {
		memcpy(np, t->name, t->namelen + 1);
		ts[k].name = np;
		np += t->namelen + 1;
		ebus_topic_read_stats(t, bus->nexec, &ts[k]);
		ts[k].subscribers = ebus_subs_count(&bus->subs, t);
	}
	qsort(ts, ntopics, sizeof *ts, topic_cmp);

	if (bus->timestamps) {
		for (unsigned i = 0; i < bus->nexec; i++) {
			struct ebus_hist *h = hist_of(bus, i);
			if (!h)
				continue;
			for (unsigned j = 0; j < EBUS_HIST_BUCKETS; j++) {
				uint64_t c = ctr_get(&h->bucket[j]);
				b->hist.bucket[j] += c;
				b->hist.count += c;
			}
			b->hist.sum += ctr_get(&h->sum);
		}
		b->snap.latency_samples = b->hist.count;
		b->snap.latency_ = &b->hist;
	}
	*out = &b->snap;
	return EBUS_OK;
}

int ebus_snapshot_from_samples_(const uint64_t *ns, size_t n, ebus_snapshot_t **out)
{
	struct snap_block *b;
	if ((!ns && n) || !out)
		return EBUS_ERR_NULL;
	b = block_alloc(NULL, sizeof *b);
	if (!b)
		return EBUS_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		b->hist.bucket[ebus_hist_bucket(ns[i])]++;
		b->hist.sum += ns[i];
	}
	b->hist.count = n;
	b->snap.latency_samples = n;
	b->snap.latency_ = &b->hist;
	*out = &b->snap;
	return EBUS_OK;
}

/* Upper bound of the bucket holding the sample of rank ceil(p% * count). */
static uint64_t hist_percentile(const struct snap_hist *h, double p)
{
	double x = p / 100.0 * (double)h->count;
	uint64_t rank = (uint64_t)x, seen = 0;
	if ((double)rank < x)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (unsigned i = 0; i < EBUS_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank)
			return ebus_hist_upper(i);
	}
	return ebus_hist_upper(EBUS_HIST_BUCKETS - 1);
}

int ebus_snapshot_percentile(const ebus_snapshot_t *snap, double p, uint64_t *ns)
{
	const struct snap_hist *h;
	if (!snap || !ns)
		return EBUS_ERR_NULL;
	if (!(p >= 0.0 && p <= 100.0)) /* NaN too */
		return EBUS_ERR_CONFIG;
	h = snap->latency_;
	if (!h)
		return EBUS_ERR_UNSUPPORTED;
	if (h->count == 0)
		return EBUS_ERR_EMPTY;
	*ns = hist_percentile(h, p);
	return EBUS_OK;
}

/* ---- Prometheus text exposition format 0.0.4 -------------------------------- */

/* snprintf-style output: writes what fits (always NUL-terminated when
 * cap > 0) and counts everything. */
struct out {
	char *buf;
	size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + 1 < o->cap) {
		size_t room = o->cap - 1 - o->len;
		size_t k = n < room ? n : room;
		memcpy(o->buf + o->len, s, k);
		o->buf[o->len + k] = '\0';
	}
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
	char tmp[256]; /* callers format numbers and fixed names only */
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A label value: backslash, double quote and line feed are escaped. */
static void put_label_value(struct out *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			put(o, "\\\\", 2);
		else if (*s == '"')
			put(o, "\\\"", 2);
		else if (*s == '\n')
			put(o, "\\n", 2);
		else
			put(o, s, 1);
	}
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
	putf(o, "# HELP %s ", name);
	puts_(o, help);
	putf(o, "\n# TYPE %s %s\n", name, type);
}

/* One sample: name{label="value",extra} v. label may be NULL (no labels);
 * extra is a second, already formatted label or NULL. */
static void sample(struct out *o, const char *name, const char *label, const char *value,
                   const char *extra, uint64_t v)
{
	puts_(o, name);
	if (label || extra) {
		put(o, "{", 1);
		if (label) {
			putf(o, "%s=\"", label);
			put_label_value(o, value);
			put(o, "\"", 1);
		}
		if (extra) {
			if (label)
				put(o, ",", 1);
			puts_(o, extra);
		}
		put(o, "}", 1);
	}
	putf(o, " %" PRIu64 "\n", v);
}

/* Reads one field of ebus_stats_t / ebus_topic_stats_t by offset. */
#define FIELD(ptr, off) (*(const uint64_t *)(const void *)((const char *)(ptr) + (off)))
#define ST(f) offsetof(ebus_stats_t, f)
#define TS(f) offsetof(ebus_topic_stats_t, f)

struct metric {
	const char *suffix; /* after the scope's prefix */
	const char *type;
	const char *extra;  /* a fixed label, e.g. cause="full"; NULL if none */
	size_t off;
	const char *help;   /* NULL: same family as the previous entry */
	int bus_only;       /* not kept per executor */
};

/* Bus totals (no label) and per executor (executor="i"). */
static const struct metric bus_metrics[] = {
	{ "published_total", "counter", NULL, ST(published), "Events accepted by publish.", 0 },
	{ "delivered_total", "counter", NULL, ST(delivered),
	  "Accepted events dispatched to at least one subscriber.", 0 },
	{ "handler_calls_total", "counter", NULL, ST(handler_calls), "Subscriber invocations.", 0 },
	{ "handler_errors_total", "counter", NULL, ST(handler_errors),
	  "Subscriber invocations that returned non-zero.", 0 },
	{ "dropped_total", "counter", "cause=\"no_subscriber\"", ST(dropped_no_subscriber),
	  "Events lost: accepted with no subscriber at dispatch (no_subscriber), accepted and "
	  "discarded by shutdown (shutdown), refused by a full lane with the drop policy (full).", 0 },
	{ "dropped_total", "counter", "cause=\"shutdown\"", ST(dropped_shutdown), NULL, 0 },
	{ "dropped_total", "counter", "cause=\"full\"", ST(dropped_full), NULL, 0 },
	{ "rejected_total", "counter", "cause=\"full\"", ST(rejected_full),
	  "Publish calls refused: full lane with the fail policy or a blocking publish that "
	  "would deadlock (full), block timeout (timeout), bus shut down (shutdown).", 0 },
	{ "rejected_total", "counter", "cause=\"timeout\"", ST(rejected_timeout), NULL, 0 },
	{ "rejected_total", "counter", "cause=\"shutdown\"", ST(rejected_shutdown), NULL, 1 },
	{ "queued", "gauge", NULL, ST(queued), "Events waiting in lanes.", 0 },
	{ "lanes_live", "gauge", NULL, ST(lanes_live), "Lanes (publisher thread to executor) not yet reclaimed.", 0 },
	{ "lane_high_water", "gauge", NULL, ST(lane_high_water),
	  "Most events an executor found queued in one lane when it began draining it.", 0 },
	{ "lanes_created_total", "counter", NULL, ST(lanes_created), "Lanes created.", 0 },
	{ "lanes_reclaimed_total", "counter", NULL, ST(lanes_reclaimed), "Lanes of exited threads reclaimed.", 0 },
	{ "parks_total", "counter", NULL, ST(parks), "Times an executor went to sleep.", 0 },
	{ "wakeups_total", "counter", NULL, ST(wakeups), "Times an executor woke from sleep.", 0 },
	{ "payload_allocs_total", "counter", NULL, ST(payload_allocs),
	  "Payloads above the slot copied with the allocator, not the lane's arena (arena full, "
	  "or the payload above a quarter of it).", 0 },
};

static const struct metric topic_metrics[] = {
	{ "subscribers", "gauge", NULL, TS(subscribers), "Subscriptions attached to the topic now.", 0 },
	{ "dispatched_total", "counter", NULL, TS(dispatched),
	  "Events of the topic taken from lanes (synchronous bus: published).", 0 },
	{ "delivered_total", "counter", NULL, TS(delivered),
	  "Events of the topic dispatched to at least one subscriber.", 0 },
	{ "handler_calls_total", "counter", NULL, TS(handler_calls), "Subscriber invocations.", 0 },
	{ "handler_errors_total", "counter", NULL, TS(handler_errors),
	  "Subscriber invocations that returned non-zero.", 0 },
	{ "dropped_total", "counter", "cause=\"no_subscriber\"", TS(dropped_no_subscriber),
	  "Events of the topic lost, by cause (see ebus_dropped_total).", 0 },
	{ "dropped_total", "counter", "cause=\"shutdown\"", TS(dropped_shutdown), NULL, 0 },
	{ "dropped_total", "counter", "cause=\"full\"", TS(dropped_full), NULL, 0 },
	{ "rejected_total", "counter", "cause=\"full\"", TS(rejected_full),
	  "Publish calls of the topic refused on a full lane, by cause (see ebus_rejected_total).", 0 },
	{ "rejected_total", "counter", "cause=\"timeout\"", TS(rejected_timeout), NULL, 0 },
};

#define NMETRICS(a) (sizeof(a) / sizeof(a)[0])

/* Emits the families of `m` for `nrows` rows of `stride` bytes at `rows`:
 * each family's HELP and TYPE once, then its samples. */
static void emit_rows(struct out *o, const char *prefix, const struct metric *m, size_t nm,
                      const char *label, const void *rows, size_t stride, size_t nrows,
                      int row_names)
{
	char name[96], idx[24];
	for (size_t i = 0; i < nm;) {
		size_t j = i + 1;
		while (j < nm && !m[j].help)
			j++; /* [i, j): one family */
		snprintf(name, sizeof name, "%s%s", prefix, m[i].suffix);
		family(o, name, m[i].type, m[i].help);
		for (size_t r = 0; r < nrows; r++) {
			const void *row = (const char *)rows + r * stride;
			const char *value = idx;
			if (row_names)
				value = ((const ebus_topic_stats_t *)row)->name;
			else
				snprintf(idx, sizeof idx, "%zu", r);
			for (size_t k = i; k < j; k++)
				if (!(m[k].bus_only && label))
					sample(o, name, label, value, m[k].extra, FIELD(row, m[k].off));
		}
		i = j;
	}
}

static void put_seconds(struct out *o, const char *name, const char *labels, uint64_t ns)
{
	putf(o, "%s%s %.9g\n", name, labels, (double)ns / 1e9);
}

/*
 * The latency histogram as a Prometheus histogram, which Prometheus can
 * aggregate over buses and processes (histogram_quantile; exact
 * percentiles of one snapshot: ebus_snapshot_percentile). The bounds are
 * the powers of two less one, 15 ns to 2^40 - 1 ns (about 18 minutes): the
 * log-linear buckets nest in them exactly, so each cumulative count is
 * exact (le is "less or equal": a bucket ends at 2^e - 1 ns). Larger values
 * only reach +Inf (the last log-linear bucket also holds the clamped ones).
 */
#define PROM_HIST_MIN_EXP 4u
#define PROM_HIST_MAX_EXP 40u
_Static_assert(PROM_HIST_MAX_EXP <= EBUS_HIST_MAX_EXP, "bounds inside the log-linear range");

static void emit_latency(struct out *o, const struct snap_hist *h)
{
	const char *n = "ebus_dispatch_latency_seconds";
	uint64_t cum = 0;
	unsigned i = 0;
	family(o, n, "histogram",
	       "Time from publish (slot written) to dispatch start, with config.timestamps, since "
	       "the bus was created. Buckets end at 2^e - 1 ns; counts and _sum are exact.");
	for (unsigned e = PROM_HIST_MIN_EXP; e <= PROM_HIST_MAX_EXP; e++) {
		unsigned end = ebus_hist_bucket((uint64_t)1 << e); /* first bucket from 2^e on */
		char lab[48];
		for (; i < end; i++)
			cum += h->bucket[i];
		snprintf(lab, sizeof lab, "{le=\"%.13g\"}", (double)(((uint64_t)1 << e) - 1) / 1e9); /* exact: <= 13 digits */
		putf(o, "%s_bucket%s %" PRIu64 "\n", n, lab, cum);
	}
	putf(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", n, h->count);
	put_seconds(o, "ebus_dispatch_latency_seconds_sum", "", h->sum);
	putf(o, "%s_count %" PRIu64 "\n", n, h->count);
}

int ebus_snapshot_prometheus(const ebus_snapshot_t *snap, char *buf, size_t cap, size_t *len)
{
	struct out o = { buf, cap, 0 };
	if (!snap || !len || (!buf && cap))
		return EBUS_ERR_NULL;
	if (cap)
		buf[0] = '\0';
	if (snap->nexec) {
		emit_rows(&o, "ebus_", bus_metrics, NMETRICS(bus_metrics), NULL, &snap->total,
		          sizeof snap->total, 1, 0);
		emit_rows(&o, "ebus_executor_", bus_metrics, NMETRICS(bus_metrics), "executor",
		          snap->executors, sizeof snap->executors[0], snap->nexec, 0);
		family(&o, "ebus_topics", "gauge", "Topics interned on the bus.");
		putf(&o, "ebus_topics %zu\n", snap->ntopics);
		emit_rows(&o, "ebus_topic_", topic_metrics, NMETRICS(topic_metrics), "topic",
		          snap->topics, sizeof snap->topics[0], snap->ntopics, 1);
	}
	if (snap->latency_)
		emit_latency(&o, snap->latency_);
	*len = o.len;
	return o.len < cap ? EBUS_OK : EBUS_ERR_BUFFER;
}
