/*
 * Every payload length from 0 to EBUS_INLINE_MAX + 8 arrives intact: the
 * length and every byte. ebus_publish copies inline payloads with a few
 * fixed-size, overlapping moves (copy_small in bus.c), so each length takes
 * its own mix of moves; this checks all of them, through the fast path (the
 * thread's lane exists), with the payload placed right before and right
 * after an inaccessible page, so a read outside [data, data + len) faults.
 * Also: max_payload below EBUS_INLINE_MAX still rejects a longer payload
 * with EBUS_ERR_TOO_LARGE and accepts one that fits; a synchronous bus
 * delivers every length too.
 */
#include "testutil.h"

#include <sys/mman.h>

#define MAXLEN (EBUS_INLINE_MAX + 8)

struct rec {
	unsigned calls;
	unsigned bad;          /* events whose bytes or length differ */
	size_t want_len;
	unsigned char want[MAXLEN];
};

static int on_event(const ebus_event_t *ev, void *ctx)
{
	struct rec *r = ctx;
	r->calls++;
	if (ev->len != r->want_len || (ev->len && memcmp(ev->data, r->want, ev->len) != 0))
		r->bad++;
	if (ev->len == 0 && ev->data != NULL)
		r->bad++;
	return 0;
}

static void pattern(unsigned char *p, size_t len, unsigned salt)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(tu_mix3(len, i, salt) | 1); /* never 0: a zeroed byte shows */
}

/* Two guarded windows: `lo` starts right after a PROT_NONE page, `hi` ends
 * right before one. */
struct guarded {
	unsigned char *map;
	size_t page;
};

static void guarded_init(struct guarded *g)
{
	g->page = (size_t)sysconf(_SC_PAGESIZE);
	g->map = mmap(NULL, 4 * g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(g->map != MAP_FAILED);
	CHECK(mprotect(g->map, g->page, PROT_NONE) == 0);
	CHECK(mprotect(g->map + 3 * g->page, g->page, PROT_NONE) == 0);
}

static unsigned char *guarded_at(struct guarded *g, size_t len, int high)
{
	return high ? g->map + 3 * g->page - len : g->map + g->page;
}

/* Publishes each length (twice per placement) and checks each delivery. */
static void run_sizes(ebus_t *bus, int sync)
{
	struct rec r;
	struct guarded g;
	ebus_topic_t *t;
	ebus_sub_id id;
	unsigned sent = 0;

	memset(&r, 0, sizeof r);
	guarded_init(&g);
	CHECK_OK(ebus_topic(bus, "sizes", &t));
	CHECK_OK(ebus_subscribe(t, on_event, &r, &id));
	/* The first publish creates the lane; from then on the fast path. */
	CHECK_OK(ebus_publish(t, NULL, 0));
	CHECK_OK(ebus_flush(bus, 0));
	r.calls = 0;
	for (size_t len = 0; len <= MAXLEN; len++) {
		for (int high = 0; high < 2; high++) {
			for (unsigned rep = 0; rep < 2; rep++) {
				unsigned char *src = guarded_at(&g, len, high);
				pattern(src, len, rep + 2 * (unsigned)high);
				/* Ordered: the handler compares with want after this flush. */
				memcpy(r.want, src, len);
				r.want_len = len;
				CHECK_OK(ebus_publish(t, len ? src : NULL, len));
				sent++;
				CHECK_OK(ebus_flush(bus, 0));
				CHECK_MSG(r.calls == sent && r.bad == 0,
				          "%s bus, len %zu, %s a guard page, rep %u: %u calls of %u, %u bad",
				          sync ? "sync" : "async", len, high ? "before" : "after", rep, r.calls,
				          sent, r.bad);
			}
		}
	}
	{
		ebus_stats_t st = tu_stats(bus);
		CHECK_EQ_U64(st.delivered, sent + 1);
		CHECK_EQ_U64(st.handler_errors, 0);
	}
	munmap(g.map, 4 * g.page);
}

static void async_sizes(void)
{
	ebus_t *bus;
	CHECK_OK(ebus_create(NULL, &bus));
	run_sizes(bus, 0);
	ebus_destroy(bus);
}

static void sync_sizes(void)
{
	ebus_config_t cfg = {0};
	ebus_t *bus;
	cfg.synchronous = 1;
	CHECK_OK(ebus_create(&cfg, &bus));
	run_sizes(bus, 1);
	ebus_destroy(bus);
}

/* max_payload below the inline size: the limit holds on the fast path. */
static void small_max_payload(void)
{
	ebus_config_t cfg = {0};
	unsigned char buf[EBUS_INLINE_MAX] = {1};
	struct rec r;
	ebus_topic_t *t;
	ebus_sub_id id;
	ebus_t *bus;
	ebus_stats_t st;

	memset(&r, 0, sizeof r);
	cfg.max_payload = 20;
	CHECK_OK(ebus_create(&cfg, &bus));
	CHECK_OK(ebus_topic(bus, "small", &t));
	CHECK_OK(ebus_subscribe(t, on_event, &r, &id));
	pattern(buf, 20, 7);
	memcpy(r.want, buf, 20);
	r.want_len = 20;
	CHECK_OK(ebus_publish(t, buf, 20)); /* creates the lane */
	CHECK_OK(ebus_publish(t, buf, 20)); /* fast path */
	CHECK_EQ_INT(ebus_publish(t, buf, 21), EBUS_ERR_TOO_LARGE);
	CHECK_EQ_INT(ebus_publish(t, buf, EBUS_INLINE_MAX), EBUS_ERR_TOO_LARGE);
	CHECK_OK(ebus_flush(bus, 0));
	CHECK_EQ_INT(r.calls, 2);
	CHECK_EQ_INT(r.bad, 0);
	st = tu_stats(bus);
	CHECK_EQ_U64(st.published, 2);
	CHECK_EQ_U64(st.delivered, 2);
	ebus_destroy(bus);
}

int main(void)
{
	TU_RUN(async_sizes);
	TU_RUN(sync_sizes);
	TU_RUN(small_max_payload);
	return tu_finish("test_payload_sizes");
}
