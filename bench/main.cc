/*
 * ebus-gbench: Google Benchmark micro-benchmarks of ebus. The benchmarks
 * register themselves from publish.cc, dispatch.cc, subscribe.cc,
 * topic.cc and wakeup.cc; see README.md in this directory.
 *
 * SPDX-License-Identifier: MIT
 */
#include <benchmark/benchmark.h>
#include <ebus/ebus.h>

#include <cstdio>
#include <cstring>

// BENCHMARK_MAIN, plus --version (every tool of the project has one).
int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (std::strcmp(argv[i], "--version") == 0) {
			std::printf("ebus-gbench %s (running ebus %s)\n", EBUS_VERSION_STRING, ebus_version());
			return 0;
		}
	}
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}
