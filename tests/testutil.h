/*
 * Tiny test harness for the ebus tests: checks that stop the test with
 * file:line, the expression and the values; size parameters with a short
 * (CI) and a long tier plus per-parameter environment overrides; a counting
 * allocator for ebus_config.allocator; a gate (a handler that waits until the
 * test lets it go); a mixing hash for self-checking payloads.
 *
 * Every test is built with _GNU_SOURCE (see tests/CMakeLists.txt).
 */
#ifndef EBUS_TESTUTIL_H
#define EBUS_TESTUTIL_H

#include <ebus/ebus.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__GNUC__)
#define TU_UNUSED __attribute__((unused))
#else
#define TU_UNUSED
#endif

/* ---- checks ------------------------------------------------------------ */

/* A failed check ends the whole process at once (from any thread): the
 * stderr line says where and why. _exit: no atexit handlers racing with
 * threads that are still running. */
static TU_UNUSED void tu_fail_(void)
{
	fflush(stdout);
	fflush(stderr);
	_exit(1);
}

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
			        #cond);                                              \
			tu_fail_();                                                  \
		}                                                                    \
	} while (0)

/* Like CHECK, with a printf-style explanation. */
#define CHECK_MSG(cond, ...)                                                         \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, \
			        #cond);                                              \
			fprintf(stderr, __VA_ARGS__);                                \
			fputc('\n', stderr);                                         \
			tu_fail_();                                                  \
		}                                                                    \
	} while (0)

/* Integer equality. When the expected value is spelled EBUS_..., both
 * sides are ebus codes and are printed with their names too. */
#define CHECK_EQ_INT(a, b)                                                           \
	do {                                                                         \
		long long tu_a_ = (long long)(a), tu_b_ = (long long)(b);            \
		if (tu_a_ != tu_b_) {                                                \
			if (strncmp(#b, "EBUS_", 5) == 0)                            \
				fprintf(stderr,                                      \
				        "%s:%d: CHECK_EQ_INT(%s, %s) failed: %lld (%s) != %lld (%s)\n", \
				        __FILE__, __LINE__, #a, #b, tu_a_, tu_errname_(tu_a_), tu_b_, \
				        tu_errname_(tu_b_));                         \
			else                                                         \
				fprintf(stderr, "%s:%d: CHECK_EQ_INT(%s, %s) failed: %lld != %lld\n", \
				        __FILE__, __LINE__, #a, #b, tu_a_, tu_b_);   \
			tu_fail_();                                                  \
		}                                                                    \
	} while (0)

#define CHECK_EQ_U64(a, b)                                                           \
	do {                                                                         \
		uint64_t tu_a_ = (uint64_t)(a), tu_b_ = (uint64_t)(b);               \
		if (tu_a_ != tu_b_) {                                                \
			fprintf(stderr,                                              \
			        "%s:%d: CHECK_EQ_U64(%s, %s) failed: %" PRIu64 " != %" PRIu64 "\n", \
			        __FILE__, __LINE__, #a, #b, tu_a_, tu_b_);           \
			tu_fail_();                                                  \
		}                                                                    \
	} while (0)

/* Shorthand: the call must return EBUS_OK. */
#define CHECK_OK(expr) CHECK_EQ_INT((expr), EBUS_OK)

static TU_UNUSED const char *tu_errname_(long long v)
{
	if (v < -2147483647LL || v > 2147483647LL)
		return "-";
	const char *n = ebus_errname((int)v);
	return n ? n : "-";
}

/* ---- test cases and the final line -------------------------------------- */

static int tu_passed_;

/* Runs one test case (a void function); a failure never returns. */
#define TU_RUN(fn)                                                                   \
	do {                                                                         \
		printf("-- %s\n", #fn);                                              \
		fflush(stdout);                                                      \
		fn();                                                                \
		tu_passed_++;                                                        \
	} while (0)

/* Same, with one argument, named in the log. */
#define TU_RUN1(fn, arg, label)                                                      \
	do {                                                                         \
		printf("-- %s(%s)\n", #fn, label);                                   \
		fflush(stdout);                                                      \
		fn(arg);                                                             \
		tu_passed_++;                                                        \
	} while (0)

static TU_UNUSED int tu_finish(const char *name)
{
	printf("%s: %d passed, 0 failed\n", name, tu_passed_);
	fflush(stdout);
	return 0;
}

/* ---- parameters -------------------------------------------------------- */

/* EBUS_STRESS_TIER: "short" (default, CI) or "long" (minutes). */
static TU_UNUSED int tu_tier_long(void)
{
	const char *t = getenv("EBUS_STRESS_TIER");
	if (!t || !*t || strcmp(t, "short") == 0)
		return 0;
	if (strcmp(t, "long") == 0)
		return 1;
	fprintf(stderr, "EBUS_STRESS_TIER must be 'short' or 'long', not '%s'\n", t);
	exit(2);
}

static TU_UNUSED const char *tu_tier_name(void)
{
	return tu_tier_long() ? "long" : "short";
}

/* A size parameter: the environment variable `env` if set (a positive
 * decimal), else the tier's default. Printed, so a log says what ran. */
static TU_UNUSED uint64_t tu_param(const char *env, uint64_t short_v, uint64_t long_v)
{
	uint64_t v = tu_tier_long() ? long_v : short_v;
	const char *s = getenv(env);
	if (s && *s) {
		char *end = NULL;
		errno = 0;
		unsigned long long x = strtoull(s, &end, 10);
		if (errno || !end || *end || x == 0) {
			fprintf(stderr, "%s must be a positive integer, not '%s'\n", env, s);
			exit(2);
		}
		v = (uint64_t)x;
	}
	printf("param %s=%" PRIu64 " (tier %s)\n", env, v, tu_tier_name());
	return v;
}

/* ---- small helpers -------------------------------------------------------- */

/* splitmix64 finalizer: the check value of self-verifying payloads. */
static TU_UNUSED uint64_t tu_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static TU_UNUSED uint64_t tu_mix3(uint64_t a, uint64_t b, uint64_t c)
{
	return tu_mix(a ^ tu_mix(b ^ tu_mix(c)));
}

static TU_UNUSED ebus_stats_t tu_stats(ebus_t *bus)
{
	ebus_stats_t st;
	memset(&st, 0xa5, sizeof st);
	CHECK_OK(ebus_stats(bus, -1, &st));
	return st;
}

/* The accounting identity of ebus.h, valid after ebus_flush with no
 * publisher running. */
#define CHECK_STATS_BALANCED(st)                                                     \
	CHECK_EQ_U64((st).published,                                                 \
	             (st).delivered + (st).dropped_no_subscriber + (st).dropped_shutdown)

static TU_UNUSED void tu_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int rc = pthread_create(t, NULL, fn, arg);
	CHECK_MSG(rc == 0, "pthread_create: %s", strerror(rc));
}

static TU_UNUSED void tu_thread_join(pthread_t t)
{
	int rc = pthread_join(t, NULL);
	CHECK_MSG(rc == 0, "pthread_join: %s", strerror(rc));
}

/* Polls `*flag` until it is at least `want`, yielding between polls. Waits
 * on an observable state, never on time; ctest's TIMEOUT catches a hang. */
static TU_UNUSED void tu_wait_u64_at_least(_Atomic uint64_t *flag, uint64_t want)
{
	while (atomic_load(flag) < want)
		sched_yield();
}

/* The scheduler state of thread `tid` of this process, from
 * /proc/self/task/TID/stat: 'R' running, 'S' asleep in the kernel (a futex
 * wait, in these tests), ...; '?' if it cannot be read (the thread ended).
 * An observed state, for tests that must exercise a wake-up rather than a
 * spinning or yielding waiter; never a timed sleep. */
static TU_UNUSED char tu_thread_state(pid_t tid)
{
	char path[64], buf[512];
	FILE *f;
	size_t n;
	const char *p;
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return '?';
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* after "pid (comm)" */
	return p && p[1] == ' ' ? p[2] : '?';
}

/* ---- gate: a handler blocks until the test opens it ----------------------- */

typedef struct tu_gate {
	pthread_mutex_t m;
	pthread_cond_t c;
	int open;
	unsigned entered; /* threads that reached tu_gate_pass so far */
} tu_gate;

static TU_UNUSED void tu_gate_init(tu_gate *g)
{
	CHECK(pthread_mutex_init(&g->m, NULL) == 0);
	CHECK(pthread_cond_init(&g->c, NULL) == 0);
	g->open = 0;
	g->entered = 0;
}

static TU_UNUSED void tu_gate_destroy(tu_gate *g)
{
	pthread_cond_destroy(&g->c);
	pthread_mutex_destroy(&g->m);
}

/* Announces arrival, then waits until the gate is open. */
static TU_UNUSED void tu_gate_pass(tu_gate *g)
{
	pthread_mutex_lock(&g->m);
	g->entered++;
	pthread_cond_broadcast(&g->c);
	while (!g->open)
		pthread_cond_wait(&g->c, &g->m);
	pthread_mutex_unlock(&g->m);
}

/* Waits until `n` threads have arrived at the gate. */
static TU_UNUSED void tu_gate_wait_entered(tu_gate *g, unsigned n)
{
	pthread_mutex_lock(&g->m);
	while (g->entered < n)
		pthread_cond_wait(&g->c, &g->m);
	pthread_mutex_unlock(&g->m);
}

static TU_UNUSED void tu_gate_open(tu_gate *g)
{
	pthread_mutex_lock(&g->m);
	g->open = 1;
	pthread_cond_broadcast(&g->c);
	pthread_mutex_unlock(&g->m);
}

/* ---- a counter that can be waited for ------------------------------------- */

typedef struct tu_counter {
	pthread_mutex_t m;
	pthread_cond_t c;
	uint64_t n;
} tu_counter;

static TU_UNUSED void tu_counter_init(tu_counter *k)
{
	CHECK(pthread_mutex_init(&k->m, NULL) == 0);
	CHECK(pthread_cond_init(&k->c, NULL) == 0);
	k->n = 0;
}

static TU_UNUSED void tu_counter_destroy(tu_counter *k)
{
	pthread_cond_destroy(&k->c);
	pthread_mutex_destroy(&k->m);
}

static TU_UNUSED void tu_counter_add(tu_counter *k, uint64_t d)
{
	pthread_mutex_lock(&k->m);
	k->n += d;
	pthread_cond_broadcast(&k->c);
	pthread_mutex_unlock(&k->m);
}

static TU_UNUSED uint64_t tu_counter_get(tu_counter *k)
{
	pthread_mutex_lock(&k->m);
	uint64_t v = k->n;
	pthread_mutex_unlock(&k->m);
	return v;
}

static TU_UNUSED void tu_counter_wait(tu_counter *k, uint64_t want)
{
	pthread_mutex_lock(&k->m);
	while (k->n < want)
		pthread_cond_wait(&k->c, &k->m);
	pthread_mutex_unlock(&k->m);
}

/* ---- counting allocator ---------------------------------------------------- */

/*
 * Hooks for ebus_config.allocator that count calls and bytes, check the
 * contract (align a power of two <= 4096, the returned block aligned, free
 * gets the size that was asked for, no double free) and tag each block with
 * the allocating thread's tu_alloc_tag, so a test can tell apart memory
 * allocated on its own worker threads (lanes) from the bus's setup.
 */
typedef struct tu_alloc {
	_Atomic uint64_t allocs;
	_Atomic uint64_t frees;
	_Atomic int64_t bytes; /* outstanding */
	_Atomic uint64_t tagged_allocs;
	_Atomic uint64_t tagged_frees;
	_Atomic int64_t tagged_bytes;
	_Atomic int fail; /* non-zero: alloc returns NULL */
} tu_alloc;

static _Thread_local int tu_alloc_tag;

#define TU_ALLOC_MAGIC 0x45425553u /* "EBUS" */
#define TU_ALLOC_FREED 0x46524545u /* "FREE" */

typedef struct tu_alloc_hdr {
	size_t size;
	size_t offset; /* from the malloc'd base to the user block */
	uint32_t magic;
	uint32_t tag;
	uint64_t pad;
} tu_alloc_hdr; /* 32 bytes, right before the user block */

static TU_UNUSED void *tu_alloc_fn(size_t size, size_t align, void *ctx)
{
	tu_alloc *a = ctx;
	CHECK_MSG(align != 0 && (align & (align - 1)) == 0 && align <= 4096,
	          "allocator called with align %zu", align);
	if (atomic_load(&a->fail))
		return NULL;
	size_t off = align < sizeof(tu_alloc_hdr) ? sizeof(tu_alloc_hdr) : align;
	void *base = NULL;
	int rc = posix_memalign(&base, off, off + size);
	CHECK_MSG(rc == 0 && base, "posix_memalign(%zu, %zu) failed", off, off + size);
	char *p = (char *)base + off;
	tu_alloc_hdr *h = (tu_alloc_hdr *)(void *)(p - sizeof *h);
	h->size = size;
	h->offset = off;
	h->magic = TU_ALLOC_MAGIC;
	h->tag = (uint32_t)tu_alloc_tag;
	CHECK(((uintptr_t)p & (align - 1)) == 0);
	atomic_fetch_add(&a->allocs, 1);
	atomic_fetch_add(&a->bytes, (int64_t)size);
	if (h->tag) {
		atomic_fetch_add(&a->tagged_allocs, 1);
		atomic_fetch_add(&a->tagged_bytes, (int64_t)size);
	}
	return p;
}

static TU_UNUSED void tu_free_fn(void *ptr, size_t size, void *ctx)
{
	tu_alloc *a = ctx;
	if (!ptr)
		return; /* free(NULL) is allowed, and not counted */
	tu_alloc_hdr *h = (tu_alloc_hdr *)(void *)((char *)ptr - sizeof *h);
	CHECK_MSG(h->magic == TU_ALLOC_MAGIC, "free of a block not from this allocator or freed twice (magic %#x)",
	          h->magic);
	CHECK_MSG(h->size == size, "sized free: allocated %zu bytes, freed with size %zu", h->size, size);
	h->magic = TU_ALLOC_FREED;
	atomic_fetch_add(&a->frees, 1);
	atomic_fetch_sub(&a->bytes, (int64_t)size);
	if (h->tag) {
		atomic_fetch_add(&a->tagged_frees, 1);
		atomic_fetch_sub(&a->tagged_bytes, (int64_t)size);
	}
	free((char *)ptr - h->offset);
}

static TU_UNUSED ebus_allocator_t tu_allocator(tu_alloc *a)
{
	ebus_allocator_t al = {tu_alloc_fn, tu_free_fn, a};
	return al;
}

/* After ebus_destroy: every block given back, with its size. */
#define CHECK_ALLOC_BALANCED(a)                                                      \
	do {                                                                         \
		CHECK_EQ_U64(atomic_load(&(a)->allocs), atomic_load(&(a)->frees));   \
		CHECK_EQ_U64((uint64_t)atomic_load(&(a)->bytes), 0);                 \
	} while (0)

/* ---- CPUs ------------------------------------------------------------------ */

#include <sched.h>

/* The first CPU this process may run on, or -1. */
static TU_UNUSED int tu_first_allowed_cpu(void)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	if (sched_getaffinity(0, sizeof s, &s) != 0)
		return -1;
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &s))
			return i;
	return -1;
}

/* The smallest CPU id below CPU_SETSIZE this process may NOT run on, or -1. */
static TU_UNUSED int tu_first_disallowed_cpu(void)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	if (sched_getaffinity(0, sizeof s, &s) != 0)
		return -1;
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (!CPU_ISSET(i, &s))
			return i;
	return -1;
}

#endif /* EBUS_TESTUTIL_H */
