/*
 * 4. Topic interning: ebus_topic on an existing name (lookup hit) and on a
 * new name (insert), with the table holding 1, 1000 or 100000 topics.
 *
 * The bus is asynchronous with one parked executor (the registry does not
 * involve it). Names are generated outside the timed loop; hits visit the
 * existing names in a shuffled order. An ebus_topic call validates the
 * name, hashes it and looks it up in a cds_lfht (urcu-bp read section); a
 * miss allocates the topic and inserts it (cds_lfht_add_unique). New-name
 * runs use a fixed 2000 iterations (each one a new topic), so the table
 * grows from N to N + 2000 during the run, resizes included.
 *
 * Compared with: BM_ref_map_hit / BM_ref_map_new, a conventional
 * interner: std::unordered_map<std::string_view, entry *> under a
 * std::mutex, the entry holding a copy of the name (no name validation).
 */
#include "common.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

constexpr int kNewIters = 2000;

std::vector<std::string> make_names(const char *prefix, size_t n, size_t first = 0)
{
	std::vector<std::string> v;
	v.reserve(n);
	char buf[64];
	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof buf, "bench.%s.n%zu.x", prefix, first + i);
		v.emplace_back(buf);
	}
	return v;
}

std::vector<size_t> shuffled(size_t n)
{
	std::vector<size_t> v(n);
	for (size_t i = 0; i < n; i++)
		v[i] = i;
	std::shuffle(v.begin(), v.end(), std::mt19937_64(42));
	return v;
}

struct TopicBus {
	ebus_t *bus = nullptr;

	bool open(benchmark::State &state, const std::vector<std::string> &names)
	{
		if (!gb::ok(state, ebus_create(nullptr, &bus), "ebus_create"))
			return false;
		for (const auto &s : names) {
			ebus_topic_t *t;
			if (!gb::ok(state, ebus_topic(bus, s.c_str(), &t), "ebus_topic (prefill)"))
				return false;
		}
		return true;
	}
	~TopicBus() { ebus_destroy(bus); }
};

void BM_ebus_topic_hit(benchmark::State &state)
{
	const size_t n = static_cast<size_t>(state.range(0));
	const auto names = make_names("t", n);
	const auto order = shuffled(n);
	std::vector<const char *> seq;
	for (size_t i : order)
		seq.push_back(names[i].c_str());
	TopicBus b;
	if (!b.open(state, names))
		return;
	size_t i = 0;
	for (auto _ : state) {
		ebus_topic_t *t;
		int rc = ebus_topic(b.bus, seq[i], &t);
		if (__builtin_expect(rc != EBUS_OK, 0)) {
			gb::ok(state, rc, "ebus_topic");
			break;
		}
		benchmark::DoNotOptimize(t);
		if (++i == n)
			i = 0;
	}
	state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ebus_topic_hit)->ArgName("topics")->Arg(1)->Arg(1000)->Arg(100000);

void BM_ebus_topic_new(benchmark::State &state)
{
	const size_t n = static_cast<size_t>(state.range(0));
	const auto names = make_names("t", n);
	const auto fresh = make_names("f", static_cast<size_t>(state.max_iterations));
	TopicBus b;
	if (!b.open(state, names))
		return;
	size_t i = 0;
	for (auto _ : state) {
		ebus_topic_t *t;
		int rc = ebus_topic(b.bus, fresh[i++].c_str(), &t);
		if (__builtin_expect(rc != EBUS_OK, 0)) {
			gb::ok(state, rc, "ebus_topic");
			break;
		}
		benchmark::DoNotOptimize(t);
	}
	state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ebus_topic_new)->ArgName("topics")->Arg(1)->Arg(1000)->Arg(100000)->Iterations(kNewIters);

/* ---- reference: mutex + std::unordered_map ---- */

struct Entry {
	size_t len;
	char name[];
};

class MapInterner {
public:
	~MapInterner()
	{
		for (auto &kv : map_)
			free(kv.second);
	}
	Entry *intern(const char *name)
	{
		std::string_view key(name);
		std::lock_guard<std::mutex> g(lock_);
		auto it = map_.find(key);
		if (it != map_.end())
			return it->second;
		Entry *e = static_cast<Entry *>(malloc(sizeof(Entry) + key.size() + 1));
		if (!e)
			return nullptr;
		e->len = key.size();
		memcpy(e->name, name, key.size() + 1);
		map_.emplace(std::string_view(e->name, e->len), e);
		return e;
	}

private:
	std::mutex lock_;
	std::unordered_map<std::string_view, Entry *> map_;
};

void BM_ref_map_hit(benchmark::State &state)
{
	const size_t n = static_cast<size_t>(state.range(0));
	const auto names = make_names("t", n);
	const auto order = shuffled(n);
	std::vector<const char *> seq;
	for (size_t i : order)
		seq.push_back(names[i].c_str());
	MapInterner m;
	for (const auto &s : names)
		m.intern(s.c_str());
	size_t i = 0;
	for (auto _ : state) {
		Entry *e = m.intern(seq[i]);
		benchmark::DoNotOptimize(e);
		if (++i == n)
			i = 0;
	}
	state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ref_map_hit)->ArgName("topics")->Arg(1)->Arg(1000)->Arg(100000);

void BM_ref_map_new(benchmark::State &state)
{
	const size_t n = static_cast<size_t>(state.range(0));
	const auto names = make_names("t", n);
	const auto fresh = make_names("f", static_cast<size_t>(state.max_iterations));
	MapInterner m;
	for (const auto &s : names)
		m.intern(s.c_str());
	size_t i = 0;
	for (auto _ : state) {
		Entry *e = m.intern(fresh[i++].c_str());
		benchmark::DoNotOptimize(e);
	}
	state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ref_map_new)->ArgName("topics")->Arg(1)->Arg(1000)->Arg(100000)->Iterations(kNewIters);

} // namespace
