/*
 * Scenarios other than throughput: fanout, multi, pingpong, latency,
 * by-name. Each is a system list and a plan (the shape of a run).
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include <ebus/ebus.h>
#include <stdio.h>

#define PINGPONG_EVENTS 100000ull
#define PINGPONG_QUICK 10000ull

static int need_ext_payload(const bench_opts *o, const char *scenario)
{
	if (o->payload < BENCH_PAYLOAD_EXT) {
		fprintf(stderr, "ebus-bench: scenario %s needs --payload of at least %d bytes\n",
		        scenario, BENCH_PAYLOAD_EXT);
		return -1;
	}
	return 0;
}

/* ---- fanout ------------------------------------------------------------------- */

#define FANOUT_SUBS 4

static int plan_fanout(const bench_opts *o, bench_run *r)
{
	r->events = o->events;
	r->nsinks = FANOUT_SUBS;
	r->nsubs = FANOUT_SUBS;
	return 0;
}

static const bench_system fanout_systems[] = {
	{"ebus", "async bus, 1 executor, 1 topic, 4 subscriptions (4 contexts); ebus_publish (BLOCK)",
	 bench_ebus_throughput, NULL},
	{"ck_ring", "raw ck SPSC ring as in throughput; the consumer calls the handler 4 times per event",
	 bench_ckring_throughput, NULL},
	{"mutex", "mutex + 2 condvars queue as in throughput; the consumer calls 4 handlers per event",
	 bench_mutex_throughput, NULL},
#ifdef EBUS_BENCH_HAVE_ZMQ
	{"zmq", "ZeroMQ inproc XPUB -> 1 SUB on 1 thread calling the 4 handlers per message",
	 bench_zmq_throughput, NULL},
#endif
};

const bench_scenario bench_scenario_fanout = {
	"fanout",
	"1 publisher thread -> 1 topic -> 4 subscribers on 1 consumer thread",
	fanout_systems,
	sizeof fanout_systems / sizeof fanout_systems[0],
	"ebus",
	0,
	plan_fanout,
	"ev/s counts published events (each is delivered to 4 subscribers, each verified apart).",
	0,
};

/* ---- multi -------------------------------------------------------------------- */

static int plan_multi(const bench_opts *o, bench_run *r)
{
	uint64_t streams = (uint64_t)o->publishers * o->topics;

	if (need_ext_payload(o, "multi"))
		return -1;
	r->events = o->events / streams ? o->events / streams : 1;
	r->nsinks = (unsigned)streams;
	r->nsubs = 1;
	r->stream_salts = 1;
	r->published = r->events * streams;
	return 0;
}

static const bench_system multi_systems[] = {
	{"ebus", "async bus, E executors, topic t on executor t mod E (ebus_topic_on), 1 subscriber "
	         "each; P threads ebus_publish (BLOCK), then ebus_flush",
	 bench_ebus_multi, NULL},
	{"ck_ring", "one raw ck SPSC ring per (publisher, consumer); E consumer threads poll their P "
	            "rings round-robin, batched, spinning",
	 bench_ckring_multi, NULL},
	{"mutex", "one mutex + 2 condvars queue per consumer (capacity-1), shared by the P producers",
	 bench_mutex_multi, NULL},
};

const bench_scenario bench_scenario_multi = {
	"multi",
	"P publisher threads x T topics over E consumer threads (--publishers, --topics, --executors)",
	multi_systems,
	sizeof multi_systems / sizeof multi_systems[0],
	"ebus",
	0,
	plan_multi,
	"ev/s counts all events of all streams; order, count and checksum verified per (publisher, "
	"topic). zmq is left out of multi. --cpus does not apply.",
	0,
};

/* ---- pingpong ----------------------------------------------------------------- */

static int plan_pingpong(const bench_opts *o, bench_run *r)
{
	r->events = o->events_set ? o->events : o->quick ? PINGPONG_QUICK : PINGPONG_EVENTS;
	r->nsinks = 2; /* 0: the pings B saw, 1: the pongs A saw */
	r->nsubs = 1;
	return 0;
}

static const bench_system pingpong_systems[] = {
	{"ebus", "2 BUSY_SPIN executors, ping on executor 0 (its handler publishes pong), pong on "
	         "executor 1 (its handler is A: records the round trip, publishes the next ping); "
	         "2 threads",
	 bench_ebus_pingpong_busy, NULL},
	{"ebus-wait", "as ebus, executors with the --wait strategy (see the header)",
	 bench_ebus_pingpong_wait, NULL},
	{"ebus-3t", "as ebus, but A is a third thread: publishes ping, spins on an atomic the pong "
	            "handler sets; BUSY_SPIN (needs 3 CPUs: 3 spinning threads)",
	 bench_ebus_pingpong_3t, bench_ebus_pingpong_3t_skip},
	{"ebus-3t-w", "as ebus-3t, executors with the --wait strategy", bench_ebus_pingpong_3t_wait,
	 NULL},
	{"ck_ring", "two raw ck SPSC rings, A->B and B->A; both threads spin; 2 threads",
	 bench_ckring_pingpong, NULL},
	{"mutex", "two one-slot mailboxes, each a mutex + condvar; 2 threads", bench_mutex_pingpong,
	 NULL},
};

const bench_scenario bench_scenario_pingpong = {
	"pingpong",
	"round trip: thread A publishes ping, B's handler publishes pong, A waits for it",
	pingpong_systems,
	sizeof pingpong_systems / sizeof pingpong_systems[0],
	"ck_ring",
	1,
	plan_pingpong,
	"one round trip in flight; a sample is A's publish of ping to A seeing the pong; --events "
	"is round trips (default 100000, --quick 10000).",
	0,
};

/* ---- latency ------------------------------------------------------------------ */

static int plan_latency(const bench_opts *o, bench_run *r)
{
	if (need_ext_payload(o, "latency"))
		return -1;
	if (o->rate == 0 || o->rate > 1000000000ull) {
		fprintf(stderr, "ebus-bench: --rate wants 1..10^9 events per second\n");
		return -1;
	}
	r->period_ns = 1000000000ull / o->rate;
	r->events = o->events_set ? o->events : o->quick ? o->rate / 4 : o->rate;
	if (r->events == 0)
		r->events = 1;
	r->nsinks = 1;
	r->nsubs = 1;
	r->latency = 1;
	return 0;
}

static const bench_system latency_systems[] = {
	{"ebus", "async bus, 1 executor with the --wait strategy, 1 topic, 1 subscriber; ebus_publish",
	 bench_ebus_throughput, NULL},
	{"ck_ring", "raw ck SPSC ring as in throughput; the consumer spins", bench_ckring_throughput, NULL},
	{"mutex", "mutex + 2 condvars queue as in throughput; the consumer sleeps on the condvar",
	 bench_mutex_throughput, NULL},
};

const bench_scenario bench_scenario_latency = {
	"latency",
	"1 publisher at a fixed rate (--rate) -> 1 topic -> 1 subscriber; publish-to-callback latency",
	latency_systems,
	sizeof latency_systems / sizeof latency_systems[0],
	"ck_ring",
	1,
	plan_latency,
	"a sample is the payload's CLOCK_MONOTONIC stamp (taken just before the publish call) to the "
	"handler's clock read; the schedule is fixed, so a late publisher does not hide queueing.",
	0,
};

/* ---- by-name ------------------------------------------------------------------ */

static int plan_by_name(const bench_opts *o, bench_run *r)
{
	r->events = o->events;
	r->nsinks = 1;
	r->nsubs = 1;
	r->by_name = 1;
	return 0;
}

static const bench_system by_name_systems[] = {
	{"ebus", "async bus, 1 executor, 1 topic, 1 subscriber; ebus_publish_name (lookup per event)",
	 bench_ebus_throughput, NULL},
	{"ck_ring", "raw ck SPSC ring as in throughput (no names)", bench_ckring_throughput, NULL},
	{"mutex", "mutex + 2 condvars queue as in throughput (no names)", bench_mutex_throughput, NULL},
#ifdef EBUS_BENCH_HAVE_ZMQ
	{"zmq", "ZeroMQ inproc XPUB -> SUB as in throughput (empty subscription, no topic frame)",
	 bench_zmq_throughput, NULL},
#endif
};

const bench_scenario bench_scenario_by_name = {
	"by-name",
	"as throughput, but ebus publishes by topic name (ebus_publish_name)",
	by_name_systems,
	sizeof by_name_systems / sizeof by_name_systems[0],
	"ebus",
	0,
	plan_by_name,
	"the references have no topic names: they run exactly as in throughput; the gap to "
	"throughput's ratios is the cost of the name lookup.",
	0,
};

/* ---- idle --------------------------------------------------------------------- */

#define IDLE_SAMPLES 500ull
#define IDLE_SAMPLES_QUICK 100ull

static int plan_idle(const bench_opts *o, bench_run *r)
{
	if (need_ext_payload(o, "idle"))
		return -1;
	r->events = o->events_set ? o->events : o->quick ? IDLE_SAMPLES_QUICK : IDLE_SAMPLES;
	r->nsinks = 1;
	r->nsubs = 1;
	r->latency = 1;
	return 0;
}

static const bench_system idle_systems[] = {
	{"ebus", "async bus, 1 executor with the --wait strategy (default: spin, yield, park on a "
	         "futex), 1 topic, 1 subscriber; ebus_publish",
	 bench_ebus_idle, NULL},
	{"ebus-busy", "as ebus with EBUS_WAIT_BUSY_SPIN: never parks (contrast, not a target)",
	 bench_ebus_idle_busy, NULL},
	{"ck_futex", "raw ck SPSC ring; the consumer spins 256 polls, then parks on a futex; the "
	             "producer wakes it after its commit",
	 bench_ckfutex_idle, NULL},
};

const bench_scenario bench_scenario_idle = {
	"idle",
	"an idle consumer: CPU over an idle window, then publish-to-callback latency of waking it",
	idle_systems,
	sizeof idle_systems / sizeof idle_systems[0],
	"ck_futex",
	1,
	plan_idle,
	"idle CPU: getrusage(RUSAGE_SELF) user+system over --idle-ms while the main thread sleeps, "
	"% of one core; a wake sample: the consumer has parked (and settled 0.2 ms), the payload is "
	"stamped, published, and the handler reads the clock. --events is wake samples (default "
	"500, --quick 100).",
	1,
};
