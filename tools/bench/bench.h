/*
 * ebus-bench internals: what the driver, the scenarios and the systems share.
 *
 * A scenario (throughput, later fanout, multi, pingpong, latency, by-name)
 * is a list of systems, each with a run function that moves `events`
 * payloads through that system once and reports the elapsed time and what
 * it verified. The driver (driver.c) does the rest the same way for every
 * scenario: one untimed warm-up per system, timed runs interleaved
 * round-robin, medians, the table or JSON, and the exit status.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef EBUS_BENCH_H
#define EBUS_BENCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_PAYLOAD_MIN 16 /* seq + check */
#define BENCH_ERR_MAX 256

/* ---- options ------------------------------------------------------------ */

typedef struct bench_opts {
	const char *scenario;
	uint64_t events;
	unsigned runs;
	size_t payload;
	unsigned capacity;
	int wait;            /* ebus_wait */
	const char *wait_name;
	int cpu_pub, cpu_sub; /* -1 = not pinned */
	unsigned timeout_s;  /* per run; a run past it is a hang: exit 2 */
	int quick, json;
	int verbose;         /* one line per run on stderr, with system notes */
	int progress;        /* stderr is a tty */
} bench_opts;

/* ---- the payload and the one handler every system calls -----------------
 *
 * Payload layout (payload bytes, at least 16):
 *   [0, 8)      seq, 0, 1, 2, ... in publish order
 *   [8, 16)     check = bench_check(seq, salt)
 *   [16, len)   filler; its last byte is (uint8_t)seq, so a short or
 *               stale copy of the tail is caught too
 * The salt changes every run, so a slot left over from an earlier run can
 * never pass for a fresh one.
 */
static inline uint64_t bench_check(uint64_t seq, uint64_t salt)
{
	/* splitmix64 finaliser: every bit of seq moves every bit of check */
	uint64_t z = seq + salt * 0x9e3779b97f4a7c15ull + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* What a publisher does per event before handing buf to the system. */
static inline void bench_fill(unsigned char *buf, size_t len, uint64_t seq, uint64_t salt)
{
	uint64_t chk = bench_check(seq, salt);
	__builtin_memcpy(buf, &seq, 8);
	__builtin_memcpy(buf + 8, &chk, 8);
	if (len > BENCH_PAYLOAD_MIN)
		buf[len - 1] = (unsigned char)seq;
}

/* Consumer-side state of one run. Written only by the consuming thread; its
 * own cache lines so the publisher's stores never bounce them. */
typedef struct bench_sink {
	uint64_t expect;     /* next seq */
	uint64_t count;      /* events delivered */
	uint64_t sum;        /* sum of check words (mod 2^64) */
	uint64_t target;     /* count at which the last delivery is timed */
	uint64_t salt;
	size_t len;          /* payload length every event must have */
	uint64_t t_end_ns;   /* CLOCK_MONOTONIC at the target-th delivery */
	uint64_t bad_order, bad_check, bad_len, bad_tail;
	uint64_t first_bad_at;   /* delivery index of the first order error */
	uint64_t first_bad_want, first_bad_got;
} __attribute__((aligned(64))) bench_sink;

/*
 * The handler: verifies one event and accumulates the checksum. Every
 * system calls exactly this (out of line, in common.c), so none gets a
 * cheaper consumer. Returns 0, or 1 if the event failed a check.
 */
int bench_deliver(bench_sink *s, const void *data, size_t len);

/* A publisher's payload buffer: len bytes of filler (malloc; NULL on failure). */
unsigned char *bench_payload_buf(size_t len);

void bench_sink_init(bench_sink *s, uint64_t events, size_t len, uint64_t salt);

/* Expected sum of check words for seq 0..events-1. */
uint64_t bench_expected_sum(uint64_t events, uint64_t salt);

/* ---- one run's outcome ---------------------------------------------------- */

typedef struct bench_result {
	double seconds;      /* first publish -> last delivery */
	uint64_t events;     /* events delivered and verified */
	int ok;
	char err[BENCH_ERR_MAX]; /* what went wrong, when !ok */
	char note[BENCH_ERR_MAX]; /* optional detail for --verbose (e.g. ebus parks) */
} bench_result;

/* What a run function gets: the options, the run's salt, and its sink. */
typedef struct bench_run {
	const bench_opts *o;
	uint64_t events;
	uint64_t salt;
	bench_sink *sink;
	uint64_t t_start_ns; /* set by the publisher just before its first publish */
	uint64_t deadline_ns; /* bench_join gives up here (set by the driver) */
	char err[BENCH_ERR_MAX]; /* system-specific failure (publish error, stats) */
	char note[BENCH_ERR_MAX]; /* copied to bench_result.note */
} bench_run;

/* Appends to run->err (first failure first; later ones after "; "). */
void bench_fail(bench_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks the sink against what was sent (count, order, checksum, length)
 * plus run->err, and fills res. */
void bench_verify(bench_run *run, bench_result *res);

/* ---- systems and scenarios ---------------------------------------------- */

typedef struct bench_system {
	const char *name;   /* column 1 of the table, "system" in JSON */
	const char *what;   /* one line: what exactly it runs */
	/* Moves run->events events; fills res (bench_verify does most of it). */
	void (*run)(bench_run *run, bench_result *res);
} bench_system;

typedef struct bench_scenario {
	const char *name;
	const char *what;
	const bench_system *systems;
	unsigned nsystems;
	const char *reference; /* the system ratios are taken against ("ebus") */
} bench_scenario;

/* Runs a scenario as described at the top; returns the process exit code. */
int bench_run_scenario(const bench_scenario *sc, const bench_opts *o);

/* Scenarios (one file each). */
extern const bench_scenario bench_scenario_throughput;

/* Systems, one file each (sys_*.c), one entry point per scenario. */
void bench_ebus_throughput(bench_run *run, bench_result *res);
void bench_ckring_throughput(bench_run *run, bench_result *res);
void bench_mutex_throughput(bench_run *run, bench_result *res);
#ifdef EBUS_BENCH_HAVE_ZMQ
void bench_zmq_throughput(bench_run *run, bench_result *res);
#endif

/* ---- helpers -------------------------------------------------------------- */

uint64_t bench_now_ns(void);

/* Starts a thread, pinned to cpu unless cpu < 0. 0 or an errno value. */
int bench_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, int cpu);

/* Joins t, but gives up after the run's timeout: prints what the sink saw
 * and exits the process with status 2 (a hung run cannot be cleaned up). */
void bench_join(bench_run *run, pthread_t t, const char *sysname, const char *role);

/* The references' spin-wait (empty, full, start flags): ck_pr_stall, and a
 * sched_yield every 1024 stalls so two threads sharing a core (--cpus 0,0,
 * or an unpinned run on a busy machine) still make progress. */
void bench_relax(unsigned *spins);

#endif
