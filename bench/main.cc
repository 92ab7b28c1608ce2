/*
 * ebus-gbench: Google Benchmark micro-benchmarks of ebus. The benchmarks
 * register themselves from publish.cc, dispatch.cc, subscribe.cc,
 * topic.cc and wakeup.cc; see README.md in this directory.
 *
 * SPDX-License-Identifier: MIT
 */
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
