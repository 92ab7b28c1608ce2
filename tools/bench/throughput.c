/*
 * Scenario "throughput": 1 publisher thread -> 1 topic -> 1 subscriber on
 * 1 consumer thread (an ebus executor, or the reference's consumer), the
 * same payload and handler everywhere; events per second from the first
 * publish to the last delivery.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

static const bench_system systems[] = {
	{"ebus", "async bus, 1 executor, 1 topic, 1 subscriber; ebus_publish (BLOCK), then ebus_flush",
	 bench_ebus_throughput, NULL},
	{"ck_ring", "raw ck SPSC ring of 64-byte slots: reserve/commit, batched in-place dequeue, spinning",
	 bench_ckring_throughput, NULL},
	{"mutex", "mutex + 2 condvars bounded queue (capacity-1), lock per event on both sides",
	 bench_mutex_throughput, NULL},
#ifdef EBUS_BENCH_HAVE_ZMQ
	{"zmq", "ZeroMQ inproc XPUB(NODROP, blocks at HWM) -> SUB, HWMs sum to capacity, 0 I/O threads",
	 bench_zmq_throughput, NULL},
#endif
};

const bench_scenario bench_scenario_throughput = {
	"throughput",
	"1 publisher thread -> 1 topic -> 1 subscriber on 1 consumer thread",
	systems,
	sizeof systems / sizeof systems[0],
	"ebus",
	0,
	NULL,
	NULL,
	0,
};
