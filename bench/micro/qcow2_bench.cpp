// qcow2 hot paths on real images (made with qcow2_create and Image::write on a host file):
//   - cluster lookup (guest offset -> host offset through L1/L2) with the L2 table cached, and
//     with a cache of two tables cycled over eight, so that every lookup reads its L2 table from
//     the host file (page cache);
//   - request splitting: the per-cluster plan of a read / in-place write over a fragmented map,
//     turned into host ranges, with the data I/O itself elided (counted, not run).
#include <benchmark/benchmark.h>

#include "bench_util.h"

namespace chainfs::bench {
namespace {

constexpr uint64_t kCluster = 65536;
constexpr uint64_t kL2Span = kCluster * (kCluster / 8);  // guest bytes one L2 table maps: 512 MiB
constexpr uint64_t kTables = 8;
constexpr uint64_t kClustersPerTable = 64;

// 4 GiB virtual; 64 clusters allocated in each of the 8 L2 tables' spans.
const std::string& lookup_image() {
  static TempDir dir;
  static const std::string path = [] {
    const std::string p = dir.file("lookup.qcow2");
    create_image(p, kTables * kL2Span);
    std::vector<uint64_t> clusters;
    for (uint64_t t = 0; t < kTables; ++t)
      for (uint64_t i = 0; i < kClustersPerTable; ++i)
        clusters.push_back(t * (kL2Span / kCluster) + i * 17);
    write_clusters(p, clusters);
    return p;
  }();
  return path;
}

uint64_t lookup_offset(uint64_t table, uint64_t i) {
  return table * kL2Span + (i * 17) * kCluster + 4096;
}

void check_data(const BlockStatus& st) {
  if (st.kind != Alloc::Data) die("lookup: expected an allocated cluster");
}

// One L2 table, always cached: the lookup is an L1 index, an LRU hit, an entry decode.
void BM_Qcow2Lookup_L2Hit(benchmark::State& state) {
  OpenImage img(lookup_image(), true);
  uint64_t i = 0;
  for (auto _ : state) {
    auto st = img.image->block_status(lookup_offset(0, i % kClustersPerTable), 4096);
    benchmark::DoNotOptimize(st);
    ++i;
  }
  check_data(*img.image->block_status(lookup_offset(0, 0), 4096));
}
BENCHMARK(BM_Qcow2Lookup_L2Hit);

// Eight L2 tables cycled through a cache of two: every lookup evicts one table and reads another
// 64 KiB table from the host file (page cache), as a cold lookup does.
void BM_Qcow2Lookup_L2Miss(benchmark::State& state) {
  OpenImage img(lookup_image(), true, /*cache_bytes=*/1);  // the minimum: two L2 tables
  uint64_t i = 0;
  for (auto _ : state) {
    auto st = img.image->block_status(lookup_offset(i % kTables, (i / kTables) % kClustersPerTable),
                                      4096);
    benchmark::DoNotOptimize(st);
    ++i;
  }
  check_data(*img.image->block_status(lookup_offset(3, 1), 4096));
}
BENCHMARK(BM_Qcow2Lookup_L2Miss);

// A whole 4 KiB read of one allocated cluster, data from the page cache: lookup + pread.
void BM_Qcow2Read4K_PageCache(benchmark::State& state) {
  OpenImage img(lookup_image(), true);
  std::vector<std::byte> buf(4096);
  uint64_t i = 0;
  for (auto _ : state) {
    auto r = img.image->read(lookup_offset(0, i % kClustersPerTable), buf);
    benchmark::DoNotOptimize(r);
    ++i;
  }
  // Guest cluster 17 holds the byte 17 * 7 + 1 (write_clusters' pattern).
  must(img.image->read(lookup_offset(0, 1), buf), "read");
  if (buf[0] != static_cast<std::byte>(17 * 7 + 1)) die("read: wrong data");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 4096);
}
BENCHMARK(BM_Qcow2Read4K_PageCache);

// ---- request splitting ------------------------------------------------------------------------

constexpr uint64_t kSplitSize = 64ull << 20;
constexpr uint64_t kSplitClusters = kSplitSize / kCluster;

// 64 MiB, every cluster allocated; fragmented = written in a shuffled order, so guest-adjacent
// clusters are (almost) never host-adjacent; contiguous = written in order.
const std::string& split_image(bool fragmented) {
  static TempDir dir;
  static const std::string frag = [] {
    const std::string p = dir.file("fragmented.qcow2");
    create_image(p, kSplitSize);
    write_clusters(p, shuffled_range(kSplitClusters, 42));
    return p;
  }();
  static const std::string contig = [] {
    const std::string p = dir.file("contiguous.qcow2");
    create_image(p, kSplitSize);
    std::vector<uint64_t> in_order(kSplitClusters);
    for (uint64_t i = 0; i < kSplitClusters; ++i) in_order[i] = i;
    write_clusters(p, in_order);
    return p;
  }();
  return fragmented ? frag : contig;
}

// Offsets for request i of `size` bytes: 1 MiB requests walk the image in 1 MiB steps; 4 KiB
// requests hit a pseudo-random cluster at 4 KiB inside it.
uint64_t split_offset(uint64_t i, uint64_t size) {
  if (size >= kCluster) return (i * size) % kSplitSize;
  return ((i * 2654435761u) % kSplitClusters) * kCluster + 4096;
}

void split_bench(benchmark::State& state, bool fragmented, bool write) {
  const uint64_t size = static_cast<uint64_t>(state.range(0));
  OpenImage img(split_image(fragmented), !write);
  std::vector<std::byte> buf(size, std::byte{0x5a});
  // Warm the L2 cache (64 MiB is one L2 table), then elide the data I/O.
  if (!img.image->read(0, buf).ok()) die("warm-up read failed");
  img.host->elide = true;
  uint64_t i = 0;
  for (auto _ : state) {
    const uint64_t off = split_offset(i++, size);
    auto r = write ? img.image->write(off, buf) : img.image->read(off, buf);
    if (!r.ok()) die("split request failed: " + r.error().message);
  }
  img.host->elide = false;
  state.counters["host_ranges"] =
      benchmark::Counter(static_cast<double>(img.host->ops_seen) /
                         static_cast<double>(std::max<int64_t>(1, state.iterations())));
}

void BM_SplitRead_Fragmented(benchmark::State& state) {
  split_bench(state, true, false);
}
void BM_SplitRead_Contiguous(benchmark::State& state) {
  split_bench(state, false, false);
}
void BM_SplitWriteInPlace_Fragmented(benchmark::State& state) {
  split_bench(state, true, true);
}
BENCHMARK(BM_SplitRead_Fragmented)->Arg(4096)->Arg(1 << 20);
BENCHMARK(BM_SplitRead_Contiguous)->Arg(1 << 20);
BENCHMARK(BM_SplitWriteInPlace_Fragmented)->Arg(4096)->Arg(1 << 20);

}  // namespace
}  // namespace chainfs::bench
