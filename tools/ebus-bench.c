/*
 * ebus-bench: scenario benchmark of ebus against references measured in the
 * same process and run (a raw ck_ring SPSC ring, a mutex+condvar queue and,
 * when built with it, ZeroMQ inproc PUB/SUB). Every claim is a ratio to a
 * reference from the same run; every run verifies count, order and a
 * checksum, and a failed run makes the exit status non-zero.
 *
 * This file: options, the header, and the scenario table. The driver and
 * the systems live in bench/.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench/bench.h"

#include <ck_md.h>
#include <ebus/ebus.h>
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#ifdef EBUS_BENCH_HAVE_ZMQ
#include <zmq.h>
#endif

#define DEFAULT_EVENTS 2000000ull
#define QUICK_EVENTS 500000ull
#define DEFAULT_RUNS 5u
#define MAX_RUNS 1000u

/* Scenarios by name; NULL marks one that is planned but not written yet. */
static const struct {
	const char *name;
	const bench_scenario *sc;
} scenarios[] = {
	{"throughput", &bench_scenario_throughput},
	{"fanout", &bench_scenario_fanout},
	{"multi", &bench_scenario_multi},
	{"pingpong", &bench_scenario_pingpong},
	{"latency", &bench_scenario_latency},
	{"by-name", &bench_scenario_by_name},
	{"idle", &bench_scenario_idle},
};

#define DEFAULT_PUBLISHERS 2u
#define DEFAULT_TOPICS 4u
#define DEFAULT_EXECUTORS 1u
#define DEFAULT_RATE 200000ull
#define DEFAULT_IDLE_MS 2000u
#define QUICK_IDLE_MS 300u
#define MAX_THREADS 1024u

static const struct {
	const char *name;
	ebus_wait wait;
} waits[] = {
	{"default", EBUS_WAIT_DEFAULT},
	{"busy", EBUS_WAIT_BUSY_SPIN},
	{"yield", EBUS_WAIT_SPIN_YIELD},
	{"park", EBUS_WAIT_SPIN_PARK},
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: ebus-bench [options]\n"
	        "\n"
	        "Runs a scenario through ebus and through references in the same process,\n"
	        "interleaved, and prints medians and ratios. Every run is verified (count,\n"
	        "order, checksum); any failure makes the exit status non-zero.\n"
	        "\n"
	        "  --scenario NAME   all (default: each of the below in turn), or one of\n"
	        "                    throughput  1 publisher -> 1 topic -> 1 subscriber\n"
	        "                    fanout      1 publisher -> 1 topic -> 4 subscribers\n"
	        "                    multi       P publishers x T topics over E executors\n"
	        "                    pingpong    round-trip latency over two topics\n"
	        "                    latency     publish-to-callback latency at a fixed rate\n"
	        "                    by-name     throughput with ebus_publish_name\n"
	        "                    idle        idle CPU of a parked consumer, and its wake latency\n"
	        "                    bridge      two processes through nats-server: the NATS bridge\n"
	        "                                against libnats, ZeroMQ TCP and raw TCP (not in\n"
	        "                                all; --events: events per run, default 1000000,\n"
	        "                                --quick 200000; tables only, no JSON;\n"
	        "                                --only SYSTEM: that system's throughput alone,\n"
	        "                                for scripts/cost-bridge.sh)\n"
	        "  --events N        events per run (default %llu; --quick: %llu); multi: in all,\n"
	        "                    split over the P x T streams; pingpong: round trips (default\n"
	        "                    100000, --quick 10000); latency: default rate x 1 s\n"
	        "                    (--quick: rate x 0.25 s); idle: wake samples (default 500,\n"
	        "                    --quick 100)\n"
	        "  --runs N          timed runs per system, after one warm-up each (default %u)\n"
	        "  --payload BYTES   payload size, at least %d (default 32; multi and latency:\n"
	        "                    at least 25); above %d bytes ebus copies into a bus-owned\n"
	        "                    buffer\n"
	        "  --capacity N      lane / ring / queue capacity, a power of two in [4, 2^24]\n"
	        "                    (default 1024; each holds N-1 events)\n"
	        "  --wait W          ebus executor wait strategy: default|busy|yield|park\n"
	        "                    (default: the bus's default)\n"
	        "  --cpus P,C        pin the publisher to CPU P and the consumer/executor to C\n"
	        "                    (pingpong: A on P, B on C; for ebus, executor 1 (A) on P\n"
	        "                    and executor 0 (B) on C, ebus-3t executors unpinned;\n"
	        "                    multi: not applied)\n"
	        "  --publishers P    multi: publisher threads (default %u)\n"
	        "  --topics T        multi: topics, each publisher publishes on all (default %u)\n"
	        "  --executors E     multi: ebus executors = reference consumer threads (default %u)\n"
	        "  --rate N          latency: events per second the publisher paces at (default %llu)\n"
	        "  --idle-ms MS      idle: length of the idle window (default %u; --quick: %u)\n"
	        "  --quick           fewer events (%llu), for a run of all scenarios under a minute\n"
	        "  --timeout SEC     a run not done after SEC seconds is a failure (default 60)\n"
	        "  --json            JSON Lines on stdout (schema " BENCH_JSON_SCHEMA "): a header line,\n"
	        "                    then one object per system, latency histograms included;\n"
	        "                    the human-readable header goes to stderr\n"
	        "  --json-out FILE   the tables on stdout, and the same JSON into FILE\n"
	        "                    (latency scenarios: p50_ns, p99_ns, p999_ns, max_ns)\n"
	        "  -v, --verbose     one line per run on stderr (ebus: executor parks/wakeups)\n"
	        "  --version         the versions of ebus-bench, ebus, ck and libzmq\n"
	        "  -h, --help        this text\n",
	        DEFAULT_EVENTS, QUICK_EVENTS, DEFAULT_RUNS, BENCH_PAYLOAD_MIN, EBUS_INLINE_MAX,
	        DEFAULT_PUBLISHERS, DEFAULT_TOPICS, DEFAULT_EXECUTORS, DEFAULT_RATE, DEFAULT_IDLE_MS,
	        QUICK_IDLE_MS, QUICK_EVENTS);
}

/* Unsigned decimal; ',' and '_' may separate digits ("2,000,000"). */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	int digits = 0;

	for (; *s; s++) {
		if (*s == ',' || *s == '_')
			continue;
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
		digits++;
	}
	if (!digits)
		return -1;
	*out = v;
	return 0;
}

static int cpu_allowed(int cpu)
{
	cpu_set_t set;
	if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof set, &set) != 0)
		return 0;
	return CPU_ISSET(cpu, &set);
}

static int parse_cpus(const char *s, int *pub, int *sub)
{
	char *end;
	long a, b;

	errno = 0;
	a = strtol(s, &end, 10);
	if (end == s || *end != ',')
		return -1;
	s = end + 1;
	b = strtol(s, &end, 10);
	if (end == s || *end != '\0' || errno)
		return -1;
	if (a < 0 || b < 0 || a >= CPU_SETSIZE || b >= CPU_SETSIZE)
		return -1;
	*pub = (int)a;
	*sub = (int)b;
	return 0;
}

static void cpu_model(char *buf, size_t n)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(buf, n, "unknown CPU");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		char *colon;
		if (strncmp(line, "model name", 10) != 0 || !(colon = strchr(line, ':')))
			continue;
		colon++;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, n, "%s", colon);
		break;
	}
	fclose(f);
}

/* ebus-bench is versioned with the library it is built with. */
static void print_versions(FILE *f)
{
	fprintf(f, "ebus-bench %s (built against ebus %s, running ebus %s, ck %s", EBUS_VERSION_STRING,
	        EBUS_VERSION_STRING, ebus_version(), CK_VERSION);
#ifdef EBUS_BENCH_HAVE_ZMQ
	{
		int ma, mi, pa;
		zmq_version(&ma, &mi, &pa);
		fprintf(f, ", zmq %d.%d.%d", ma, mi, pa);
	}
#endif
	fprintf(f, ")\n");
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(FILE *f, const char *v)
{
	fputc('"', f);
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* What a run reports about itself, for the header and the JSON header. */
struct run_info {
	char model[256];
	struct utsname u;
	int allowed;
	char zmq[32]; /* "4.3.4", or "" when not built in */
};

static void run_info(struct run_info *ri)
{
	cpu_set_t set;
	memset(ri, 0, sizeof *ri);
	cpu_model(ri->model, sizeof ri->model);
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		ri->allowed = CPU_COUNT(&set);
	if (uname(&ri->u) != 0) {
		snprintf(ri->u.release, sizeof ri->u.release, "?");
		snprintf(ri->u.machine, sizeof ri->u.machine, "?");
	}
#ifdef EBUS_BENCH_HAVE_ZMQ
	{
		int ma, mi, pa;
		zmq_version(&ma, &mi, &pa);
		snprintf(ri->zmq, sizeof ri->zmq, "%d.%d.%d", ma, mi, pa);
	}
#endif
}

/* --json: the first line, what the run was and where (bench.h). */
static void json_header(FILE *jf, int argc, char **argv)
{
	char when[32], cmd[2048] = "";
	struct run_info ri;
	time_t now = time(NULL);
	size_t n = 0;

	run_info(&ri);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	for (int i = 0; i < argc && n < sizeof cmd; i++)
		n += (size_t)snprintf(cmd + n, sizeof cmd - n, "%s%s", i ? " " : "", argv[i]);
	fprintf(jf, "{\"schema\":\"%s\",\"kind\":\"header\",\"ebus_version\":\"%s\",\"ck_version\":\"%s\",",
	        BENCH_JSON_SCHEMA, ebus_version(), CK_VERSION);
	if (ri.zmq[0])
		fprintf(jf, "\"zmq_version\":\"%s\",", ri.zmq);
	else
		fprintf(jf, "\"zmq_version\":null,");
	fprintf(jf, "\"machine\":{\"cpus_online\":%ld,\"cpus_allowed\":%d,\"cpu_model\":",
	        sysconf(_SC_NPROCESSORS_ONLN), ri.allowed);
	json_str(jf, ri.model);
	fprintf(jf, ",\"kernel\":");
	json_str(jf, ri.u.release);
	fprintf(jf, ",\"machine\":");
	json_str(jf, ri.u.machine);
	fprintf(jf, "},\"time_utc\":\"%s\",\"command\":", when);
	json_str(jf, cmd);
	fprintf(jf, "}\n");
}

static void header(FILE *f, int argc, char **argv)
{
	struct run_info ri;

	run_info(&ri);
	fprintf(f, "# ebus-bench: ebus %s, ck %s, %s%s", ebus_version(), CK_VERSION,
	        ri.zmq[0] ? "zmq " : "zmq not built in", ri.zmq);
	fprintf(f, "\n# machine: %ld CPUs online, %d allowed, %s, Linux %s\n",
	        sysconf(_SC_NPROCESSORS_ONLN), ri.allowed, ri.model, ri.u.release);
	fprintf(f, "# command:");
	for (int i = 0; i < argc; i++)
		fprintf(f, " %s", argv[i]);
	fprintf(f, "\n");
	fflush(f);
}

static void scenario_header(FILE *f, const bench_scenario *sc, const bench_opts *o)
{
	fprintf(f, "\n# scenario %s: %s\n", sc->name, sc->what);
	fprintf(f, "#   ");
	if (strcmp(sc->name, "multi") == 0)
		fprintf(f, "P=%u publishers x T=%u topics over E=%u executors; ", o->publishers,
		        o->topics, o->executors);
	if (strcmp(sc->name, "latency") == 0)
		fprintf(f, "rate %llu ev/s; ", (unsigned long long)o->rate);
	if (strcmp(sc->name, "idle") == 0)
		fprintf(f, "idle window %u ms; ", o->idle_ms);
	if (strcmp(sc->name, "pingpong") == 0)
		fprintf(f, "%llu round trips",
		        (unsigned long long)(o->events_set ? o->events : o->quick ? 10000 : 100000));
	else if (strcmp(sc->name, "latency") == 0)
		fprintf(f, "%llu samples",
		        (unsigned long long)(o->events_set ? o->events : o->quick ? o->rate / 4 : o->rate));
	else if (strcmp(sc->name, "idle") == 0)
		fprintf(f, "%llu wake samples",
		        (unsigned long long)(o->events_set ? o->events : o->quick ? 100 : 500));
	else
		fprintf(f, "%llu events", (unsigned long long)o->events);
	fprintf(f, " x %u runs", o->runs);
	fprintf(f, " per system (+1 untimed warm-up each), round-robin;"
	           " payload %zu B; capacity %u (%u usable); ebus wait %s; ",
	        o->payload, o->capacity, o->capacity - 1, o->wait_name);
	if (o->cpu_pub >= 0)
		fprintf(f, "publisher on CPU %d, consumer on CPU %d\n", o->cpu_pub, o->cpu_sub);
	else
		fprintf(f, "not pinned\n");
	fflush(f);
}

int main(int argc, char **argv)
{
	enum { OPT_SCENARIO = 256, OPT_EVENTS, OPT_RUNS, OPT_PAYLOAD, OPT_CAPACITY, OPT_WAIT,
	       OPT_CPUS, OPT_QUICK, OPT_JSON, OPT_TIMEOUT, OPT_VERBOSE, OPT_HELP, OPT_PUBLISHERS,
	       OPT_TOPICS, OPT_EXECUTORS, OPT_RATE, OPT_IDLE_MS, OPT_VERSION, OPT_JSON_OUT, OPT_ONLY };
	static const struct option longopts[] = {
		{"scenario", required_argument, NULL, OPT_SCENARIO},
		{"events", required_argument, NULL, OPT_EVENTS},
		{"runs", required_argument, NULL, OPT_RUNS},
		{"payload", required_argument, NULL, OPT_PAYLOAD},
		{"capacity", required_argument, NULL, OPT_CAPACITY},
		{"wait", required_argument, NULL, OPT_WAIT},
		{"cpus", required_argument, NULL, OPT_CPUS},
		{"quick", no_argument, NULL, OPT_QUICK},
		{"json", no_argument, NULL, OPT_JSON},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"verbose", no_argument, NULL, OPT_VERBOSE},
		{"help", no_argument, NULL, OPT_HELP},
		{"publishers", required_argument, NULL, OPT_PUBLISHERS},
		{"topics", required_argument, NULL, OPT_TOPICS},
		{"executors", required_argument, NULL, OPT_EXECUTORS},
		{"rate", required_argument, NULL, OPT_RATE},
		{"idle-ms", required_argument, NULL, OPT_IDLE_MS},
		{"version", no_argument, NULL, OPT_VERSION},
		{"json-out", required_argument, NULL, OPT_JSON_OUT},
		{"only", required_argument, NULL, OPT_ONLY},
		{NULL, 0, NULL, 0},
	};
	bench_opts o;
	const char *json_out = NULL;
	const bench_scenario *sc = NULL;
	int events_set = 0, c, found;
	uint64_t v;

	memset(&o, 0, sizeof o);
	o.scenario = "all";
	o.publishers = DEFAULT_PUBLISHERS;
	o.topics = DEFAULT_TOPICS;
	o.executors = DEFAULT_EXECUTORS;
	o.rate = DEFAULT_RATE;
	o.events = DEFAULT_EVENTS;
	o.runs = DEFAULT_RUNS;
	o.payload = 32;
	o.capacity = 1024;
	o.wait = EBUS_WAIT_DEFAULT;
	o.wait_name = "default";
	o.cpu_pub = o.cpu_sub = -1;
	o.timeout_s = 60;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SCENARIO:
			o.scenario = optarg;
			break;
		case OPT_ONLY:
			o.only = optarg;
			break;
		case OPT_EVENTS:
			if (parse_u64(optarg, &v) || v == 0) {
				fprintf(stderr, "ebus-bench: --events wants a positive integer, not '%s'\n", optarg);
				return 2;
			}
			o.events = v;
			events_set = 1;
			break;
		case OPT_RUNS:
			if (parse_u64(optarg, &v) || v == 0 || v > MAX_RUNS) {
				fprintf(stderr, "ebus-bench: --runs wants 1..%u, not '%s'\n", MAX_RUNS, optarg);
				return 2;
			}
			o.runs = (unsigned)v;
			break;
		case OPT_PAYLOAD:
			if (parse_u64(optarg, &v) || v < BENCH_PAYLOAD_MIN || v > UINT32_MAX) {
				fprintf(stderr, "ebus-bench: --payload wants %d..%u bytes, not '%s'\n",
				        BENCH_PAYLOAD_MIN, UINT32_MAX, optarg);
				return 2;
			}
			o.payload = (size_t)v;
			break;
		case OPT_CAPACITY:
			if (parse_u64(optarg, &v) || v < 4 || v > (1u << 24) || (v & (v - 1))) {
				fprintf(stderr, "ebus-bench: --capacity wants a power of two in [4, 2^24], not '%s'\n",
				        optarg);
				return 2;
			}
			o.capacity = (unsigned)v;
			break;
		case OPT_WAIT:
			found = 0;
			for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
				if (strcmp(optarg, waits[i].name) == 0) {
					o.wait = waits[i].wait;
					o.wait_name = waits[i].name;
					found = 1;
				}
			}
			if (!found) {
				fprintf(stderr, "ebus-bench: --wait wants default, busy, yield or park, not '%s'\n",
				        optarg);
				return 2;
			}
			break;
		case OPT_CPUS:
			if (parse_cpus(optarg, &o.cpu_pub, &o.cpu_sub)) {
				fprintf(stderr, "ebus-bench: --cpus wants two CPU ids, e.g. 0,1, not '%s'\n", optarg);
				return 2;
			}
			if (!cpu_allowed(o.cpu_pub) || !cpu_allowed(o.cpu_sub)) {
				fprintf(stderr, "ebus-bench: --cpus %s: CPU not available to this process\n", optarg);
				return 2;
			}
			break;
		case OPT_QUICK:
			o.quick = 1;
			break;
		case OPT_PUBLISHERS:
		case OPT_TOPICS:
			if (parse_u64(optarg, &v) || v == 0 || v > MAX_THREADS) {
				fprintf(stderr, "ebus-bench: --%s wants 1..%u, not '%s'\n",
				        c == OPT_PUBLISHERS ? "publishers" : "topics", MAX_THREADS, optarg);
				return 2;
			}
			if (c == OPT_PUBLISHERS)
				o.publishers = (unsigned)v;
			else
				o.topics = (unsigned)v;
			break;
		case OPT_EXECUTORS:
			if (parse_u64(optarg, &v) || v == 0 || v > EBUS_MAX_EXECUTORS) {
				fprintf(stderr, "ebus-bench: --executors wants 1..%d, not '%s'\n",
				        EBUS_MAX_EXECUTORS, optarg);
				return 2;
			}
			o.executors = (unsigned)v;
			break;
		case OPT_RATE:
			if (parse_u64(optarg, &v) || v == 0 || v > 1000000000ull) {
				fprintf(stderr, "ebus-bench: --rate wants 1..1000000000 events/s, not '%s'\n",
				        optarg);
				return 2;
			}
			o.rate = v;
			break;
		case OPT_IDLE_MS:
			if (parse_u64(optarg, &v) || v == 0 || v > 600000) {
				fprintf(stderr, "ebus-bench: --idle-ms wants 1..600000, not '%s'\n", optarg);
				return 2;
			}
			o.idle_ms = (unsigned)v;
			break;
		case OPT_JSON:
			o.json = 1;
			break;
		case OPT_TIMEOUT:
			if (parse_u64(optarg, &v) || v == 0 || v > 86400) {
				fprintf(stderr, "ebus-bench: --timeout wants 1..86400 seconds, not '%s'\n", optarg);
				return 2;
			}
			o.timeout_s = (unsigned)v;
			break;
		case OPT_VERBOSE:
		case 'v':
			o.verbose = 1;
			break;
		case OPT_HELP:
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			print_versions(stdout);
			return 0;
		case OPT_JSON_OUT:
			json_out = optarg;
			break;
		default:
			if (optopt)
				fprintf(stderr, "ebus-bench: option '%s' needs an argument or is unknown\n",
				        argv[optind - 1]);
			else
				fprintf(stderr, "ebus-bench: unknown option '%s'\n", argv[optind - 1]);
			fprintf(stderr, "try 'ebus-bench --help'\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ebus-bench: unexpected argument '%s'\n", argv[optind]);
		fprintf(stderr, "try 'ebus-bench --help'\n");
		return 2;
	}
	if (strcmp(o.scenario, "bridge") == 0) {
		o.events_set = events_set;
#ifdef EBUS_BENCH_HAVE_BRIDGE
		if (o.json || json_out) {
			fprintf(stderr, "ebus-bench: the bridge scenario prints tables only (no JSON)\n");
			return 2;
		}
		header(stdout, argc, argv);
		return bench_bridge(&o);
#else
		printf("bridge: skipped: ebus-bench was built without libebus-nats or libzmq "
		       "(apt-get install libnats-dev libzmq3-dev, then rebuild)\n");
		return 0;
#endif
	}
	if (o.quick && !events_set)
		o.events = QUICK_EVENTS;
	if (o.idle_ms == 0)
		o.idle_ms = o.quick ? QUICK_IDLE_MS : DEFAULT_IDLE_MS;
	o.events_set = events_set;
	o.progress = isatty(STDERR_FILENO);

	if (o.json) {
		o.jf = stdout;
	} else if (json_out) {
		o.jf = fopen(json_out, "w");
		if (!o.jf) {
			fprintf(stderr, "ebus-bench: --json-out %s: %s\n", json_out, strerror(errno));
			return 2;
		}
	}
	if (o.jf)
		json_header(o.jf, argc, argv);
	if (strcmp(o.scenario, "all") == 0) {
		int worst = 0;
		header(o.json ? stderr : stdout, argc, argv);
		for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
			int rc;
			if (!scenarios[i].sc)
				continue;
			o.scenario = scenarios[i].name;
			scenario_header(o.json ? stderr : stdout, scenarios[i].sc, &o);
			rc = bench_run_scenario(scenarios[i].sc, &o);
			if (rc > worst)
				worst = rc;
		}
		return worst;
	}

	found = 0;
	for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
		if (strcmp(o.scenario, scenarios[i].name) == 0) {
			sc = scenarios[i].sc;
			found = 1;
		}
	}
	if (!found) {
		fprintf(stderr, "ebus-bench: unknown scenario '%s' (known: all", o.scenario);
		for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
			fprintf(stderr, ", %s", scenarios[i].name);
		fprintf(stderr, ")\n");
		return 2;
	}
	if (!sc) {
		fprintf(stderr, "ebus-bench: scenario '%s' is not implemented yet\n", o.scenario);
		return 2;
	}

	header(o.json ? stderr : stdout, argc, argv);
	scenario_header(o.json ? stderr : stdout, sc, &o);
	return bench_run_scenario(sc, &o);
}
