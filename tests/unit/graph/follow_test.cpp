// Writable handles that follow graph changes (BlockHandle, handle_follower.h): a relink
// replace(from, to, MoveWriters::Yes) moves them inside its drained section; requests that waited
// on the drain re-check and go to the new node; writer counts and lifetimes move along.
#include <atomic>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "blockcore/graph/graph.h"
#include "tests/unit/graph/test_driver.h"
#include "tests/unit/graph/test_util.h"

namespace chainfs::testing {
namespace {

// base <- top, chain "vm" rooted at top: what an active commit completes on.
struct TopOverBase {
  Graph graph;
  TestNode base;
  TestNode top;
  TopOverBase() {
    base = add_test_node(graph, "base");
    top = add_test_node(graph, "top");
    EXPECT_TRUE(graph.set_backing(*top.node, base.node).ok());
    EXPECT_TRUE(graph.add_chain("vm", top.node).ok());
  }
  Result<void> complete() {  // what active commit `complete` does
    return graph.relink({Relink::replace(top.node, base.node, MoveWriters::Yes)});
  }
};

std::vector<std::byte> block_of(uint8_t value) {
  return std::vector<std::byte>(kBlock, std::byte{value});
}

uint8_t first_byte(BlockHandle& handle, uint64_t block) {
  std::vector<std::byte> buf(kBlock);
  EXPECT_TRUE(handle.read(block * kBlock, buf).ok());
  return static_cast<uint8_t>(buf[0]);
}

TEST(FollowingHandles, WritesHammeredAcrossTheSwitch_AfterItLandOnlyInTheNewNode) {
  TopOverBase g;
  auto writer = g.graph.open_handle(g.top.node, true);
  ASSERT_TRUE(writer.ok());
  EXPECT_TRUE(writer->follows());
  EXPECT_EQ(g.top.node->writers(), 1);
  EXPECT_EQ(g.base.node->writers(), 0);

  constexpr int kThreads = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::vector<int> done(kThreads, 0);
  std::vector<std::atomic<int>> count(kThreads);  // writes each thread completed
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint8_t v = 1; !stop.load(); ++v) {
        // Each thread its own block, so the last value of each is known.
        if (!writer->write(t * kBlock, block_of(v)).ok()) failures.fetch_add(1);
        done[t] = v;  // written only by this thread, read after join
        count[t].fetch_add(1);
        if (v == 255) v = 0;
      }
    });
  }
  auto wait_writes = [](TestStats& stats, int n) {
    while (stats.writes.load() < n) std::this_thread::yield();
  };
  wait_writes(*g.top.stats, 200);
  ASSERT_TRUE(g.complete().ok());
  // The relink drained top before moving the handle: every write top will ever see is in now.
  const int top_writes = g.top.stats->writes.load();
  // Each thread's second write from now on started after the switch (its first may have been
  // under way), so its last write is one of those and must be in base.
  std::vector<int> at_switch(kThreads);
  for (int t = 0; t < kThreads; ++t) at_switch[t] = count[t].load();
  for (int t = 0; t < kThreads; ++t)
    while (count[t].load() < at_switch[t] + 2) std::this_thread::yield();
  wait_writes(*g.base.stats, 200);
  stop.store(true);
  for (auto& t : threads) t.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(g.top.stats->writes.load(), top_writes) << "a write landed in top after the switch";
  EXPECT_GE(g.base.stats->writes.load(), 200);
  EXPECT_EQ(writer->node_id(), g.base.node->id());
  EXPECT_EQ(writer->moves(), 1u);
  EXPECT_EQ(g.top.node->writers(), 0);
  EXPECT_EQ(g.base.node->writers(), 1);
  EXPECT_EQ(g.graph.chain("vm")->root, g.base.node);
  // Base holds each thread's last write (read through a fresh handle on base).
  BlockHandle reader(g.base.node, false);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(first_byte(reader, t), done[t]) << "thread " << t;

  *writer = BlockHandle(nullptr, false);  // closes the handle
  EXPECT_EQ(g.base.node->writers(), 0);
}

// The interleaving the re-check exists for: a request picks up top, finds it drained and waits;
// meanwhile the handle moves to base; when the drain ends, the request must go to base. (Without
// the re-check after entering the gate it writes into the detached top: this test fails.)
TEST(FollowingHandles, RequestThatWaitedOnTheDrain_ReChecksAndGoesToTheNewNode) {
  SKIP_WITHOUT_SYNC_POINTS();
  TopOverBase g;
  auto writer = g.graph.open_handle(g.top.node, true);
  ASSERT_TRUE(writer.ok());
  SyncPoints& points = g.graph.sync_points();
  points.enable();

  DrainedSection hold(*g.top.node);  // the guest's next write will wait at top's gate
  auto guest = spawn(points, [&] { return writer->write(0, block_of(0xAB)); });
  ASSERT_TRUE(points.wait_for("RequestGate::enter_external:wait@top"));
  EXPECT_TRUE(still_pending(guest));
  ASSERT_TRUE(g.complete().ok());  // moves the handle while the request waits on top
  EXPECT_EQ(writer->node_id(), g.base.node->id());
  hold.end();
  ASSERT_TRUE(finishes(guest));
  EXPECT_TRUE(guest.get().ok());

  EXPECT_EQ(points.hits("BlockHandle::request:moved@top"), 1u);
  EXPECT_EQ(g.top.stats->writes.load(), 0) << "the waiting write went into the detached top";
  EXPECT_EQ(g.base.stats->writes.load(), 1);
  BlockHandle base_reader(g.base.node, false);
  EXPECT_EQ(first_byte(base_reader, 0), 0xAB);
}

TEST(FollowingHandles, OnlyFollowingWritersMove_ReadersAndJobHandlesStay) {
  TopOverBase g;
  auto reader = g.graph.open_handle(g.top.node, false);
  auto guest = g.graph.open_handle(g.top.node, true);
  ASSERT_TRUE(reader.ok() && guest.ok());
  BlockHandle job_style(g.top.node, true);  // made by the constructor: does not follow
  BlockHandle guest_copy = *guest;          // a copy follows too
  EXPECT_FALSE(reader->follows());
  EXPECT_FALSE(job_style.follows());
  EXPECT_TRUE(guest_copy.follows());
  EXPECT_EQ(g.top.node->writers(), 3);

  ASSERT_TRUE(g.complete().ok());
  EXPECT_EQ(reader->node_id(), g.top.node->id()) << "a reader keeps reading the node it opened";
  EXPECT_EQ(job_style.node_id(), g.top.node->id());
  EXPECT_EQ(guest->node_id(), g.base.node->id());
  EXPECT_EQ(guest_copy.node_id(), g.base.node->id());
  EXPECT_EQ(g.top.node->writers(), 1);
  EXPECT_EQ(g.base.node->writers(), 2);
}

TEST(FollowingHandles, TargetThatCannotTakeWriters_RefusesTheWholeChange) {
  Graph graph;
  TestDriverOptions read_only;
  read_only.writable = false;
  TestNode base = add_test_node(graph, "base", read_only);
  TestNode top = add_test_node(graph, "top");
  ASSERT_TRUE(graph.set_backing(*top.node, base.node).ok());
  ASSERT_TRUE(graph.add_chain("vm", top.node).ok());
  auto guest = graph.open_handle(top.node, true);
  ASSERT_TRUE(guest.ok());
  auto r = graph.relink({Relink::replace(top.node, base.node, MoveWriters::Yes)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::ReadOnly) << r.error().message;
  EXPECT_EQ(graph.chain("vm")->root, top.node) << "all or nothing";
  EXPECT_EQ(guest->node_id(), top.node->id());
  EXPECT_EQ(top.node->writers(), 1);
  // Without writers open the same change is fine (nothing has to move).
  *guest = BlockHandle(nullptr, false);  // closed
  EXPECT_TRUE(graph.relink({Relink::replace(top.node, base.node, MoveWriters::Yes)}).ok());
}

TEST(FollowingHandles, MovedBackAndForth_CountsFollowAndWritesGoWhereItPoints) {
  // A snapshot puts an overlay above the node and moves the writers up; its abort moves them back.
  Graph graph;
  TestNode node = add_test_node(graph, "node");
  ASSERT_TRUE(graph.add_chain("vm", node.node).ok());
  auto guest = graph.open_handle(node.node, true);
  ASSERT_TRUE(guest.ok());
  TestNode overlay = add_test_node(graph, "overlay");
  ASSERT_TRUE(graph.set_backing(*overlay.node, node.node).ok());
  ASSERT_TRUE(graph.relink({Relink::replace(node.node, overlay.node, MoveWriters::Yes)}).ok());
  EXPECT_EQ(node.node->writers(), 0);
  EXPECT_EQ(overlay.node->writers(), 1);
  ASSERT_TRUE(guest->write(0, block_of(7)).ok());
  EXPECT_EQ(overlay.stats->writes.load(), 1);
  EXPECT_EQ(node.stats->writes.load(), 0);

  ASSERT_TRUE(graph.relink({Relink::replace(overlay.node, node.node, MoveWriters::Yes)}).ok());
  EXPECT_EQ(node.node->writers(), 1);
  EXPECT_EQ(overlay.node->writers(), 0);
  ASSERT_TRUE(guest->write(0, block_of(8)).ok());
  EXPECT_EQ(node.stats->writes.load(), 1);
  EXPECT_EQ(guest->moves(), 2u);
}

// A pin (what a FUSE request holds while it looks at the node) keeps the old node alive across a
// move; the old node closes when the last pin goes, not while the graph still changes.
TEST(FollowingHandles, PinnedOldNode_StaysAliveUntilTheLastPinGoes) {
  TopOverBase g;
  auto guest = g.graph.open_handle(g.top.node, true);
  ASSERT_TRUE(guest.ok());
  std::shared_ptr<TestStats> top_stats = g.top.stats;
  const uint64_t top_id = g.top.node->id();
  std::optional<BlockHandle::Pin> pin;
  pin.emplace(*guest);
  EXPECT_EQ(pin->node().id(), top_id);
  ASSERT_TRUE(g.complete().ok());
  g.top.node.reset();  // nothing but the pin can still look at top
  EXPECT_EQ(top_stats->closes.load(), 0);
  EXPECT_EQ(pin->node().id(), top_id);
  // A request through the pin goes where the handle points now, and the pin follows it.
  ASSERT_TRUE(guest->write(0, block_of(3), &*pin).ok());
  EXPECT_EQ(pin->node().id(), g.base.node->id());
  EXPECT_EQ(top_stats->writes.load(), 0);
  pin.reset();
  EXPECT_EQ(top_stats->closes.load(), 1) << "the last pin dropped the retired top";
}

}  // namespace
}  // namespace chainfs::testing
