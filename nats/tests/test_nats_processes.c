/*
 * Two processes through a real nats-server with tools/ebus-bridge:
 * `ebus-bridge sub` in one, `ebus-bridge pub` in the other, N lines in,
 * the same N lines out, in order, exactly once; and the sub's --metrics
 * endpoint answers GET /metrics with text that `promtool check metrics`
 * accepts (Debian's prometheus package). The subscriber says "ready" on
 * stderr once its subscription is live at the server; everything else
 * waits on pipes with a deadline, never on the clock.
 *
 * Then JetStream (a second server, with -js): `ebus-bridge --jetstream
 * pub` stores N lines; a `sub --durable D` is SIGKILLed mid-stream (its
 * stdout pipe is left full, so it is stuck inside a handler with a batch
 * unacknowledged), and a second `sub --durable D` catches up: every line
 * arrives in the union of the two, none twice within the second, no gap,
 * and the lines both saw are at most the second's redelivered count.
 *
 *   test_nats_processes EBUS_BRIDGE PROMTOOL
 */
#define _GNU_SOURCE
#include "nats_server.h"

#include <stdint.h>

static ns_server server, js_server;
static const char *bridge_bin, *promtool_bin;

#define CHECK(c)                                                                         \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); \
			exit(1);                                                         \
		}                                                                        \
	} while (0)

static void stop_server(void)
{
	ns_stop(&server, 1);
	ns_stop(&js_server, 1);
}

/* Runs argv with pipes to its stdin (*in, -1: none), stdout (*out) and
 * stderr (*err). */
static pid_t spawn(char *const argv[], int *in, int *out, int *err)
{
	posix_spawn_file_actions_t fa;
	int pi[2] = {-1, -1}, po[2], pe[2];
	pid_t pid;
	CHECK(pipe(po) == 0 && pipe(pe) == 0);
	if (in)
		CHECK(pipe(pi) == 0);
	posix_spawn_file_actions_init(&fa);
	if (in) {
		posix_spawn_file_actions_adddup2(&fa, pi[0], 0);
		posix_spawn_file_actions_addclose(&fa, pi[1]);
	}
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	posix_spawn_file_actions_addclose(&fa, po[0]);
	posix_spawn_file_actions_addclose(&fa, pe[0]);
	CHECK(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0);
	posix_spawn_file_actions_destroy(&fa);
	if (in) {
		close(pi[0]);
		*in = pi[1];
	}
	close(po[1]);
	close(pe[1]);
	*out = po[0];
	*err = pe[0];
	return pid;
}

/* Reads from fd into buf until `needle` appears or n lines were read
 * (needle NULL), bounded by 20 s (poll, no sleeping). Returns the bytes. */
static size_t read_until(int fd, char *buf, size_t cap, const char *needle, unsigned lines)
{
	size_t used = 0;
	uint64_t end = ns_now_ms() + 20000;
	for (;;) {
		unsigned nl = 0;
		struct pollfd p = {fd, POLLIN, 0};
		uint64_t now = ns_now_ms();
		ssize_t n;
		buf[used] = '\0';
		if (needle && strstr(buf, needle))
			return used;
		for (size_t i = 0; i < used; i++)
			nl += buf[i] == '\n';
		if (!needle && nl >= lines)
			return used;
		if (now >= end || poll(&p, 1, (int)(end - now)) != 1)
			return used;
		n = read(fd, buf + used, cap - 1 - used);
		if (n <= 0)
			return used;
		used += (size_t)n;
	}
}

static int exit_code(pid_t pid)
{
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* GET /metrics from 127.0.0.1:port; returns the body (malloc'd). */
static char *http_get(int port)
{
	struct sockaddr_in a;
	static char buf[1 << 20];
	char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t used = 0;
	char *body;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1));
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;
		if (poll(&p, 1, 20000) != 1)
			break;
		n = read(fd, buf + used, sizeof buf - 1 - used);
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	buf[used] = '\0';
	CHECK(strncmp(buf, "HTTP/1.", 7) == 0 && strstr(buf, " 200 "));
	body = strstr(buf, "\r\n\r\n");
	CHECK(body != NULL);
	return strdup(body + 4);
}

/* The value after `key` in a counters line ("... redelivered 12; ..."). */
static unsigned long long counter(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	CHECK(p != NULL);
	return strtoull(p + strlen(key), NULL, 10);
}

/* Marks each "jsx.line j <i> <padding>" line of buf[0..n) in seen[]
 * (counts), and checks that i only grows within the buffer. Returns the
 * lines. */
static unsigned mark_lines(const char *buf, size_t n, unsigned *seen, unsigned N)
{
	const char *p = buf, *end = buf + n;
	unsigned lines = 0;
	long last = -1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		long i;
		if (!nl)
			break; /* a partial last line: the process was killed mid-write */
		CHECK(strncmp(p, "jsx.line j ", 11) == 0);
		i = strtol(p + 11, NULL, 10);
		CHECK(i >= 0 && i < (long)N && i > last); /* in stream order */
		last = i;
		seen[i]++;
		lines++;
		p = nl + 1;
	}
	return lines;
}

static void jetstream_restart(void)
{
	enum { N = 3000, KILL_AFTER = 600 };
	static char out1[1 << 21], out2[1 << 21], err1[1 << 16];
	static unsigned seen1[N], seen2[N];
	char dir[] = "/tmp/ebus-js-XXXXXX", pad[201];
	int pin, pout, perr, o1, e1, o2, e2;
	pid_t pub, s1, s2;
	size_t n1, n2;
	unsigned both = 0, missing = 0, twice = 0;
	CHECK(mkdtemp(dir) != NULL);
	js_server.jsdir = dir;
	CHECK(ns_start(&js_server) == 0);
	memset(pad, 'x', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0'; /* long lines: a pipe holds ~300 of them */

	char *pub_argv[] = {(char *)bridge_bin, "--server", js_server.url, "--prefix", "js",
	                    "--jetstream", "pub", "jsx.line", NULL};
	pub = spawn(pub_argv, &pin, &pout, &perr);
	for (int i = 0; i < N; i++) {
		char line[256];
		int n = snprintf(line, sizeof line, "j %d %s\n", i, pad);
		CHECK(write(pin, line, (size_t)n) == n);
	}
	close(pin);
	CHECK(exit_code(pub) == 0);
	read_until(perr, err1, sizeof err1, "bridge:", 0);
	CHECK(counter(err1, "exported ") == N); /* stored: the server acknowledged each */
	close(pout);
	close(perr);

	/* the first importer, killed with a batch in flight */
	char *sub_argv[] = {(char *)bridge_bin, "--server", js_server.url, "--prefix", "js",
	                    "--jetstream", "--durable", "D", "sub", "jsx.>", NULL};
	s1 = spawn(sub_argv, NULL, &o1, &e1);
	/* a pipe of one page: the importer's handler blocks on it a few lines
	 * ahead of this reader, while its fetcher could go on */
	CHECK(fcntl(o1, F_SETPIPE_SZ, 4096) > 0);
	n1 = read_until(o1, out1, sizeof out1, NULL, KILL_AFTER);
	kill(s1, SIGKILL);
	CHECK(exit_code(s1) == 128 + SIGKILL);
	n1 += read_until(o1, out1 + n1, sizeof out1 - n1, "\x01", 0); /* what it wrote before */
	close(o1);
	close(e1);

	/* the second catches up */
	s2 = spawn(sub_argv, NULL, &o2, &e2);
	{
		unsigned got1 = mark_lines(out1, n1, seen1, N);
		CHECK(got1 >= KILL_AFTER && got1 < N); /* killed mid-stream */
		n2 = 0;
		for (;;) { /* until every line was seen by one of them */
			size_t more = read_until(o2, out2 + n2, sizeof out2 - n2, NULL, 1);
			unsigned all = 0;
			if (more == 0) { /* 20 s and nothing: what never came is lost */
				unsigned lost = 0;
				for (int i = 0; i < N; i++)
					lost += !seen1[i] && !seen2[i];
				fprintf(stderr, "JetStream: %u lines never came to either importer\n", lost);
				CHECK(more > 0);
			}
			n2 += more;
			memset(seen2, 0, sizeof seen2);
			mark_lines(out2, n2, seen2, N);
			for (int i = 0; i < N; i++)
				all += seen1[i] || seen2[i];
			if (all == N)
				break;
		}
		kill(s2, SIGTERM);
		CHECK(exit_code(s2) == 0);
		n2 += read_until(o2, out2 + n2, sizeof out2 - n2, "\x01", 0);
		memset(seen2, 0, sizeof seen2);
		mark_lines(out2, n2, seen2, N);
		read_until(e2, err1, sizeof err1, "bridge:", 0);
		for (int i = 0; i < N; i++) {
			both += seen1[i] && seen2[i];
			missing += !seen1[i] && !seen2[i];
			twice += seen2[i] > 1;
		}
		printf("JetStream: %d stored; the first importer printed %u lines and was killed; the "
		       "second printed %u: %u lines seen by both, %u missing, %u twice in one; it "
		       "said: %s",
		       N, got1, (unsigned)(n2 ? mark_lines(out2, n2, seen2, N) : 0), both, missing, twice,
		       strstr(err1, "bridge:") ? strstr(err1, "bridge:") : "(nothing)\n");
		CHECK(missing == 0 && twice == 0);
		CHECK(counter(err1, "gaps ") == 0);
		CHECK(both <= counter(err1, "redelivered ")); /* every duplicate counted */
	}
	close(o2);
	close(e2);
	ns_stop(&js_server, 0);
	{
		char cmd[64];
		snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
		CHECK(system(cmd) == 0);
	}
}

int main(int argc, char **argv)
{
	enum { N = 2000 };
	char count[16], port_s[16], metrics[32];
	int sub_out, sub_err, pub_in, pub_out, pub_err, mport;
	pid_t sub, pub;
	static char out[1 << 20], err[1 << 16];
	if (argc != 3) {
		fprintf(stderr, "usage: test_nats_processes EBUS_BRIDGE PROMTOOL\n");
		return 2;
	}
	bridge_bin = argv[1];
	promtool_bin = argv[2];
	if (ns_start(&server) != 0)
		return 1;
	atexit(stop_server);
	snprintf(count, sizeof count, "%d", N);
	mport = ns_free_port();
	snprintf(port_s, sizeof port_s, "%d", mport);
	snprintf(metrics, sizeof metrics, "127.0.0.1:%d", mport);

	/* the subscriber, ready when it says so (its subscription is live) */
	char *sub_argv[] = {(char *)bridge_bin, "--server", server.url, "--count", count,
	                    "--metrics", metrics, "sub", "md.>", NULL};
	sub = spawn(sub_argv, NULL, &sub_out, &sub_err);
	read_until(sub_err, err, sizeof err, "ready", 0);
	CHECK(strstr(err, "ready"));

	/* its metrics, through promtool, while it runs */
	{
		char *body = http_get(mport);
		int pin, pout, perr;
		char *pt_argv[] = {(char *)promtool_bin, "check", "metrics", NULL};
		pid_t pt;
		char pt_err[4096];
		int rc;
		size_t e;
		CHECK(strstr(body, "ebus_nats_imported_total"));
		CHECK(strstr(body, "ebus_nats_lost_total{cause=\"gap\"}"));
		CHECK(strstr(body, "ebus_published_total"));
		pt = spawn(pt_argv, &pin, &pout, &perr);
		CHECK(write(pin, body, strlen(body)) == (ssize_t)strlen(body));
		close(pin);
		e = read_until(perr, pt_err, sizeof pt_err, "\x01", 0); /* to its end */
		rc = exit_code(pt);
		if (rc != 0)
			fprintf(stderr, "promtool: %.*s\n", (int)e, pt_err);
		CHECK(rc == 0);
		free(body);
	}

	/* the publisher: N lines in */
	char *pub_argv[] = {(char *)bridge_bin, "--server", server.url, "pub", "md.ticks", NULL};
	pub = spawn(pub_argv, &pub_in, &pub_out, &pub_err);
	for (int i = 0; i < N; i++) {
		char line[64];
		int n = snprintf(line, sizeof line, "tick %d\n", i);
		CHECK(write(pub_in, line, (size_t)n) == n);
	}
	close(pub_in);
	{
		int rc = exit_code(pub);
		if (rc != 0) {
			static char pe[1 << 16];
			size_t n = read_until(pub_err, pe, sizeof pe, "\x01", 0); /* to its end */
			fprintf(stderr, "ebus-bridge pub exited with %d:\n%.*s\n", rc, (int)n, pe);
		}
		CHECK(rc == 0);
	}

	/* N lines out, in order, and nothing else */
	size_t got = read_until(sub_out, out, sizeof out, NULL, N);
	{
		char *p = out;
		for (int i = 0; i < N; i++) {
			char want[64];
			int n = snprintf(want, sizeof want, "md.ticks tick %d\n", i);
			CHECK((size_t)(p - out) + (size_t)n <= got && memcmp(p, want, (size_t)n) == 0);
			p += n;
		}
		CHECK((size_t)(p - out) == got);
	}

	CHECK(exit_code(sub) == 0); /* it exits after N events */
	read_until(sub_err, err, sizeof err, "bridge:", 0);
	printf("%d lines from pub to sub through nats-server, in order; sub said: %s", N,
	       strstr(err, "bridge:") ? strstr(err, "bridge:") : "(nothing)\n");
	jetstream_restart();
	return 0;
}
