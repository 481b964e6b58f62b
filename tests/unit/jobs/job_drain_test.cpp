// The drain hook of pause points: a job does not start a chunk while one of its nodes is inside a
// drained section, and goes on once the section ends. Real nodes and a real DrainedSection.
#include <gtest/gtest.h>

#include "blockcore/graph/drain.h"
#include "blockcore/graph/graph.h"
#include "blockcore/graph/node.h"
#include "rig.h"

namespace chainfs::testing {
namespace {

// A driver with nothing behind it: the test only needs the node's gate.
class NullDriver : public Driver {
 public:
  std::string_view driver_name() const override { return "null"; }
  Result<void> open(Node&, const OpenParams&) override { return ok_result(); }
  Capabilities capabilities() const override { return {}; }
  uint64_t size() const override { return 0; }
  Result<void> read(uint64_t, std::span<std::byte>) override { return ok_result(); }
  Result<void> write(uint64_t, std::span<const std::byte>) override { return ok_result(); }
  Result<void> flush() override { return ok_result(); }
  Result<void> discard(uint64_t, uint64_t) override { return ok_result(); }
  Result<void> write_zeroes(uint64_t, uint64_t) override { return ok_result(); }
  Result<void> truncate(uint64_t) override { return ok_result(); }
  Result<BlockStatus> block_status(uint64_t, uint64_t length) override {
    return BlockStatus{Alloc::Unallocated, length};
  }
};

class WatchingJob : public FakeCopyJob {
 public:
  WatchingJob(std::shared_ptr<Probe> probe, std::vector<NodeRef> nodes)
      : FakeCopyJob(std::move(probe)) {
    watch_nodes(std::move(nodes));
  }
};

TEST(JobDrain, PausePoint_WaitsWhileANodeIsDrained_ThenGoesOn) {
  if (!kSyncPointsEnabled) GTEST_SKIP() << "needs a build with CHAINFS_SYNC_POINTS (Debug)";
  Graph graph;
  NodeRef base = Node::create(graph, "base", std::make_unique<NullDriver>());
  NodeRef top = Node::create(graph, "top", std::make_unique<NullDriver>());
  graph.sync_points().enable();

  Rig rig;
  auto p = rig.probe(6);
  p->chunk_gate.block_at(2);
  auto id = rig.manager.start(std::make_unique<WatchingJob>(p, std::vector<NodeRef>{top, base}));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(p->chunk_gate.wait_reached(2));
  {
    DrainedSection drained(*base);
    p->chunk_gate.release();
    // Chunk 2 was under way and finishes; the next pause point waits at base's gate.
    ASSERT_TRUE(graph.sync_points().wait_for("RequestGate::wait_unquiesced:wait"));
    JobInfo held = rig.info(*id);
    EXPECT_EQ(held.progress, 3 * kChunk);
    EXPECT_EQ(held.state, JobState::Running);
    {
      std::lock_guard lock(p->mutex);
      EXPECT_EQ(p->attempts.count(3), 0u);
    }
  }
  JobInfo end = rig.wait_concluded(*id);
  EXPECT_FALSE(end.error);
  EXPECT_EQ(rig.dst(p), rig.src(p));
  graph.sync_points().disable();
}

TEST(JobDrain, JobHoldsItsWatchedNodesUntilConcluded) {
  Graph graph;
  NodeRef node = Node::create(graph, "mid", std::make_unique<NullDriver>());
  Node* raw = node.get();
  Rig rig;
  auto p = rig.probe(2);
  p->chunk_gate.block_at(0);
  auto id = rig.manager.start(std::make_unique<WatchingJob>(p, std::vector<NodeRef>{node}));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(p->chunk_gate.wait_reached(0));
  node.reset();  // the job's reference keeps it alive
  bool alive = false;
  for (Graph::Iterator it = graph.begin_all(); !it.done(); it.next())
    alive |= it.current().get() == raw;
  EXPECT_TRUE(alive);
  p->chunk_gate.release();
  rig.wait_concluded(*id);
  // Concluded: the Job, and with it the reference, is gone.
  bool still = false;
  for (Graph::Iterator it = graph.begin_all(); !it.done(); it.next())
    still |= it.current().get() == raw;
  EXPECT_FALSE(still);
}

}  // namespace
}  // namespace chainfs::testing
