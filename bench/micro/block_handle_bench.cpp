// The external request path of a BlockHandle (BlockHandle::read on a node whose driver does
// nothing): a handle that does not follow graph changes (a reader, a job's handle) against a
// writable handle that follows them (a guest's open file: it also counts itself in the handle's
// `users` and re-checks its target after entering the gate, handle_follower.h). One thread, and two
// threads sharing one handle (one fd, concurrent FUSE requests: both counters' lines bounce).
#include <benchmark/benchmark.h>

#include "bench_util.h"

#include "blockcore/graph/graph.h"

namespace chainfs::bench {
namespace {

// A node that answers every request at once: what is left to measure is the path to the driver.
class NullDriver final : public Driver {
 public:
  std::string_view driver_name() const override { return "null"; }
  Result<void> open(Node&, const OpenParams&) override { return {}; }
  Capabilities capabilities() const override {
    Capabilities caps;
    caps.writable = true;
    return caps;
  }
  uint64_t size() const override { return 1 << 20; }
  Result<void> read(uint64_t, std::span<std::byte>) override { return {}; }
  Result<void> write(uint64_t, std::span<const std::byte>) override { return {}; }
  Result<void> flush() override { return {}; }
  Result<void> discard(uint64_t, uint64_t) override { return {}; }
  Result<void> write_zeroes(uint64_t, uint64_t) override { return {}; }
  Result<void> truncate(uint64_t) override { return {}; }
  Result<BlockStatus> block_status(uint64_t, uint64_t length) override {
    return BlockStatus{Alloc::Data, length};
  }
};

struct Rig {
  Graph graph;
  NodeRef node = must(graph.add_node("null", std::make_unique<NullDriver>()), "add_node");
  BlockHandle fixed{node, false};
  BlockHandle following = must(graph.open_handle(node, true), "open_handle");
  Rig() {
    if (fixed.follows() || !following.follows()) die("handle kinds are not what the bench needs");
  }
};

Rig& rig() {
  static Rig r;  // shared by the benchmark's threads; outlives them
  return r;
}

void read_loop(benchmark::State& state, BlockHandle& handle) {
  std::byte byte{};
  for (auto _ : state) {
    if (!handle.read(0, std::span(&byte, 1)).ok()) die("read failed");
    benchmark::ClobberMemory();
  }
}

void BM_BlockHandle_Read_Fixed(benchmark::State& state) {
  read_loop(state, rig().fixed);
}
BENCHMARK(BM_BlockHandle_Read_Fixed)->Threads(1)->Threads(2)->UseRealTime();

void BM_BlockHandle_Read_Following(benchmark::State& state) {
  read_loop(state, rig().following);
}
BENCHMARK(BM_BlockHandle_Read_Following)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace chainfs::bench
