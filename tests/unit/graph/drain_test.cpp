// Rule 3: graph changes happen only inside drained sections (seed 003). These tests pause a real
// request inside a driver, or a drain inside its wait, at a sync point, so the dangerous
// interleavings happen every run.
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "blockcore/graph/drain.h"
#include "blockcore/graph/graph.h"
#include "tests/unit/graph/test_driver.h"
#include "tests/unit/graph/test_util.h"

namespace chainfs::testing {
namespace {

std::vector<uint8_t> read_bytes(BlockHandle& handle, uint64_t offset, uint64_t length) {
  std::vector<std::byte> buf(length);
  auto r = handle.read(offset, buf);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  std::vector<uint8_t> out(length);
  for (size_t i = 0; i < length; ++i) out[i] = static_cast<uint8_t>(buf[i]);
  return out;
}

bool uniform(const std::vector<uint8_t>& bytes, uint8_t value) {
  return std::all_of(bytes.begin(), bytes.end(), [&](uint8_t b) { return b == value; });
}

// The external entry is on every FUSE request: one request through a handle is counted once on
// its node (one gate entry, not an external and an internal one), and once on each node below.
TEST(RequestGate, HandleRequestCountsOnceOnItsNode) {
  Graph graph;
  std::vector<TestNode> chain = make_chain(graph, 2);
  BlockHandle handle(chain[1].node, false);
  std::vector<std::byte> buf(kBlock);
  ASSERT_TRUE(handle.read(0, buf).ok());  // block 0 comes from node0, through node1
  EXPECT_EQ(chain[1].stats->gate_in_flight_at_read, 1);
  EXPECT_EQ(chain[0].stats->gate_in_flight_at_read, 1);
  EXPECT_EQ(chain[1].node->gate().in_flight(), 0);
  EXPECT_EQ(chain[0].node->gate().in_flight(), 0);
}

class DrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kSyncPointsEnabled) GTEST_SKIP() << "sync points are compiled out (release build)";
    graph_.sync_points().enable();
  }
  void TearDown() override { graph_.sync_points().disable(); }
  SyncPoints& sync() { return graph_.sync_points(); }
  Graph graph_;
};

TEST_F(DrainTest, WaitsForRequestInFlight) {
  TestNode node = add_test_node(graph_, "n", {.fill = 0x5a});
  BlockHandle handle(node.node, false);
  sync().pause_at("TestDriver::read:between_blocks@n");
  auto reader = spawn(sync(), [&] { return read_bytes(handle, 0, 2 * kBlock); });
  ASSERT_TRUE(sync().wait_for("TestDriver::read:between_blocks@n"));
  EXPECT_EQ(node.node->gate().in_flight(), 1);

  auto drainer = spawn(sync(), [&] { DrainedSection drain(*node.node); });
  ASSERT_TRUE(sync().wait_for("RequestGate::wait_idle:wait@n")) << "the drain saw the request";
  EXPECT_TRUE(still_pending(drainer));
  EXPECT_EQ(sync().hits("DrainedSection::begin:drained"), 0u);
  sync().resume("TestDriver::read:between_blocks@n");
  ASSERT_TRUE(finishes(reader));
  EXPECT_TRUE(uniform(reader.get(), 0x5a));
  ASSERT_TRUE(finishes(drainer));
  EXPECT_EQ(node.node->gate().quiesce_count(), 0);
}

TEST_F(DrainTest, ExternalRequestsWaitAtTheBoundaryAndDoNotFail) {
  TestNode node = add_test_node(graph_, "n", {.fill = 0x33});
  BlockHandle handle(node.node, false);
  auto drain = std::make_unique<DrainedSection>(*node.node);
  auto reader = spawn(sync(), [&] { return read_bytes(handle, 0, kBlock); });
  ASSERT_TRUE(sync().wait_for("RequestGate::enter_external:wait@n"));
  EXPECT_TRUE(still_pending(reader));
  EXPECT_EQ(node.stats->reads, 0) << "held before the driver";
  drain.reset();
  ASSERT_TRUE(finishes(reader));
  EXPECT_TRUE(uniform(reader.get(), 0x33));
}

TEST_F(DrainTest, DrainingChild_HoldsRequestsThatEnterAtItsParents) {
  std::vector<TestNode> chain = make_chain(graph_, 3);
  BlockHandle top(chain[2].node, false);
  DrainedSection drain(*chain[0].node);
  EXPECT_GT(chain[2].node->gate().quiesce_count(), 0);
  auto reader = spawn(sync(), [&] { return read_bytes(top, 0, kBlock); });
  ASSERT_TRUE(sync().wait_for("RequestGate::enter_external:wait@node2"));
  EXPECT_EQ(chain[0].stats->reads, 0);
  // Internal requests (the drain owner's own) pass inside the section.
  std::vector<std::byte> buf(kBlock);
  EXPECT_TRUE(chain[0].node->read(0, buf).ok());
  drain.end();
  ASSERT_TRUE(finishes(reader));
  EXPECT_TRUE(uniform(reader.get(), 1));
}

TEST_F(DrainTest, SectionsNest) {
  TestNode node = add_test_node(graph_, "n");
  DrainedSection outer(*node.node);
  {
    DrainedSection inner(*node.node);
    EXPECT_EQ(node.node->gate().quiesce_count(), 2);
  }
  EXPECT_EQ(node.node->gate().quiesce_count(), 1);
  DrainedSection moved = std::move(outer);
  EXPECT_FALSE(outer.active());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(node.node->gate().quiesce_count(), 1);
  moved.end();
  moved.end();
  EXPECT_EQ(node.node->gate().quiesce_count(), 0);
}

TEST_F(DrainTest, SubtreeScope_DrainsDescendantsAndTheirParents) {
  std::vector<TestNode> chain = make_chain(graph_, 3);
  TestNode sibling = add_test_node(graph_, "sibling");  // a second overlay on node0
  ASSERT_TRUE(graph_.attach_child(*sibling.node, chain[0].node, ChildRole::Backing).ok());
  {
    DrainedSection drain(*chain[1].node, DrainScope::Subtree);
    for (const NodeRef& n : {chain[0].node, chain[1].node, chain[2].node, sibling.node})
      EXPECT_EQ(n->gate().quiesce_count(), 1) << n->name();
    EXPECT_EQ(drain.quiesced().size(), 4u);
  }
  DrainedSection node_only(*chain[1].node);
  EXPECT_EQ(chain[0].node->gate().quiesce_count(), 0) << "Node scope leaves the backing alone";
  EXPECT_EQ(chain[2].node->gate().quiesce_count(), 1);
}

TEST_F(DrainTest, NewParentOfDrainedChild_InheritsTheSection) {
  TestNode child = add_test_node(graph_, "child", {.fill = 0x44});
  TestNode parent = add_test_node(graph_, "parent");  // unallocated: reads go to child
  TestNode grand = add_test_node(graph_, "grand");
  ASSERT_TRUE(graph_.attach_child(*grand.node, parent.node, ChildRole::Backing).ok());
  BlockHandle via_grand(grand.node, false);

  auto drain = std::make_unique<DrainedSection>(*child.node);
  ASSERT_TRUE(graph_.attach_child(*parent.node, child.node, ChildRole::Backing).ok());
  EXPECT_EQ(parent.node->gate().quiesce_count(), 1) << "inherited from the child's section";
  EXPECT_EQ(grand.node->gate().quiesce_count(), 1) << "and so did the parent's ancestors";
  EXPECT_EQ(drain->quiesced().size(), 3u);

  auto reader = spawn(sync(), [&] { return read_bytes(via_grand, 0, kBlock); });
  ASSERT_TRUE(sync().wait_for("RequestGate::enter_external:wait@grand"));
  EXPECT_EQ(child.stats->reads, 0) << "nothing reached the drained child through the new edge";
  drain.reset();
  EXPECT_EQ(parent.node->gate().quiesce_count(), 0) << "the section undid what it inherited";
  EXPECT_EQ(grand.node->gate().quiesce_count(), 0);
  ASSERT_TRUE(finishes(reader));
  EXPECT_TRUE(uniform(reader.get(), 0x44));
}

TEST_F(DrainTest, JobPausePoint_WaitsUntilUndrained) {
  TestNode node = add_test_node(graph_, "n");
  auto drain = std::make_unique<DrainedSection>(*node.node);
  auto job = spawn(sync(), [&] { wait_until_undrained({node.node}); });
  ASSERT_TRUE(sync().wait_for("RequestGate::wait_unquiesced:wait@n"));
  EXPECT_TRUE(still_pending(job));
  drain.reset();
  EXPECT_TRUE(finishes(job));
}

// Seed 003: a request reading through T, paused between two blocks, must not see T's backing edge
// change under it: set_backing drains T and waits; the read returns the old backing's bytes only.
TEST_F(DrainTest, SetBacking_RequestCannotObserveHalfChangedEdge) {
  TestNode old_backing = add_test_node(graph_, "b1", {.fill = 0x11});
  TestNode new_backing = add_test_node(graph_, "b2", {.fill = 0x22});
  TestNode top = add_test_node(graph_, "t");
  ASSERT_TRUE(graph_.attach_child(*top.node, old_backing.node, ChildRole::Backing).ok());
  old_backing.node.reset();  // the edge is its only holder: a racing change would free it
  BlockHandle handle(top.node, false);

  sync().pause_at("TestDriver::read:between_blocks@t");
  auto reader = spawn(sync(), [&] { return read_bytes(handle, 0, 4 * kBlock); });
  ASSERT_TRUE(sync().wait_for("TestDriver::read:between_blocks@t"));
  auto changer = spawn(sync(), [&] { return graph_.set_backing(*top.node, new_backing.node); });
  ASSERT_TRUE(sync().wait_for("RequestGate::wait_idle:wait@t")) << "set_backing drains t first";
  EXPECT_EQ(sync().hits("Graph::change_backing_edge:drained@t"), 0u);
  EXPECT_EQ(old_backing.stats->closes, 0);
  sync().resume("TestDriver::read:between_blocks@t");

  ASSERT_TRUE(finishes(reader));
  EXPECT_TRUE(uniform(reader.get(), 0x11)) << "one edge for the whole request";
  ASSERT_TRUE(finishes(changer));
  EXPECT_TRUE(changer.get().ok());
  EXPECT_EQ(old_backing.stats->closes, 1) << "the old backing closed once, after the request";
  EXPECT_TRUE(uniform(read_bytes(handle, 0, 4 * kBlock), 0x22));
  EXPECT_EQ(top.node->gate().quiesce_count(), 0);
}

TEST_F(DrainTest, GraphChangeWaitsForRequestEnteredJustBeforeQuiesce) {
  // The Dekker pair of the gate: a request counted in flight before the quiesce is waited for.
  TestNode node = add_test_node(graph_, "n", {.fill = 1});
  BlockHandle handle(node.node, false);
  sync().pause_at("TestDriver::read:between_blocks@n");
  auto reader = spawn(sync(), [&] { return read_bytes(handle, 0, 2 * kBlock); });
  ASSERT_TRUE(sync().wait_for("TestDriver::read:between_blocks@n"));
  node.node->gate().quiesce();
  EXPECT_EQ(node.node->gate().in_flight(), 1);
  sync().resume("TestDriver::read:between_blocks@n");
  node.node->gate().wait_idle();
  EXPECT_EQ(node.node->gate().in_flight(), 0);
  ASSERT_TRUE(finishes(reader));
  node.node->gate().unquiesce();
}

}  // namespace
}  // namespace chainfs::testing
