/*
 * Lanes: one single-producer ck_ring per (publishing thread, executor).
 *
 * A thread's first publish to a bus creates its `struct producer` (kept in
 * thread-local storage); its first publish to an executor creates the lane
 * and announces it on the executor's ck_stack (push_upmc, batch-popped by
 * the executor: ABA-free). When the thread exits, a pthread key destructor
 * marks its lanes closed; the executor frees a lane once it is closed and
 * empty. The producer struct belongs to the thread, not to the bus, because
 * a thread may outlive a bus: the destructor reaches a bus only through the
 * global registry of live buses, under its lock, so it never touches a
 * destroyed one.
 */
#include "internal.h"

#include <stdlib.h>

_Thread_local struct ebus_exec *ebus_tls_exec;
_Thread_local unsigned ebus_tls_sync_depth;
_Thread_local struct producer *ebus_tls_last __attribute__((tls_model("initial-exec")));

/* ---- registry of live buses ------------------------------------------------ */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ebus *reg_head; /* live buses, linked through ebus->reg_next */
static uint64_t reg_next_id = 1;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static struct ebus *reg_find(uint64_t id)
{
	for (struct ebus *b = reg_head; b; b = b->reg_next)
		if (b->id == id)
			return b;
	return NULL;
}

/* Ids are never reused, so a stale thread-local entry can never match. */
void ebus_registry_add_bus(struct ebus *bus)
{
	pthread_mutex_lock(&reg_lock);
	bus->id = reg_next_id++;
	bus->tag = (uint32_t)(bus->id & 0xfff);
	if (bus->tag == 0)
		bus->tag = 0xfff;
	bus->reg_next = reg_head;
	reg_head = bus;
	pthread_mutex_unlock(&reg_lock);
}

void ebus_registry_remove_bus(struct ebus *bus)
{
	pthread_mutex_lock(&reg_lock);
	for (struct ebus **pp = &reg_head; *pp; pp = &(*pp)->reg_next) {
		if (*pp == bus) {
			*pp = bus->reg_next;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
}

/* ---- thread exit ---------------------------------------------------------- */

static void thread_exit(void *arg)
{
	struct producer *p = arg, *next;

	pthread_mutex_lock(&reg_lock);
	for (; p; p = next) {
		struct ebus *bus = reg_find(p->bus_id);
		next = p->tls_next;
		if (bus) {
			pthread_mutex_lock(&bus->lanes_lock);
			cds_list_del(&p->bus_node);
			for (unsigned i = 0; i < bus->nexec; i++) {
				struct lane *l = p->lanes[i];
				struct ebus_exec *ex;
				if (!l)
					continue;
				ex = bus->exec[i];
				atomic_fetch_add_explicit(&ex->closed_pending, 1, memory_order_relaxed);
				/* release: every commit of this thread precedes it */
				atomic_store_explicit(&l->closed, 1, memory_order_seq_cst);
				ebus_exec_wake(ex);
			}
			pthread_mutex_unlock(&bus->lanes_lock);
		}
		free(p);
	}
	pthread_mutex_unlock(&reg_lock);
	ebus_tls_last = NULL;
}

static void tls_key_init(void)
{
	(void)pthread_key_create(&tls_key, thread_exit);
}

/* ---- producers ------------------------------------------------------------ */

/* Frees the entries after `head` whose bus no longer exists (their ids
 * never return). `head` itself is the caller's new, live record. */
static void prune_dead(struct producer *head)
{
	struct producer **pp = &head->tls_next, *p;
	pthread_mutex_lock(&reg_lock);
	while ((p = *pp)) {
		if (!reg_find(p->bus_id)) {
			*pp = p->tls_next;
			if (ebus_tls_last == p)
				ebus_tls_last = NULL;
			free(p);
		} else {
			pp = &p->tls_next;
		}
	}
	pthread_mutex_unlock(&reg_lock);
}

/*
 * First publish of this thread to this bus (slow path). Nothing changes
 * until the new record is both allocated and installed as the head of the
 * thread's list: a failed calloc or pthread_setspecific returns NULL
 * (EBUS_ERR_NOMEM) with the list, the key and ebus_tls_last as they were.
 * Only then are records of destroyed buses freed.
 */
struct producer *ebus_producer_get_slow(struct ebus *bus)
{
	struct producer *head, *p;

	pthread_once(&tls_once, tls_key_init);
	head = pthread_getspecific(tls_key);
	for (p = head; p; p = p->tls_next) {
		if (p->bus_id == bus->id) {
			ebus_tls_last = p;
			return p;
		}
	}
	p = EBUS_TEST_FAIL(EBUS_TP_FAIL_PRODUCER_ALLOC)
	        ? NULL
	        : calloc(1, sizeof *p + bus->nexec * sizeof p->lanes[0]);
	if (!p)
		return NULL;
	p->bus_id = bus->id;
	atomic_init(&p->busy, 0);
	p->tls_next = head;
	if (EBUS_TEST_FAIL(EBUS_TP_FAIL_SETSPECIFIC) || pthread_setspecific(tls_key, p) != 0) {
		free(p);
		return NULL;
	}
	pthread_mutex_lock(&bus->lanes_lock);
	cds_list_add(&p->bus_node, &bus->producers);
	pthread_mutex_unlock(&bus->lanes_lock);
	prune_dead(p);
	ebus_tls_last = p;
	return p;
}

/* ---- lanes ------------------------------------------------------------------ */

struct lane *ebus_lane_create(struct ebus *bus, struct producer *p, unsigned exec)
{
	struct ebus_exec *ex = bus->exec[exec];
	struct lane *l = ebus_zalloc(bus, sizeof *l, _Alignof(struct lane));
	if (!l)
		return NULL;
	l->buf = ebus_alloc(bus, (size_t)bus->lane_capacity * sizeof(struct ebus_slot), EBUS_CL);
	if (!l->buf) {
		ebus_free(bus, l, sizeof *l);
		return NULL;
	}
	ck_ring_init(&l->ring, bus->lane_capacity);
	l->exec = exec;
	l->ex = ex;
	atomic_init(&l->closed, 0);
	pthread_mutex_lock(&bus->lanes_lock);
	l->id = ++bus->lane_ids;
	cds_list_add(&l->bus_node, &bus->lanes); /* newest first: ids decrease */
	ex->lanes_created++;
	pthread_mutex_unlock(&bus->lanes_lock);
	p->lanes[exec] = l;
	EBUS_TSAN_RELEASE(&ex->incoming); /* ck_stack's CAS is asm */
	ck_stack_push_upmc(&ex->incoming, &l->link);
	/* The push is a locked instruction (a full barrier) before the check. */
	ebus_exec_wake(ex);
	return l;
}

/* Executor (reclaim) or destroy. Caller holds lanes_lock, or is alone. */
void ebus_lane_free(struct ebus *bus, struct lane *l)
{
	cds_list_del(&l->bus_node);
	ebus_free(bus, l->buf, (size_t)bus->lane_capacity * sizeof(struct ebus_slot));
	ebus_free(bus, l, sizeof *l);
}

