/*
 * ebus-bench internals: what the driver, the scenarios and the systems share.
 *
 * A scenario (throughput, fanout, multi, pingpong, latency, by-name, idle)
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
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_pr.h>

#define BENCH_PAYLOAD_MIN 16 /* seq + check */

/*
 * --json: JSON Lines on stdout. The first line describes the run
 * ("kind":"header": versions, machine, command, UTC time), then one line
 * per (scenario, system). Every line carries "schema"; keys name their
 * unit (_per_s, _ns, _bytes, _slots, _pct, _ms); latency lines carry
 * "latency_hist_ns": [[lower, upper, count], ...] over every timed run's
 * samples. Version 2: schema, header, units in key names, histograms (1
 * had none of these). scripts/plot.py reads it.
 */
#define BENCH_JSON_SCHEMA "ebus-bench/2"

uint64_t bench_now_ns(void); /* CLOCK_MONOTONIC */
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
	int quick, json;     /* json: JSON instead of the tables */
	FILE *jf;            /* where JSON goes: stdout (--json), a file (--json-out), or NULL */
	int verbose;         /* one line per run on stderr, with system notes */
	int progress;        /* stderr is a tty */
	int events_set;      /* --events given (else each scenario picks its own) */
	unsigned publishers, topics, executors; /* multi: P x T over E */
	uint64_t rate;       /* latency: events per second the publisher paces at */
	unsigned idle_ms;    /* idle: length of the idle window */
	const char *only;    /* bridge: one system's throughput alone, or NULL */
} bench_opts;

/* Extra payload fields some scenarios carry in the filler, after check:
 *   [16, 24)  latency: CLOCK_MONOTONIC ns just before the publish call
 *   [16, 20)  multi: publisher index; [20, 24): topic index
 * Those scenarios need payload >= BENCH_PAYLOAD_EXT (the tail byte stays
 * the last one). */
#define BENCH_PAYLOAD_EXT 25

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
	uint64_t *lat;       /* latency scenarios: one sample (ns) per delivery, or NULL */
	uint64_t bad_route;  /* multi: event for another topic reached this subscriber */
} __attribute__((aligned(64))) bench_sink;

/*
 * The handler: verifies one event and accumulates the checksum. Every
 * system calls exactly this (out of line, in common.c), so none gets a
 * cheaper consumer. Returns 0, or 1 if the event failed a check.
 */
int bench_deliver(bench_sink *s, const void *data, size_t len);

/* Latency scenario's handler: records now - the payload's timestamp into
 * s->lat[s->count], then bench_deliver. Every system calls this one. */
int bench_deliver_lat(bench_sink *s, const void *data, size_t len);

/* Multi scenario's handler: routes by the payload's publisher and topic
 * index to sinks[pub * topics + topic] and calls bench_deliver there. A
 * subscriber of one topic passes that topic (want_topic >= 0), and an event
 * of another topic is counted as misrouted; references pass -1. */
int bench_deliver_multi(bench_sink *sinks, unsigned publishers, unsigned topics, int want_topic,
                        const void *data, size_t len);

/* Multi: a stream's salt (so streams never share check words). */
static inline uint64_t bench_stream_salt(uint64_t salt, unsigned stream)
{
	return (salt << 20) ^ ((uint64_t)stream + 1);
}

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
	/* latency scenarios: percentiles of the run's samples, in ns */
	double p50, p99, p999, max;
	double cpu_pct;      /* idle: process CPU over the idle window, % of one core */
} bench_result;

/* What a run function gets: the options, the run's salt, and its sink. */
typedef struct bench_run {
	const bench_opts *o;
	uint64_t events;     /* events each publisher publishes (multi: per stream) */
	uint64_t salt;
	bench_sink *sink;    /* = &sinks[0] */
	bench_sink *sinks;   /* nsinks sinks, each must see `events` events */
	unsigned nsinks;
	unsigned nsubs;      /* subscribers per event (fanout: 4; else 1) */
	int by_name;         /* ebus publishes with ebus_publish_name */
	int latency;         /* handler is bench_deliver_lat (samples in sinks[0].lat) */
	uint64_t period_ns;  /* publisher paces: event seq at t_start_ns + seq * period */
	uint64_t *samples;   /* pingpong: round trips, recorded by thread A (events) */
	int stream_salts;    /* sink k's salt is bench_stream_salt(salt, k) (multi) */
	uint64_t published;  /* events per run the rate is taken over (default events) */
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

/* The references' consumer side of throughput, fanout, latency, by-name:
 * one event, handed to nsubs handlers (the same function ebus calls). */
static inline void bench_consume(const bench_run *run, const void *data, size_t len)
{
	if (__builtin_expect(run->latency, 0)) {
		(void)bench_deliver_lat(run->sinks, data, len);
		return;
	}
	for (unsigned k = 0; k < run->nsubs; k++)
		(void)bench_deliver(&run->sinks[k], data, len);
}

/* The publisher's side of the latency scenario, after bench_fill: waits for
 * the event's slot in the schedule and stamps the payload. No-op otherwise. */
static inline void bench_pace(const bench_run *run, unsigned char *buf, uint64_t seq)
{
	if (run->period_ns) {
		uint64_t target = run->t_start_ns + seq * run->period_ns, now;
		while ((now = bench_now_ns()) < target)
			ck_pr_stall();
		__builtin_memcpy(buf + 16, &now, 8);
	}
}

/* ---- systems and scenarios ---------------------------------------------- */

typedef struct bench_system {
	const char *name;   /* column 1 of the table, "system" in JSON */
	const char *what;   /* one line: what exactly it runs */
	/* Moves run->events events; fills res (bench_verify does most of it). */
	void (*run)(bench_run *run, bench_result *res);
	/* NULL, or returns why this system cannot run here (NULL: it can) */
	const char *(*skip)(const bench_opts *o);
} bench_system;

typedef struct bench_scenario {
	const char *name;
	const char *what;
	const bench_system *systems;
	unsigned nsystems;
	const char *reference; /* the system ratios are taken against ("ebus") */
	/* 0: events per second; 1: latency percentiles (ratios to `reference`) */
	int latency_table;
	/* Fills the run's shape (events, nsinks, nsubs, flags) from the options;
	 * NULL: throughput's (events = --events, 1 sink, 1 subscriber). Returns
	 * 0, or -1 after printing why the options do not fit. */
	int (*plan)(const bench_opts *o, bench_run *shape);
	const char *legend; /* extra legend line, or NULL */
	int idle;           /* latency table plus the idle CPU column (cpu_pct) */
} bench_scenario;

/* Runs a scenario as described at the top; returns the process exit code. */
int bench_run_scenario(const bench_scenario *sc, const bench_opts *o);

/* Scenarios (one file each). */
extern const bench_scenario bench_scenario_throughput;
extern const bench_scenario bench_scenario_fanout;
extern const bench_scenario bench_scenario_multi;
extern const bench_scenario bench_scenario_pingpong;
extern const bench_scenario bench_scenario_latency;
extern const bench_scenario bench_scenario_by_name;
extern const bench_scenario bench_scenario_idle;

/* Systems, one file each (sys_*.c), one entry point per scenario. */
void bench_ebus_throughput(bench_run *run, bench_result *res);
void bench_ckring_throughput(bench_run *run, bench_result *res);
void bench_mutex_throughput(bench_run *run, bench_result *res);
#ifdef EBUS_BENCH_HAVE_ZMQ
void bench_zmq_throughput(bench_run *run, bench_result *res);
#endif
/* ebus with BUSY_SPIN executors (pingpong), or the --wait strategy */
void bench_ebus_multi(bench_run *run, bench_result *res);
void bench_ckring_multi(bench_run *run, bench_result *res);
void bench_mutex_multi(bench_run *run, bench_result *res);
void bench_ebus_pingpong_busy(bench_run *run, bench_result *res);
void bench_ebus_pingpong_wait(bench_run *run, bench_result *res);
void bench_ebus_pingpong_3t(bench_run *run, bench_result *res);
void bench_ebus_pingpong_3t_wait(bench_run *run, bench_result *res);
const char *bench_ebus_pingpong_3t_skip(const bench_opts *o);
void bench_ckring_pingpong(bench_run *run, bench_result *res);
void bench_ebus_idle(bench_run *run, bench_result *res);
void bench_ebus_idle_busy(bench_run *run, bench_result *res);
void bench_ckfutex_idle(bench_run *run, bench_result *res);
void bench_mutex_pingpong(bench_run *run, bench_result *res);

/* ---- helpers -------------------------------------------------------------- */

/* Sorts samples[0..n) and fills res->p50, p99, p999, max. */
void bench_percentiles(uint64_t *samples, uint64_t n, bench_result *res);

/* Starts a thread, pinned to cpu unless cpu < 0. 0 or an errno value. */
int bench_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, int cpu);

/* Joins t, but gives up after the run's timeout: prints what the sink saw
 * and exits the process with status 2 (a hung run cannot be cleaned up). */
void bench_join(bench_run *run, pthread_t t, const char *sysname, const char *role);

/* The references' spin-wait (empty, full, start flags): ck_pr_stall, and a
 * sched_yield every 1024 stalls so two threads sharing a core (--cpus 0,0,
 * or an unpinned run on a busy machine) still make progress. */
void bench_relax(unsigned *spins);

/* The bridge scenario (bridge.c): two processes through nats-server. */
int bench_bridge(const bench_opts *o);

#endif
