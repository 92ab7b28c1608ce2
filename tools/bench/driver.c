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

/* Values per run: events/s, or p50, p99, p99.9, max and idle CPU %. */
#define NV 5

/*
 * Latency histogram for --json, over the samples of every timed run of a
 * system: quarter-octave buckets (four per power of two; 0..3 ns one each),
 * so a CDF drawn from them is within 1/4 of the value on a log axis.
 */
#define LH_BUCKETS 256

static unsigned lh_index(uint64_t ns)
{
	unsigned e;
	if (ns < 4)
		return (unsigned)ns;
	e = 63u - (unsigned)__builtin_clzll(ns); /* >= 2 */
	return e * 4u + (unsigned)((ns >> (e - 2u)) & 3u) - 4u;
}

static uint64_t lh_lower(unsigned i)
{
	unsigned e;
	if (i < 4)
		return i;
	e = (i + 4u) / 4u;
	return ((uint64_t)1 << e) + (uint64_t)((i + 4u) % 4u) * ((uint64_t)1 << (e - 2u));
}

static void lh_print(FILE *f, const uint64_t *h)
{
	int first = 1;
	fprintf(f, ",\"latency_hist_ns\":[");
	for (unsigned i = 0; i < LH_BUCKETS; i++) {
		uint64_t hi;
		if (!h[i])
			continue;
		hi = i + 1 < LH_BUCKETS ? lh_lower(i + 1) - 1 : UINT64_MAX;
		fprintf(f, "%s[%llu,%llu,%llu]", first ? "" : ",", (unsigned long long)lh_lower(i),
		       (unsigned long long)hi, (unsigned long long)h[i]);
		first = 0;
	}
	fprintf(f, "]");
}

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

/* One verified run of one system; fills v[0] = events/s, or for latency
 * scenarios v[0..3] = p50, p99, p99.9, max in ns (idle: v[4] = CPU %); NAN
 * if it failed. */
static void run_once(const bench_scenario *sc, const bench_system *sys, const bench_opts *o,
                     const bench_run *shape, bench_sink *sinks, uint64_t *samples, uint64_t salt,
                     const char *label, int *failed, double v[NV])
{
	bench_run run;
	bench_result res;

	v[0] = v[1] = v[2] = v[3] = v[4] = NAN;
	run = *shape;
	memset(&res, 0, sizeof res);
	for (unsigned k = 0; k < run.nsinks; k++)
		bench_sink_init(&sinks[k], run.events, o->payload,
		                run.stream_salts ? bench_stream_salt(salt, k) : salt);
	run.o = o;
	run.salt = salt;
	run.sinks = sinks;
	run.sink = &sinks[0];
	if (run.latency)
		sinks[0].lat = samples;
	else if (sc->latency_table)
		run.samples = samples;
	if (samples)
		memset(samples, 0, sizeof(uint64_t) * run.events);
	run.deadline_ns = bench_now_ns() + (uint64_t)o->timeout_s * 1000000000ull;
	sys->run(&run, &res);
	if (res.ok && sc->latency_table)
		bench_percentiles(samples, run.events, &res);
	if (!res.ok) {
		progress(o, NULL, 0, 0, NULL);
		fflush(stdout); /* keep the header before the failure when both go to one file */
		fprintf(stderr, "ebus-bench: FAILED: %s/%s %s: %s\n", sc->name, sys->name, label,
		        res.err[0] ? res.err : "unknown error");
		(*failed)++;
		return;
	}
	if (o->verbose) {
		progress(o, NULL, 0, 0, NULL);
		if (sc->latency_table)
			fprintf(stderr, "  %-8s %-8s p50 %.0f ns, p99 %.0f ns, p99.9 %.0f ns, max %.0f ns%s%s\n",
			        label, sys->name, res.p50, res.p99, res.p999, res.max,
			        res.note[0] ? "  " : "", res.note);
		else
			fprintf(stderr, "  %-8s %-8s %8.2f M ev/s  %8.4f s%s%s\n", label, sys->name,
			        (double)run.published / res.seconds / 1e6, res.seconds,
			        res.note[0] ? "  " : "", res.note);
	}
	if (sc->latency_table) {
		v[0] = res.p50;
		v[1] = res.p99;
		v[2] = res.p999;
		v[3] = res.max;
		if (sc->idle)
			v[4] = res.cpu_pct;
	} else if (res.seconds > 0) {
		v[0] = (double)run.published / res.seconds;
	}
}

static void fmt_rate(char *buf, size_t n, double v)
{
	if (isnan(v))
		snprintf(buf, n, "-");
	else
		snprintf(buf, n, "%.2f M", v / 1e6);
}

static void fmt_ns(char *buf, size_t n, double v)
{
	if (isnan(v))
		snprintf(buf, n, "-");
	else if (v < 100000)
		snprintf(buf, n, "%.0f", v);
	else if (v < 100e6)
		snprintf(buf, n, "%.0f us", v / 1e3);
	else
		snprintf(buf, n, "%.0f ms", v / 1e6);
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

/* The default shape: throughput's. */
static int plan_default(const bench_opts *o, bench_run *shape)
{
	shape->events = o->events;
	shape->nsinks = 1;
	shape->nsubs = 1;
	return 0;
}

/* Median over runs of per-round ratios v[s][r][i] / v[ref][r][i]. */
static double ratio_med(const double *val, unsigned runs, unsigned s, unsigned ref, unsigned i,
                        int inverse)
{
	double ratio[runs > 0 ? runs : 1];
	for (unsigned r = 0; r < runs; r++) {
		double a = val[(s * runs + r) * NV + i], b = val[(ref * runs + r) * NV + i];
		ratio[r] = (isnan(a) || isnan(b) || a == 0 || b == 0) ? NAN : inverse ? b / a : a / b;
	}
	return median(ratio, runs, NULL, NULL);
}

int bench_run_scenario(const bench_scenario *sc, const bench_opts *o)
{
	unsigned ns = sc->nsystems, runs = o->runs, ref = 0;
	double *val = malloc(sizeof(double) * NV * ns * runs);
	bench_run shape;
	bench_sink *sinks = NULL;
	uint64_t *samples = NULL;
	uint64_t (*lh)[LH_BUCKETS] = NULL; /* per system, --json latency scenarios */
	uint64_t salt = 1;
	int failed = 0;
	char label[32];
	double w[NV];

	memset(&shape, 0, sizeof shape);
	if ((sc->plan ? sc->plan : plan_default)(o, &shape) != 0) {
		free(val);
		return 2;
	}
	if (shape.nsinks == 0)
		shape.nsinks = 1;
	if (shape.nsubs == 0)
		shape.nsubs = 1;
	if (shape.published == 0)
		shape.published = shape.events;
	sinks = aligned_alloc(64, sizeof *sinks * shape.nsinks);
	if (sc->latency_table)
		samples = malloc(sizeof(uint64_t) * shape.events);
	if (sc->latency_table && o->jf)
		lh = calloc(ns > 0 ? ns : 1, sizeof *lh);
	if (!val || !sinks || (sc->latency_table && !samples) || (sc->latency_table && o->jf && !lh)) {
		fprintf(stderr, "ebus-bench: out of memory\n");
		return 1;
	}
	const char *skipped[ns > 0 ? ns : 1];
	for (unsigned s = 0; s < ns; s++) {
		if (strcmp(sc->systems[s].name, sc->reference) == 0)
			ref = s;
		skipped[s] = sc->systems[s].skip ? sc->systems[s].skip(o) : NULL;
		for (unsigned r = 0; r < runs; r++)
			for (unsigned i = 0; i < NV; i++)
				val[(s * runs + r) * NV + i] = NAN;
	}

	/* Warm-up: once each, same size as a timed run, not timed. */
	for (unsigned s = 0; s < ns; s++) {
		if (skipped[s])
			continue;
		progress(o, "warm-up", s + 1, ns, sc->systems[s].name);
		run_once(sc, &sc->systems[s], o, &shape, sinks, samples, salt++, "warm-up", &failed, w);
	}
	for (unsigned r = 0; r < runs; r++) {
		for (unsigned k = 0; k < ns; k++) {
			unsigned s = (r + k) % ns;
			if (skipped[s])
				continue;
			progress(o, "run", r + 1, runs, sc->systems[s].name);
			snprintf(label, sizeof label, "run %u", r + 1);
			run_once(sc, &sc->systems[s], o, &shape, sinks, samples, salt++, label, &failed,
			         &val[(s * runs + r) * NV]);
			if (lh && !isnan(val[(s * runs + r) * NV]))
				for (uint64_t i = 0; i < shape.events; i++)
					lh[s][lh_index(samples[i])]++;
		}
	}
	progress(o, NULL, 0, 0, NULL);

	if (!o->json) {
		if (sc->latency_table)
			printf("\n%-9s %9s %9s %9s %9s %8s %8s %5s%s\n", "system", "p50 ns", "p99 ns",
			       "p99.9 ns", "max ns", "p50/ck", "p999/ck", "runs",
			       sc->idle ? "  idle CPU % of a core (min-max)" : "");
		else
			printf("\n%-9s %12s %10s %10s %12s %12s %5s\n", "system", "median ev/s", "min",
			       "max", "system/ebus", "ebus/system", "runs");
	}
	for (unsigned s = 0; s < ns; s++) {
		double col[NV][runs > 0 ? runs : 1];
		double med[NV], mn, mx, cmin = NAN, cmax = NAN;
		unsigned ok = 0;
		char a[32], b[32], c[32], d[32], e[32];

		if (skipped[s]) {
			if (o->jf)
				fprintf(o->jf, "{\"schema\":\"%s\",\"scenario\":\"%s\",\"system\":\"%s\",\"skipped\":\"%s\"}\n",
				        BENCH_JSON_SCHEMA, sc->name, sc->systems[s].name, skipped[s]);
			if (!o->json)
				printf("%-9s skipped: %s\n", sc->systems[s].name, skipped[s]);
			continue;
		}
		for (unsigned r = 0; r < runs; r++) {
			for (unsigned i = 0; i < NV; i++)
				col[i][r] = val[(s * runs + r) * NV + i];
			ok += !isnan(col[0][r]);
		}
		if (sc->latency_table) {
			double r50 = ratio_med(val, runs, s, ref, 0, 0);
			double r999 = ratio_med(val, runs, s, ref, 2, 0);
			double worst;
			for (unsigned i = 0; i < 3; i++)
				med[i] = median(col[i], runs, NULL, NULL);
			(void)median(col[3], runs, NULL, &worst); /* max over all runs */
			med[3] = worst;
			med[4] = median(col[4], runs, &cmin, &cmax);
			if (o->jf) {
				char f[32], g[32];
				json_num(a, sizeof a, med[0], "%.0f");
				json_num(b, sizeof b, med[1], "%.0f");
				json_num(c, sizeof c, med[2], "%.0f");
				json_num(d, sizeof d, med[3], "%.0f");
				json_num(f, sizeof f, r50, "%.4f");
				json_num(g, sizeof g, r999, "%.4f");
				fprintf(o->jf, "{\"schema\":\"%s\",\"scenario\":\"%s\",\"system\":\"%s\",\"reference\":\"%s\","
				       "\"p50_ns\":%s,\"p99_ns\":%s,\"p999_ns\":%s,\"max_ns\":%s,\"runs\":%u,"
				       "\"runs_planned\":%u,\"p50_ratio_to_reference\":%s,"
				       "\"p999_ratio_to_reference\":%s,\"samples_per_run\":%llu,"
				       "\"payload_bytes\":%zu,\"capacity_slots\":%u,\"wait\":\"%s\"",
				       BENCH_JSON_SCHEMA, sc->name, sc->systems[s].name, sc->reference, a, b, c,
				       d, ok, runs, f, g, (unsigned long long)shape.events, o->payload,
				       o->capacity, o->wait_name);
				if (shape.period_ns)
					fprintf(o->jf, ",\"rate_events_per_s\":%llu", (unsigned long long)o->rate);
				if (sc->idle) {
					json_num(a, sizeof a, med[4], "%.4f");
					json_num(b, sizeof b, cmin, "%.4f");
					json_num(c, sizeof c, cmax, "%.4f");
					fprintf(o->jf, ",\"idle_cpu_pct\":%s,\"idle_cpu_min_pct\":%s,"
					       "\"idle_cpu_max_pct\":%s,\"idle_window_ms\":%u",
					       a, b, c, o->idle_ms);
				}
				if (lh)
					lh_print(o->jf, lh[s]);
				fprintf(o->jf, "}\n");
			}
			if (!o->json) {
				fmt_ns(a, sizeof a, med[0]);
				fmt_ns(b, sizeof b, med[1]);
				fmt_ns(c, sizeof c, med[2]);
				fmt_ns(d, sizeof d, med[3]);
				fmt_ratio(e, sizeof e, r50);
				{
					char f[32];
					fmt_ratio(f, sizeof f, r999);
					printf("%-9s %9s %9s %9s %9s %8s %8s %2u/%-2u", sc->systems[s].name, a, b,
					       c, d, e, f, ok, runs);
					if (sc->idle)
						printf("  %.3f (%.3f-%.3f)", med[4], cmin, cmax);
					printf("\n");
				}
			}
			continue;
		}
		{
			double rmed = ratio_med(val, runs, s, ref, 0, 0);
			double imed = ratio_med(val, runs, s, ref, 0, 1);
			med[0] = median(col[0], runs, &mn, &mx);
			if (o->jf) {
				json_num(a, sizeof a, med[0], "%.0f");
				json_num(b, sizeof b, mn, "%.0f");
				json_num(c, sizeof c, mx, "%.0f");
				json_num(d, sizeof d, rmed, "%.4f");
				json_num(e, sizeof e, imed, "%.4f");
				fprintf(o->jf, "{\"schema\":\"%s\",\"scenario\":\"%s\",\"system\":\"%s\",\"reference\":\"%s\","
				       "\"events_per_s\":%s,\"min_events_per_s\":%s,\"max_events_per_s\":%s,"
				       "\"runs\":%u,\"runs_planned\":%u,\"ratio_to_reference\":%s,"
				       "\"reference_over_system\":%s,\"events_per_run\":%llu,"
				       "\"payload_bytes\":%zu,\"capacity_slots\":%u,\"wait\":\"%s\"}\n",
				       BENCH_JSON_SCHEMA, sc->name, sc->systems[s].name, sc->reference, a, b, c,
				       ok, runs, d, e, (unsigned long long)shape.published, o->payload,
				       o->capacity, o->wait_name);
			}
			if (!o->json) {
				fmt_rate(a, sizeof a, med[0]);
				fmt_rate(b, sizeof b, mn);
				fmt_rate(c, sizeof c, mx);
				fmt_ratio(d, sizeof d, rmed);
				fmt_ratio(e, sizeof e, imed);
				printf("%-9s %12s %10s %10s %12s %12s %2u/%-2u\n", sc->systems[s].name, a, b, c,
				       d, e, ok, runs);
			}
		}
	}
	if (!o->json) {
		if (sc->latency_table)
			printf("\nns = nanoseconds (CLOCK_MONOTONIC); p50/p99/p99.9 are medians over runs of "
			       "each run's percentile, max is the largest of all runs; ratios are medians of "
			       "per-round ratios to %s.\n",
			       sc->reference);
		else
			printf("\nev/s = events per second (M = 10^6), first publish to last delivery; "
			       "ratios are medians of per-round ratios.\n");
		if (sc->legend)
			printf("%s\n", sc->legend);
		for (unsigned s = 0; s < ns; s++)
			printf("  %-9s %s\n", sc->systems[s].name, sc->systems[s].what);
	}
	fflush(stdout);
	if (o->jf)
		fflush(o->jf);
	free(val);
	free(sinks);
	free(samples);
	free(lh);
	if (failed) {
		fprintf(stderr, "ebus-bench: %s: %d run(s) FAILED verification (see above)\n", sc->name,
		        failed);
		return 1;
	}
	return 0;
}
