/* Harness of the README's end-of-batch snippet: a journal handler that
 * appends each event to a buffer and writes the buffer out only on the
 * flag, and checks each source's sequence for gaps. After a burst, every
 * event was written exactly once, in order, in fewer writes than events
 * or as many, never with data left in the buffer. */
#include <ebus/ebus.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 1000
struct journal {
	unsigned char buf[64 * 1024];
	size_t used;
	uint64_t last_seq; /* one publishing thread here */
	uint64_t gaps, writes, bytes;
	uint64_t written[N];
	size_t nwritten;
};

static void write_out(struct journal *j, const unsigned char *p, size_t n)
{
	j->writes++;
	j->bytes += n;
	for (size_t i = 0; i + 8 <= n; i += 8)
		memcpy(&j->written[j->nwritten++], p + i, 8);
}

/* SNIPPET */

int main(void)
{
	static struct journal j;
	ebus_t *bus;
	ebus_topic_t *t;
	ebus_sub_id id;
	if (ebus_create(NULL, &bus) != EBUS_OK || ebus_topic(bus, "fills", &t) != EBUS_OK ||
	    ebus_subscribe(t, on_fill, &j, &id) != EBUS_OK)
		return 1;
	for (uint64_t i = 0; i < N; i++)
		if (ebus_publish(t, &i, sizeof i) != EBUS_OK)
			return 1;
	ebus_flush(bus, 0);
	ebus_destroy(bus);
	if (j.used != 0 || j.nwritten != N || j.gaps != 0 || j.writes == 0 || j.writes > N) {
		fprintf(stderr, "used %zu, written %zu, gaps %llu, writes %llu\n", j.used, j.nwritten,
		        (unsigned long long)j.gaps, (unsigned long long)j.writes);
		return 1;
	}
	for (size_t i = 0; i < N; i++)
		if (j.written[i] != i)
			return 1;
	printf("%d events in %llu writes\n", N, (unsigned long long)j.writes);
	return 0;
}
