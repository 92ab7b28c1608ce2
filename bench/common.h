/*
 * Helpers shared by the ebus-gbench benchmark files.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef EBUS_GBENCH_COMMON_H
#define EBUS_GBENCH_COMMON_H

#include <ebus/ebus.h>

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <time.h>

namespace gb {

/* A counter with one writing thread (a handler's context): relaxed
 * load + store, no read-modify-write, like ebus's own statistics. */
struct Count {
	std::atomic<uint64_t> n{0};
	void bump() { n.store(n.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
	uint64_t get() const { return n.load(std::memory_order_relaxed); }
};

/* The subscriber that "does almost nothing": counts the call. */
inline int count_handler(const ebus_event_t *, void *ctx)
{
	static_cast<Count *>(ctx)->bump();
	return 0;
}

/* Skips the benchmark with ebus's message; returns false so callers can
 * write `if (!ok(state, rc, "what")) return;`. */
inline bool ok(benchmark::State &state, int rc, const char *what)
{
	if (rc == EBUS_OK)
		return true;
	std::string msg = std::string(what) + ": " + ebus_errname(rc) + " (" + ebus_strerror(rc) + ")";
	state.SkipWithError(msg.c_str());
	return false;
}

inline uint64_t stat_parks(ebus_t *bus)
{
	ebus_stats_t s;
	ebus_stats(bus, 0, &s);
	return s.parks;
}

inline ebus_stats_t stats(ebus_t *bus)
{
	ebus_stats_t s;
	ebus_stats(bus, -1, &s);
	return s;
}

using Clock = std::chrono::steady_clock;

/* CPU time of the calling thread: unlike wall time, it does not count the
 * time the thread was preempted (the machine may be shared). */
inline double thread_cpu_seconds()
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

inline double seconds_between(Clock::time_point a, Clock::time_point b)
{
	return std::chrono::duration<double>(b - a).count();
}

/* Per-item time as a counter: shown in seconds per item (ns in the table). */
inline benchmark::Counter per_item(double items)
{
	return benchmark::Counter(items, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

} // namespace gb

#endif
