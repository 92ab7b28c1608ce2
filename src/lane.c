/*
 * Lane layer: the set of a bus's live lanes (see lane.h for the contract).
 * Lanes are announced to their executor by the caller (exec.h); this file
 * only owns their memory and the list that flush and statistics walk.
 */
#include "lane.h"

int ebus_lane_set_init(struct lane_set *s, const ebus_allocator_t *a, unsigned capacity,
                       unsigned nexec, uint32_t arena_size)
{
	s->gone = ebus_zalloc(a, nexec * sizeof s->gone[0], _Alignof(struct lane_totals));
	if (!s->gone)
		return EBUS_ERR_NOMEM;
	pthread_mutex_init(&s->lock, NULL);
	CDS_INIT_LIST_HEAD(&s->lanes);
	s->last_id = 0;
	s->alloc = a;
	s->capacity = capacity;
	s->nexec = nexec;
	s->arena_size = arena_size;
	return EBUS_OK;
}

static void lane_free(struct lane_set *s, struct lane *l)
{
	cds_list_del(&l->set_node);
	if (l->arena)
		ebus_free(s->alloc, l->arena, l->arena_size);
	ebus_free(s->alloc, l->buf, (size_t)s->capacity * sizeof(struct ebus_slot));
	ebus_free(s->alloc, l, sizeof *l);
}

void ebus_lane_set_fini(struct lane_set *s)
{
	struct lane *l;
	if (!s->gone)
		return; /* never initialised */
	EBUS_LIST_FOR_EACH_SAFE(l, &s->lanes, struct lane, set_node)
		lane_free(s, l);
	ebus_free(s->alloc, s->gone, s->nexec * sizeof s->gone[0]);
	s->gone = NULL;
	pthread_mutex_destroy(&s->lock);
}

struct lane *ebus_lane_new(struct lane_set *s, unsigned exec)
{
	struct lane *l = ebus_zalloc(s->alloc, sizeof *l, _Alignof(struct lane));
	if (!l)
		return NULL;
	l->buf = ebus_alloc(s->alloc, (size_t)s->capacity * sizeof(struct ebus_slot), EBUS_CL);
	if (!l->buf) {
		ebus_free(s->alloc, l, sizeof *l);
		return NULL;
	}
	ck_ring_init(&l->ring, s->capacity);
	l->exec = exec;
	l->arena_size = s->arena_size;
	atomic_init(&l->arena_tail, 0);
	atomic_init(&l->closed, 0);
	atomic_init(&l->space_wait, 0);
	pthread_mutex_lock(&s->lock);
	l->id = ++s->last_id;
	cds_list_add(&l->set_node, &s->lanes); /* newest first: ids decrease */
	s->gone[exec].created++;
	pthread_mutex_unlock(&s->lock);
	return l;
}

void ebus_lane_reclaim(struct lane_set *s, struct lane *l)
{
	struct lane_totals *t = &s->gone[l->exec];
	pthread_mutex_lock(&s->lock);
	t->published += ctr_get(&l->consumed); /* empty: everything published was consumed */
	t->dropped_full += ctr_get(&l->dropped_full);
	t->rejected_full += ctr_get(&l->rejected_full);
	t->rejected_timeout += ctr_get(&l->rejected_timeout);
	t->payload_allocs += ctr_get(&l->payload_allocs);
	lane_free(s, l);
	pthread_mutex_unlock(&s->lock);
}

void ebus_lane_set_stats(struct lane_set *s, unsigned exec, ebus_stats_t *st)
{
	struct lane *l;
	pthread_mutex_lock(&s->lock);
	st->published += s->gone[exec].published;
	st->dropped_full += s->gone[exec].dropped_full;
	st->rejected_full += s->gone[exec].rejected_full;
	st->rejected_timeout += s->gone[exec].rejected_timeout;
	st->payload_allocs += s->gone[exec].payload_allocs;
	st->lanes_created += s->gone[exec].created;
	EBUS_LIST_FOR_EACH(l, &s->lanes, struct lane, set_node) {
		if (l->exec != exec)
			continue;
		uint64_t published;
		unsigned queued;
		ebus_lane_counts(l, &published, &queued);
		st->published += published;
		st->dropped_full += ctr_get(&l->dropped_full);
		st->rejected_full += ctr_get(&l->rejected_full);
		st->rejected_timeout += ctr_get(&l->rejected_timeout);
		st->payload_allocs += ctr_get(&l->payload_allocs);
		st->queued += queued;
		st->lanes_live++;
	}
	pthread_mutex_unlock(&s->lock);
}

void *ebus_lane_arena_new(struct lane *l, const ebus_allocator_t *a)
{
	/* Page-aligned, so that chunks (16-byte multiples) never share a line
	 * with anything but their neighbours in the same lane. */
	l->arena = ebus_alloc(a, l->arena_size, 4096);
	return l->arena;
}
