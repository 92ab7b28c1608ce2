/* Linux implementation of platform.h. */
#include "platform.h"

#include "ebus/ebus.h"

#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

bool ebus_have_membarrier;
static pthread_once_t platform_once = PTHREAD_ONCE_INIT;

static void platform_init_once(void)
{
	long q = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	    syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
		ebus_have_membarrier = true;
}

void ebus_platform_init(void)
{
	pthread_once(&platform_once, platform_init_once);
}

void ebus_fence_heavy(void)
{
	ck_pr_fence_memory();
	if (ebus_have_membarrier)
		(void)syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	ck_pr_fence_memory();
}

void ebus_futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
	struct timespec ts, *tp = NULL;
	if (timeout_ns) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
		ts.tv_nsec = (long)(timeout_ns % 1000000000u);
		tp = &ts;
	}
	/* EAGAIN (value changed), EINTR and ETIMEDOUT all mean "re-check". */
	(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, tp, NULL, 0);
}

void ebus_futex_wake(_Atomic uint32_t *word, int count)
{
	(void)syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}

uint64_t ebus_clock_ns(void)
{
	return ebus_now_ns();
}

uint64_t ebus_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int ebus_cpu_check(int cpu)
{
	cpu_set_t set;
	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return EBUS_ERR_CPU;
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return EBUS_ERR_CPU;
	return CPU_ISSET(cpu, &set) ? EBUS_OK : EBUS_ERR_CPU;
}

int ebus_pin_self(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void ebus_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}
