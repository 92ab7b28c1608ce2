/*
 * The shared handler, run verification, clocks and threads.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the handler ------------------------------------------------------------ */

unsigned char *bench_payload_buf(size_t len)
{
	unsigned char *buf = malloc(len);
	if (buf)
		memset(buf, 0xa5, len);
	return buf;
}

void bench_sink_init(bench_sink *s, uint64_t events, size_t len, uint64_t salt)
{
	memset(s, 0, sizeof *s);
	s->target = events;
	s->len = len;
	s->salt = salt;
}

/* noinline: every system pays one real call per event, even under LTO;
 * no reference may get an inlined handler the bus cannot have. */
__attribute__((noinline)) int bench_deliver(bench_sink *s, const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t seq, chk;
	int bad = 0;

	if (__builtin_expect(len != s->len || len < BENCH_PAYLOAD_MIN, 0)) {
		s->bad_len++;
		s->count++;
		return 1;
	}
	memcpy(&seq, p, 8);
	memcpy(&chk, p + 8, 8);
	if (__builtin_expect(seq != s->expect, 0)) {
		if (s->bad_order++ == 0) {
			s->first_bad_at = s->count;
			s->first_bad_want = s->expect;
			s->first_bad_got = seq;
		}
		bad = 1;
	}
	s->expect = seq + 1; /* resynchronise: count each gap or swap once */
	if (__builtin_expect(chk != bench_check(seq, s->salt), 0)) {
		s->bad_check++;
		bad = 1;
	}
	if (len > BENCH_PAYLOAD_MIN && __builtin_expect(p[len - 1] != (unsigned char)seq, 0)) {
		s->bad_tail++;
		bad = 1;
	}
	s->sum += chk;
	if (++s->count == s->target)
		s->t_end_ns = bench_now_ns();
	return bad;
}

__attribute__((noinline)) int bench_deliver_lat(bench_sink *s, const void *data, size_t len)
{
	uint64_t now = bench_now_ns(), t;

	if (__builtin_expect(len >= 24, 1)) {
		memcpy(&t, (const unsigned char *)data + 16, 8);
		if (s->lat && s->count < s->target)
			s->lat[s->count] = now >= t ? now - t : 0;
	}
	return bench_deliver(s, data, len);
}

__attribute__((noinline)) int bench_deliver_multi(bench_sink *sinks, unsigned publishers,
                                                  unsigned topics, int want_topic, const void *data,
                                                  size_t len)
{
	const unsigned char *p = data;
	uint32_t pub, topic;

	if (__builtin_expect(len < 24, 0)) {
		sinks[0].bad_len++;
		sinks[0].count++;
		return 1;
	}
	memcpy(&pub, p + 16, 4);
	memcpy(&topic, p + 20, 4);
	if (__builtin_expect(pub >= publishers || topic >= topics, 0)) {
		sinks[0].bad_route++;
		sinks[0].count++;
		return 1;
	}
	if (__builtin_expect(want_topic >= 0 && topic != (uint32_t)want_topic, 0)) {
		bench_sink *s = &sinks[pub * topics + (unsigned)want_topic];
		s->bad_route++;
		s->count++;
		return 1;
	}
	return bench_deliver(&sinks[pub * topics + topic], data, len);
}

uint64_t bench_expected_sum(uint64_t events, uint64_t salt)
{
	uint64_t sum = 0;
	for (uint64_t i = 0; i < events; i++)
		sum += bench_check(i, salt);
	return sum;
}

/* ---- verification ------------------------------------------------------------ */

void bench_fail(bench_run *run, const char *fmt, ...)
{
	size_t n = strlen(run->err);
	va_list ap;

	if (n > 0 && n + 2 < sizeof run->err) {
		memcpy(run->err + n, "; ", 3);
		n += 2;
	}
	if (n + 1 >= sizeof run->err)
		return;
	va_start(ap, fmt);
	vsnprintf(run->err + n, sizeof run->err - n, fmt, ap);
	va_end(ap);
}

/* Checks one sink; pre is "" or "subscriber k: ". */
static void verify_sink(bench_run *run, const bench_sink *s, const char *pre)
{
	uint64_t want_sum = bench_expected_sum(run->events, s->salt);

	if (s->count != run->events)
		bench_fail(run, "%sreceived %llu of %llu events (%s)", pre, (unsigned long long)s->count,
		           (unsigned long long)run->events, s->count < run->events ? "lost" : "duplicated");
	if (s->bad_order)
		bench_fail(run, "%s%llu order errors, first at delivery %llu: expected seq %llu, got %llu",
		           pre, (unsigned long long)s->bad_order, (unsigned long long)s->first_bad_at,
		           (unsigned long long)s->first_bad_want, (unsigned long long)s->first_bad_got);
	else if (s->count > 0 && s->expect != run->events)
		bench_fail(run, "%slast seq delivered was %llu, expected %llu", pre,
		           (unsigned long long)s->expect - 1, (unsigned long long)run->events - 1);
	if (s->bad_len)
		bench_fail(run, "%s%llu events had the wrong length", pre, (unsigned long long)s->bad_len);
	if (s->bad_check)
		bench_fail(run, "%s%llu events had a corrupt check word", pre,
		           (unsigned long long)s->bad_check);
	if (s->bad_tail)
		bench_fail(run, "%s%llu events had a corrupt payload tail", pre,
		           (unsigned long long)s->bad_tail);
	if (s->bad_route)
		bench_fail(run, "%s%llu events were for another topic or publisher", pre,
		           (unsigned long long)s->bad_route);
	if (s->sum != want_sum)
		bench_fail(run, "%schecksum %016llx, expected %016llx", pre, (unsigned long long)s->sum,
		           (unsigned long long)want_sum);
}

void bench_verify(bench_run *run, bench_result *res)
{
	unsigned n = run->nsinks ? run->nsinks : 1;
	bench_sink *sinks = run->sinks ? run->sinks : run->sink;
	uint64_t t_end = 0, total = 0;
	char pre[48];

	for (unsigned k = 0; k < n; k++) {
		const bench_sink *s = &sinks[k];
		if (run->stream_salts && run->o && run->o->topics)
			snprintf(pre, sizeof pre, "publisher %u topic %u: ", k / run->o->topics,
			         k % run->o->topics);
		else if (n > 1)
			snprintf(pre, sizeof pre, "subscriber %u: ", k);
		else
			pre[0] = '\0';
		if (strlen(run->err) + 64 < sizeof run->err) /* keep the first few readable */
			verify_sink(run, s, pre);
		else if (s->count != run->events || s->bad_order || s->bad_check || s->bad_len ||
		         s->bad_tail || s->bad_route || s->sum != bench_expected_sum(run->events, s->salt))
			bench_fail(run, "..."); /* err is full; still fail */
		total += s->count;
		if (s->t_end_ns == 0)
			t_end = UINT64_MAX;
		else if (t_end != UINT64_MAX && s->t_end_ns > t_end)
			t_end = s->t_end_ns;
	}
	if (run->err[0] == '\0' && (t_end == UINT64_MAX || t_end == 0 || t_end < run->t_start_ns))
		bench_fail(run, "no end time recorded");

	res->ok = run->err[0] == '\0';
	res->events = total;
	res->seconds = res->ok ? (double)(t_end - run->t_start_ns) / 1e9 : 0.0;
	snprintf(res->err, sizeof res->err, "%s", run->err);
	snprintf(res->note, sizeof res->note, "%s", run->note);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct(const uint64_t *v, uint64_t n, double p)
{
	uint64_t r = (uint64_t)(p / 100.0 * (double)n + 0.999999);
	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	return (double)v[r - 1];
}

void bench_percentiles(uint64_t *samples, uint64_t n, bench_result *res)
{
	if (n == 0 || !samples) {
		res->p50 = res->p99 = res->p999 = res->max = 0;
		return;
	}
	qsort(samples, n, sizeof samples[0], cmp_u64);
	res->p50 = pct(samples, n, 50.0);
	res->p99 = pct(samples, n, 99.0);
	res->p999 = pct(samples, n, 99.9);
	res->max = (double)samples[n - 1];
}

/* ---- threads ------------------------------------------------------------------ */

int bench_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, int cpu)
{
	pthread_attr_t attr;
	int rc = pthread_attr_init(&attr);
	if (rc)
		return rc;
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		rc = pthread_attr_setaffinity_np(&attr, sizeof set, &set);
	}
	if (!rc)
		rc = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return rc;
}

void bench_join(bench_run *run, pthread_t t, const char *sysname, const char *role)
{
	uint64_t now = bench_now_ns();
	uint64_t left = run->deadline_ns > now ? run->deadline_ns - now : 0;
	struct timespec until;
	int rc;

	/* pthread_timedjoin_np takes a CLOCK_REALTIME deadline */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(left / 1000000000ull);
	until.tv_nsec += (long)(left % 1000000000ull);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	rc = pthread_timedjoin_np(t, NULL, &until);
	if (rc == 0)
		return;
	fflush(stdout);
	fprintf(stderr,
	        "\nebus-bench: FAILED: %s run did not finish within %u s (waiting for the %s): "
	        "delivered %llu of %llu events, next expected seq %llu%s\n",
	        sysname, run->o->timeout_s, role,
	        (unsigned long long)__atomic_load_n(&run->sink->count, __ATOMIC_RELAXED),
	        (unsigned long long)run->events,
	        (unsigned long long)__atomic_load_n(&run->sink->expect, __ATOMIC_RELAXED),
	        rc == ETIMEDOUT ? " (lost events, or a hang)" : " (join failed)");
	/* Its threads may spin forever; nothing can be cleaned up safely. */
	_exit(2);
}

void bench_relax(unsigned *spins)
{
	if (++*spins < 1024) {
		ck_pr_stall();
	} else {
		*spins = 0;
		sched_yield();
	}
}
