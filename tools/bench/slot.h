/*
 * The slot the raw references (ck_ring, mutex queue) carry: one cache line
 * like an ebus lane slot, payload inline up to the same EBUS_INLINE_MAX,
 * larger payloads copied into a malloc'd buffer the consumer frees: the
 * same work ebus does for its bus-owned buffer path, so --payload above
 * the inline limit compares like with like.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef EBUS_BENCH_SLOT_H
#define EBUS_BENCH_SLOT_H

#include <ebus/ebus.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct bench_slot {
	unsigned char *ext; /* NULL: the payload is in data[] */
	uint32_t len;
	uint32_t pad_;
	unsigned char data[EBUS_INLINE_MAX];
} __attribute__((aligned(64)));
_Static_assert(sizeof(struct bench_slot) == 64, "a slot is one cache line");

/* Copies len bytes of buf into the slot. -1 if malloc failed. */
static inline int bench_slot_put(struct bench_slot *s, const unsigned char *buf, size_t len)
{
	s->len = (uint32_t)len;
	if (len <= sizeof s->data) {
		s->ext = NULL;
		memcpy(s->data, buf, len);
		return 0;
	}
	s->ext = malloc(len);
	if (!s->ext)
		return -1;
	memcpy(s->ext, buf, len);
	return 0;
}

static inline const void *bench_slot_data(const struct bench_slot *s)
{
	return s->ext ? s->ext : s->data;
}

static inline void bench_slot_release(struct bench_slot *s)
{
	free(s->ext); /* NULL for inline payloads */
}

#endif
