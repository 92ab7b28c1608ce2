/*
 * More publishing threads than cores (16 on a 2-core machine), small lanes
 * (64 slots), BLOCK policy: publishers are preempted while their lanes are
 * full and while executors wait for them. Every event must be delivered
 * exactly once, in order per publisher (stress_common.h checks each one).
 * Completing is the assertion that nothing collapsed; ctest's TIMEOUT
 * catches a hang. No timing is asserted.
 *
 * Parameters:
 *   EBUS_STRESS_PUBLISHERS  16 | 64
 *   EBUS_STRESS_EVENTS      20000 | 5000000   events per publisher
 *   EBUS_STRESS_TOPICS      4 | 16
 */
#include "stress_common.h"

static unsigned P, T;
static uint64_t E;

static void run(const char *label, unsigned executors, ebus_wait wait)
{
	sc_params p;
	memset(&p, 0, sizeof p);
	p.label = label;
	p.P = P;
	p.T = T;
	p.S = 1;
	p.E = E;
	p.executors = executors;
	p.lane_capacity = 64;
	p.bus_policy = EBUS_FULL_BLOCK;
	p.wait = wait;
	p.big_every = 32;
	sc_run_once(&p);
}

static void test_two_executors_park(void)
{
	run("16 publishers, 2 executors, SPIN_PARK", 2, EBUS_WAIT_SPIN_PARK);
}

static void test_one_executor_yield(void)
{
	run("16 publishers, 1 executor, SPIN_YIELD", 1, EBUS_WAIT_SPIN_YIELD);
}

int main(void)
{
	P = (unsigned)tu_param("EBUS_STRESS_PUBLISHERS", 16, 64);
	E = tu_param("EBUS_STRESS_EVENTS", 20000, 5000000);
	T = (unsigned)tu_param("EBUS_STRESS_TOPICS", 4, 16);
	printf("online CPUs: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	TU_RUN(test_two_executors_park);
	TU_RUN(test_one_executor_yield);
	return tu_finish("test_oversubscribe");
}
