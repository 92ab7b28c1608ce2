/*
 * Two processes through a real nats-server with tools/ebus-bridge:
 * `ebus-bridge sub` in one, `ebus-bridge pub` in the other, N lines in,
 * the same N lines out, in order, exactly once; and the sub's --metrics
 * endpoint answers GET /metrics with text that `promtool check metrics`
 * accepts (Debian's prometheus package). The subscriber says "ready" on
 * stderr once its subscription is live at the server; everything else
 * waits on pipes with a deadline, never on the clock.
 *
 *   test_nats_processes EBUS_BRIDGE PROMTOOL
 */
#define _GNU_SOURCE
#include "nats_server.h"

#include <stdint.h>

static ns_server server;
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
	return 0;
}
