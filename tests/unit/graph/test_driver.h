// A counting, in-memory test driver for the graph's unit tests. It behaves like a small format
// node: its bytes live in memory in 4 KiB blocks, each allocated here or not; unallocated blocks
// are read from the backing node (zeros without one), block by block, re-reading the backing edge
// for every block, so a request that observed an edge change half way would return mixed data.
//
// Counters live in a shared TestStats, which outlives the node, so tests can check that a node
// closed exactly once after its last reference went away. Between two blocks of a read the driver
// passes the sync point "TestDriver::read:between_blocks" tagged with its node's name, where tests
// pause a request in flight.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "blockcore/driver.h"
#include "blockcore/graph/graph.h"

namespace chainfs::testing {

inline constexpr uint64_t kBlock = 4096;

struct TestStats {
  std::atomic<int> opens{0};
  std::atomic<int> closes{0};
  std::atomic<int> reads{0};
  std::atomic<int> writes{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::atomic<int> gate_in_flight_at_read{-1};  // the node's in-flight count seen by read()
  std::atomic<int> set_backing_calls{0};
  std::atomic<int> reopens{0};  // successful Driver::reopen calls
  // The node's in-flight count seen by the last reopen(): 0 inside a drain.
  std::atomic<int> in_flight_at_reopen{-1};
  // The node's quiesce count seen by the last set_backing_reference(): > 0 inside a drain.
  std::atomic<int> quiesce_at_set_backing{-1};
};

struct TestDriverOptions {
  uint64_t size = 16 * kBlock;
  std::optional<uint8_t> fill;  // every block allocated with this byte; none = all unallocated
  bool writable = true;
  bool has_backing = true;
  bool persists_backing = false;
  bool fail_open = false;
};

class TestDriver : public Driver {
 public:
  TestDriver(TestDriverOptions options, std::shared_ptr<TestStats> stats);

  std::string_view driver_name() const override { return "test"; }
  Result<void> open(Node& self, const OpenParams& params) override;
  void close() override;
  Capabilities capabilities() const override;
  uint64_t size() const override { return options_.size; }
  Result<void> read(uint64_t offset, std::span<std::byte> buf) override;
  Result<void> write(uint64_t offset, std::span<const std::byte> buf) override;
  Result<void> flush() override { return {}; }
  Result<void> discard(uint64_t offset, uint64_t length) override;
  Result<void> write_zeroes(uint64_t offset, uint64_t length) override;
  Result<void> truncate(uint64_t new_size) override;
  Result<BlockStatus> block_status(uint64_t offset, uint64_t length) override;
  std::optional<BackingReference> backing_reference() const override;
  Result<void> set_backing_reference(const std::optional<BackingReference>& ref) override;
  Result<void> reopen(bool read_only) override;

  // Test controls.
  void fail_next_set_backing(Errc code) { fail_set_backing_ = code; }
  // The next reopen() in the given direction fails with `code`.
  void fail_next_reopen(bool read_only, Errc code) {
    std::lock_guard lock(mutex_);
    fail_reopen_ = {read_only, code};
  }
  bool driver_read_only() const { return read_only_.load(); }
  void set_block(uint64_t index, uint8_t value);  // allocates the block with `value`

 private:
  struct Tracker;
  TestDriverOptions options_;
  std::shared_ptr<TestStats> stats_;
  Node* self_ = nullptr;
  mutable std::mutex mutex_;  // leaf: guards blocks_ and the recorded reference
  std::vector<std::optional<std::vector<std::byte>>> blocks_;
  std::optional<BackingReference> recorded_;
  std::optional<Errc> fail_set_backing_;
  std::optional<std::pair<bool, Errc>> fail_reopen_;  // guarded by mutex_
  std::atomic<bool> read_only_{false};
};

// A test node: returns it with its stats. `filename` (optional) is what backing references name.
struct TestNode {
  NodeRef node;
  std::shared_ptr<TestStats> stats;
  TestDriver* driver = nullptr;  // valid while `node` (or any holder) keeps the node alive
};
TestNode add_test_node(Graph& graph, const std::string& name, TestDriverOptions options = {},
                       const std::string& filename = {});

// node0 <- node1 <- ... <- node{n-1} (node{n-1} on top). Block i of node i is allocated with
// byte i+1; everything else is unallocated, so reading block k through node j (k <= j) yields k+1.
std::vector<TestNode> make_chain(Graph& graph, int n, const std::string& prefix = "node");

// The chain below `top` by name, top first, following backing edges (under the topology lock).
std::vector<std::string> chain_names(const NodeRef& top);

}  // namespace chainfs::testing
