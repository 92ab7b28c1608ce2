/*
 * The bridge scenario: events between two processes through a real
 * nats-server on loopback, for the NATS bridge (libebus-nats) and for the
 * transports it is measured against, in the same run:
 *
 *   bridge     ebus bus -> bridge -> nats-server -> bridge -> ebus bus
 *   libnats    natsConnection_Publish -> nats-server -> subscription callback
 *              (the bridge's own transport, used directly: its ceiling)
 *   zmq-tcp    ZeroMQ XPUB (ZMQ_XPUB_NODROP: a send waits at the high-water
 *              mark instead of dropping silently) -> SUB over TCP
 *   tcp        one TCP connection: 32-byte records written through a
 *              64 KiB user-space buffer (the way libnats writes), read in
 *              64 KiB chunks; for the round trip one write and one read of
 *              32 bytes each way, TCP_NODELAY
 *
 * Throughput: N events of 32 bytes, first publish (sender) to last delivery
 * (receiver), both on CLOCK_MONOTONIC of this machine. Round trip: the
 * receiver echoes each ping on a second subject (the bridge: a handler
 * publishes the pong on the receiver's bus, which exports it), one at a
 * time; bridge and libnats also in latency mode (EBUS_NATS_SEND_ASAP /
 * natsOptions_SetSendAsap). Every system runs in each of the runs, in
 * turn, and each run's ratio is taken against libnats of that run.
 *
 * Each measurement is two fresh processes forked from this one (which
 * starts no thread itself): the receiver says it is ready (its
 * subscription is live) on a pipe, then the sender starts; both send
 * their result back on pipes. Losses are counted, never hidden: a run
 * that lost events says how many.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench.h"

#include "nats_server.h"

#include <ebus/ebus.h>
#include <ebus/nats.h>
#include <nats/nats.h>
#include <netinet/tcp.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <zmq.h>

#define PAYLOAD 32
#define BUF (64 * 1024)
#define EXPORT_BUFFER 65536u /* the bridge's default */
#define PACE 1024 /* events between two waits for room in it */

enum { SYS_BRIDGE, SYS_BRIDGE_ASAP, SYS_NATS, SYS_NATS_ASAP, SYS_ZMQ, SYS_TCP, NSYS };
static const char *const sys_name[NSYS] = {"bridge", "bridge (SendAsap)", "libnats",
                                           "libnats (SendAsap)", "zmq-tcp", "tcp"};

typedef struct msr {     /* what a child sends back */
	uint64_t t_first;      /* sender: just before its first send */
	uint64_t t_last;       /* receiver: at its last delivery */
	uint64_t count;        /* receiver: delivered */
	uint64_t lost;         /* counted losses (gaps, drops, overflow) */
	double p50, p99, p999; /* sender, round trip: ns */
	int ok;
	char err[200];
} msr;

typedef struct ctx {
	int sys, rtt;
	uint64_t n;            /* events, or round trips */
	char url[64];
	int port, port2;       /* tcp / zmq */
	int ctl;               /* receiver: the parent writes how many events to
	                          expect once the sender has counted its losses */
} ctx;

static uint64_t now(void)
{
	return bench_now_ns();
}

static void fail(msr *m, const char *what)
{
	m->ok = 0;
	snprintf(m->err, sizeof m->err, "%s", what);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The sender's wait for a pong: a semaphore (what a request/reply client
 * does), bounded. */
static int pong_wait(sem_t *got)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	while (sem_timedwait(got, &ts) != 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* What the receiver still expects: n, or what the parent said once the
 * sender had counted what it lost before the network. */
static uint64_t expected(const ctx *c, uint64_t cur)
{
	struct pollfd p = {c->ctl, POLLIN, 0};
	uint64_t v;
	if (poll(&p, 1, 0) == 1 && read(c->ctl, &v, sizeof v) == (ssize_t)sizeof v)
		return v;
	return cur;
}

/* sem_timedwait for ms milliseconds: 0 when it was posted. */
static int sem_wait_ms(sem_t *sem, long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	return sem_timedwait(sem, &ts);
}

static void percentiles(msr *m, uint64_t *s, uint64_t n)
{
	qsort(s, n, sizeof *s, cmp_u64);
	m->p50 = (double)s[n / 2];
	m->p99 = (double)s[(n * 99) / 100];
	m->p999 = (double)s[(n * 999) / 1000];
}

/* ---- the sender's loop, the same for every system --------------------------- */

/* How one system sends event buf and, for a round trip, waits for its
 * echo; each returns 0 on success. */
typedef struct xlink {
	int (*send)(void *arg, unsigned char *buf);
	int (*echo)(void *arg, unsigned char *buf);
	void *arg;
} xlink;

/* c->n events, event i carrying i in its first 8 bytes; a round trip
 * waits for each echo and records the time. */
static int send_loop(const ctx *c, msr *m, const xlink *l)
{
	unsigned char buf[PAYLOAD] = {0};
	uint64_t *lat = NULL;
	if (c->rtt && !(lat = malloc(c->n * sizeof *lat))) {
		fail(m, "nomem");
		return -1;
	}
	m->t_first = now();
	for (uint64_t i = 0; i < c->n; i++) {
		uint64_t t0 = lat ? now() : 0;
		memcpy(buf, &i, 8);
		if (l->send(l->arg, buf) != 0 || (lat && l->echo(l->arg, buf) != 0)) {
			fail(m, lat ? "a round trip failed or took over 5 s (lost)" : "send failed");
			free(lat);
			return -1;
		}
		if (lat)
			lat[i] = now() - t0;
	}
	if (lat) {
		percentiles(m, lat, c->n);
		free(lat);
	}
	return 0;
}

/* ---- the bridge ------------------------------------------------------------- */

typedef struct bsink {
	_Atomic uint64_t count;
	uint64_t want, t_last;
	sem_t done;
	ebus_topic_t *pong; /* receiver, round trip: echo here */
	sem_t got;          /* sender, round trip: the pong came */
} bsink;

static int on_bridge_event(const ebus_event_t *ev, void *arg)
{
	bsink *s = arg;
	uint64_t c = atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed) + 1;
	if (s->pong) {
		(void)ebus_publish(s->pong, ev->data, ev->len);
		return 0;
	}
	if (c == s->want) {
		s->t_last = now();
		sem_post(&s->done);
	}
	return 0;
}

static int on_bridge_pong(const ebus_event_t *ev, void *arg)
{
	(void)ev;
	sem_post(&((bsink *)arg)->got);
	return 0;
}

static ebus_nats_bridge_t *bridge_new(ebus_t *bus, const ctx *c, const char *ex, const char *im)
{
	const char *servers[] = {c->url, NULL}, *exl[] = {ex, NULL}, *iml[] = {im, NULL};
	ebus_nats_config_t cfg = {0};
	ebus_nats_bridge_t *b;
	cfg.servers = servers;
	cfg.prefix = "bench";
	cfg.exports = ex ? exl : NULL;
	cfg.imports = im ? iml : NULL;
	cfg.export_buffer = EXPORT_BUFFER; /* the sender waits for room in it */
	cfg.import_pending = 1u << 21;  /* nothing dropped by the client */
	cfg.flags = c->sys == SYS_BRIDGE_ASAP ? EBUS_NATS_SEND_ASAP : 0;
	if (ebus_nats_create(bus, &cfg, &b) != EBUS_OK)
		return NULL;
	if (ebus_nats_start(b) != EBUS_OK) {
		ebus_nats_destroy(b);
		return NULL;
	}
	return b;
}

static uint64_t bridge_lost(ebus_nats_bridge_t *b)
{
	ebus_nats_stats_t st;
	if (ebus_nats_stats(b, &st) != EBUS_OK)
		return 0;
	return st.gaps + st.import_rejected + st.export_overflow + st.export_failed + st.unmappable;
}

static void bridge_receiver(const ctx *c, msr *m, int ready)
{
	ebus_t *bus;
	ebus_nats_bridge_t *b;
	ebus_sub_id id;
	bsink s;
	uint64_t want = c->n;
	memset(&s, 0, sizeof s);
	s.want = c->n;
	sem_init(&s.done, 0, 0);
	if (ebus_create(NULL, &bus) != EBUS_OK)
		return fail(m, "ebus_create");
	if (c->rtt && ebus_topic(bus, "bb.pong", &s.pong) != EBUS_OK)
		return fail(m, "topic");
	if (ebus_subscribe_pattern(bus, c->rtt ? "bb.ping" : "bb.>", on_bridge_event, &s, 0, &id) !=
	    EBUS_OK)
		return fail(m, "subscribe");
	if (!(b = bridge_new(bus, c, c->rtt ? "bb.pong" : NULL, c->rtt ? "bb.ping" : "bb.>")))
		return fail(m, "bridge");
	if (write(ready, "r", 1) != 1)
		return fail(m, "ready");
	for (;;) { /* until all came, or all are accounted for (some lost) */
		if (sem_wait_ms(&s.done, 10) == 0)
			break;
		if (c->rtt) { /* the sender ends it: its SIGTERM */
			continue;
		}
		want = expected(c, want);
		if (atomic_load(&s.count) + bridge_lost(b) >= want) {
			s.t_last = now();
			break;
		}
	}
	m->t_last = s.t_last;
	m->count = atomic_load(&s.count);
	m->lost = bridge_lost(b);
	ebus_nats_stop(b);
	ebus_nats_destroy(b);
	ebus_destroy(bus);
}

typedef struct bridge_link {
	ebus_topic_t *t;
	bsink *s;
	ebus_nats_bridge_t *b;
	uint64_t sent;
} bridge_link;

/* A publisher flat out outpaces any network, and what the export buffer
 * cannot hold is counted lost: so every PACE events the sender waits
 * until it is at most half full, as libnats's own publisher waits for
 * its socket. */
static int bridge_send(void *arg, unsigned char *buf)
{
	bridge_link *bl = arg;
	if (++bl->sent % PACE == 0 &&
	    ebus_nats_export_wait(bl->b, EXPORT_BUFFER / 2, 30000000000u) != EBUS_OK)
		return -1;
	return ebus_publish(bl->t, buf, PAYLOAD) == EBUS_OK ? 0 : -1;
}

static int bridge_echo(void *arg, unsigned char *buf)
{
	(void)buf;
	return pong_wait(&((bridge_link *)arg)->s->got);
}

static void bridge_sender(const ctx *c, msr *m)
{
	ebus_t *bus;
	ebus_nats_bridge_t *b;
	ebus_sub_id id;
	bsink s;
	bridge_link bl = {NULL, &s, NULL, 0};
	xlink l = {bridge_send, bridge_echo, &bl};
	memset(&s, 0, sizeof s);
	sem_init(&s.got, 0, 0);
	if (ebus_create(NULL, &bus) != EBUS_OK)
		return fail(m, "ebus_create");
	if (ebus_topic(bus, c->rtt ? "bb.ping" : "bb.t", &bl.t) != EBUS_OK)
		return fail(m, "topic");
	if (c->rtt && ebus_subscribe_pattern(bus, "bb.pong", on_bridge_pong, &s, 0, &id) != EBUS_OK)
		return fail(m, "subscribe");
	if (!(b = bridge_new(bus, c, c->rtt ? "bb.ping" : "bb.>", c->rtt ? "bb.pong" : NULL)))
		return fail(m, "bridge");
	bl.b = b;
	if (send_loop(c, m, &l) != 0)
		return;
	ebus_flush(bus, 0);
	if (!c->rtt && ebus_nats_flush(b, 30000000000u) != EBUS_OK)
		return fail(m, "flush to the server timed out");
	{ /* lost before the network, never numbered (the receiver counts the rest as gaps) */
		ebus_nats_stats_t st;
		m->lost = ebus_nats_stats(b, &st) == EBUS_OK ? st.export_overflow : 0;
	}
	ebus_nats_stop(b);
	ebus_nats_destroy(b);
	ebus_destroy(bus);
}

/* ---- libnats directly -------------------------------------------------------- */

typedef struct nsink {
	_Atomic uint64_t count;
	uint64_t want, t_last;
	sem_t done;
	natsConnection *nc; /* receiver, round trip: echo with it */
	sem_t got;
} nsink;

static void on_nats_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
	nsink *s = arg;
	uint64_t c = atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed) + 1;
	(void)sub;
	if (s->nc) {
		natsConnection_Publish(nc, "bench.nb.pong", natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
	} else if (c == s->want) {
		s->t_last = now();
		sem_post(&s->done);
	}
	natsMsg_Destroy(msg);
}

static void on_nats_pong(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
	(void)nc;
	(void)sub;
	sem_post(&((nsink *)arg)->got);
	natsMsg_Destroy(msg);
}

static natsConnection *nats_connect(const ctx *c)
{
	natsOptions *o = NULL;
	natsConnection *nc = NULL;
	if (natsOptions_Create(&o) != NATS_OK)
		return NULL;
	natsOptions_SetURL(o, c->url);
	natsOptions_SetNoEcho(o, true);
	if (c->sys == SYS_NATS_ASAP)
		natsOptions_SetSendAsap(o, true);
	if (natsConnection_Connect(&nc, o) != NATS_OK)
		nc = NULL;
	natsOptions_Destroy(o);
	return nc;
}

static void nats_receiver(const ctx *c, msr *m, int ready)
{
	natsConnection *nc = nats_connect(c);
	natsSubscription *sub = NULL;
	nsink s;
	int64_t dropped = 0;
	uint64_t want = c->n;
	memset(&s, 0, sizeof s);
	s.want = c->n;
	sem_init(&s.done, 0, 0);
	if (!nc)
		return fail(m, "connect");
	if (c->rtt)
		s.nc = nc;
	if (natsConnection_Subscribe(&sub, nc, c->rtt ? "bench.nb.ping" : "bench.nb.t", on_nats_msg, &s) != NATS_OK)
		return fail(m, "subscribe");
	natsSubscription_SetPendingLimits(sub, 1 << 21, 1 << 30);
	if (natsConnection_FlushTimeout(nc, 5000) != NATS_OK || write(ready, "r", 1) != 1)
		return fail(m, "ready");
	for (;;) {
		if (sem_wait_ms(&s.done, 10) == 0)
			break;
		if (c->rtt)
			continue;
		natsSubscription_GetDropped(sub, &dropped);
		want = expected(c, want);
		if (atomic_load(&s.count) + (uint64_t)dropped >= want) {
			s.t_last = now();
			break;
		}
	}
	natsSubscription_GetDropped(sub, &dropped);
	m->t_last = s.t_last;
	m->count = atomic_load(&s.count);
	m->lost = (uint64_t)dropped;
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(nc);
}

typedef struct nats_link {
	natsConnection *nc;
	const char *subj;
	nsink *s;
} nats_link;

static int nats_send(void *arg, unsigned char *buf)
{
	nats_link *n = arg;
	return natsConnection_Publish(n->nc, n->subj, buf, PAYLOAD) == NATS_OK ? 0 : -1;
}

static int nats_echo(void *arg, unsigned char *buf)
{
	(void)buf;
	return pong_wait(&((nats_link *)arg)->s->got);
}

static void nats_sender(const ctx *c, msr *m)
{
	natsConnection *nc = nats_connect(c);
	natsSubscription *sub = NULL;
	nsink s;
	nats_link nl = {nc, c->rtt ? "bench.nb.ping" : "bench.nb.t", &s};
	xlink l = {nats_send, nats_echo, &nl};
	memset(&s, 0, sizeof s);
	sem_init(&s.got, 0, 0);
	if (!nc)
		return fail(m, "connect");
	if (c->rtt && (natsConnection_Subscribe(&sub, nc, "bench.nb.pong", on_nats_pong, &s) != NATS_OK ||
	               natsConnection_FlushTimeout(nc, 5000) != NATS_OK))
		return fail(m, "subscribe");
	if (send_loop(c, m, &l) != 0)
		return;
	if (!c->rtt && natsConnection_FlushTimeout(nc, 30000) != NATS_OK)
		return fail(m, "flush timed out");
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(nc);
}

/* ---- ZeroMQ over TCP ---------------------------------------------------------- */

static void *zsock(void *zctx, int type, const char *how, int port)
{
	char ep[64];
	int one = 1, zero = 0;
	void *s = zmq_socket(zctx, type);
	snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
	if (!s)
		return NULL;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
	if (type == ZMQ_XPUB)
		zmq_setsockopt(s, ZMQ_XPUB_NODROP, &one, sizeof one);
	if (type == ZMQ_SUB)
		zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
	if ((how[0] == 'b' ? zmq_bind(s, ep) : zmq_connect(s, ep)) != 0) {
		zmq_close(s);
		return NULL;
	}
	return s;
}

/* An XPUB's first message is a subscription: after it, nothing sent is
 * lost to a subscriber that was not there yet. */
static int zwait_sub(void *xpub)
{
	char b[64];
	return zmq_recv(xpub, b, sizeof b, 0) >= 1 && b[0] == 1 ? 0 : -1;
}

static void zmq_receiver(const ctx *c, msr *m, int ready)
{
	void *z = zmq_ctx_new(), *sub, *pub = NULL;
	unsigned char buf[PAYLOAD];
	int tmo = 10000;
	if (!(sub = zsock(z, ZMQ_SUB, "connect", c->port)))
		return fail(m, "zmq sub");
	zmq_setsockopt(sub, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
	if (c->rtt && !(pub = zsock(z, ZMQ_XPUB, "bind", c->port2)))
		return fail(m, "zmq pub");
	if (write(ready, "r", 1) != 1)
		return fail(m, "ready");
	if (pub && zwait_sub(pub) != 0)
		return fail(m, "zmq subscription");
	for (uint64_t i = 0; i < c->n; i++) {
		if (zmq_recv(sub, buf, sizeof buf, 0) != PAYLOAD)
			break;
		m->count++;
		if (pub && zmq_send(pub, buf, sizeof buf, 0) != PAYLOAD)
			return fail(m, "zmq send");
	}
	m->t_last = now();
	m->lost = c->n - m->count;
	if (pub)
		zmq_close(pub);
	zmq_close(sub);
	zmq_ctx_term(z);
}

typedef struct zmq_link {
	void *pub, *sub;
} zmq_link;

static int zmq_link_send(void *arg, unsigned char *buf)
{
	return zmq_send(((zmq_link *)arg)->pub, buf, PAYLOAD, 0) == PAYLOAD ? 0 : -1;
}

static int zmq_link_echo(void *arg, unsigned char *buf)
{
	return zmq_recv(((zmq_link *)arg)->sub, buf, PAYLOAD, 0) == PAYLOAD ? 0 : -1;
}

static void zmq_sender(const ctx *c, msr *m)
{
	void *z = zmq_ctx_new();
	zmq_link zl = {NULL, NULL};
	xlink l = {zmq_link_send, zmq_link_echo, &zl};
	int tmo = 5000, linger = 30000;
	if (!(zl.pub = zsock(z, ZMQ_XPUB, "bind", c->port)))
		return fail(m, "zmq pub");
	if (c->rtt) {
		if (!(zl.sub = zsock(z, ZMQ_SUB, "connect", c->port2)))
			return fail(m, "zmq sub");
		zmq_setsockopt(zl.sub, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
	}
	if (zwait_sub(zl.pub) != 0)
		return fail(m, "zmq subscription");
	if (send_loop(c, m, &l) != 0)
		return;
	if (zl.sub)
		zmq_close(zl.sub);
	/* let the queue drain before the socket goes (LINGER 0 would drop it) */
	zmq_setsockopt(zl.pub, ZMQ_LINGER, &linger, sizeof linger);
	zmq_close(zl.pub);
	zmq_ctx_term(z);
}

/* ---- raw TCP -------------------------------------------------------------------- */

static int full_io(int fd, void *p, size_t n, int wr)
{
	size_t done = 0;
	while (done < n) {
		ssize_t k = wr ? write(fd, (char *)p + done, n - done) : read(fd, (char *)p + done, n - done);
		if (k <= 0)
			return -1;
		done += (size_t)k;
	}
	return 0;
}

static void tcp_receiver(const ctx *c, msr *m, int ready)
{
	struct sockaddr_in a;
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0), fd;
	static unsigned char buf[BUF];
	uint64_t bytes = 0, want = c->n * PAYLOAD;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)c->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1) != 0)
		return fail(m, "listen");
	if (write(ready, "r", 1) != 1 || (fd = accept(ls, NULL, NULL)) < 0)
		return fail(m, "accept");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (c->rtt) {
		for (uint64_t i = 0; i < c->n; i++) {
			if (full_io(fd, buf, PAYLOAD, 0) || full_io(fd, buf, PAYLOAD, 1))
				return fail(m, "echo");
			m->count++;
		}
	} else {
		while (bytes < want) {
			ssize_t k = read(fd, buf, sizeof buf);
			if (k <= 0)
				break;
			bytes += (uint64_t)k;
		}
		m->count = bytes / PAYLOAD;
	}
	m->t_last = now();
	m->lost = c->n - m->count;
	close(fd);
	close(ls);
}

typedef struct tcp_link {
	int fd, buffered; /* buffered: throughput, through buf */
	size_t used;
	unsigned char buf[BUF];
} tcp_link;

static int tcp_send(void *arg, unsigned char *rec)
{
	tcp_link *t = arg;
	if (!t->buffered)
		return full_io(t->fd, rec, PAYLOAD, 1);
	memcpy(t->buf + t->used, rec, PAYLOAD);
	if ((t->used += PAYLOAD) == sizeof t->buf) {
		t->used = 0;
		return full_io(t->fd, t->buf, sizeof t->buf, 1);
	}
	return 0;
}

static int tcp_echo(void *arg, unsigned char *rec)
{
	return full_io(((tcp_link *)arg)->fd, rec, PAYLOAD, 0);
}

static void tcp_sender(const ctx *c, msr *m)
{
	struct sockaddr_in a;
	int one = 1;
	static tcp_link tl;
	xlink l = {tcp_send, tcp_echo, &tl};
	tl.fd = socket(AF_INET, SOCK_STREAM, 0);
	tl.buffered = !c->rtt;
	tl.used = 0;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)c->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (tl.fd < 0 || connect(tl.fd, (struct sockaddr *)&a, sizeof a) != 0)
		return fail(m, "connect");
	setsockopt(tl.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (send_loop(c, m, &l) != 0)
		return;
	if (tl.used && full_io(tl.fd, tl.buf, tl.used, 1))
		return fail(m, "write");
	close(tl.fd);
}

/* ---- the two processes ------------------------------------------------------------ */

static pid_t child(const ctx *c, int receiver, int res, int ready)
{
	pid_t pid = fork();
	msr m;
	if (pid != 0)
		return pid;
	memset(&m, 0, sizeof m);
	m.ok = 1;
	switch (c->sys) {
	case SYS_BRIDGE:
	case SYS_BRIDGE_ASAP:
		receiver ? bridge_receiver(c, &m, ready) : bridge_sender(c, &m);
		break;
	case SYS_NATS:
	case SYS_NATS_ASAP:
		receiver ? nats_receiver(c, &m, ready) : nats_sender(c, &m);
		break;
	case SYS_ZMQ:
		receiver ? zmq_receiver(c, &m, ready) : zmq_sender(c, &m);
		break;
	default:
		receiver ? tcp_receiver(c, &m, ready) : tcp_sender(c, &m);
	}
	if (write(res, &m, sizeof m) != (ssize_t)sizeof m)
		_exit(1);
	_exit(0);
}

/* Reads one msr from fd within ms; 0 on success. */
static int read_msr(int fd, msr *m, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	if (poll(&p, 1, ms) != 1 || read(fd, m, sizeof *m) != (ssize_t)sizeof *m)
		return -1;
	return 0;
}

/* Waits up to ms for a child that is ending on its own (under valgrind it
 * still writes its profile), then kills it. */
static void reap(pid_t pid, int ms)
{
	for (int waited = 0; waited < ms; waited += 10) {
		struct timespec ts = {0, 10000000};
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int measure(ctx *c, msr *out)
{
	int rres[2], sres[2], rdy[2], ctl[2];
	pid_t rp, sp;
	msr r, s;
	char ch;
	memset(out, 0, sizeof *out);
	c->port = ns_free_port();
	c->port2 = ns_free_port();
	if (pipe(rres) || pipe(sres) || pipe(rdy) || pipe(ctl))
		return -1;
	c->ctl = ctl[0];
	fflush(NULL);
	rp = child(c, 1, rres[1], rdy[1]);
	{
		struct pollfd p = {rdy[0], POLLIN, 0};
		if (poll(&p, 1, 10000) != 1 || read(rdy[0], &ch, 1) != 1) {
			kill(rp, SIGKILL);
			waitpid(rp, NULL, 0);
			snprintf(out->err, sizeof out->err, "the receiver was not ready in 10 s");
			return -1;
		}
	}
	sp = child(c, 0, sres[1], rdy[1]);
	memset(&s, 0, sizeof s);
	memset(&r, 0, sizeof r);
	if (read_msr(sres[0], &s, 120000) != 0) {
		snprintf(s.err, sizeof s.err, "the sender did not finish in 120 s");
	} else { /* what the receiver can still get */
		uint64_t left = c->n > s.lost ? c->n - s.lost : 0;
		if (write(ctl[1], &left, sizeof left) != (ssize_t)sizeof left)
			snprintf(s.err, sizeof s.err, "control pipe");
	}
	if (c->rtt) /* the receiver echoes until told */
		kill(rp, SIGKILL);
	else if (read_msr(rres[0], &r, 120000) != 0)
		snprintf(r.err, sizeof r.err, "the receiver did not finish in 120 s");
	reap(sp, 60000);
	reap(rp, c->rtt ? 0 : 60000);
	close(rres[0]);
	close(rres[1]);
	close(sres[0]);
	close(sres[1]);
	close(rdy[0]);
	close(rdy[1]);
	close(ctl[0]);
	close(ctl[1]);
	*out = s;
	out->ok = s.ok && (c->rtt || r.ok);
	if (!s.ok || s.err[0])
		snprintf(out->err, sizeof out->err, "sender: %.180s", s.err);
	else if (!c->rtt && (!r.ok || r.err[0]))
		snprintf(out->err, sizeof out->err, "receiver: %.180s", r.err);
	out->t_last = r.t_last;
	out->count = r.count;
	out->lost = r.lost + s.lost;
	return out->ok ? 0 : -1;
}

static double median(double *v, unsigned n, double *lo, double *hi)
{
	double t[64] = {0};
	unsigned i, j;
	if (n == 0 || n > 64)
		return *lo = *hi = 0;
	for (i = 0; i < n; i++)
		t[i] = v[i];
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && t[j - 1] > t[j]; j--) {
			double x = t[j];
			t[j] = t[j - 1];
			t[j - 1] = x;
		}
	*lo = t[0];
	*hi = t[n - 1];
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

int bench_bridge(const bench_opts *o)
{
	static const int all_tput[] = {SYS_BRIDGE, SYS_NATS, SYS_ZMQ, SYS_TCP};
	static const int all_rtt[] = {SYS_BRIDGE, SYS_BRIDGE_ASAP, SYS_NATS, SYS_NATS_ASAP, SYS_ZMQ,
	                              SYS_TCP};
	int only = -1;
	const int *tput_sys = all_tput, *rtt_sys = all_rtt;
	unsigned ntput = sizeof all_tput / sizeof all_tput[0], nrtt = sizeof all_rtt / sizeof all_rtt[0];
	unsigned runs = o->runs > 32 ? 32 : o->runs;
	uint64_t n = o->events_set ? o->events : o->quick ? 200000 : 1000000;
	uint64_t rtts = o->quick ? 1000 : 5000;
	double rate[NSYS][32], p50[NSYS][32], p99[NSYS][32], p999[NSYS][32];
	uint64_t lost[NSYS] = {0};
	ns_server srv;
	int failed = 0;

	if (o->only) { /* one system's throughput, nothing else (instruction counts) */
		for (int k = 0; k < NSYS; k++)
			if (strcmp(o->only, sys_name[k]) == 0)
				only = k;
		if (only < 0 || only == SYS_BRIDGE_ASAP || only == SYS_NATS_ASAP) {
			fprintf(stderr, "ebus-bench: --only wants bridge, libnats, zmq-tcp or tcp\n");
			return 2;
		}
		tput_sys = &only;
		ntput = 1;
		nrtt = 0;
		runs = 1;
	}
	memset(&srv, 0, sizeof srv);
	memset(rate, 0, sizeof rate);
	memset(p50, 0, sizeof p50);
	memset(p99, 0, sizeof p99);
	memset(p999, 0, sizeof p999);
	if (system("command -v nats-server >/dev/null 2>&1") != 0) {
		printf("bridge: skipped: no nats-server on PATH (apt-get install nats-server)\n");
		return 0;
	}
	if (ns_start(&srv) != 0) {
		printf("bridge: skipped: nats-server did not start\n");
		return 0;
	}
	printf("nats-server on %s (loopback); %llu events of %d bytes per throughput run, %llu round "
	       "trips per latency run; %u runs, each system in turn in each\n",
	       srv.url, (unsigned long long)n, PAYLOAD, (unsigned long long)rtts, runs);
	for (unsigned r = 0; r < runs; r++) {
		for (unsigned k = 0; k < ntput; k++) {
			ctx c = {.sys = tput_sys[k], .rtt = 0, .n = n};
			msr m;
			snprintf(c.url, sizeof c.url, "%s", srv.url);
			rate[c.sys][r] = 0;
			if (measure(&c, &m) != 0) {
				printf("  run %u %s throughput: failed: %s\n", r + 1, sys_name[c.sys], m.err);
				failed = 1;
				continue;
			}
			rate[c.sys][r] = (double)m.count / ((double)(m.t_last - m.t_first) / 1e9);
			lost[c.sys] += m.lost;
			if (o->verbose)
				fprintf(stderr, "  run %u %-18s %.0f events/s, %llu delivered, %llu lost\n", r + 1,
				        sys_name[c.sys], rate[c.sys][r], (unsigned long long)m.count,
				        (unsigned long long)m.lost);
		}
		for (unsigned k = 0; k < nrtt; k++) {
			ctx c = {.sys = rtt_sys[k], .rtt = 1, .n = rtts};
			msr m;
			snprintf(c.url, sizeof c.url, "%s", srv.url);
			p50[c.sys][r] = p99[c.sys][r] = p999[c.sys][r] = 0;
			if (measure(&c, &m) != 0) {
				printf("  run %u %s round trip: failed: %s\n", r + 1, sys_name[c.sys], m.err);
				failed = 1;
				continue;
			}
			p50[c.sys][r] = m.p50;
			p99[c.sys][r] = m.p99;
			p999[c.sys][r] = m.p999;
			if (o->verbose)
				fprintf(stderr, "  run %u %-18s round trip p50 %.1f us p99 %.1f us p99.9 %.1f us\n",
				        r + 1, sys_name[c.sys], m.p50 / 1e3, m.p99 / 1e3, m.p999 / 1e3);
		}
	}
	ns_stop(&srv, 0);
	if (only >= 0) {
		printf("%s alone: %.2f M events/s, %llu lost\n", sys_name[only], rate[only][0] / 1e6,
		       (unsigned long long)lost[only]);
		return failed;
	}

	printf("\n%-20s %14s %22s %10s\n", "throughput", "M events/s", "vs libnats (min-max)", "lost");
	for (unsigned k = 0; k < ntput; k++) {
		int s = tput_sys[k];
		double ratio[32], lo, hi, rlo, rhi, med, rmed;
		for (unsigned r = 0; r < runs; r++)
			ratio[r] = rate[SYS_NATS][r] > 0 ? rate[s][r] / rate[SYS_NATS][r] : 0;
		med = median(rate[s], runs, &lo, &hi);
		rmed = median(ratio, runs, &rlo, &rhi);
		printf("%-20s %6.2f (%.2f-%.2f) %8.2fx (%.2f-%.2f) %10llu\n", sys_name[s], med / 1e6,
		       lo / 1e6, hi / 1e6, rmed, rlo, rhi, (unsigned long long)lost[s]);
	}
	printf("\n%-20s %22s %9s %13s %9s %s\n", "round trip", "p50 us (min-max)", "p99 us",
	       "p99.9 us", "", "p50 vs libnats in the same mode");
	for (unsigned k = 0; k < nrtt; k++) {
		int s = rtt_sys[k];
		int ref = s == SYS_BRIDGE_ASAP || s == SYS_NATS_ASAP ? SYS_NATS_ASAP : SYS_NATS;
		double ratio[32], a, b, c, d, e, f, g, h, med50;
		for (unsigned r = 0; r < runs; r++)
			ratio[r] = p50[ref][r] > 0 ? p50[s][r] / p50[ref][r] : 0;
		med50 = median(p50[s], runs, &a, &b);
		printf("%-20s %7.1f (%.1f-%.1f) %9.1f %13.1f %9s %.2fx", sys_name[s], med50 / 1e3, a / 1e3,
		       b / 1e3, median(p99[s], runs, &c, &d) / 1e3, median(p999[s], runs, &e, &f) / 1e3,
		       "", median(ratio, runs, &g, &h));
		printf(" (%.2f-%.2f) vs %s\n", g, h, sys_name[ref]);
	}
	return failed;
}
