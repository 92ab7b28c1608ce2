/*
 * Producers (bus layer, beside bus.c): each publishing thread's record per
 * bus, its lanes, the registry of live buses, and thread exit.
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
#include "bus.h"

#include <stdlib.h>
#include <string.h>

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

static void producer_free(struct producer *p)
{
	free(p->seq);
	free(p);
}

static void thread_exit(void *arg)
{
	struct producer *p = arg, *next;

	pthread_mutex_lock(&reg_lock);
	for (; p; p = next) {
		struct ebus *bus = reg_find(p->bus_id);
		next = p->tls_next;
		if (bus) {
			if (p->claim_lane)
				ebus_claim_drop(bus, p); /* an open claim is aborted */
			pthread_mutex_lock(&bus->producers_lock);
			cds_list_del(&p->bus_node);
			pthread_mutex_unlock(&bus->producers_lock);
			for (unsigned i = 0; i < bus->nexec; i++)
				if (p->lanes[i])
					ebus_exec_lane_closed(bus->exec[i], p->lanes[i]);
		}
		producer_free(p);
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
			producer_free(p);
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
			if (!p->claim_lane) /* a claim keeps its record off the fast path */
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
	pthread_mutex_lock(&bus->producers_lock);
	p->id = ++bus->last_producer_id;
	cds_list_add(&p->bus_node, &bus->producers);
	pthread_mutex_unlock(&bus->producers_lock);
	prune_dead(p);
	ebus_tls_last = p;
	return p;
}

int ebus_producer_seq_grow(struct producer *p, uint32_t ix)
{
	uint32_t n = p->nseq ? p->nseq : 16;
	uint64_t *seq;
	while (n <= ix)
		n = n <= UINT32_MAX / 2 ? n * 2 : UINT32_MAX;
	seq = EBUS_TEST_FAIL(EBUS_TP_FAIL_SEQ_ALLOC) ? NULL : realloc(p->seq, n * sizeof *seq);
	if (!seq)
		return EBUS_ERR_NOMEM;
	memset(seq + p->nseq, 0, (n - p->nseq) * sizeof *seq);
	p->seq = seq;
	p->nseq = n;
	return EBUS_OK;
}

/* ---- lanes and the shutdown handshake ------------------------------------------ */

struct lane *ebus_producer_lane(struct ebus *bus, struct producer *p, unsigned exec)
{
	struct lane *l = ebus_lane_new(&bus->lanes, exec);
	if (!l)
		return NULL;
	l->source = p->id;
	p->lanes[exec] = l;
	ebus_exec_add_lane(bus->exec[exec], l);
	return l;
}

/* ebus_shutdown, after CLOSING and the heavy fence: a publish that set
 * busy before it is still inside; one that sets it later sees CLOSING. */
bool ebus_producers_busy(struct ebus *bus)
{
	bool busy = false;
	struct producer *p;
	pthread_mutex_lock(&bus->producers_lock);
	EBUS_LIST_FOR_EACH(p, &bus->producers, struct producer, bus_node)
		if (atomic_load_explicit(&p->busy, memory_order_acquire))
			busy = true;
	pthread_mutex_unlock(&bus->producers_lock);
	return busy;
}
