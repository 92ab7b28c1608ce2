/*
 * Semantic stress test (see stress_common.h): P publishers x T topics x S
 * subscribers, self-checking payloads; exactly-once and per-publisher order
 * for every subscriber, exact counts, and the statistics identity.
 *
 * Runs: 2 executors with the defaults; 2 executors with lane_capacity 64 and
 * the BLOCK policy (lanes full all the time); FAIL and DROP per call with
 * retries (rejected events must never be delivered: they would show as
 * duplicates); a synchronous bus.
 *
 * Parameters (EBUS_STRESS_TIER short | long, or each one on its own):
 *   EBUS_STRESS_PUBLISHERS  4 | 16
 *   EBUS_STRESS_TOPICS      8 | 64
 *   EBUS_STRESS_SUBS        3 | 4
 *   EBUS_STRESS_EVENTS      200000 | 20000000  events per publisher (main run;
 *                           the others use a quarter or a tenth of it)
 */
#include "stress_common.h"

static unsigned P, T, S;
static uint64_t E;

static sc_params base(const char *label)
{
	sc_params p;
	memset(&p, 0, sizeof p);
	p.label = label;
	p.P = P;
	p.T = T;
	p.S = S;
	p.E = E;
	p.executors = 2;
	p.big_every = 16;
	p.ref_every = 61;
	p.name_every = 97;
	return p;
}

static uint64_t at_least(uint64_t v, uint64_t min)
{
	return v < min ? min : v;
}

static void test_async_default(void)
{
	sc_params p = base("async, defaults");
	sc_run_once(&p);
}

static void test_async_block_small_lanes(void)
{
	sc_params p = base("async, BLOCK, lane_capacity 64");
	p.E = at_least(E / 4, T);
	p.lane_capacity = 64;
	p.bus_policy = EBUS_FULL_BLOCK;
	sc_run_once(&p);
}

static void test_async_fail_retry(void)
{
	sc_params p = base("async, FAIL per call + retry, lane_capacity 16");
	p.E = at_least(E / 10, T);
	p.lane_capacity = 16;
	p.call_policy = EBUS_FULL_FAIL;
	p.name_every = 0; /* by name uses the bus policy */
	sc_run_once(&p);
}

static void test_async_drop_retry(void)
{
	sc_params p = base("async, DROP bus policy + retry, lane_capacity 16");
	p.E = at_least(E / 10, T);
	p.lane_capacity = 16;
	p.bus_policy = EBUS_FULL_DROP;
	sc_run_once(&p);
}

static void test_sync(void)
{
	sc_params p = base("synchronous");
	p.E = at_least(E / 10, T);
	p.executors = 0;
	p.synchronous = 1;
	sc_run_once(&p);
}

int main(void)
{
	P = (unsigned)tu_param("EBUS_STRESS_PUBLISHERS", 4, 16);
	T = (unsigned)tu_param("EBUS_STRESS_TOPICS", 8, 64);
	S = (unsigned)tu_param("EBUS_STRESS_SUBS", 3, 4);
	E = tu_param("EBUS_STRESS_EVENTS", 200000, 20000000);
	TU_RUN(test_async_default);
	TU_RUN(test_async_block_small_lanes);
	TU_RUN(test_async_fail_retry);
	TU_RUN(test_async_drop_retry);
	TU_RUN(test_sync);
	return tu_finish("test_stress");
}
