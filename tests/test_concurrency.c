/*
 * A subscription's handler never runs on two threads at once (ebus.h,
 * ebus_subscribe; DESIGN 2.2). Each subscription has an overlap detector (an
 * atomic in-handler counter; entering while it is non-zero is a violation)
 * and handlers yield every few calls to widen the window in which a second
 * thread could enter. Also checks per-publisher order and exactly-once
 * (stress_common.h).
 *
 *   async: many publishers, topics on 2 executors, 2 subscriptions per topic.
 *   sync:  many publishing threads on ONE topic; delivery happens on each
 *          publishing thread, so the bus must serialize the subscription.
 *
 * Parameters:
 *   EBUS_STRESS_PUBLISHERS  8 | 32
 *   EBUS_STRESS_EVENTS      20000 | 5000000   events per publisher
 */
#include "stress_common.h"

static unsigned P;
static uint64_t E;

static void test_async_many_publishers(void)
{
	sc_params p;
	memset(&p, 0, sizeof p);
	p.label = "async, overlap detector";
	p.P = P;
	p.T = 4;
	p.S = 2;
	p.E = E;
	p.executors = 2;
	p.yield_every = 64;
	p.big_every = 8;
	sc_run_once(&p);
}

static void test_sync_one_topic(void)
{
	sc_params p;
	memset(&p, 0, sizeof p);
	p.label = "synchronous, one topic, overlap detector";
	p.P = P;
	p.T = 1;
	p.S = 2;
	p.E = E / 2 ? E / 2 : 1;
	p.synchronous = 1;
	p.yield_every = 16;
	p.big_every = 8;
	p.ref_every = 31;
	sc_run_once(&p);
}

static void test_sync_few_topics(void)
{
	sc_params p;
	memset(&p, 0, sizeof p);
	p.label = "synchronous, 3 topics, overlap detector";
	p.P = P;
	p.T = 3;
	p.S = 3;
	p.E = E / 2 ? E / 2 : 1;
	p.synchronous = 1;
	p.yield_every = 8;
	sc_run_once(&p);
}

int main(void)
{
	P = (unsigned)tu_param("EBUS_STRESS_PUBLISHERS", 8, 32);
	E = tu_param("EBUS_STRESS_EVENTS", 20000, 5000000);
	TU_RUN(test_async_many_publishers);
	TU_RUN(test_sync_one_topic);
	TU_RUN(test_sync_few_topics);
	return tu_finish("test_concurrency");
}
