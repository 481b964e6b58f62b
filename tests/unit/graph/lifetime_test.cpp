// Rule 1: lifetime is a reference count, and every holder counts (seed 000).
#include <future>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "blockcore/graph/graph.h"
#include "tests/unit/graph/test_driver.h"
#include "tests/unit/graph/test_util.h"

namespace chainfs::testing {
namespace {

TEST(Lifetime, LastHolderClosesExactlyOnce_WhateverTheOrder) {
  Graph graph;
  TestNode base = add_test_node(graph, "base");
  TestNode top = add_test_node(graph, "top");
  ASSERT_TRUE(graph.attach_child(*top.node, base.node, ChildRole::Backing).ok());
  ASSERT_TRUE(graph.add_chain("vm", top.node).ok());
  graph.hold_for_user(base.node);
  auto claim = graph.claim("job test0", {{base.node, ClaimKind::JobBase}});
  ASSERT_TRUE(claim.ok());
  auto handle = graph.open_handle(base.node, false);
  ASSERT_TRUE(handle.ok());
  auto it = graph.begin_all();  // pins base (the first node by id)
  ASSERT_EQ(it.current(), base.node);
  base.node.reset();
  top.node.reset();

  // Every holder in turn: none of them but the last closes it.
  ASSERT_TRUE(graph.remove_chain("vm").ok());  // drops top, and with it the parent edge
  EXPECT_EQ(top.stats->closes, 1);
  EXPECT_EQ(base.stats->closes, 0);
  EXPECT_EQ(graph.remove_node("base").error().code, Errc::Busy) << "claimed";
  claim->release();
  EXPECT_EQ(base.stats->closes, 0);
  ASSERT_TRUE(graph.remove_node("base").ok());
  EXPECT_EQ(base.stats->closes, 0);
  EXPECT_TRUE(graph.find("base").error().code == Errc::NotFound) << "held, but not listed";
  *handle = BlockHandle(nullptr, false);
  EXPECT_EQ(base.stats->closes, 0) << "the iterator still pins it";
  it.next();
  EXPECT_TRUE(it.done());
  EXPECT_EQ(base.stats->closes, 1);
  EXPECT_EQ(base.stats->opens, 1);
}

TEST(Lifetime, IteratorEarlyExit_ReleasesItsPin) {
  Graph graph;
  std::vector<TestNode> nodes;
  for (int i = 0; i < 4; ++i) nodes.push_back(add_test_node(graph, "n" + std::to_string(i)));
  const uint64_t before = nodes[1].node->use_count();
  {
    auto it = graph.begin_all();
    it.next();
    ASSERT_EQ(it.current(), nodes[1].node);
    EXPECT_EQ(nodes[1].node->use_count(), before + 1);
    nodes[1].node.reset();  // the iterator is now the only holder
    EXPECT_EQ(nodes[1].stats->closes, 0);
  }  // stopping early: the destructor lets go
  EXPECT_EQ(nodes[1].stats->closes, 1);
  for (int i : {0, 2, 3}) EXPECT_EQ(nodes[i].node->use_count(), 1u) << "no pin left behind";
}

// Another thread drops nodes, the pinned one and the next ones included, every time the iteration
// has pinned its next node: no use-after-free (ASan), each dropped node closes exactly once and
// not while pinned, and every node alive throughout is visited, in order.
TEST(Lifetime, IterationWhileOtherThreadDropsNodes_SkipsNoSurvivor) {
  SKIP_WITHOUT_SYNC_POINTS();
  Graph graph;
  constexpr int kNodes = 12;
  std::vector<TestNode> nodes;
  for (int i = 0; i < kNodes; ++i) nodes.push_back(add_test_node(graph, "n" + std::to_string(i)));
  std::vector<std::string> survivors;
  for (int i = 0; i < kNodes; i += 3) survivors.push_back(nodes[i].node->name());

  Stepper stepper;
  stepper.install(graph.sync_points(), "Graph::Iterator:pinned");
  graph.sync_points().enable();
  auto visited = spawn([&] { stepper.allow_all(); },
                       [&] {
                         std::vector<std::string> names;
                         for (auto it = graph.begin_all(); !it.done(); it.next())
                           names.push_back(it.current()->name());
                         return names;
                       });

  std::set<int> dropped;
  auto drop = [&](int i) {
    if (i >= kNodes || i % 3 == 0 || dropped.count(i)) return;
    nodes[i].node.reset();
    dropped.insert(i);
  };
  for (uint64_t step = 1;; ++step) {
    std::string pinned = stepper.wait_arrival(step);
    if (pinned.empty()) break;  // (already reported by wait_arrival)
    const int index = std::stoi(pinned.substr(1));
    if (index % 3 != 0) {
      // Pinned on a victim: drop it (and the one after it); the pin keeps it open.
      drop(index);
      drop(index + 1);
      EXPECT_EQ(nodes[index].stats->closes, 0) << pinned << " closed while pinned";
    } else {
      drop(index + 2);  // one ahead of the next node: gone before the iterator gets there
    }
    bool more = false;
    for (int i = index + 1; i < kNodes; ++i) more = more || !dropped.count(i);
    if (!more) {
      stepper.allow_all();
      break;
    }
    stepper.allow(step);
  }
  ASSERT_TRUE(finishes(visited));
  std::vector<std::string> names = visited.get();
  graph.sync_points().disable();

  std::vector<std::string> seen_survivors;
  for (const auto& n : names)
    if (std::find(survivors.begin(), survivors.end(), n) != survivors.end())
      seen_survivors.push_back(n);
  EXPECT_EQ(seen_survivors, survivors);
  for (int i : dropped) EXPECT_EQ(nodes[i].stats->closes, 1) << "n" << i;
  for (const std::string& n : names) EXPECT_EQ(std::count(names.begin(), names.end(), n), 1);
}

TEST(Lifetime, TwoGraphsInOneProcess_AreIndependent) {
  Graph a, b;
  TestNode na = add_test_node(a, "same");
  TestNode nb = add_test_node(b, "same");  // no shared registry: the name is free in b
  ASSERT_TRUE(na.node && nb.node);
  a.hold_for_user(na.node);
  EXPECT_TRUE(a.find("same").ok());
  EXPECT_FALSE(b.find("same").ok());
  EXPECT_EQ(b.attach_child(*nb.node, na.node, ChildRole::Backing).error().code, Errc::Invalid);
}

TEST(Lifetime, AddNode_TakenName_IsRefused) {
  Graph graph;
  TestNode first = add_test_node(graph, "x");
  auto second = graph.add_node(
      "x", std::make_unique<TestDriver>(TestDriverOptions{}, std::make_shared<TestStats>()));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::Exists);
}

TEST(Lifetime, AddNode_OpenFails_NodeIsGoneAndNeverClosed) {
  Graph graph;
  auto stats = std::make_shared<TestStats>();
  TestDriverOptions options;
  options.fail_open = true;
  auto node = graph.add_node("broken", std::make_unique<TestDriver>(options, stats));
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(stats->closes, 0) << "close() is owed only after a successful open()";
  EXPECT_TRUE(graph.begin_all().done());
  EXPECT_TRUE(
      graph.add_node("broken", std::make_unique<TestDriver>(TestDriverOptions{}, stats)).ok())
      << "the name is free again";
}

}  // namespace
}  // namespace chainfs::testing
