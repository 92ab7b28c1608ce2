/*
 * References for ebus-gbench, written in C because ck_ring.h does not
 * compile as C++ (its typed reserve returns void * and one path returns
 * `false` for a pointer). Each reference is measured in the same binary as
 * the ebus benchmark it is compared with, so machine drift cancels out.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef EBUS_GBENCH_REFS_H
#define EBUS_GBENCH_REFS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A raw Concurrency Kit SPSC ring of 64-byte slots (the layout of an ebus
 * lane slot: payload inline up to EBUS_INLINE_MAX bytes, larger payloads
 * copied into a malloc'd buffer that the consumer frees), with one consumer
 * thread that drains it in batches: one acquire load of p_tail, up to
 * `batch` slots handled in place (a call through a function pointer each),
 * one release store of c_head. A full ring makes the producer spin.
 */
typedef struct ref_ring ref_ring;

/* capacity: power of two >= 4. Starts the consumer thread. NULL on error. */
ref_ring *ref_ring_create(unsigned capacity, unsigned batch);
/* reserve (spin while full) + fill the slot + commit. 0, or -1 if malloc failed. */
int ref_ring_publish(ref_ring *r, const void *data, size_t len);
/* Waits until the consumer has handled everything published so far. */
void ref_ring_drain(ref_ring *r);
/* Events the consumer handled (exact after ref_ring_drain). */
uint64_t ref_ring_consumed(ref_ring *r);
/* Makes the consumer stop before its next batch and returns once it has
 * (it then sleeps on a condition variable, off the ring and off the CPU);
 * ref_ring_unhold lets it go. */
void ref_ring_hold(ref_ring *r);
void ref_ring_unhold(ref_ring *r);
/* Stops and joins the consumer, frees everything. */
void ref_ring_destroy(ref_ring *r);

/* One urcu-qsbr grace period from an unregistered thread: the wait that a
 * blocking ebus_unsubscribe adds to its own work. */
void ref_rcu_grace_period(void);

#ifdef __cplusplus
}
#endif
#endif
