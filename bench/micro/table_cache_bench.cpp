// TableCache (the LRU of L2 tables / refcount blocks) on its own: a hit, a miss (the lookup that
// finds nothing), and the eviction a miss in a full cache costs (victim, erase, insert of a fresh
// 64 KiB table), with and without allocating the new table's buffer.
#include <benchmark/benchmark.h>

#include "bench_util.h"

#include "blockcore/drivers/qcow2/table_cache.h"

namespace chainfs::bench {
namespace {

using qcow2::TableCache;
constexpr uint64_t kTable = 65536;
constexpr size_t kCapacity = 128;  // the default budget holds 128 L2 tables of 64 KiB

void fill(TableCache& cache, size_t n) {
  for (size_t i = 0; i < n; ++i)
    cache.insert((i + 1) * kTable, qcow2::TableBytes(kTable), false);
}

void BM_TableCache_Hit(benchmark::State& state) {
  TableCache cache(kCapacity);
  fill(cache, kCapacity);
  uint64_t i = 0;
  for (auto _ : state) {
    TableCache::Table* t = cache.find(((i * 37) % kCapacity + 1) * kTable);
    benchmark::DoNotOptimize(t);
    ++i;
  }
  if (!cache.find(kTable)) die("hit benchmark lost its table");
}
BENCHMARK(BM_TableCache_Hit);

void BM_TableCache_Miss(benchmark::State& state) {
  TableCache cache(kCapacity);
  fill(cache, kCapacity);
  uint64_t i = 0;
  for (auto _ : state) {
    TableCache::Table* t = cache.find((kCapacity + 1 + (i & 1023)) * kTable);
    benchmark::DoNotOptimize(t);
    ++i;
  }
}
BENCHMARK(BM_TableCache_Miss);

// What Image::load_l2 does to the cache on a miss when it is full (minus the host read):
// evict the least recently used table, insert a newly allocated one.
void BM_TableCache_EvictInsert(benchmark::State& state) {
  TableCache cache(kCapacity);
  fill(cache, kCapacity);
  uint64_t next = kCapacity + 1;
  for (auto _ : state) {
    TableCache::Table* victim = cache.victim();
    cache.erase(victim->offset);
    benchmark::DoNotOptimize(cache.insert(next++ * kTable, qcow2::TableBytes(kTable), false));
  }
  if (cache.size() != kCapacity) die("cache size drifted");
}
BENCHMARK(BM_TableCache_EvictInsert);

// The same with the victim's buffer reused (take_buffer, what Image::load_l2 does): the cost of
// the LRU bookkeeping alone.
void BM_TableCache_EvictInsert_ReuseBuffer(benchmark::State& state) {
  TableCache cache(kCapacity);
  fill(cache, kCapacity);
  uint64_t next = kCapacity + 1;
  for (auto _ : state) {
    cache.erase(cache.victim()->offset);
    benchmark::DoNotOptimize(cache.insert(next++ * kTable, cache.take_buffer(kTable), false));
  }
  if (cache.size() != kCapacity) die("cache size drifted");
}
BENCHMARK(BM_TableCache_EvictInsert_ReuseBuffer);

}  // namespace
}  // namespace chainfs::bench
