/*
 * 3. Subscribe / unsubscribe cost as the subscriber count grows.
 *
 * An asynchronous bus (1 executor, EBUS_WAIT_SPIN_PARK) whose executor is
 * idle and parked (checked before the loop); a topic with N existing
 * subscribers (N = 1, 16, 256, 4096). One iteration is one ebus_subscribe
 * plus one ebus_unsubscribe of an extra subscriber. Both copy the topic's
 * subscriber array (O(N)), and ebus_unsubscribe then waits one urcu-qsbr
 * grace period (urcu_qsbr_synchronize_rcu) before it returns, so that its
 * caller may free ctx; with the executor parked (offline for QSBR) that
 * grace period does not wait for the executor, but it is still a
 * synchronize_rcu call. The counters sub_ns and unsub_ns split the pair
 * (each measured with steady_clock inside the loop, so they include a
 * clock read each).
 *
 * BM_ebus_unsubscribe_ctx/subs:N: N subscriptions of one context on N
 * topics (untimed), then one ebus_unsubscribe_ctx removes them all (timed):
 * one grace period for all of them, against N for N ebus_unsubscribe calls
 * (per_sub_ns: the time per removed subscription).
 *
 * Compared with: BM_ref_rcu_grace_period, one bare
 * urcu_qsbr_synchronize_rcu() from the same (unregistered) thread with the
 * same parked bus alive: the floor of the unsubscribe wait.
 */
#include "common.h"
#include "refs.h"

#include <cstdio>
#include <memory>
#include <thread>

namespace {

struct ParkedBus {
	ebus_t *bus = nullptr;
	ebus_topic_t *topic = nullptr;

	bool open(benchmark::State &state)
	{
		ebus_config_t cfg = {};
		cfg.executors = 1;
		cfg.wait = EBUS_WAIT_SPIN_PARK;
		return gb::ok(state, ebus_create(&cfg, &bus), "ebus_create") &&
		       gb::ok(state, ebus_topic(bus, "bench.subscribe", &topic), "ebus_topic");
	}

	/* Waits (untimed) until the executor has parked at least once since
	 * its last activity. Nothing publishes, so it stays parked. */
	bool wait_parked(benchmark::State &state)
	{
		for (int i = 0; i < 10000; i++) {
			if (gb::stat_parks(bus) > 0)
				return true;
			std::this_thread::sleep_for(std::chrono::microseconds(100));
		}
		state.SkipWithError("the executor never parked");
		return false;
	}

	~ParkedBus() { ebus_destroy(bus); }
};

void BM_ebus_subscribe_unsubscribe(benchmark::State &state)
{
	const int n = static_cast<int>(state.range(0));
	std::unique_ptr<gb::Count[]> existing(new gb::Count[n]);
	gb::Count extra;
	ParkedBus b;
	if (!b.open(state))
		return;
	for (int i = 0; i < n; i++) {
		ebus_sub_id id;
		if (!gb::ok(state, ebus_subscribe(b.topic, gb::count_handler, &existing[i], &id), "ebus_subscribe"))
			return;
	}
	if (!b.wait_parked(state))
		return;
	const uint64_t parks0 = gb::stat_parks(b.bus);
	double sub_s = 0, unsub_s = 0;

	for (auto _ : state) {
		ebus_sub_id id;
		auto t0 = gb::Clock::now();
		int rc = ebus_subscribe(b.topic, gb::count_handler, &extra, &id);
		auto t1 = gb::Clock::now();
		if (rc == EBUS_OK)
			rc = ebus_unsubscribe(b.bus, id);
		auto t2 = gb::Clock::now();
		if (__builtin_expect(rc != EBUS_OK, 0)) {
			gb::ok(state, rc, "ebus_subscribe/ebus_unsubscribe");
			break;
		}
		sub_s += gb::seconds_between(t0, t1);
		unsub_s += gb::seconds_between(t1, t2);
	}
	const double it = static_cast<double>(state.iterations());
	state.counters["sub_ns"] = it ? sub_s * 1e9 / it : 0;
	state.counters["unsub_ns"] = it ? unsub_s * 1e9 / it : 0;
	/* Should stay 0: the executor stayed parked (nothing woke it). */
	state.counters["exec_reparks"] = static_cast<double>(gb::stat_parks(b.bus) - parks0);
}
BENCHMARK(BM_ebus_subscribe_unsubscribe)->ArgName("existing")->Arg(1)->Arg(16)->Arg(256)->Arg(4096)
	->Unit(benchmark::kMicrosecond);

void BM_ebus_unsubscribe_ctx(benchmark::State &state)
{
	const int n = static_cast<int>(state.range(0));
	gb::Count ctx;
	ParkedBus b;
	std::unique_ptr<ebus_topic_t *[]> topics(new ebus_topic_t *[n]);
	if (!b.open(state))
		return;
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof name, "bench.ctx.%d", i);
		if (!gb::ok(state, ebus_topic(b.bus, name, &topics[i]), "ebus_topic"))
			return;
	}
	if (!b.wait_parked(state))
		return;
	for (auto _ : state) {
		state.PauseTiming();
		for (int i = 0; i < n; i++) {
			ebus_sub_id id;
			if (!gb::ok(state, ebus_subscribe(topics[i], gb::count_handler, &ctx, &id), "ebus_subscribe"))
				return;
		}
		state.ResumeTiming();
		size_t removed = 0;
		int rc = ebus_unsubscribe_ctx(b.bus, &ctx, &removed);
		if (__builtin_expect(rc != EBUS_OK || removed != static_cast<size_t>(n), 0)) {
			state.SkipWithError("ebus_unsubscribe_ctx did not remove every subscription");
			break;
		}
	}
	state.counters["per_sub_ns"] = benchmark::Counter(
		static_cast<double>(state.iterations()) * n,
		benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ebus_unsubscribe_ctx)->ArgName("subs")->Arg(1)->Arg(16)->Arg(256)
	->Unit(benchmark::kMicrosecond);

void BM_ref_rcu_grace_period(benchmark::State &state)
{
	ParkedBus b;
	if (!b.open(state) || !b.wait_parked(state))
		return;
	for (auto _ : state)
		ref_rcu_grace_period();
}
BENCHMARK(BM_ref_rcu_grace_period)->Unit(benchmark::kMicrosecond);

} // namespace
