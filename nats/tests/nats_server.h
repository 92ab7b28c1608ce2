/*
 * Test fixture: a real nats-server on a loopback port. Picks a free port
 * (bind to port 0, read it back, close), starts `nats-server -a 127.0.0.1
 * -p PORT`, waits until its log says it is ready and the port sends its
 * INFO line (bounded: poll on the log pipe with a deadline, no sleep), and
 * stops it by its PID (SIGTERM, or SIGKILL to simulate a crash).
 * Restarting on the same port is the same start.
 */
#ifndef EBUS_NATS_SERVER_H
#define EBUS_NATS_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct ns_server {
	pid_t pid;
	int port;
	int logfd; /* the server's stderr (kept open: it logs there) */
	const char *jsdir; /* NULL, or JetStream on with its store here */
	char url[64];
} ns_server;

static void ns_stop(struct ns_server *s, int hard);

static uint64_t ns_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A port nobody listens on now (the kernel's pick). */
static int ns_free_port(void)
{
	struct sockaddr_in a;
	socklen_t n = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &n) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* True once a TCP connection to the port receives "INFO". */
static int ns_info(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok = 0;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
		struct pollfd p = {fd, POLLIN, 0};
		char buf[8] = {0};
		if (poll(&p, 1, 2000) == 1 && recv(fd, buf, 4, MSG_WAITALL) == 4 &&
		    memcmp(buf, "INFO", 4) == 0)
			ok = 1;
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Reads the server's log (its stderr, a pipe) until "Server is ready",
 * bounded by deadline_ms: poll on the pipe, no sleeping. */
static int ns_wait_ready(int logfd, unsigned deadline_ms)
{
	char buf[4096];
	size_t used = 0;
	uint64_t end = ns_now_ms() + deadline_ms;
	for (;;) {
		uint64_t now = ns_now_ms();
		struct pollfd p = {logfd, POLLIN, 0};
		ssize_t n;
		if (now >= end || poll(&p, 1, (int)(end - now)) != 1)
			return 0;
		n = read(logfd, buf + used, sizeof buf - 1 - used);
		if (n <= 0)
			return 0; /* it exited */
		used += (size_t)n;
		buf[used] = '\0';
		if (strstr(buf, "Server is ready"))
			return 1;
		if (used > sizeof buf / 2) { /* keep the tail */
			memmove(buf, buf + used - 64, 64);
			used = 64;
		}
	}
}

/* Starts a server on s->port (0: a free one). Returns 0, or -1 with a
 * message on stderr (nats-server missing: how to install it). */
static int ns_start(ns_server *s)
{
	char port[16];
	char *argv[] = {"nats-server", "-a", "127.0.0.1", "-p", port, NULL, NULL, NULL, NULL};
	posix_spawn_file_actions_t fa;
	int pfd[2];
	if (s->port <= 0 && (s->port = ns_free_port()) <= 0) {
		fprintf(stderr, "no free port\n");
		return -1;
	}
	snprintf(port, sizeof port, "%d", s->port);
	if (s->jsdir) {
		argv[5] = "-js";
		argv[6] = "-sd";
		argv[7] = (char *)s->jsdir;
	}
	snprintf(s->url, sizeof s->url, "nats://127.0.0.1:%d", s->port);
	if (pipe(pfd) != 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	/* not the test's stdout: a reader of it would wait for the server */
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&s->pid, "nats-server", &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[0]);
		close(pfd[1]);
		fprintf(stderr, "cannot run nats-server: apt-get install nats-server\n");
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	s->logfd = pfd[0];
	if (!ns_wait_ready(s->logfd, 10000) || !ns_info(s->port)) {
		fprintf(stderr, "nats-server on port %d did not become ready in 10 s\n", s->port);
		ns_stop(s, 1);
		return -1;
	}
	return 0;
}

/* Stops it by its PID: SIGKILL when `hard`, else SIGTERM; waits for it. */
static void ns_stop(ns_server *s, int hard)
{
	if (s->pid > 0) {
		kill(s->pid, hard ? SIGKILL : SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	if (s->logfd > 0) {
		close(s->logfd);
		s->logfd = 0;
	}
}

#endif
