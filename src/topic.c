/*
 * Topics: name validation (NATS subject syntax, literal subjects only),
 * hashing, and the registry that interns names into immortal handles.
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
#include "internal.h"

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

/* FNV-1a, then a 64-bit finaliser so that "hash % executors" and the
 * table's bucket bits both see well-mixed bits. */
uint64_t ebus_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
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

int ebus_registry_init(struct ebus *bus)
{
	ebus_platform_init();
	ck_stack_init(&bus->all_topics);
	/* AUTO_RESIZE | ACCOUNTING: grow with the topic count (notes 4.4). */
	bus->topics = cds_lfht_new_flavor(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
	                                  &urcu_bp_flavor, NULL);
	return bus->topics ? EBUS_OK : EBUS_ERR_NOMEM;
}

struct ebus_topic_s *ebus_registry_find(struct ebus *bus, const char *name, size_t len, uint64_t hash)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	struct name_key key = { name, len };
	struct ebus_topic_s *t = NULL;

	urcu_bp_read_lock();
	cds_lfht_lookup(bus->topics, (unsigned long)hash, topic_match, &key, &it);
	node = cds_lfht_iter_get_node(&it);
	if (node) {
		t = caa_container_of(node, struct ebus_topic_s, node);
		EBUS_TSAN_ACQUIRE(t); /* pairs with the release before add_unique */
	}
	urcu_bp_read_unlock();
	return t; /* topics are immortal: safe after the read section */
}

/* Caller holds ctl_lock and found no topic of that name. */
static int topic_create(struct ebus *bus, const char *name, size_t len, uint64_t hash,
                        int executor, unsigned flags, struct ebus_topic_s **out)
{
	struct ebus_topic_s *t;
	struct cds_lfht_node *node;
	struct name_key key;
	struct subarr *subs;
	int rc;

	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN)
		return EBUS_ERR_SHUTDOWN;
	t = ebus_zalloc(bus, sizeof *t + len + 1, _Alignof(struct ebus_topic_s));
	if (!t)
		return EBUS_ERR_NOMEM;
	t->bus = bus;
	t->hash = hash;
	t->executor = executor >= 0 ? (unsigned)executor : (unsigned)(hash % bus->nexec);
	t->flags = flags & EBUS_TOPIC_UNORDERED;
	if (len > sizeof EBUS_META_PREFIX - 1 &&
	    memcmp(name, EBUS_META_PREFIX, sizeof EBUS_META_PREFIX - 1) == 0)
		t->flags |= TOPIC_RESERVED;
	t->namelen = len;
	memcpy(t->name, name, len + 1);
	if (ebus_topic_stats_init(bus, t) != EBUS_OK) {
		ebus_free(bus, t, sizeof *t + len + 1);
		return EBUS_ERR_NOMEM;
	}
	rc = ebus_subs_for_new_topic(bus, t, &subs);
	if (rc) {
		ebus_topic_stats_fini(bus, t);
		ebus_free(bus, t, sizeof *t + len + 1);
		return rc;
	}
	atomic_init(&t->subs, subs);
	cds_lfht_node_init(&t->node);
	key.name = t->name;
	key.len = len;
	EBUS_TSAN_RELEASE(t);
	urcu_bp_read_lock();
	node = cds_lfht_add_unique(bus->topics, (unsigned long)hash, topic_match, &key, &t->node);
	urcu_bp_read_unlock();
	/* Every creator holds ctl_lock and looked first: nobody can have added
	 * this name since. */
	assert(node == &t->node);
	(void)node;
	ck_stack_push_upmc(&bus->all_topics, &t->all);
	*out = t;
	return EBUS_OK;
}

int ebus_registry_intern(struct ebus *bus, const char *name, int executor, unsigned flags,
                         struct ebus_topic_s **out)
{
	size_t len;
	uint64_t hash;
	struct ebus_topic_s *t;
	int rc;

	if (!bus || !out)
		return EBUS_ERR_NULL;
	rc = ebus_topic_check(name, &len);
	if (rc)
		return rc;
	if (executor >= 0 && (unsigned)executor >= bus->nexec)
		return EBUS_ERR_EXECUTOR;
	if (flags & ~(EBUS_TOPIC_UNORDERED | TOPIC_ANY_ORDER))
		return EBUS_ERR_FLAGS;
	if (atomic_load_explicit(&bus->state, memory_order_acquire) != BUS_OPEN)
		return EBUS_ERR_SHUTDOWN;

	hash = ebus_hash(name, len);
	t = ebus_registry_find(bus, name, len, hash);
	if (!t) {
		/* Creation is serialised with pattern subscriptions (ctl_lock):
		 * a new topic gets every matching pattern, and a new pattern sees
		 * every topic. Lookups stay lock-free. */
		pthread_mutex_lock(&bus->ctl_lock);
		t = ebus_registry_find(bus, name, len, hash);
		if (!t && (rc = topic_create(bus, name, len, hash, executor, flags, &t)) != EBUS_OK) {
			pthread_mutex_unlock(&bus->ctl_lock);
			return rc;
		}
		pthread_mutex_unlock(&bus->ctl_lock);
	}
	*out = t;
	if (executor >= 0 && t->executor != (unsigned)executor)
		return EBUS_ERR_EXISTS;
	if (!(flags & TOPIC_ANY_ORDER) && ((t->flags ^ flags) & EBUS_TOPIC_UNORDERED))
		return EBUS_ERR_ORDERING;
	return EBUS_OK;
}

/*
 * ebus_publish_name for a name never interned: create the topic only if a
 * pattern subscription matches it (so its subscribers get the event);
 * otherwise *out = NULL and nothing is created, so arbitrary names cannot
 * grow the registry.
 */
int ebus_registry_intern_matched(struct ebus *bus, const char *name, size_t len, uint64_t hash,
                                 struct ebus_topic_s **out)
{
	struct ebus_topic_s *t;
	int rc = EBUS_OK;

	*out = NULL;
	if (!atomic_load_explicit(&bus->npatterns, memory_order_relaxed))
		return EBUS_OK;
	pthread_mutex_lock(&bus->ctl_lock);
	t = ebus_registry_find(bus, name, len, hash);
	if (!t) {
		struct ebus_sub *s;
		EBUS_LIST_FOR_EACH(s, &bus->patterns, struct ebus_sub, pat_node) {
			if (ebus_pattern_matches(s->pattern, s->patlen, name, len)) {
				rc = topic_create(bus, name, len, hash, -1, 0, &t);
				break;
			}
		}
	}
	pthread_mutex_unlock(&bus->ctl_lock);
	*out = t;
	return rc;
}

void ebus_registry_destroy(struct ebus *bus)
{
	ck_stack_entry_t *e, *next;
	struct ebus_topic_s *t;

	if (!bus->topics)
		return;
	/* Unlink every node, wait for bp readers (and the resize worker), then
	 * free. Destroy runs outside any read-side section (the 0.13.2 lfht
	 * destroy deadlock needs the caller inside one). */
	urcu_bp_read_lock();
	for (e = CK_STACK_FIRST(&bus->all_topics); e; e = CK_STACK_NEXT(e)) {
		t = EBUS_CONTAINER(e, struct ebus_topic_s, all);
		(void)cds_lfht_del(bus->topics, &t->node);
	}
	urcu_bp_read_unlock();
	urcu_bp_synchronize_rcu();
	(void)cds_lfht_destroy(bus->topics, NULL);
	bus->topics = NULL;
	for (e = ck_stack_batch_pop_upmc(&bus->all_topics); e; e = next) {
		next = CK_STACK_NEXT(e);
		t = EBUS_CONTAINER(e, struct ebus_topic_s, all);
		ebus_topic_stats_fini(bus, t);
		ebus_free(bus, t, sizeof *t + t->namelen + 1);
	}
}

int ebus_topic(ebus_t *bus, const char *name, ebus_topic_t **out)
{
	return ebus_registry_intern(bus, name, -1, TOPIC_ANY_ORDER, out);
}

int ebus_topic_on(ebus_t *bus, const char *name, unsigned executor, ebus_topic_t **out)
{
	if (bus && executor >= bus->nexec)
		return EBUS_ERR_EXECUTOR;
	return ebus_registry_intern(bus, name, (int)executor, TOPIC_ANY_ORDER, out);
}

int ebus_topic_ex(ebus_t *bus, const char *name, int executor, unsigned flags, ebus_topic_t **out)
{
	if (flags & ~EBUS_TOPIC_UNORDERED)
		return EBUS_ERR_FLAGS;
	if (bus && executor >= 0 && (unsigned)executor >= bus->nexec)
		return EBUS_ERR_EXECUTOR;
	return ebus_registry_intern(bus, name, executor < 0 ? -1 : executor, flags, out);
}

unsigned ebus_topic_flags(const ebus_topic_t *t)
{
	return t ? t->flags & EBUS_TOPIC_UNORDERED : 0;
}

const char *ebus_topic_name(const ebus_topic_t *t)
{
	return t ? t->name : NULL;
}

unsigned ebus_topic_executor(const ebus_topic_t *t)
{
	return t ? t->executor : 0;
}

ebus_t *ebus_topic_bus(const ebus_topic_t *t)
{
	return t ? t->bus : NULL;
}
