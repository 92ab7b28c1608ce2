/*
 * Executor idle strategies and CPU pinning.
 *
 * - BUSY_SPIN, SPIN_YIELD, SPIN_PARK and DEFAULT (small spin_iterations):
 *   events published in bursts with idle gaps are all delivered in order.
 * - Lost wakeup (SPIN_PARK and DEFAULT): repeatedly wait until the executor
 *   has parked (its `parks` counter went up; a yield loop on an observable
 *   counter, bounded by a large iteration count), then publish one event and
 *   wait for its delivery. A wakeup lost in the park/publish race leaves the
 *   executor asleep and the round fails. Never sleep-based.
 * - cfg.cpus pins executors: the handler runs on the given CPU, with an
 *   affinity mask of exactly that CPU; -1 leaves an executor unpinned.
 *
 * Parameters:
 *   EBUS_STRESS_ROUNDS  2000 | 500000   park/publish rounds per strategy
 *   EBUS_STRESS_EVENTS  20000 | 1000000 events per strategy in the burst test
 */
#include "testutil.h"

#define POLL_LIMIT 50000000ull /* sched_yield polls before declaring a hang */

static uint64_t ROUNDS, NEVENTS;

typedef struct ws_sub {
	ebus_topic_t *topic;
	_Atomic uint64_t next;
	pthread_t thread;
	cpu_set_t mask;
	int cpu;
} ws_sub;

static int ws_handler(const ebus_event_t *ev, void *ctx)
{
	ws_sub *s = ctx;
	CHECK(ev->topic == s->topic);
	CHECK_EQ_U64(ev->len, 8);
	uint64_t v;
	memcpy(&v, ev->data, 8);
	uint64_t want = atomic_load_explicit(&s->next, memory_order_relaxed);
	CHECK_MSG(v == want, "seq %" PRIu64 ", want %" PRIu64, v, want);
	if (want == 0) {
		s->thread = pthread_self();
		CPU_ZERO(&s->mask);
		CHECK(pthread_getaffinity_np(pthread_self(), sizeof s->mask, &s->mask) == 0);
		s->cpu = sched_getcpu();
	}
	atomic_store(&s->next, want + 1);
	return 0;
}

static const char *wait_name(ebus_wait w)
{
	switch (w) {
	case EBUS_WAIT_DEFAULT:
		return "DEFAULT";
	case EBUS_WAIT_BUSY_SPIN:
		return "BUSY_SPIN";
	case EBUS_WAIT_SPIN_YIELD:
		return "SPIN_YIELD";
	case EBUS_WAIT_SPIN_PARK:
		return "SPIN_PARK";
	}
	return "?";
}

static ebus_t *make_bus(ebus_wait wait, unsigned executors, const int *cpus)
{
	ebus_config_t cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.executors = executors;
	cfg.wait = wait;
	cfg.spin_iterations = 16;
	cfg.cpus = cpus;
	ebus_t *bus = NULL;
	CHECK_OK(ebus_create(&cfg, &bus));
	return bus;
}

/* Bursts with idle gaps (flush between bursts lets the executors go idle). */
static void bursts(ebus_wait wait)
{
	/* a busy-spinning executor burns a core: one is enough on a small machine */
	const unsigned nexec = wait == EBUS_WAIT_BUSY_SPIN ? 1 : 2;
	ebus_t *bus = make_bus(wait, nexec, NULL);
	static ws_sub subs[2];
	for (unsigned e = 0; e < nexec; e++) {
		char name[32];
		snprintf(name, sizeof name, "wait.burst.%u", e);
		memset(&subs[e], 0, sizeof subs[e]);
		CHECK_OK(ebus_topic_on(bus, name, e, &subs[e].topic));
		ebus_sub_id id;
		CHECK_OK(ebus_subscribe(subs[e].topic, ws_handler, &subs[e], &id));
	}
	uint64_t seq[2] = {0, 0};
	uint64_t burst = 1;
	for (uint64_t n = 0; n < NEVENTS;) {
		for (uint64_t i = 0; i < burst && n < NEVENTS; i++, n++) {
			unsigned e = (unsigned)(n % nexec);
			CHECK_OK(ebus_publish(subs[e].topic, &seq[e], 8));
			seq[e]++;
		}
		CHECK_OK(ebus_flush(bus, 0));
		for (unsigned e = 0; e < nexec; e++)
			CHECK_EQ_U64(atomic_load(&subs[e].next), seq[e]);
		burst = burst >= 4096 ? 1 : burst * 2;
	}
	ebus_stats_t st = tu_stats(bus);
	printf("   %s: %" PRIu64 " events, %" PRIu64 " parks, %" PRIu64 " wakeups\n", wait_name(wait), NEVENTS,
	       st.parks, st.wakeups);
	CHECK_EQ_U64(st.delivered, NEVENTS);
	CHECK_STATS_BALANCED(st);
	if (wait == EBUS_WAIT_BUSY_SPIN || wait == EBUS_WAIT_SPIN_YIELD)
		CHECK_MSG(st.parks == 0, "%s never sleeps, but parks = %" PRIu64, wait_name(wait), st.parks);
	ebus_destroy(bus);
}

static void test_bursts_busy_spin(void)
{
	bursts(EBUS_WAIT_BUSY_SPIN);
}
static void test_bursts_spin_yield(void)
{
	bursts(EBUS_WAIT_SPIN_YIELD);
}
static void test_bursts_spin_park(void)
{
	bursts(EBUS_WAIT_SPIN_PARK);
}
static void test_bursts_default(void)
{
	bursts(EBUS_WAIT_DEFAULT);
}

static uint64_t parks_of(ebus_t *bus)
{
	ebus_stats_t st;
	CHECK_OK(ebus_stats(bus, 0, &st));
	return st.parks;
}

static void lost_wakeup(ebus_wait wait)
{
	ebus_t *bus = make_bus(wait, 1, NULL);
	static ws_sub sub;
	memset(&sub, 0, sizeof sub);
	CHECK_OK(ebus_topic(bus, "wait.park", &sub.topic));
	ebus_sub_id id;
	CHECK_OK(ebus_subscribe(sub.topic, ws_handler, &sub, &id));
	/* The baseline of round i is the count seen before event i - 1 was
	 * published (the executor then parked, was woken, delivered, and must
	 * park again). Round 0 starts from 0, not from a fresh read: the idle
	 * executor may already be parked for good by then. */
	uint64_t parks = 0;
	for (uint64_t i = 0; i < ROUNDS; i++) {
		/* wait for the executor to park (again) */
		uint64_t polls = 0, now;
		while ((now = parks_of(bus)) <= parks) {
			CHECK_MSG(++polls < POLL_LIMIT, "round %" PRIu64 ": the idle executor never parked (%s)", i,
			          wait_name(wait));
			sched_yield();
		}
		parks = now;
		/* publish into the park race and wait for delivery (no flush: it could
		 * wake the executor itself and hide a lost wakeup) */
		CHECK_OK(ebus_publish(sub.topic, &i, 8));
		polls = 0;
		while (atomic_load(&sub.next) != i + 1) {
			CHECK_MSG(++polls < POLL_LIMIT, "round %" PRIu64 ": event not delivered: lost wakeup (%s)", i,
			          wait_name(wait));
			sched_yield();
		}
	}
	ebus_stats_t st = tu_stats(bus);
	printf("   %s: %" PRIu64 " rounds, %" PRIu64 " parks, %" PRIu64 " wakeups\n", wait_name(wait), ROUNDS,
	       st.parks, st.wakeups);
	CHECK(st.parks >= ROUNDS);
	/* at least some publishes found the executor asleep and woke it */
	CHECK_MSG(st.wakeups > 0, "%" PRIu64 " parks but no wakeup sent", st.parks);
	CHECK_EQ_U64(st.delivered, ROUNDS);
	ebus_destroy(bus);
}

static void test_lost_wakeup_spin_park(void)
{
	lost_wakeup(EBUS_WAIT_SPIN_PARK);
}

static void test_lost_wakeup_default(void)
{
	lost_wakeup(EBUS_WAIT_DEFAULT);
}

static void test_cpu_pinning(void)
{
	const int cpu = tu_first_allowed_cpu();
	CHECK(cpu >= 0);
	printf("   pinning to CPU %d\n", cpu);
	cpu_set_t main_mask;
	CPU_ZERO(&main_mask);
	CHECK(pthread_getaffinity_np(pthread_self(), sizeof main_mask, &main_mask) == 0);

	/* one executor, pinned */
	const int one[1] = {cpu};
	ebus_t *bus = make_bus(EBUS_WAIT_DEFAULT, 1, one);
	static ws_sub s;
	memset(&s, 0, sizeof s);
	CHECK_OK(ebus_topic(bus, "wait.pinned", &s.topic));
	ebus_sub_id id;
	CHECK_OK(ebus_subscribe(s.topic, ws_handler, &s, &id));
	for (uint64_t i = 0; i < 100; i++)
		CHECK_OK(ebus_publish(s.topic, &i, 8));
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(atomic_load(&s.next), 100);
	CHECK_MSG(CPU_COUNT(&s.mask) == 1 && CPU_ISSET(cpu, &s.mask), "executor affinity: %d CPUs", CPU_COUNT(&s.mask));
	CHECK_EQ_INT(s.cpu, cpu);
	ebus_destroy(bus);

	/* two executors: -1 leaves executor 0 alone, executor 1 pinned */
	const int two[2] = {-1, cpu};
	bus = make_bus(EBUS_WAIT_SPIN_PARK, 2, two);
	static ws_sub t[2];
	for (unsigned e = 0; e < 2; e++) {
		char name[32];
		snprintf(name, sizeof name, "wait.pin.%u", e);
		memset(&t[e], 0, sizeof t[e]);
		CHECK_OK(ebus_topic_on(bus, name, e, &t[e].topic));
		CHECK_OK(ebus_subscribe(t[e].topic, ws_handler, &t[e], &id));
		uint64_t v = 0;
		CHECK_OK(ebus_publish(t[e].topic, &v, 8));
	}
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_U64(atomic_load(&t[0].next), 1);
	CHECK_EQ_U64(atomic_load(&t[1].next), 1);
	CHECK_MSG(CPU_EQUAL(&t[0].mask, &main_mask), "unpinned executor (-1) has a changed affinity mask");
	CHECK(CPU_COUNT(&t[1].mask) == 1 && CPU_ISSET(cpu, &t[1].mask));
	CHECK_EQ_INT(t[1].cpu, cpu);
	ebus_destroy(bus);
}

int main(void)
{
	ROUNDS = tu_param("EBUS_STRESS_ROUNDS", 2000, 500000);
	NEVENTS = tu_param("EBUS_STRESS_EVENTS", 20000, 1000000);
	/* lost wakeups first: they fail with a message, where a flush that waits
	 * on a sleeping executor would only hang */
	TU_RUN(test_lost_wakeup_spin_park);
	TU_RUN(test_lost_wakeup_default);
	TU_RUN(test_bursts_busy_spin);
	TU_RUN(test_bursts_spin_yield);
	TU_RUN(test_bursts_spin_park);
	TU_RUN(test_bursts_default);
	TU_RUN(test_cpu_pinning);
	return tu_finish("test_wait_strategies");
}
