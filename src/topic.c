/*
 * Topic layer: name validation (NATS subject syntax, literal subjects
 * only), hashing, and the registry that interns names into immortal
 * handles (contract in topic.h). Deciding what a new topic's first
 * subscriber array is belongs to the subscription layer, which calls
 * ebus_registry_add under its lock.
 *
 * The registry is a cds_lfht bound to liburcu's bp ("bulletproof") flavor.
 * Its readers are arbitrary application threads (ebus_topic,
 * ebus_publish_name) that ebus does not own: bp registers them lazily and
 * cleans up at thread exit, so nothing is asked of the application. QSBR,
 * used by the executors, would require every such thread to register and to
 * report quiescent states; memb would require unregistering before exit.
 * bp grace periods are only needed for the table's own resizes and at
 * destroy. Executors never read the registry: events carry topic pointers.
 */
#include "topic.h"

#include <assert.h>
#include <urcu/urcu-bp.h>

extern const struct rcu_flavor_struct urcu_bp_flavor;

int ebus_topic_check(const char *name, size_t *len_out)
{
	size_t i, tok = 0;
	if (!name)
		return EBUS_ERR_NULL;
	if (!name[0])
		return EBUS_ERR_TOPIC_EMPTY;
	for (i = 0; name[i]; i++) {
		unsigned char c = (unsigned char)name[i];
		if (i >= EBUS_TOPIC_MAX)
			return EBUS_ERR_TOPIC_TOO_LONG;
		if (c == '.') {
			if (tok == 0)
				return EBUS_ERR_TOPIC_EMPTY_TOKEN;
			tok = 0;
			continue;
		}
		if (c <= 0x20 || c >= 0x7f)
			return EBUS_ERR_TOPIC_BAD_CHAR;
		if (c == '*' || c == '>')
			return EBUS_ERR_TOPIC_WILDCARD;
		tok++;
	}
	if (tok == 0)
		return EBUS_ERR_TOPIC_EMPTY_TOKEN;
	if (len_out)
		*len_out = i;
	return EBUS_OK;
}

int ebus_topic_validate(const char *name)
{
	return ebus_topic_check(name, NULL);
}

uint64_t ebus_hash(const char *s, size_t n)
{
	uint64_t h = EBUS_HASH_SEED;
	for (size_t i = 0; i < n; i++)
		h = ebus_hash_step(h, (unsigned char)s[i]);
	return ebus_hash_finish(h);
}

struct name_key {
	const char *name;
	size_t len;
};

static int topic_match(struct cds_lfht_node *node, const void *key)
{
	const struct ebus_topic_s *t = caa_container_of(node, struct ebus_topic_s, node);
	const struct name_key *k = key;
	return t->namelen == k->len && memcmp(t->name, k->name, k->len) == 0;
}

bool ebus_name_reserved(const char *name, size_t len)
{
	return len > sizeof EBUS_META_PREFIX - 1 &&
	       memcmp(name, EBUS_META_PREFIX, sizeof EBUS_META_PREFIX - 1) == 0;
}

int ebus_registry_init(struct ebus_registry *r, struct ebus *bus, const ebus_allocator_t *a,
                       unsigned nexec)
{
	r->alloc = a;
	r->bus = bus;
	r->nexec = nexec;
	ck_stack_init(&r->all);
	/* AUTO_RESIZE | ACCOUNTING: grow with the topic count (notes 4.4). */
	r->table = cds_lfht_new_flavor(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
	                               &urcu_bp_flavor, NULL);
	return r->table ? EBUS_OK : EBUS_ERR_NOMEM;
}

struct ebus_topic_s *ebus_registry_find(struct ebus_registry *r, const char *name, size_t len,
                                        uint64_t hash)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	struct name_key key = { name, len };
	struct ebus_topic_s *t = NULL;

	urcu_bp_read_lock();
	cds_lfht_lookup(r->table, (unsigned long)hash, topic_match, &key, &it);
	node = cds_lfht_iter_get_node(&it);
	if (node) {
		t = caa_container_of(node, struct ebus_topic_s, node);
		EBUS_TSAN_ACQUIRE(t); /* pairs with the release before add_unique */
	}
	urcu_bp_read_unlock();
	return t; /* topics are immortal: safe after the read section */
}

static size_t topic_size(size_t namelen)
{
	return sizeof(struct ebus_topic_s) + namelen + 1;
}

/* An unordered topic's counter blocks, one per executor (stripe). */
static int topic_ctrs_init(struct ebus_registry *r, struct ebus_topic_s *t)
{
	if (!(t->flags & EBUS_TOPIC_UNORDERED))
		return EBUS_OK; /* ctrs.one is zeroed with the topic */
	t->ctrs.per_exec = ebus_zalloc(r->alloc, r->nexec * sizeof(struct topic_ctrs), EBUS_CL);
	return t->ctrs.per_exec ? EBUS_OK : EBUS_ERR_NOMEM;
}

static void topic_free(struct ebus_registry *r, struct ebus_topic_s *t)
{
	if (t->flags & EBUS_TOPIC_UNORDERED)
		ebus_free(r->alloc, t->ctrs.per_exec, r->nexec * sizeof(struct topic_ctrs));
	ebus_free(r->alloc, t, topic_size(t->namelen));
}

int ebus_registry_add(struct ebus_registry *r, const char *name, size_t len, uint64_t hash,
                      int executor, unsigned flags, struct subarr *first,
                      struct ebus_topic_s **out)
{
	struct ebus_topic_s *t;
	struct cds_lfht_node *node;
	struct name_key key;

	t = ebus_zalloc(r->alloc, topic_size(len), _Alignof(struct ebus_topic_s));
	if (!t)
		return EBUS_ERR_NOMEM;
	t->bus = r->bus;
	t->hash = hash;
	t->executor = executor >= 0 ? (unsigned)executor : (unsigned)(hash % r->nexec);
	t->flags = flags & EBUS_TOPIC_UNORDERED;
	if (ebus_name_reserved(name, len))
		t->flags |= TOPIC_RESERVED;
	t->index = r->ntopics;
	t->namelen = len;
	memcpy(t->name, name, len);
	t->name[len] = '\0';
	if (topic_ctrs_init(r, t) != EBUS_OK) {
		ebus_free(r->alloc, t, topic_size(len));
		return EBUS_ERR_NOMEM;
	}
	atomic_init(&t->subs, first);
	cds_lfht_node_init(&t->node);
	key.name = t->name;
	key.len = len;
	EBUS_TSAN_RELEASE(t);
	urcu_bp_read_lock();
	node = cds_lfht_add_unique(r->table, (unsigned long)hash, topic_match, &key, &t->node);
	urcu_bp_read_unlock();
	/* Every creator is serialised and looked first: nobody can have added
	 * this name since. */
	assert(node == &t->node);
	(void)node;
	ck_stack_push_upmc(&r->all, &t->all);
	r->ntopics++;
	*out = t;
	return EBUS_OK;
}

/*
 * The walk while ebus_registry_add pushes onto r->all (ck_stack_push_upmc):
 * a push sets the new entry's next, fences stores and CASes the head, so an
 * entry reached from a loaded head is complete; no entry is popped or
 * relinked before ebus_registry_destroy (which may not run concurrently).
 * So the list reached from one loaded head never changes, and two walks
 * from it see the same topics. The loads are ck's (asm): TSan sees neither
 * them nor the push's plain store of next (tsan.supp, ck_stack_push_upmc);
 * the topic's own fields are covered by the release the adding thread
 * makes on the topic before publishing it, acquired here.
 */
static struct ebus_topic_s *topic_of(ck_stack_entry_t *e)
{
	struct ebus_topic_s *t;
	if (!e)
		return NULL;
	t = EBUS_CONTAINER(e, struct ebus_topic_s, all);
	EBUS_TSAN_ACQUIRE(t);
	return t;
}

struct ebus_topic_s *ebus_registry_first(struct ebus_registry *r)
{
	ck_stack_entry_t *e = ck_pr_load_ptr(&r->all.head);
	ck_pr_fence_load();
	return topic_of(e);
}

struct ebus_topic_s *ebus_registry_next(struct ebus_topic_s *t)
{
	ck_stack_entry_t *n = ck_pr_load_ptr(&t->all.next);
	ck_pr_fence_load();
	return topic_of(n);
}

void ebus_registry_destroy(struct ebus_registry *r)
{
	ck_stack_entry_t *e, *next;
	struct ebus_topic_s *t;

	if (!r->table)
		return;
	/* Unlink every node, wait for bp readers (and the resize worker), then
	 * free. Destroy runs outside any read-side section (the 0.13.2 lfht
	 * destroy deadlock needs the caller inside one). */
	urcu_bp_read_lock();
	for (e = CK_STACK_FIRST(&r->all); e; e = CK_STACK_NEXT(e)) {
		t = EBUS_CONTAINER(e, struct ebus_topic_s, all);
		(void)cds_lfht_del(r->table, &t->node);
	}
	urcu_bp_read_unlock();
	urcu_bp_synchronize_rcu();
	(void)cds_lfht_destroy(r->table, NULL);
	r->table = NULL;
	for (e = ck_stack_batch_pop_upmc(&r->all); e; e = next) {
		next = CK_STACK_NEXT(e);
		topic_free(r, EBUS_CONTAINER(e, struct ebus_topic_s, all));
	}
}

void ebus_topic_count_refused(struct ebus_topic_s *t, int rc)
{
	switch (rc) {
	case EBUS_ERR_FULL:
	case EBUS_ERR_DEADLOCK:
		atomic_fetch_add_explicit(&t->rejected_full, 1, memory_order_relaxed);
		break;
	case EBUS_DROPPED:
		atomic_fetch_add_explicit(&t->dropped_full, 1, memory_order_relaxed);
		break;
	case EBUS_ERR_TIMEOUT:
		atomic_fetch_add_explicit(&t->rejected_timeout, 1, memory_order_relaxed);
		break;
	default:
		break; /* EBUS_ERR_SHUTDOWN is counted per bus (rejected_shutdown) */
	}
}

void ebus_topic_read_stats(struct ebus_topic_s *t, unsigned nexec, ebus_topic_stats_t *o)
{
	unsigned nblk = (t->flags & EBUS_TOPIC_UNORDERED) ? nexec : 1;
	o->flags = t->flags;
	o->executor = (t->flags & EBUS_TOPIC_UNORDERED) ? -1 : (int)t->executor;
	for (unsigned i = 0; i < nblk; i++) {
		struct topic_ctrs *c = topic_ctrs_of(t, i);
		o->delivered += ctr_get(&c->delivered);
		o->handler_calls += ctr_get(&c->handler_calls);
		o->handler_errors += ctr_get(&c->handler_errors);
		o->dropped_no_subscriber += ctr_get(&c->dropped_no_sub);
		o->dropped_shutdown += ctr_get(&c->dropped_shutdown);
	}
	o->dispatched = o->delivered + o->dropped_no_subscriber + o->dropped_shutdown;
	o->dropped_full = atomic_load_explicit(&t->dropped_full, memory_order_relaxed);
	o->rejected_full = atomic_load_explicit(&t->rejected_full, memory_order_relaxed);
	o->rejected_timeout = atomic_load_explicit(&t->rejected_timeout, memory_order_relaxed);
}

unsigned ebus_topic_flags(const ebus_topic_t *t)
{
	return t ? t->flags & EBUS_TOPIC_UNORDERED : 0;
}

const char *ebus_topic_name(const ebus_topic_t *t)
{
	return t ? t->name : NULL;
}

int ebus_topic_executor(const ebus_topic_t *t)
{
	if (!t || (t->flags & EBUS_TOPIC_UNORDERED))
		return -1;
	return (int)t->executor;
}

ebus_t *ebus_topic_bus(const ebus_topic_t *t)
{
	return t ? t->bus : NULL;
}
