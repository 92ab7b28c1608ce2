/*
 * Bad input gets a specific code and changes nothing (DESIGN 2.9).
 *
 * Every invalid call is checked for its exact code; after each one the bus is
 * probed: a publish to a live topic, a flush, and the subscriber must have
 * received exactly the events published so far (so a failed call neither
 * broke the bus, nor added a subscriber, nor published anything). Runs on an
 * asynchronous bus (2 executors) and on a synchronous one.
 */
#include "testutil.h"

#include <limits.h>

/* every id the bus under test issued, to pick ids it never issued */
static ebus_sub_id issued[64];
static int nissued;
static void record_id(ebus_sub_id id)
{
	CHECK(id != 0);
	CHECK(nissued < 64);
	issued[nissued++] = id;
}
static int issued_by(ebus_sub_id id)
{
	for (int i = 0; i < nissued; i++)
		if (issued[i] == id)
			return 1;
	return 0;
}

/* ---- the probe: a topic with one subscriber that must keep working -------- */

typedef struct probe {
	ebus_t *bus;
	ebus_topic_t *topic;
	ebus_sub_id sub;
	_Atomic uint64_t calls; /* calls of the probe handler */
	_Atomic uint64_t last;  /* value of the last ping it saw */
	uint64_t pings;         /* pings published */
	/* a second subscription of the same handler with another ctx */
	struct probe *twin_of;
} probe;

static int probe_handler(const ebus_event_t *ev, void *ctx)
{
	probe *p = ctx;
	probe *owner = p->twin_of ? p->twin_of : p;
	CHECK(ev->topic == owner->topic);
	CHECK_EQ_U64(ev->len, sizeof(uint64_t));
	uint64_t v;
	memcpy(&v, ev->data, sizeof v);
	atomic_store(&p->last, v);
	atomic_fetch_add(&p->calls, 1);
	return 0;
}

/* Publish one ping, flush, and check the subscriber saw exactly all pings. */
static void probe_check_(probe *p, const char *after, int line)
{
	uint64_t v = ++p->pings;
	int rc = ebus_publish(p->topic, &v, sizeof v);
	CHECK_MSG(rc == EBUS_OK, "line %d (%s): probe publish returned %s", line, after, ebus_errname(rc));
	rc = ebus_flush(p->bus, 0);
	CHECK_MSG(rc == EBUS_OK, "line %d (%s): probe flush returned %s", line, after, ebus_errname(rc));
	CHECK_MSG(atomic_load(&p->calls) == v && atomic_load(&p->last) == v,
	          "line %d (%s): after %" PRIu64 " pings the probe subscriber has %" PRIu64
	          " calls, last %" PRIu64,
	          line, after, v, atomic_load(&p->calls), atomic_load(&p->last));
}
#define PROBE(p, after) probe_check_((p), (after), __LINE__)

/* Run a call, check its exact code, then probe the bus. */
#define EXPECT(p, call, want)                                                        \
	do {                                                                         \
		int rc_ = (call);                                                    \
		CHECK_MSG(rc_ == (want), "%s returned %s (%d), want %s", #call,      \
		          ebus_errname(rc_) ? ebus_errname(rc_) : "?", rc_, #want);  \
		PROBE((p), #call);                                                   \
	} while (0)

static void probe_init(probe *p, ebus_t *bus)
{
	memset(p, 0, sizeof *p);
	p->bus = bus;
	CHECK_OK(ebus_topic(bus, "probe.alive", &p->topic));
	CHECK_OK(ebus_subscribe(p->topic, probe_handler, p, &p->sub));
	record_id(p->sub);
	PROBE(p, "setup");
}

/* A subscriber that counts what it gets, for topics other than the probe. */
typedef struct sink {
	_Atomic uint64_t calls;
	_Atomic uint64_t bytes;
} sink;

static int sink_handler(const ebus_event_t *ev, void *ctx)
{
	sink *s = ctx;
	atomic_fetch_add(&s->bytes, ev->len);
	atomic_fetch_add(&s->calls, 1);
	return 0;
}

static _Atomic uint64_t releases;
static void count_release(void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	(void)arg;
	atomic_fetch_add(&releases, 1);
}

static int released_calls;
static void count_released(void *ctx)
{
	(void)ctx;
	released_calls++;
}

/* ---- topic names ----------------------------------------------------------- */

typedef struct name_case {
	const char *name;
	int want;
} name_case;

static char name255[EBUS_TOPIC_MAX + 1];
static char name256[EBUS_TOPIC_MAX + 2];
static char name_dotted255[EBUS_TOPIC_MAX + 1];

static const name_case bad_names[] = {
	{"", EBUS_ERR_TOPIC_EMPTY},
	{"a..b", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{".a", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"a.", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{".", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"a.b.", EBUS_ERR_TOPIC_EMPTY_TOKEN},
	{"a b", EBUS_ERR_TOPIC_BAD_CHAR},
	{"a\tb", EBUS_ERR_TOPIC_BAD_CHAR},
	{"a\nb", EBUS_ERR_TOPIC_BAD_CHAR},
	{"a\x01", EBUS_ERR_TOPIC_BAD_CHAR},
	{"\x7f", EBUS_ERR_TOPIC_BAD_CHAR},
	{" ", EBUS_ERR_TOPIC_BAD_CHAR},
	{"\xC3", EBUS_ERR_TOPIC_BAD_CHAR},
	{"caf\xC3\xA9", EBUS_ERR_TOPIC_BAD_CHAR},
	{"a.*", EBUS_ERR_TOPIC_WILDCARD},
	{"a.>", EBUS_ERR_TOPIC_WILDCARD},
	{"a*b", EBUS_ERR_TOPIC_WILDCARD},
	{"*", EBUS_ERR_TOPIC_WILDCARD},
	{">", EBUS_ERR_TOPIC_WILDCARD},
	{"*.a", EBUS_ERR_TOPIC_WILDCARD},
	{name256, EBUS_ERR_TOPIC_TOO_LONG},
};
#define NBAD ((int)(sizeof bad_names / sizeof bad_names[0]))

static const char *good_names[] = {
	"a", "orders.eu.fill", "A-Z_0-9.$ebus.x~!", name255, name_dotted255,
};

static void names_init(void)
{
	memset(name255, 'n', EBUS_TOPIC_MAX);
	name255[EBUS_TOPIC_MAX] = '\0';
	memset(name256, 'n', EBUS_TOPIC_MAX + 1);
	name256[EBUS_TOPIC_MAX + 1] = '\0';
	for (int i = 0; i < EBUS_TOPIC_MAX; i++)
		name_dotted255[i] = (i % 2) ? '.' : 'd';
	name_dotted255[EBUS_TOPIC_MAX] = '\0'; /* 255 is odd: ends with 'd' */
	CHECK_EQ_U64(strlen(name255), 255);
	CHECK_EQ_U64(strlen(name256), 256);
	CHECK(name_dotted255[EBUS_TOPIC_MAX - 1] == 'd');
}

static void check_names(probe *p, unsigned executors)
{
	for (int i = 0; i < NBAD; i++) {
		const char *n = bad_names[i].name;
		int want = bad_names[i].want;
		ebus_topic_t *t = NULL;
		CHECK_MSG(ebus_topic_validate(n) == want, "ebus_topic_validate(case %d) = %s, want %s", i,
		          ebus_errname(ebus_topic_validate(n)), ebus_errname(want));
		int rc = ebus_topic(p->bus, n, &t);
		CHECK_MSG(rc == want, "ebus_topic(case %d) = %s, want %s", i, ebus_errname(rc), ebus_errname(want));
		rc = ebus_topic_on(p->bus, n, 0, &t);
		CHECK_MSG(rc == want, "ebus_topic_on(case %d) = %s, want %s", i, ebus_errname(rc),
		          ebus_errname(want));
		rc = ebus_publish_name(p->bus, n, "x", 1);
		CHECK_MSG(rc == want, "ebus_publish_name(case %d) = %s, want %s", i, ebus_errname(rc),
		          ebus_errname(want));
		PROBE(p, "bad name");
	}
	CHECK_EQ_INT(ebus_topic_validate(NULL), EBUS_ERR_NULL);

	/* valid names, including exactly EBUS_TOPIC_MAX bytes, intern and deliver */
	for (size_t i = 0; i < sizeof good_names / sizeof good_names[0]; i++) {
		const char *n = good_names[i];
		ebus_topic_t *t = NULL, *t2 = NULL;
		sink s = {0};
		ebus_sub_id id = 0;
		CHECK_MSG(ebus_topic_validate(n) == EBUS_OK, "validate('%s') = %s", n,
		          ebus_errname(ebus_topic_validate(n)));
		CHECK_OK(ebus_topic(p->bus, n, &t));
		CHECK(t != NULL);
		CHECK(strcmp(ebus_topic_name(t), n) == 0);
		CHECK(ebus_topic_executor(t) >= 0 && (unsigned)ebus_topic_executor(t) < executors);
		CHECK_OK(ebus_topic_on(p->bus, n, (unsigned)ebus_topic_executor(t), &t2));
		CHECK(t2 == t);
		CHECK_OK(ebus_subscribe(t, sink_handler, &s, &id));
		record_id(id);
		CHECK_OK(ebus_publish_name(p->bus, n, "abc", 3));
		CHECK_OK(ebus_flush(p->bus, 0));
		CHECK_EQ_U64(atomic_load(&s.calls), 1);
		CHECK_EQ_U64(atomic_load(&s.bytes), 3);
		CHECK_OK(ebus_unsubscribe(p->bus, id));
		PROBE(p, "good name");
	}
}

/* ---- configurations ---------------------------------------------------------- */

typedef struct cfg_case {
	const char *label;
	unsigned executors;
	unsigned lane_capacity;
	const int *cpus;
	int wait;
	int full_policy;
	int want;
} cfg_case;

static int cpu_minus2[] = {-2};
static int cpu_huge[] = {100000};
static int cpu_intmax[] = {INT_MAX};
static int cpu_disallowed[] = {-1}; /* filled in at run time */
static int cpu_ok_then_bad[] = {-1, -2};
static int cpu_unpinned[] = {-1, -1};
static int cpu_allowed[] = {0}; /* filled in at run time */

static const cfg_case cfg_cases[] = {
	{"lane_capacity 3", 1, 3, NULL, 0, 0, EBUS_ERR_CAPACITY},
	{"lane_capacity 1000", 1, 1000, NULL, 0, 0, EBUS_ERR_CAPACITY},
	{"lane_capacity 2", 1, 2, NULL, 0, 0, EBUS_ERR_CAPACITY},
	{"lane_capacity 1", 1, 1, NULL, 0, 0, EBUS_ERR_CAPACITY},
	{"lane_capacity 1<<25", 1, 1u << 25, NULL, 0, 0, EBUS_ERR_CAPACITY},
	{"lane_capacity 1<<31", 1, 1u << 31, NULL, 0, 0, EBUS_ERR_CAPACITY},
	{"lane_capacity UINT_MAX", 1, UINT_MAX, NULL, 0, 0, EBUS_ERR_CAPACITY},
	{"lane_capacity 4", 1, 4, NULL, 0, 0, EBUS_OK},
	{"lane_capacity 1<<24", 1, 1u << 24, NULL, 0, 0, EBUS_OK},
	{"lane_capacity 0 (default)", 1, 0, NULL, 0, 0, EBUS_OK},
	{"executors MAX+1", EBUS_MAX_EXECUTORS + 1, 0, NULL, 0, 0, EBUS_ERR_CONFIG},
	{"executors UINT_MAX", UINT_MAX, 0, NULL, 0, 0, EBUS_ERR_CONFIG},
	{"executors MAX", EBUS_MAX_EXECUTORS, 0, NULL, 0, 0, EBUS_OK},
	{"cpus {-2}", 1, 0, cpu_minus2, 0, 0, EBUS_ERR_CPU},
	{"cpus {100000}", 1, 0, cpu_huge, 0, 0, EBUS_ERR_CPU},
	{"cpus {INT_MAX}", 1, 0, cpu_intmax, 0, 0, EBUS_ERR_CPU},
	{"cpus {not allowed}", 1, 0, cpu_disallowed, 0, 0, EBUS_ERR_CPU},
	{"cpus {-1,-2}", 2, 0, cpu_ok_then_bad, 0, 0, EBUS_ERR_CPU},
	{"cpus {-1,-1}", 2, 0, cpu_unpinned, 0, 0, EBUS_OK},
	{"cpus {allowed}", 1, 0, cpu_allowed, 0, 0, EBUS_OK},
	{"wait 99", 1, 0, NULL, 99, 0, EBUS_ERR_CONFIG},
	{"wait -1", 1, 0, NULL, -1, 0, EBUS_ERR_CONFIG},
	{"full_policy 99", 1, 0, NULL, 0, 99, EBUS_ERR_CONFIG},
	{"full_policy -1", 1, 0, NULL, 0, -1, EBUS_ERR_CONFIG},
};

static void test_create_configs(void)
{
	int bad = tu_first_disallowed_cpu();
	int good = tu_first_allowed_cpu();
	CHECK(good >= 0);
	cpu_allowed[0] = good;
	cpu_ok_then_bad[0] = good;
	printf("   first allowed CPU %d, first disallowed CPU %d\n", good, bad);

	for (size_t i = 0; i < sizeof cfg_cases / sizeof cfg_cases[0]; i++) {
		const cfg_case *c = &cfg_cases[i];
		if (c->cpus == cpu_disallowed) {
			if (bad < 0) {
				printf("   skip '%s': every CPU id below CPU_SETSIZE is allowed\n", c->label);
				continue;
			}
			cpu_disallowed[0] = bad;
		}
		tu_alloc al = {0};
		ebus_allocator_t hooks = tu_allocator(&al);
		ebus_config_t cfg;
		memset(&cfg, 0, sizeof cfg);
		cfg.executors = c->executors;
		cfg.lane_capacity = c->lane_capacity;
		cfg.cpus = c->cpus;
		cfg.wait = (ebus_wait)c->wait;
		cfg.spin_iterations = 64;
		cfg.full_policy = (ebus_full_policy)c->full_policy;
		cfg.allocator = &hooks;
		ebus_t *const sentinel = (ebus_t *)(uintptr_t)0x5eed;
		ebus_t *bus = sentinel;
		int rc = ebus_create(&cfg, &bus);
		CHECK_MSG(rc == c->want, "ebus_create(%s) = %s, want %s", c->label, ebus_errname(rc),
		          ebus_errname(c->want));
		if (rc != EBUS_OK) {
			CHECK_MSG(bus == sentinel, "failed ebus_create(%s) wrote *out", c->label);
			/* nothing left behind */
			CHECK_ALLOC_BALANCED(&al);
			continue;
		}
		CHECK(bus != NULL && bus != sentinel);
		CHECK_EQ_INT(ebus_executor_count(bus), c->executors);
		/* the bus works: one event through every configuration that was accepted */
		ebus_topic_t *t = NULL;
		sink s = {0};
		ebus_sub_id id = 0;
		CHECK_OK(ebus_topic(bus, "cfg.ok", &t));
		CHECK_OK(ebus_subscribe(t, sink_handler, &s, &id));
		CHECK_OK(ebus_publish(t, "hello", 5));
		CHECK_OK(ebus_flush(bus, 0));
		CHECK_EQ_U64(atomic_load(&s.calls), 1);
		ebus_destroy(bus);
		CHECK_ALLOC_BALANCED(&al);
	}

	/* cfg == NULL: all defaults */
	ebus_t *bus = NULL;
	CHECK_OK(ebus_create(NULL, &bus));
	CHECK(bus != NULL);
	CHECK_EQ_INT(ebus_executor_count(bus), 1);
	ebus_destroy(bus);

	/* out == NULL */
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	CHECK_EQ_INT(ebus_create(&cfg, NULL), EBUS_ERR_NULL);
	CHECK_EQ_INT(ebus_create(NULL, NULL), EBUS_ERR_NULL);

	/* a reserved word set (a field of a later release): refused, not ignored */
	for (size_t i = 0; i < sizeof cfg.reserved_ / sizeof cfg.reserved_[0]; i++) {
		ebus_t *b = (ebus_t *)(uintptr_t)0x5eed;
		cfg.reserved_[i] = 1;
		CHECK_EQ_INT(ebus_create(&cfg, &b), EBUS_ERR_CONFIG);
		CHECK(b == (ebus_t *)(uintptr_t)0x5eed);
		cfg.reserved_[i] = 0;
	}

	/* lane_arena_bytes: a power of two in [4 KiB, 1 GiB] */
	{
		const uint64_t bad[] = {1, 4095, 4097, 3u << 12, 1ull << 31, UINT64_MAX};
		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			ebus_t *b = (ebus_t *)(uintptr_t)0x5eed;
			cfg.lane_arena_bytes = bad[i];
			CHECK_EQ_INT(ebus_create(&cfg, &b), EBUS_ERR_CONFIG);
			CHECK(b == (ebus_t *)(uintptr_t)0x5eed);
		}
		cfg.lane_arena_bytes = 4096;
		CHECK_OK(ebus_create(&cfg, &bus));
		ebus_destroy(bus);
		cfg.lane_arena_bytes = 0;
	}

	/* the allocator fails: EBUS_ERR_NOMEM, *out untouched, nothing left behind */
	tu_alloc al = {0};
	ebus_allocator_t hooks = tu_allocator(&al);
	atomic_store(&al.fail, 1);
	cfg.allocator = &hooks;
	bus = (ebus_t *)(uintptr_t)0x5eed;
	CHECK_EQ_INT(ebus_create(&cfg, &bus), EBUS_ERR_NOMEM);
	CHECK(bus == (ebus_t *)(uintptr_t)0x5eed);
	CHECK_ALLOC_BALANCED(&al);

	/* NULL is a no-op */
	ebus_destroy(NULL);
}

/* ---- the table of calls on a live bus ------------------------------------------- */

struct arena_nomem {
	ebus_topic_t *t;
	tu_alloc *al;
	const char *big;
	int rc;
};
/* Makes its lane with one inline event, then publishes a payload above
 * the slot with the allocator failing: the lane's arena cannot be made. */
static void *arena_nomem_thread(void *arg)
{
	struct arena_nomem *a = arg;
	CHECK_OK(ebus_publish(a->t, "i", 1));
	atomic_store(&a->al->fail, 1);
	a->rc = ebus_publish(a->t, a->big, EBUS_INLINE_MAX + 1);
	atomic_store(&a->al->fail, 0);
	return NULL;
}

static void run_bus_cases(int synchronous)
{
	tu_alloc al = {0};
	ebus_allocator_t hooks = tu_allocator(&al);
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.synchronous = synchronous;
	cfg.executors = synchronous ? 0 : 2;
	cfg.max_payload = 64;
	cfg.allocator = &hooks;
	ebus_t *bus = NULL;
	CHECK_OK(ebus_create(&cfg, &bus));
	const unsigned nexec = ebus_executor_count(bus);
	CHECK_EQ_INT(nexec, synchronous ? 1 : 2);

	static probe p;
	nissued = 0;
	probe_init(&p, bus);
	uint64_t accepted_other = 0; /* accepted events outside the probe topic */
	uint64_t no_sub = 0;         /* of those, to topics without subscribers */

	check_names(&p, nexec);
	accepted_other += sizeof good_names / sizeof good_names[0];

	ebus_topic_t *t = NULL;
	ebus_sub_id id = 0;
	char big[256];
	memset(big, 'b', sizeof big);

	/* NULL arguments */
	EXPECT(&p, ebus_topic(NULL, "a", &t), EBUS_ERR_NULL);
	EXPECT(&p, ebus_topic(bus, NULL, &t), EBUS_ERR_NULL);
	EXPECT(&p, ebus_topic(bus, "a", NULL), EBUS_ERR_NULL);
	EXPECT(&p, ebus_topic_on(NULL, "a", 0, &t), EBUS_ERR_NULL);
	EXPECT(&p, ebus_topic_on(bus, NULL, 0, &t), EBUS_ERR_NULL);
	EXPECT(&p, ebus_topic_on(bus, "a", 0, NULL), EBUS_ERR_NULL);
	EXPECT(&p, ebus_publish(NULL, "x", 1), EBUS_ERR_NULL);
	EXPECT(&p, ebus_publish_ex(NULL, "x", 1, EBUS_FULL_DEFAULT), EBUS_ERR_NULL);
	EXPECT(&p, ebus_publish(p.topic, NULL, 1), EBUS_ERR_NULL);
	EXPECT(&p, ebus_publish_ex(p.topic, NULL, 5, EBUS_FULL_FAIL), EBUS_ERR_NULL);
	EXPECT(&p, ebus_publish_name(NULL, "probe.alive", "x", 1), EBUS_ERR_NULL);
	EXPECT(&p, ebus_publish_name(bus, NULL, "x", 1), EBUS_ERR_NULL);
	EXPECT(&p, ebus_publish_name(bus, "probe.alive", NULL, 8), EBUS_ERR_NULL);
	EXPECT(&p, ebus_publish_ref(NULL, big, 10, count_release, NULL), EBUS_ERR_NULL);
	EXPECT(&p, ebus_subscribe(NULL, sink_handler, NULL, &id), EBUS_ERR_NULL);
	EXPECT(&p, ebus_subscribe(p.topic, NULL, NULL, &id), EBUS_ERR_NULL);
	static sink null_out_sink;
	EXPECT(&p, ebus_subscribe(p.topic, sink_handler, &null_out_sink, NULL), EBUS_ERR_NULL);
	CHECK_EQ_U64(atomic_load(&null_out_sink.calls), 0); /* it was not added */
	EXPECT(&p, ebus_unsubscribe(NULL, p.sub), EBUS_ERR_NULL);
	EXPECT(&p, ebus_unsubscribe_async(NULL, p.sub, count_released), EBUS_ERR_NULL);
	EXPECT(&p, ebus_flush(NULL, 0), EBUS_ERR_NULL);
	EXPECT(&p, ebus_shutdown(NULL, EBUS_SHUTDOWN_DRAIN), EBUS_ERR_NULL);
	EXPECT(&p, ebus_stats(NULL, -1, &(ebus_stats_t){0}), EBUS_ERR_NULL);
	EXPECT(&p, ebus_stats(bus, -1, NULL), EBUS_ERR_NULL);
	CHECK_EQ_U64(atomic_load(&releases), 0);

	/* executors out of range */
	EXPECT(&p, ebus_topic_on(bus, "placed.out.of.range", nexec, &t), EBUS_ERR_EXECUTOR);
	EXPECT(&p, ebus_topic_on(bus, "placed.out.of.range", UINT_MAX, &t), EBUS_ERR_EXECUTOR);
	EXPECT(&p, ebus_stats(bus, (int)nexec, &(ebus_stats_t){0}), EBUS_ERR_EXECUTOR);
	EXPECT(&p, ebus_stats(bus, INT_MAX, &(ebus_stats_t){0}), EBUS_ERR_EXECUTOR);
	for (unsigned e = 0; e < nexec; e++)
		EXPECT(&p, ebus_stats(bus, (int)e, &(ebus_stats_t){0}), EBUS_OK);

	/* a topic that exists on another executor */
	if (nexec >= 2) {
		ebus_topic_t *t0 = NULL, *t1 = NULL, *t0b = NULL;
		EXPECT(&p, ebus_topic_on(bus, "placed.zero", 0, &t0), EBUS_OK);
		CHECK_EQ_INT(ebus_topic_executor(t0), 0);
		EXPECT(&p, ebus_topic_on(bus, "placed.zero", 1, &t1), EBUS_ERR_EXISTS);
		CHECK_MSG(t1 == t0, "EBUS_ERR_EXISTS must set *out to the existing topic");
		EXPECT(&p, ebus_topic_on(bus, "placed.zero", 0, &t0b), EBUS_OK);
		CHECK(t0b == t0);
		CHECK_EQ_INT(ebus_topic_executor(t0), 0);
	}

	/* payload size: max_payload is 64 here */
	ebus_topic_t *ts = NULL;
	sink s = {0};
	ebus_sub_id sid = 0;
	CHECK_OK(ebus_topic(bus, "sized.payloads", &ts));
	CHECK_OK(ebus_subscribe(ts, sink_handler, &s, &sid));
	record_id(sid);
	EXPECT(&p, ebus_publish(ts, big, 65), EBUS_ERR_TOO_LARGE);
	EXPECT(&p, ebus_publish(ts, big, sizeof big), EBUS_ERR_TOO_LARGE);
	EXPECT(&p, ebus_publish(ts, big, SIZE_MAX), EBUS_ERR_TOO_LARGE);
	EXPECT(&p, ebus_publish_ex(ts, big, 65, EBUS_FULL_FAIL), EBUS_ERR_TOO_LARGE);
	EXPECT(&p, ebus_publish_name(bus, "sized.payloads", big, 65), EBUS_ERR_TOO_LARGE);
	CHECK_EQ_U64(atomic_load(&s.calls), 0);
	EXPECT(&p, ebus_publish(ts, big, 64), EBUS_OK); /* exactly max_payload */
	EXPECT(&p, ebus_publish(ts, NULL, 0), EBUS_OK); /* NULL data, len 0 */
	/* by reference, len may exceed max_payload */
	EXPECT(&p, ebus_publish_ref(ts, big, sizeof big, count_release, NULL), EBUS_OK);
	accepted_other += 3;
	CHECK_EQ_U64(atomic_load(&s.calls), 3);
	CHECK_EQ_U64(atomic_load(&s.bytes), 64 + 0 + sizeof big);
	CHECK_EQ_U64(atomic_load(&releases), 1);

	/* unknown per-call policy */
	EXPECT(&p, ebus_publish_ex(ts, "x", 1, (ebus_full_policy)99), EBUS_ERR_CONFIG);
	EXPECT(&p, ebus_publish_ex(ts, "x", 1, (ebus_full_policy)-1), EBUS_ERR_CONFIG);
	CHECK_EQ_U64(atomic_load(&s.calls), 3);

	/* duplicates: same (handler, ctx, topic) is refused; the probe then still gets
	 * each ping exactly once (PROBE checks the call count) */
	ebus_sub_id dup = 0;
	EXPECT(&p, ebus_subscribe(p.topic, probe_handler, &p, &dup), EBUS_ERR_DUPLICATE);
	/* same handler, another ctx: a second subscription */
	static probe twin;
	memset(&twin, 0, sizeof twin);
	twin.twin_of = &p;
	ebus_sub_id twin_id = 0;
	EXPECT(&p, ebus_subscribe(p.topic, probe_handler, &twin, &twin_id), EBUS_OK);
	CHECK(twin_id != 0 && twin_id != p.sub);
	record_id(twin_id);
	CHECK_EQ_U64(atomic_load(&twin.calls), 1); /* the ping of the EXPECT above */
	CHECK_EQ_U64(atomic_load(&twin.last), p.pings);
	EXPECT(&p, ebus_unsubscribe(bus, twin_id), EBUS_OK);
	EXPECT(&p, ebus_unsubscribe(bus, twin_id), EBUS_ERR_NOT_FOUND);
	EXPECT(&p, ebus_unsubscribe_async(bus, twin_id, count_released), EBUS_ERR_NOT_FOUND);
	CHECK_EQ_U64(atomic_load(&twin.calls), 1); /* nothing after unsubscribe */
	/* the same subscription may be made again once removed */
	EXPECT(&p, ebus_subscribe(p.topic, probe_handler, &twin, &twin_id), EBUS_OK);
	record_id(twin_id);
	CHECK_EQ_U64(atomic_load(&twin.calls), 2);
	EXPECT(&p, ebus_unsubscribe(bus, twin_id), EBUS_OK);

	/* ids never issued */
	EXPECT(&p, ebus_unsubscribe(bus, 0), EBUS_ERR_NOT_FOUND);
	EXPECT(&p, ebus_unsubscribe_async(bus, 0, count_released), EBUS_ERR_NOT_FOUND);
	EXPECT(&p, ebus_unsubscribe(bus, UINT64_MAX), EBUS_ERR_NOT_FOUND);
	ebus_sub_id never_issued = 0;
	for (never_issued = twin_id + 1000000; issued_by(never_issued); never_issued++)
		;
	EXPECT(&p, ebus_unsubscribe(bus, never_issued), EBUS_ERR_NOT_FOUND);
	CHECK_EQ_INT(released_calls, 0);

	/* an id of another bus: not this bus's subscription */
	{
		ebus_config_t c2;
		memset(&c2, 0, sizeof c2);
		c2.synchronous = synchronous;
		ebus_t *other = NULL;
		CHECK_OK(ebus_create(&c2, &other));
		ebus_topic_t *ot = NULL;
		CHECK_OK(ebus_topic(other, "probe.alive", &ot));
		/* an id of the other bus that this bus never issued (ids may be
		 * per-bus counters, so skip values this bus handed out) */
		static sink os[64];
		ebus_sub_id oid = 0;
		int found = 0;
		for (int i = 0; i < 64 && !found; i++) {
			memset(&os[i], 0, sizeof os[i]);
			CHECK_OK(ebus_subscribe(ot, sink_handler, &os[i], &oid));
			if (issued_by(oid) || oid == never_issued)
				continue;
			found = 1;
			EXPECT(&p, ebus_unsubscribe(bus, oid), EBUS_ERR_NOT_FOUND);
			EXPECT(&p, ebus_unsubscribe_async(bus, oid, count_released), EBUS_ERR_NOT_FOUND);
			/* and the other bus's subscription is intact */
			uint64_t before = atomic_load(&os[i].calls);
			CHECK_OK(ebus_publish(ot, "o", 1));
			CHECK_OK(ebus_flush(other, 0));
			CHECK_EQ_U64(atomic_load(&os[i].calls), before + 1);
			CHECK_OK(ebus_unsubscribe(other, oid));
		}
		CHECK_MSG(found, "could not get an id from the other bus that this bus never issued");
		ebus_destroy(other);
		CHECK_EQ_INT(released_calls, 0);
	}

	/* unknown shutdown mode: refused, the bus keeps running */
	EXPECT(&p, ebus_shutdown(bus, (ebus_shutdown_mode)99), EBUS_ERR_CONFIG);
	EXPECT(&p, ebus_shutdown(bus, (ebus_shutdown_mode)-1), EBUS_ERR_CONFIG);

	/* the allocator failing: EBUS_ERR_NOMEM and nothing changed */
	atomic_store(&al.fail, 1);
	int rc = ebus_topic(bus, "created.while.failing", &t);
	CHECK_MSG(rc == EBUS_ERR_NOMEM, "ebus_topic with a failing allocator: %s", ebus_errname(rc));
	static sink failing_sink;
	rc = ebus_subscribe(ts, sink_handler, &failing_sink, &id);
	CHECK_MSG(rc == EBUS_ERR_NOMEM, "ebus_subscribe with a failing allocator: %s", ebus_errname(rc));
	atomic_store(&al.fail, 0);
	if (!synchronous) {
		/* a payload above EBUS_INLINE_MAX on a lane whose arena does not
		 * exist yet (a new thread's lane) needs the allocator */
		struct arena_nomem an = {ts, &al, big, -1};
		pthread_t th;
		tu_thread_create(&th, arena_nomem_thread, &an);
		tu_thread_join(th);
		CHECK_MSG(an.rc == EBUS_ERR_NOMEM, "ebus_publish of %d bytes with a failing allocator: %s",
		          EBUS_INLINE_MAX + 1, ebus_errname(an.rc));
		CHECK_OK(ebus_flush(bus, 0));
		CHECK_EQ_U64(atomic_load(&s.calls), 4); /* its inline event, not the large one */
		atomic_fetch_sub(&s.calls, 1);
		accepted_other++;
	}
	PROBE(&p, "allocator failed");
	CHECK_EQ_U64(atomic_load(&s.calls), 3);
	CHECK_EQ_U64(atomic_load(&failing_sink.calls), 0);
	CHECK_OK(ebus_topic(bus, "created.while.failing", &t)); /* now it works */

	/* a never-interned valid name: accepted, counted as no subscriber */
	EXPECT(&p, ebus_publish_name(bus, "never.interned.here", "x", 1), EBUS_OK);
	accepted_other++;
	no_sub++;

	/* nothing that failed was counted as published */
	ebus_stats_t st = tu_stats(bus);
	CHECK_EQ_U64(st.published, p.pings + accepted_other);
	CHECK_EQ_U64(st.dropped_no_subscriber, no_sub);
	CHECK_EQ_U64(st.dropped_shutdown, 0);
	CHECK_EQ_U64(st.rejected_full + st.rejected_timeout + st.dropped_full + st.rejected_shutdown, 0);
	CHECK_STATS_BALANCED(st);
	CHECK_EQ_U64(st.handler_errors, 0);

	/* ---- after shutdown ---- */
	CHECK_OK(ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN));
	uint64_t calls_at_shutdown = atomic_load(&p.calls);
	uint64_t v = 12345;
	CHECK_EQ_INT(ebus_publish(p.topic, &v, sizeof v), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_publish_ex(p.topic, &v, sizeof v, EBUS_FULL_FAIL), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_publish_ref(p.topic, &v, sizeof v, count_release, NULL), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_publish_name(bus, "probe.alive", &v, sizeof v), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_publish_name(bus, "never.interned.after", &v, sizeof v), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_subscribe(p.topic, sink_handler, &s, &id), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_topic(bus, "new.after.shutdown", &t), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_topic_on(bus, "new.after.shutdown2", 0, &t), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_INT(ebus_shutdown(bus, EBUS_SHUTDOWN_DISCARD), EBUS_ERR_SHUTDOWN);
	CHECK_EQ_U64(atomic_load(&releases), 1); /* not for the refused by-ref publish */
	CHECK_EQ_U64(atomic_load(&p.calls), calls_at_shutdown);
	st = tu_stats(bus);
	CHECK_EQ_U64(st.rejected_shutdown, 5);
	CHECK_EQ_U64(st.published, p.pings + accepted_other);
	CHECK_STATS_BALANCED(st);

	ebus_destroy(bus);
	CHECK_ALLOC_BALANCED(&al);
	CHECK_EQ_U64(atomic_load(&releases), 1);
	atomic_store(&releases, 0);
	CHECK_EQ_INT(released_calls, 0);
}

static void test_async_bus(void)
{
	run_bus_cases(0);
}

static void test_sync_bus(void)
{
	run_bus_cases(1);
}

int main(void)
{
	names_init();
	printf("bad names: %d, config cases: %zu\n", NBAD, sizeof cfg_cases / sizeof cfg_cases[0]);
	TU_RUN(test_create_configs);
	TU_RUN(test_async_bus);
	TU_RUN(test_sync_bus);
	return tu_finish("test_bad_input");
}
