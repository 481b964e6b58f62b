// Graph::reopen and Graph::hold_read_write (QEMU's bdrv_reopen): the drivers switch inside a
// drained section, children first for read-write and last for read-only, all or nothing; what the
// user or the image made read-only is never reopened; a backing layer reopened read-write still
// refuses new writers; readers across reopens see the same data.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "blockcore/graph/graph.h"
#include "tests/unit/graph/test_driver.h"
#include "tests/unit/graph/test_util.h"

namespace chainfs::testing {
namespace {

std::string message_of(const Result<void>& r) {
  return r.ok() ? std::string("ok")
                : std::string(errno_name(r.error().code)) + ": " + r.error().message;
}

Result<void> write_block(Node& node, uint64_t index, uint8_t value) {
  std::vector<std::byte> data(kBlock, std::byte{value});
  return node.write(index * kBlock, data);
}

uint8_t read_byte(BlockHandle& handle, uint64_t offset) {
  std::byte b{0xEE};
  auto r = handle.read(offset, {&b, 1});
  EXPECT_TRUE(r.ok()) << message_of(r);
  return static_cast<uint8_t>(b);
}

// A format test node over a file test node (`name.file`), linked as the config layer links them.
struct FormatOverFile {
  TestNode format;
  TestNode file;
};
FormatOverFile format_over_file(Graph& graph, const std::string& name) {
  FormatOverFile out;
  out.file = add_test_node(graph, name + ".file", {.has_backing = false});
  out.format = add_test_node(graph, name);
  EXPECT_TRUE(graph.attach_child(*out.format.node, out.file.node, ChildRole::File).ok());
  return out;
}

TEST(Reopen, ReadOnlyThenReadWrite_SwitchesTheDriverInsideADrainAndRecordsWhy) {
  Graph graph;
  std::vector<TestNode> chain = make_chain(graph, 2);
  Node& base = *chain[0].node;
  ASSERT_TRUE(graph.reopen(base, true).ok());
  EXPECT_EQ(base.read_only_cause(), ReadOnlyCause::Backing);
  EXPECT_TRUE(chain[0].driver->driver_read_only());
  EXPECT_FALSE(base.capabilities().writable);
  EXPECT_EQ(chain[0].stats->in_flight_at_reopen, 0) << "no request in flight during a reopen";
  EXPECT_EQ(write_block(base, 5, 0x55).error().code, Errc::ReadOnly);

  ASSERT_TRUE(graph.reopen(base, false).ok());
  EXPECT_EQ(base.read_only_cause(), ReadOnlyCause::None);
  EXPECT_TRUE(base.capabilities().writable);
  ASSERT_TRUE(write_block(base, 5, 0x55).ok());
  ASSERT_TRUE(graph.reopen(base, true).ok());
  EXPECT_EQ(chain[0].stats->reopens, 3);

  // What was written while read-write reads back, through the chain, once read-only again.
  BlockHandle top(chain[1].node, false);
  EXPECT_EQ(read_byte(top, 5 * kBlock), 0x55);
  EXPECT_EQ(read_byte(top, 0), 1);

  // Asking for the state the node is in calls no driver.
  ASSERT_TRUE(graph.reopen(base, true).ok());
  EXPECT_EQ(chain[0].stats->reopens, 3);
}

TEST(Reopen, FormatNodeRefusingReadWrite_PutsItsFileChildBackToReadOnly) {
  Graph graph;
  FormatOverFile f = format_over_file(graph, "img");
  ASSERT_TRUE(graph.reopen(*f.format.node, true).ok());
  EXPECT_TRUE(f.file.driver->driver_read_only()) << "the protocol child follows";
  EXPECT_EQ(f.file.node->read_only_cause(), ReadOnlyCause::Backing);

  f.format.driver->fail_next_reopen(false, Errc::Io);
  auto refused = graph.reopen(*f.format.node, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::Io);
  EXPECT_NE(refused.error().message.find("'img'"), std::string::npos) << refused.error().message;
  // The file child was reopened read-write first, then back: all or nothing.
  EXPECT_EQ(f.file.stats->reopens, 3);
  EXPECT_TRUE(f.file.driver->driver_read_only());
  EXPECT_EQ(f.file.node->read_only_cause(), ReadOnlyCause::Backing);
  EXPECT_EQ(f.format.node->read_only_cause(), ReadOnlyCause::Backing);
  EXPECT_FALSE(f.file.node->capabilities().writable);

  ASSERT_TRUE(graph.reopen(*f.format.node, false).ok());
  EXPECT_FALSE(f.file.driver->driver_read_only());
  EXPECT_FALSE(f.format.driver->driver_read_only());
}

TEST(Reopen, FileChildRefusingReadOnly_PutsTheFormatNodeBackToReadWrite) {
  Graph graph;
  FormatOverFile f = format_over_file(graph, "img");
  f.file.driver->fail_next_reopen(true, Errc::Io);
  auto refused = graph.reopen(*f.format.node, true);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("'img.file'"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(f.format.stats->reopens, 2) << "read-only, then back";
  EXPECT_FALSE(f.format.driver->driver_read_only());
  EXPECT_EQ(f.format.node->read_only_cause(), ReadOnlyCause::None);
  EXPECT_EQ(f.file.node->read_only_cause(), ReadOnlyCause::None);
}

TEST(Reopen, WhatTheUserOrTheImageMadeReadOnly_IsNeverReopenedReadWrite) {
  Graph graph;
  TestNode user = add_test_node(graph, "user");
  user.node->set_read_only(ReadOnlyCause::User);
  auto r = graph.reopen(*user.node, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::ReadOnly);
  EXPECT_NE(r.error().message.find("as the user asked"), std::string::npos) << r.error().message;
  EXPECT_EQ(graph.hold_read_write(user.node).error().code, Errc::ReadOnly);
  EXPECT_EQ(user.stats->reopens, 0);

  TestNode image = add_test_node(graph, "image");
  image.node->set_read_only(ReadOnlyCause::Image);
  EXPECT_EQ(graph.reopen(*image.node, false).error().code, Errc::ReadOnly);

  // A format node that may be reopened over a protocol node the user made read-only.
  FormatOverFile f = format_over_file(graph, "img");
  ASSERT_TRUE(graph.reopen(*f.format.node, true).ok());
  f.file.node->set_read_only(ReadOnlyCause::User);
  r = graph.reopen(*f.format.node, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("'img.file'"), std::string::npos) << r.error().message;
  EXPECT_EQ(f.format.node->read_only_cause(), ReadOnlyCause::Backing);

  // A read-only mount: every node is read-only as asked.
  GraphOptions options;
  options.read_only = true;
  Graph ro_graph(options);
  TestNode n = add_test_node(ro_graph, "n");
  EXPECT_EQ(n.node->read_only_cause(), ReadOnlyCause::User);
  r = ro_graph.reopen(*n.node, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::ReadOnly);
  EXPECT_NE(r.error().message.find("mount is read-only"), std::string::npos) << r.error().message;
}

TEST(Reopen, BackingLayerReopenedReadWrite_StillRefusesNewWriters) {
  Graph graph;
  std::vector<TestNode> chain = make_chain(graph, 2);
  NodeRef base = chain[0].node;
  ASSERT_TRUE(graph.reopen(*base, true).ok());
  auto hold = graph.hold_read_write(base);
  ASSERT_TRUE(hold.ok()) << hold.error().message;
  EXPECT_TRUE(base->capabilities().writable);
  auto check = graph.check_writable(*base);
  ASSERT_FALSE(check.ok());
  EXPECT_EQ(check.error().code, Errc::Access) << check.error().message;
  auto handle = graph.open_handle(base, true);
  ASSERT_FALSE(handle.ok()) << "a FUSE open for writing of a backing layer";
  EXPECT_EQ(handle.error().code, Errc::Access);
  EXPECT_EQ(base->writers(), 0);

  // Same for a protocol node under a format node reopened read-write.
  FormatOverFile f = format_over_file(graph, "img");
  ASSERT_TRUE(graph.reopen(*f.format.node, true).ok());
  ASSERT_TRUE(graph.reopen(*f.format.node, false).ok());
  EXPECT_EQ(graph.check_writable(*f.file.node).error().code, Errc::Access);
}

TEST(Reopen, ReadOnlyWhileTheNodeHasOpenWriters_IsRefusedBusy) {
  Graph graph;
  TestNode n = add_test_node(graph, "n");
  auto handle = graph.open_handle(n.node, true);
  ASSERT_TRUE(handle.ok());
  auto r = graph.reopen(*n.node, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Busy);
  EXPECT_EQ(n.node->read_only_cause(), ReadOnlyCause::None);
  EXPECT_EQ(n.stats->reopens, 0);
}

TEST(HoldReadWrite, TheLastHoldReopensReadOnly_AWritableNodeGivesAnEmptyHold) {
  Graph graph;
  std::vector<TestNode> chain = make_chain(graph, 2);
  NodeRef base = chain[0].node;
  ASSERT_TRUE(graph.add_chain("vm", chain[1].node).ok());
  ASSERT_TRUE(graph.reopen(*base, true).ok());
  auto first = graph.hold_read_write(base);
  auto second = graph.hold_read_write(base);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_TRUE(first->reopened());
  EXPECT_EQ(base->read_write_holds(), 2);
  EXPECT_EQ(chain[0].stats->reopens, 2) << "read-only once, read-write once for both holds";
  EXPECT_EQ(graph.reopen(*base, true).error().code, Errc::Busy) << "held by a job";

  first->release();
  EXPECT_TRUE(base->capabilities().writable) << "one hold left";
  *second = ReadWriteHold();
  EXPECT_FALSE(base->capabilities().writable);
  EXPECT_EQ(base->read_only_cause(), ReadOnlyCause::Backing);
  EXPECT_EQ(base->read_write_holds(), 0);

  // The chain's active layer is writable on its own: nothing to reopen, nothing to undo.
  auto top = graph.hold_read_write(chain[1].node);
  ASSERT_TRUE(top.ok());
  EXPECT_FALSE(top->reopened());
  top->release();
  EXPECT_TRUE(chain[1].node->capabilities().writable);
  EXPECT_EQ(chain[1].stats->reopens, 0);
}

TEST(HoldReadWrite, ANodeThatBecameAChainRoot_StaysReadWrite) {
  Graph graph;
  std::vector<TestNode> chain = make_chain(graph, 2);
  NodeRef base = chain[0].node;
  ASSERT_TRUE(graph.add_chain("vm", chain[1].node).ok());
  ASSERT_TRUE(graph.reopen(*base, true).ok());
  auto hold = graph.hold_read_write(base);
  ASSERT_TRUE(hold.ok());
  // What an active commit's completion does: the chain now points at base.
  ASSERT_TRUE(graph.set_chain_root("vm", base).ok());
  ASSERT_TRUE(graph.set_backing(*chain[1].node, nullptr).ok());
  hold->release();
  EXPECT_EQ(base->read_only_cause(), ReadOnlyCause::None);
  EXPECT_TRUE(base->capabilities().writable);
  EXPECT_TRUE(graph.check_writable(*base).ok()) << "the active layer takes writers";
}

TEST(Reopen, WaitsForARequestInFlightBelowAndDoesNotFailIt) {
  if (!kSyncPointsEnabled) GTEST_SKIP() << "sync points are compiled out (release build)";
  Graph graph;
  SyncPoints& sync = graph.sync_points();
  std::vector<TestNode> chain = make_chain(graph, 2);
  ASSERT_TRUE(graph.reopen(*chain[0].node, true).ok());
  sync.enable();
  BlockHandle top(chain[1].node, false);
  // A read of blocks 0-1 through the top: block 0 comes from the base, then it pauses.
  sync.pause_at("TestDriver::read:between_blocks@node1");
  auto reader = spawn(sync, [&] {
    std::vector<std::byte> buf(2 * kBlock);
    auto r = top.read(0, buf);
    return r.ok() && buf[0] == std::byte{1} && buf[kBlock] == std::byte{2};
  });
  ASSERT_TRUE(sync.wait_for("TestDriver::read:between_blocks@node1"));
  auto reopener = spawn(sync, [&] { return graph.reopen(*chain[0].node, false).ok(); });
  ASSERT_TRUE(sync.wait_for("RequestGate::wait_idle:wait@node1")) << "the reopen drains the top";
  EXPECT_EQ(sync.hits("Graph::reopen:drained@node0"), 0u);
  EXPECT_TRUE(chain[0].driver->driver_read_only());
  sync.resume("TestDriver::read:between_blocks@node1");
  ASSERT_TRUE(finishes(reader));
  EXPECT_TRUE(reader.get()) << "the read in flight completed with the right data";
  ASSERT_TRUE(finishes(reopener));
  EXPECT_TRUE(reopener.get());
  EXPECT_EQ(chain[0].stats->in_flight_at_reopen, 0);
  sync.disable();
}

TEST(Reopen, ConcurrentReaders_SeeTheSameDataAcrossManyReopens) {
  Graph graph;
  std::vector<TestNode> chain = make_chain(graph, 3);
  ASSERT_TRUE(graph.reopen(*chain[0].node, true).ok());
  ASSERT_TRUE(graph.reopen(*chain[1].node, true).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, wrong{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t)
    readers.emplace_back([&] {
      BlockHandle handle(chain[2].node, false);
      std::vector<std::byte> buf(16 * kBlock);
      while (!stop.load()) {
        if (!handle.read(0, buf).ok()) ++wrong;
        for (uint64_t block = 0; block < 16; ++block)
          if (buf[block * kBlock] != std::byte{static_cast<uint8_t>(block < 3 ? block + 1 : 0)})
            ++wrong;
        ++reads;
      }
    });
  // Wait for the readers to be under way before reopening under them.
  while (reads.load() < 2) std::this_thread::yield();
  for (int i = 0; i < 50; ++i) {
    auto base = graph.hold_read_write(chain[0].node);
    auto mid = graph.hold_read_write(chain[1].node);
    ASSERT_TRUE(base.ok() && mid.ok());
    EXPECT_TRUE(chain[0].node->capabilities().writable);
  }
  const int before = reads.load();
  while (reads.load() < before + 2) std::this_thread::yield();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(chain[0].stats->reopens, 101);
  EXPECT_FALSE(chain[0].node->capabilities().writable);
}

}  // namespace
}  // namespace chainfs::testing
