// The drain check every request makes on entry (RequestGate::enter_external + leave): one RMW and
// one load on entry, one RMW and one load on leave. Uncontended, and with two threads entering the
// same node's gate (the counter's cache line bounces between the cores), and with two threads on
// two different gates for comparison.
#include <benchmark/benchmark.h>

#include "bench_util.h"

#include "blockcore/graph/request_gate.h"

namespace chainfs::bench {
namespace {

void enter_leave(benchmark::State& state, RequestGate& gate) {
  for (auto _ : state) {
    RequestGuard guard(gate, RequestGuard::Entry::External);
    benchmark::ClobberMemory();
  }
  if (gate.in_flight() < 0) die("gate count went negative");
}

void BM_RequestGate_EnterLeave(benchmark::State& state) {
  RequestGate gate;
  enter_leave(state, gate);
}
BENCHMARK(BM_RequestGate_EnterLeave);

// All threads share one gate, as concurrent requests on one node do. The benchmark threads start
// their timed loops together, so the gate is shared for the whole measurement.
void BM_RequestGate_EnterLeave_SharedGate(benchmark::State& state) {
  static RequestGate gate;  // shared by the benchmark's threads; outlives them
  enter_leave(state, gate);
}
BENCHMARK(BM_RequestGate_EnterLeave_SharedGate)->Threads(1)->Threads(2)->UseRealTime();

// Each thread its own gate (requests on different nodes): no shared cache line.
void BM_RequestGate_EnterLeave_OwnGate(benchmark::State& state) {
  alignas(128) RequestGate gate;
  enter_leave(state, gate);
}
BENCHMARK(BM_RequestGate_EnterLeave_OwnGate)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace chainfs::bench
