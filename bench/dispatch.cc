/*
 * 2. Dispatch cost per subscriber on a synchronous bus.
 *
 * cfg.synchronous = 1: ebus_publish delivers inline on the benchmark
 * thread (stripe mutex, subscriber array, one call per subscriber). With
 * 1, 2, 4, 16 and 64 subscribers (each a distinct context, counting its
 * calls) the time per iteration is one publish of 32 bytes; the counter
 * "per_handler" is that time divided by the subscriber count.
 *
 * Compared with: BM_ref_direct_dispatch, the floor for the same work: lock
 * a pthread mutex, call the same handler through a function pointer for
 * each of N (handler, ctx) pairs in an array with an ebus_event_t on the
 * stack, unlock.
 */
#include "common.h"

#include <pthread.h>

#include <memory>
#include <vector>

namespace {

constexpr size_t kLen = 32;

void BM_ebus_dispatch_sync(benchmark::State &state)
{
	const int nsubs = static_cast<int>(state.range(0));
	unsigned char payload[kLen] = {0};
	std::unique_ptr<gb::Count[]> counts(new gb::Count[nsubs]);
	ebus_config_t cfg = {};
	cfg.synchronous = 1;
	ebus_t *bus = nullptr;
	ebus_topic_t *topic = nullptr;
	if (!gb::ok(state, ebus_create(&cfg, &bus), "ebus_create"))
		return;
	if (!gb::ok(state, ebus_topic(bus, "bench.dispatch", &topic), "ebus_topic"))
		return ebus_destroy(bus);
	for (int i = 0; i < nsubs; i++) {
		ebus_sub_id id;
		if (!gb::ok(state, ebus_subscribe(topic, gb::count_handler, &counts[i], &id), "ebus_subscribe"))
			return ebus_destroy(bus);
	}
	/* Untimed warm-up: thread-local state, first-touch of the array. */
	if (!gb::ok(state, ebus_publish(topic, payload, kLen), "warm-up publish"))
		return ebus_destroy(bus);

	for (auto _ : state) {
		int rc = ebus_publish(topic, payload, kLen);
		if (__builtin_expect(rc != EBUS_OK, 0)) {
			gb::ok(state, rc, "ebus_publish");
			break;
		}
	}
	const double calls = static_cast<double>(state.iterations()) * nsubs;
	state.SetItemsProcessed(static_cast<int64_t>(calls)); /* handler calls per second */
	state.counters["per_handler"] = gb::per_item(calls);
	for (int i = 0; i < nsubs; i++)
		if (counts[i].get() != static_cast<uint64_t>(state.iterations()) + 1)
			state.SkipWithError("a subscriber missed events");
	ebus_destroy(bus);
}
BENCHMARK(BM_ebus_dispatch_sync)->ArgName("subs")->Arg(1)->Arg(2)->Arg(4)->Arg(16)->Arg(64);

struct Sub {
	ebus_handler_fn fn;
	void *ctx;
};

void BM_ref_direct_dispatch(benchmark::State &state)
{
	const int nsubs = static_cast<int>(state.range(0));
	unsigned char payload[kLen] = {0};
	std::unique_ptr<gb::Count[]> counts(new gb::Count[nsubs]);
	std::vector<Sub> subs;
	for (int i = 0; i < nsubs; i++)
		subs.push_back(Sub{gb::count_handler, &counts[i]});
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

	for (auto _ : state) {
		ebus_event_t ev{};
		ev.data = payload;
		ev.len = kLen;
		const Sub *s = subs.data();
		benchmark::DoNotOptimize(s); /* no devirtualisation of the calls */
		pthread_mutex_lock(&lock);
		for (int i = 0; i < nsubs; i++)
			(void)s[i].fn(&ev, s[i].ctx);
		pthread_mutex_unlock(&lock);
	}
	const double calls = static_cast<double>(state.iterations()) * nsubs;
	state.SetItemsProcessed(static_cast<int64_t>(calls));
	state.counters["per_handler"] = gb::per_item(calls);
	pthread_mutex_destroy(&lock);
}
BENCHMARK(BM_ref_direct_dispatch)->ArgName("subs")->Arg(1)->Arg(2)->Arg(4)->Arg(16)->Arg(64);

} // namespace
