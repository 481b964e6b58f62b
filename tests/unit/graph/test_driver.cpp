#include "tests/unit/graph/test_driver.h"

#include <algorithm>
#include <cstring>

#include <gtest/gtest.h>

namespace chainfs::testing {

struct TestDriver::Tracker {
  explicit Tracker(TestStats& s) : stats(s) {
    int now = stats.in_flight.fetch_add(1) + 1;
    int max = stats.max_in_flight.load();
    while (now > max && !stats.max_in_flight.compare_exchange_weak(max, now)) {
    }
  }
  ~Tracker() { stats.in_flight.fetch_sub(1); }
  TestStats& stats;
};

TestDriver::TestDriver(TestDriverOptions options, std::shared_ptr<TestStats> stats)
    : options_(options), stats_(std::move(stats)) {
  blocks_.resize((options_.size + kBlock - 1) / kBlock);
  if (options_.fill)
    for (auto& b : blocks_) b = std::vector<std::byte>(kBlock, std::byte{*options_.fill});
}

Result<void> TestDriver::open(Node& self, const OpenParams& params) {
  if (options_.fail_open) return make_error(Errc::Io, "test driver: open fails as asked");
  self_ = &self;
  read_only_.store(params.read_only);
  stats_->opens.fetch_add(1);
  return {};
}

Result<void> TestDriver::reopen(bool read_only) {
  {
    std::lock_guard lock(mutex_);
    if (fail_reopen_ && fail_reopen_->first == read_only) {
      const Errc code = fail_reopen_->second;
      fail_reopen_.reset();
      return make_error(code, "test driver: reopen fails as asked");
    }
  }
  if (!read_only && !options_.writable)
    return make_error(Errc::ReadOnly, "test driver: not writable");
  stats_->in_flight_at_reopen.store(self_->gate().in_flight());
  read_only_.store(read_only);
  stats_->reopens.fetch_add(1);
  return {};
}

void TestDriver::close() {
  stats_->closes.fetch_add(1);
}

Capabilities TestDriver::capabilities() const {
  Capabilities caps;
  caps.writable = options_.writable && !read_only_.load();
  caps.discard = true;
  caps.write_zeroes = true;
  caps.has_backing = options_.has_backing;
  caps.persists_backing = options_.persists_backing;
  return caps;
}

Result<void> TestDriver::read(uint64_t offset, std::span<std::byte> buf) {
  Tracker tracker(*stats_);
  stats_->reads.fetch_add(1);
  stats_->gate_in_flight_at_read.store(self_->gate().in_flight());
  uint64_t done = 0;
  while (done < buf.size()) {
    if (done > 0)
      CHAINFS_SYNC_POINT_TAG(self_->graph().sync_points(), "TestDriver::read:between_blocks",
                             self_->name());
    const uint64_t pos = offset + done;
    const uint64_t index = pos / kBlock;
    const uint64_t in_block = pos % kBlock;
    const uint64_t len = std::min<uint64_t>(kBlock - in_block, buf.size() - done);
    std::span<std::byte> piece = buf.subspan(done, len);
    bool here = false;
    {
      std::lock_guard lock(mutex_);
      if (blocks_[index]) {
        std::memcpy(piece.data(), blocks_[index]->data() + in_block, len);
        here = true;
      }
    }
    if (!here) {
      // Re-read the edge for every block, as a careless driver might: only drains keep it still.
      if (Node* backing = self_->backing()) {
        if (pos < backing->size()) {
          uint64_t from_backing = std::min<uint64_t>(len, backing->size() - pos);
          CHAINFS_TRY(backing->read(pos, piece.first(from_backing)));
          std::fill(piece.begin() + from_backing, piece.end(), std::byte{0});
        } else {
          std::fill(piece.begin(), piece.end(), std::byte{0});
        }
      } else {
        std::fill(piece.begin(), piece.end(), std::byte{0});
      }
    }
    done += len;
  }
  return {};
}

Result<void> TestDriver::write(uint64_t offset, std::span<const std::byte> buf) {
  if (read_only_.load()) return make_error(Errc::ReadOnly, "test driver: read-only");
  Tracker tracker(*stats_);
  stats_->writes.fetch_add(1);
  uint64_t done = 0;
  while (done < buf.size()) {
    const uint64_t pos = offset + done;
    const uint64_t index = pos / kBlock;
    const uint64_t in_block = pos % kBlock;
    const uint64_t len = std::min<uint64_t>(kBlock - in_block, buf.size() - done);
    std::vector<std::byte> block(kBlock);
    bool allocated;
    {
      std::lock_guard lock(mutex_);
      allocated = blocks_[index].has_value();
      if (allocated) block = *blocks_[index];
    }
    if (!allocated && (in_block != 0 || len != kBlock)) {
      // Copy-on-write of a partial block: fill from below first (outside our lock).
      Node* backing = self_->backing();
      if (backing && index * kBlock < backing->size())
        CHAINFS_TRY(backing->read(index * kBlock, std::span(block).first(std::min(
                                                      kBlock, backing->size() - index * kBlock))));
    }
    std::memcpy(block.data() + in_block, buf.data() + done, len);
    {
      std::lock_guard lock(mutex_);
      blocks_[index] = std::move(block);
    }
    done += len;
  }
  return {};
}

Result<void> TestDriver::discard(uint64_t offset, uint64_t length) {
  std::lock_guard lock(mutex_);
  for (uint64_t i = (offset + kBlock - 1) / kBlock; (i + 1) * kBlock <= offset + length; ++i)
    blocks_[i].reset();
  return {};
}

Result<void> TestDriver::write_zeroes(uint64_t offset, uint64_t length) {
  std::vector<std::byte> zeros(length);
  return write(offset, zeros);
}

Result<void> TestDriver::truncate(uint64_t) {
  return make_error(Errc::Unsupported, "test driver: no truncate");
}

Result<BlockStatus> TestDriver::block_status(uint64_t offset, uint64_t length) {
  std::lock_guard lock(mutex_);
  const bool first = blocks_[offset / kBlock].has_value();
  uint64_t len = 0;
  while (len < length) {
    const uint64_t pos = offset + len;
    if (blocks_[pos / kBlock].has_value() != first) break;
    len += std::min(kBlock - pos % kBlock, length - len);
  }
  return BlockStatus{first ? Alloc::Data : Alloc::Unallocated, len};
}

std::optional<BackingReference> TestDriver::backing_reference() const {
  std::lock_guard lock(mutex_);
  return recorded_;
}

Result<void> TestDriver::set_backing_reference(const std::optional<BackingReference>& ref) {
  stats_->set_backing_calls.fetch_add(1);
  stats_->quiesce_at_set_backing.store(self_->gate().quiesce_count());
  std::lock_guard lock(mutex_);
  if (auto code = std::exchange(fail_set_backing_, std::nullopt))
    return make_error(*code, "test driver: recording the backing fails as asked");
  recorded_ = ref;
  return {};
}

void TestDriver::set_block(uint64_t index, uint8_t value) {
  std::lock_guard lock(mutex_);
  blocks_[index] = std::vector<std::byte>(kBlock, std::byte{value});
}

TestNode add_test_node(Graph& graph, const std::string& name, TestDriverOptions options,
                       const std::string& filename) {
  TestNode out;
  out.stats = std::make_shared<TestStats>();
  auto driver = std::make_unique<TestDriver>(options, out.stats);
  out.driver = driver.get();
  OpenParams params;
  params.filename = filename;
  auto node = graph.add_node(name, std::move(driver), params);
  EXPECT_TRUE(node.ok()) << (node.ok() ? "" : node.error().message);
  if (node.ok()) out.node = std::move(node).value();
  return out;
}

std::vector<TestNode> make_chain(Graph& graph, int n, const std::string& prefix) {
  std::vector<TestNode> nodes;
  for (int i = 0; i < n; ++i) {
    nodes.push_back(add_test_node(graph, prefix + std::to_string(i)));
    nodes.back().driver->set_block(i, static_cast<uint8_t>(i + 1));
    if (i > 0) {
      auto r = graph.attach_child(*nodes[i].node, nodes[i - 1].node, ChildRole::Backing);
      EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    }
  }
  return nodes;
}

std::vector<std::string> chain_names(const NodeRef& top) {
  std::vector<std::string> out;
  for (NodeRef n = top; n; n = n->backing_ref()) out.push_back(n->name());
  return out;
}

}  // namespace chainfs::testing
