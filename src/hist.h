/*
 * Platform layer: the latency histogram's bucket layout (log-linear,
 * HDR-style). Self-contained (no ck, no liburcu) so that tests/test_stats.c
 * can check the bucket math directly. Pure functions. Nothing here is API.
 *
 * Buckets: values 0..15 ns have one bucket each; every power of two
 * [2^e, 2^(e+1)) above, for e = 4 .. EBUS_HIST_MAX_EXP, is split into 16
 * equal sub-buckets of width 2^(e-4). A bucket's width is at most 1/16 of
 * its lower bound, so its upper bound is within 1/16 of any value in it.
 * Values of 2^(EBUS_HIST_MAX_EXP+1) ns (about 36 minutes) and more go to
 * the last bucket.
 */
#ifndef EBUS_HIST_H
#define EBUS_HIST_H

#include <stddef.h>
#include <stdint.h>

#define EBUS_HIST_SUB 16u     /* sub-buckets per power of two */
#define EBUS_HIST_MAX_EXP 40u /* the last power of two covered: [2^40, 2^41) */
#define EBUS_HIST_BUCKETS (EBUS_HIST_SUB + (EBUS_HIST_MAX_EXP - 3u) * EBUS_HIST_SUB) /* 608 */

static inline unsigned ebus_hist_bucket(uint64_t ns)
{
	unsigned e;
	if (ns < EBUS_HIST_SUB)
		return (unsigned)ns;
	e = 63u - (unsigned)__builtin_clzll(ns); /* >= 4 */
	if (e > EBUS_HIST_MAX_EXP)
		return EBUS_HIST_BUCKETS - 1;
	return (e - 3u) * EBUS_HIST_SUB + (unsigned)((ns >> (e - 4u)) & (EBUS_HIST_SUB - 1));
}

/* Smallest and largest value of bucket i (i < EBUS_HIST_BUCKETS). */
static inline uint64_t ebus_hist_lower(unsigned i)
{
	unsigned e;
	if (i < EBUS_HIST_SUB)
		return i;
	e = i / EBUS_HIST_SUB + 3u;
	return (uint64_t)(EBUS_HIST_SUB + i % EBUS_HIST_SUB) << (e - 4u);
}

static inline uint64_t ebus_hist_upper(unsigned i)
{
	if (i < EBUS_HIST_SUB)
		return i;
	return ebus_hist_lower(i) + ((uint64_t)1 << (i / EBUS_HIST_SUB - 1u)) - 1u;
}

#endif
