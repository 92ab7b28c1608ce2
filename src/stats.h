/*
 * Statistics (stats.c): what tests may reach of it. Self-contained (no ck,
 * no liburcu) so that tests/test_stats.c can include it. Nothing here is
 * API.
 */
#ifndef EBUS_STATS_H
#define EBUS_STATS_H

#include "ebus/ebus.h"
#include "hist.h"

#include <stddef.h>
#include <stdint.h>

/* Test hook: a snapshot whose histogram holds exactly these n samples (ns)
 * and nothing else (no executors, no topics). Free with ebus_snapshot_free. */
int ebus_snapshot_from_samples_(const uint64_t *ns, size_t n, ebus_snapshot_t **out);

#endif
