// A 4 KiB read through a Node of a 3-layer qcow2 chain (base <- mid <- top), opened by a Graph as
// chainfs mount does: data only in the base (the request walks top -> mid -> base: two L2 misses
// that say "unallocated", one hit, one host read), compared with data in the top layer itself.
#include <benchmark/benchmark.h>

#include "bench_util.h"
#include "blockcore/graph/graph.h"
#include "blockcore/graph/node.h"

namespace chainfs::bench {
namespace {

constexpr uint64_t kCluster = 65536;
constexpr uint64_t kSize = 64ull << 20;
constexpr uint64_t kBaseCluster = 10, kMidCluster = 20, kTopCluster = 30;

struct Chain {
  TempDir dir;
  std::string top;
  Chain() {
    const std::string base = dir.file("base.qcow2"), mid = dir.file("mid.qcow2");
    top = dir.file("top.qcow2");
    create_image(base, kSize);
    write_clusters(base, {kBaseCluster});
    create_image(mid, kSize, "base.qcow2");
    write_clusters(mid, {kMidCluster});
    create_image(top, kSize, "mid.qcow2");
    write_clusters(top, {kTopCluster});
  }
};

const Chain& chain() {
  static Chain c;
  return c;
}

void chain_read(benchmark::State& state, uint64_t cluster) {
  Graph graph;
  NodeRef top = must(graph.open_image_chain(chain().top, "", "", true), "open chain");
  std::vector<std::byte> buf(4096);
  const uint64_t off = cluster * kCluster + 8192;
  for (auto _ : state) {
    auto r = top->read(off, buf);
    if (!r.ok()) die("chain read failed: " + r.error().message);
    benchmark::DoNotOptimize(buf.data());
  }
  if (buf[0] != static_cast<std::byte>(cluster * 7 + 1)) die("wrong data read");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 4096);
}

void BM_ChainRead4K_DataInBase_3Layers(benchmark::State& state) {
  chain_read(state, kBaseCluster);
}
void BM_ChainRead4K_DataInTop_3Layers(benchmark::State& state) {
  chain_read(state, kTopCluster);
}
BENCHMARK(BM_ChainRead4K_DataInBase_3Layers);
BENCHMARK(BM_ChainRead4K_DataInTop_3Layers);

}  // namespace
}  // namespace chainfs::bench
