/*
 * 5. Waking a parked executor: publish-to-handler latency.
 *
 * A bus with EBUS_WAIT_SPIN_PARK and spin_iterations = 16, one subscriber
 * that sets an atomic flag. Each iteration, outside the timed region: wait
 * until the executor has parked again (ebus_stats parks went up since the
 * last publish) and its thread is asleep in the kernel (state 'S' in
 * /proc/self/task/<tid>/stat; the handler records its tid). Timed (manual
 * time, steady_clock): one ebus_publish, then spin until the handler has
 * set the flag. That is the publish call including its futex wake, the
 * kernel's wake-up of the executor thread, and the dispatch.
 *
 * Compared with: BM_ref_condvar_wake, the same measurement for a thread
 * sleeping in pthread_cond_wait: wait until it is asleep (state 'S'), then
 * timed: lock, set the predicate, unlock, pthread_cond_signal, and spin
 * until the woken thread has set an atomic flag.
 *
 * Both run a fixed 2000 iterations: each one includes an untimed park
 * (tens of microseconds of spinning, yielding and polling).
 */
#include "common.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <thread>

namespace {

constexpr int kWakeIters = 2000;

pid_t my_tid()
{
	return static_cast<pid_t>(syscall(SYS_gettid));
}

/* The state letter of a thread of this process ('R', 'S', ...), or 0. */
char thread_state(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')'); /* the comm field may hold spaces */
	return p && p[1] == ' ' ? p[2] : 0;
}

/* Polls (untimed) until pred() holds; false after ~2 s. */
template <class F> bool wait_for(F pred)
{
	for (long i = 0; i < 2000000; i++) {
		if (pred())
			return true;
		if (i > 1000)
			std::this_thread::sleep_for(std::chrono::microseconds(1));
		else
			std::this_thread::yield();
	}
	return false;
}

inline void cpu_relax()
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

struct WakeCtx {
	std::atomic<int> flag{0};
	std::atomic<pid_t> tid{0};
};

int wake_handler(const ebus_event_t *, void *arg)
{
	auto *w = static_cast<WakeCtx *>(arg);
	if (w->tid.load(std::memory_order_relaxed) == 0)
		w->tid.store(my_tid(), std::memory_order_relaxed);
	w->flag.store(1, std::memory_order_release);
	return 0;
}

void BM_ebus_wake_parked(benchmark::State &state)
{
	WakeCtx w;
	ebus_config_t cfg = {};
	cfg.executors = 1;
	cfg.wait = EBUS_WAIT_SPIN_PARK;
	cfg.spin_iterations = 16;
	ebus_t *bus = nullptr;
	ebus_topic_t *topic = nullptr;
	ebus_sub_id id;
	unsigned char payload[32] = {0};
	if (!gb::ok(state, ebus_create(&cfg, &bus), "ebus_create"))
		return;
	if (!gb::ok(state, ebus_topic(bus, "bench.wake", &topic), "ebus_topic") ||
	    !gb::ok(state, ebus_subscribe(topic, wake_handler, &w, &id), "ebus_subscribe"))
		return ebus_destroy(bus);
	/* Warm-up: creates the lane and learns the executor's tid. */
	uint64_t last = gb::stat_parks(bus);
	if (!gb::ok(state, ebus_publish(topic, payload, sizeof payload), "warm-up publish"))
		return ebus_destroy(bus);
	while (!w.flag.load(std::memory_order_acquire))
		cpu_relax();
	w.flag.store(0, std::memory_order_relaxed);
	const pid_t tid = w.tid.load();
	const uint64_t wakeups0 = gb::stats(bus).wakeups;

	for (auto _ : state) {
		if (!wait_for([&] { return gb::stat_parks(bus) > last; }) ||
		    !wait_for([&] { return thread_state(tid) == 'S'; })) {
			state.SkipWithError("the executor did not park");
			break;
		}
		last = gb::stat_parks(bus);
		auto t0 = gb::Clock::now();
		int rc = ebus_publish(topic, payload, sizeof payload);
		while (rc == EBUS_OK && !w.flag.load(std::memory_order_acquire))
			cpu_relax();
		auto t1 = gb::Clock::now();
		if (!gb::ok(state, rc, "ebus_publish"))
			break;
		w.flag.store(0, std::memory_order_relaxed);
		state.SetIterationTime(gb::seconds_between(t0, t1));
	}
	/* Should be 1.0: every timed publish found the executor asleep. */
	state.counters["futex_wakes"] = benchmark::Counter(
		static_cast<double>(gb::stats(bus).wakeups - wakeups0), benchmark::Counter::kAvgIterations);
	ebus_destroy(bus);
}
BENCHMARK(BM_ebus_wake_parked)->UseManualTime()->Iterations(kWakeIters)->Unit(benchmark::kMicrosecond);

struct CvWaiter {
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	bool go = false, stop = false; /* under m */
	std::atomic<int> done{0};
	std::atomic<pid_t> tid{0};

	static void *main(void *arg)
	{
		auto *w = static_cast<CvWaiter *>(arg);
		w->tid.store(my_tid());
		pthread_mutex_lock(&w->m);
		for (;;) {
			while (!w->go && !w->stop)
				pthread_cond_wait(&w->c, &w->m);
			if (w->stop)
				break;
			w->go = false;
			w->done.store(1, std::memory_order_release);
		}
		pthread_mutex_unlock(&w->m);
		return nullptr;
	}
};

void BM_ref_condvar_wake(benchmark::State &state)
{
	CvWaiter w;
	pthread_t th;
	if (pthread_create(&th, nullptr, CvWaiter::main, &w) != 0) {
		state.SkipWithError("pthread_create failed");
		return;
	}
	while (w.tid.load() == 0)
		std::this_thread::yield();
	const pid_t tid = w.tid.load();

	for (auto _ : state) {
		if (!wait_for([&] { return thread_state(tid) == 'S'; })) {
			state.SkipWithError("the waiter did not sleep");
			break;
		}
		auto t0 = gb::Clock::now();
		pthread_mutex_lock(&w.m);
		w.go = true;
		pthread_mutex_unlock(&w.m);
		pthread_cond_signal(&w.c);
		while (!w.done.load(std::memory_order_acquire))
			cpu_relax();
		auto t1 = gb::Clock::now();
		w.done.store(0, std::memory_order_relaxed);
		state.SetIterationTime(gb::seconds_between(t0, t1));
	}
	pthread_mutex_lock(&w.m);
	w.stop = true;
	pthread_mutex_unlock(&w.m);
	pthread_cond_signal(&w.c);
	pthread_join(th, nullptr);
}
BENCHMARK(BM_ref_condvar_wake)->UseManualTime()->Iterations(kWakeIters)->Unit(benchmark::kMicrosecond);

} // namespace
