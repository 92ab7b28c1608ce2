/*
 * The scenario driver: warm-up, interleaved timed runs, medians, output.
 *
 * Every system of a scenario gets one untimed warm-up run (verified like
 * the others), then round r runs every system once, starting at system
 * r mod n, so slow drift on this shared machine hits all of them alike and
 * no system always runs right after the same neighbour. Ratios are taken
 * per round (system run r / reference run r) and their median reported:
 * pairs from the same round share the machine's state of the moment.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median of the non-NaN values; NaN if there are none. Sorts a copy. */
static double median(const double *v, unsigned n, double *min, double *max)
{
	double tmp[n > 0 ? n : 1];
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		if (!isnan(v[i]))
			tmp[k++] = v[i];
	if (k == 0) {
		if (min)
			*min = NAN;
		if (max)
			*max = NAN;
		return NAN;
	}
	qsort(tmp, k, sizeof tmp[0], cmp_double);
	if (min)
		*min = tmp[0];
	if (max)
		*max = tmp[k - 1];
	return k % 2 ? tmp[k / 2] : (tmp[k / 2 - 1] + tmp[k / 2]) / 2;
}

static void progress(const bench_opts *o, const char *phase, unsigned round, unsigned rounds,
                     const char *sys)
{
	if (!o->progress)
		return;
	if (sys)
		fprintf(stderr, "\r\033[K  %s %u/%u: %s ...", phase, round, rounds, sys);
	else
		fprintf(stderr, "\r\033[K");
	fflush(stderr);
}

/* One verified run of one system; events/s, or NAN if it failed. */
static double run_once(const bench_scenario *sc, const bench_system *sys, const bench_opts *o,
                       bench_sink *sink, uint64_t salt, const char *label, int *failed)
{
	bench_run run;
	bench_result res;

	memset(&run, 0, sizeof run);
	memset(&res, 0, sizeof res);
	bench_sink_init(sink, o->events, o->payload, salt);
	run.o = o;
	run.events = o->events;
	run.salt = salt;
	run.sink = sink;
	run.deadline_ns = bench_now_ns() + (uint64_t)o->timeout_s * 1000000000ull;
	sys->run(&run, &res);
	if (!res.ok) {
		progress(o, NULL, 0, 0, NULL);
		fflush(stdout); /* keep the header before the failure when both go to one file */
		fprintf(stderr, "ebus-bench: FAILED: %s/%s %s: %s\n", sc->name, sys->name, label,
		        res.err[0] ? res.err : "unknown error");
		(*failed)++;
		return NAN;
	}
	if (o->verbose) {
		progress(o, NULL, 0, 0, NULL);
		fprintf(stderr, "  %-8s %-8s %8.2f M ev/s  %8.4f s%s%s\n", label, sys->name,
		        (double)res.events / res.seconds / 1e6, res.seconds, res.note[0] ? "  " : "",
		        res.note);
	}
	return res.seconds > 0 ? (double)res.events / res.seconds : NAN;
}

static void fmt_rate(char *buf, size_t n, double v)
{
	if (isnan(v))
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.2f M", v / 1e6);
}

static void fmt_ratio(char *buf, size_t n, double v)
{
	if (isnan(v))
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.2fx", v);
}

static void json_num(char *buf, size_t n, double v, const char *fmt)
{
	if (isnan(v))
		snprintf(buf, n, "null");
	else
		snprintf(buf, n, fmt, v);
}

int bench_run_scenario(const bench_scenario *sc, const bench_opts *o)
{
	unsigned ns = sc->nsystems, runs = o->runs, ref = 0;
	double *eps = malloc(sizeof(double) * ns * runs);
	bench_sink *sink = aligned_alloc(64, sizeof *sink);
	uint64_t salt = 1;
	int failed = 0;
	char label[32];

	if (!eps || !sink) {
		fprintf(stderr, "ebus-bench: out of memory\n");
		return 1;
	}
	for (unsigned s = 0; s < ns; s++)
		if (strcmp(sc->systems[s].name, sc->reference) == 0)
			ref = s;

	/* Warm-up: once each, same size as a timed run, not timed. */
	for (unsigned s = 0; s < ns; s++) {
		progress(o, "warm-up", s + 1, ns, sc->systems[s].name);
		(void)run_once(sc, &sc->systems[s], o, sink, salt++, "warm-up", &failed);
	}
	for (unsigned r = 0; r < runs; r++) {
		for (unsigned k = 0; k < ns; k++) {
			unsigned s = (r + k) % ns;
			progress(o, "run", r + 1, runs, sc->systems[s].name);
			snprintf(label, sizeof label, "run %u", r + 1);
			eps[s * runs + r] = run_once(sc, &sc->systems[s], o, sink, salt++, label, &failed);
		}
	}
	progress(o, NULL, 0, 0, NULL);

	if (!o->json) {
		printf("\n%-9s %12s %10s %10s %12s %12s %5s\n", "system", "median ev/s", "min", "max",
		       "system/ebus", "ebus/system", "runs");
	}
	for (unsigned s = 0; s < ns; s++) {
		const double *v = eps + s * runs;
		double ratio[runs > 0 ? runs : 1], inv[runs > 0 ? runs : 1];
		double med, mn, mx, rmed, imed;
		unsigned ok = 0;

		for (unsigned r = 0; r < runs; r++) {
			double a = v[r], b = eps[ref * runs + r];
			ok += !isnan(a);
			ratio[r] = (isnan(a) || isnan(b)) ? NAN : a / b;
			inv[r] = (isnan(a) || isnan(b)) ? NAN : b / a;
		}
		med = median(v, runs, &mn, &mx);
		rmed = median(ratio, runs, NULL, NULL);
		imed = median(inv, runs, NULL, NULL);
		if (o->json) {
			char a[32], b[32], c[32], d[32], e[32];
			json_num(a, sizeof a, med, "%.0f");
			json_num(b, sizeof b, mn, "%.0f");
			json_num(c, sizeof c, mx, "%.0f");
			json_num(d, sizeof d, rmed, "%.4f");
			json_num(e, sizeof e, imed, "%.4f");
			printf("{\"scenario\":\"%s\",\"system\":\"%s\",\"events_per_s\":%s,\"min\":%s,"
			       "\"max\":%s,\"runs\":%u,\"ratio_to_ebus\":%s,\"ebus_over_system\":%s,"
			       "\"events\":%llu,\"payload\":%zu,\"capacity\":%u,\"wait\":\"%s\"}\n",
			       sc->name, sc->systems[s].name, a, b, c, ok, d, e,
			       (unsigned long long)o->events, o->payload, o->capacity, o->wait_name);
		} else {
			char a[32], b[32], c[32], d[32], e[32];
			fmt_rate(a, sizeof a, med);
			fmt_rate(b, sizeof b, mn);
			fmt_rate(c, sizeof c, mx);
			fmt_ratio(d, sizeof d, rmed);
			fmt_ratio(e, sizeof e, imed);
			printf("%-9s %12s %10s %10s %12s %12s %2u/%-2u\n", sc->systems[s].name, a, b, c, d,
			       e, ok, runs);
		}
	}
	if (!o->json) {
		printf("\nev/s = events per second (M = 10^6), first publish to last delivery; "
		       "ratios are medians of per-round ratios.\n");
		for (unsigned s = 0; s < ns; s++)
			printf("  %-8s %s\n", sc->systems[s].name, sc->systems[s].what);
	}
	fflush(stdout);
	free(eps);
	free(sink);
	if (failed) {
		fprintf(stderr, "ebus-bench: %d run(s) FAILED verification (see above)\n", failed);
		return 1;
	}
	return 0;
}
