// Rule 4: a job's final graph change is atomic (seed 002). Stream node4 down to node2 and commit
// node2 into node0 finish together on node0 <- node1 <- node2 <- node3 <- node4; in either
// completion order node0 ends directly under node4, while readers hammer node4.
#include <atomic>
#include <future>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "blockcore/graph/graph.h"
#include "tests/unit/graph/test_driver.h"
#include "tests/unit/graph/test_util.h"

namespace chainfs::testing {
namespace {

// What reading blocks 0..4 through node4 may return: one value per graph state (make_chain puts
// byte i+1 in block i of node i; the relinks copy no data). A read that saw an edge change half
// way would return another mix.
const std::set<std::vector<uint8_t>> kConsistentViews = {
    {1, 2, 3, 4, 5},  // before
    {1, 2, 3, 0, 5},  // stream done: node4 -> node2 -> node1 -> node0
    {1, 0, 0, 4, 5},  // commit done: node4 -> node3 -> node0
    {1, 0, 0, 0, 5},  // both: node4 -> node0
};

std::vector<uint8_t> read_view(BlockHandle& handle) {
  std::vector<std::byte> buf(5 * kBlock);
  auto r = handle.read(0, buf);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  std::vector<uint8_t> view;
  for (int b = 0; b < 5; ++b) {
    uint8_t first = static_cast<uint8_t>(buf[b * kBlock]);
    for (uint64_t i = 0; i < kBlock; ++i)
      if (static_cast<uint8_t>(buf[b * kBlock + i]) != first) return {0xff};  // torn inside a block
    view.push_back(first);
  }
  return view;
}

enum class Order { StreamFirst, CommitFirst };

class OverlappingJobs : public ::testing::TestWithParam<Order> {};

TEST_P(OverlappingJobs, StreamAndCommitFinishingTogether_LeaveBaseDirectlyUnderTop) {
  SKIP_WITHOUT_SYNC_POINTS();
  Graph graph;
  std::vector<TestNode> nodes = make_chain(graph, 5);
  ASSERT_TRUE(graph.add_chain("vm", nodes[4].node).ok());

  // What each job holds from its start: claims on its nodes, strong references in its intent.
  auto stream_claim = graph.claim("job stream0", {{nodes[4].node, ClaimKind::JobTop},
                                                  {nodes[3].node, ClaimKind::JobIntermediate}});
  auto commit_claim = graph.claim("job commit1", {{nodes[2].node, ClaimKind::JobTop},
                                                  {nodes[1].node, ClaimKind::JobIntermediate},
                                                  {nodes[0].node, ClaimKind::JobBase}});
  ASSERT_TRUE(stream_claim.ok() && commit_claim.ok());
  std::vector<Relink> stream_intent{Relink::backing_to_backing_of(nodes[4].node, nodes[3].node)};
  std::vector<Relink> commit_intent{Relink::replace(nodes[2].node, nodes[0].node)};
  for (int i = 1; i <= 3; ++i) nodes[i].node.reset();  // the graph and the jobs hold them now

  // Readers: real requests through node4 the whole time.
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, torn{0};
  std::vector<std::thread> readers;
  BlockHandle top(nodes[4].node, false);
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&] {
      BlockHandle mine = top;
      while (!stop.load()) {
        if (!kConsistentViews.count(read_view(mine))) torn.fetch_add(1);
        reads.fetch_add(1);
      }
    });

  SyncPoints& sync = graph.sync_points();
  sync.enable();
  // The first job to finish stops inside its relink, drained and holding the graph-change lock;
  // the second is started then and must wait for the first, and then re-read the graph.
  sync.pause_at("Graph::relink:drained");
  auto run = [&](std::vector<Relink>& intent, std::shared_ptr<Claim> claim) {
    return spawn(sync, [&graph, &intent, claim] {
      auto r = graph.relink(std::move(intent));
      claim->release();  // the job ends
      return r;
    });
  };
  auto stream_owned = std::make_shared<Claim>(std::move(stream_claim).value());
  auto commit_owned = std::make_shared<Claim>(std::move(commit_claim).value());
  const bool stream_first = GetParam() == Order::StreamFirst;
  auto first = stream_first ? run(stream_intent, stream_owned) : run(commit_intent, commit_owned);
  ASSERT_TRUE(sync.wait_for("Graph::relink:drained", 1));
  auto second = stream_first ? run(commit_intent, commit_owned) : run(stream_intent, stream_owned);
  ASSERT_TRUE(sync.wait_for("Graph::relink:begin", 2)) << "the second job reached its relink";
  EXPECT_TRUE(still_pending(second)) << "and waits for the first";
  EXPECT_EQ(sync.hits("Graph::relink:locked"), 1u);
  sync.resume("Graph::relink:drained");
  ASSERT_TRUE(finishes(first));
  EXPECT_TRUE(first.get().ok());
  ASSERT_TRUE(finishes(second));
  auto second_result = second.get();
  EXPECT_TRUE(second_result.ok()) << second_result.error().message;
  EXPECT_EQ(sync.hits("Graph::relink:drained"), 2u) << "the second re-read inside its own drain";
  sync.disable();

  while (reads.load() < 8) std::this_thread::yield();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(torn.load(), 0) << "a read saw a half-changed chain";

  EXPECT_EQ(chain_names(nodes[4].node), (std::vector<std::string>{"node4", "node0"}));
  auto chain = graph.chain("vm");
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->layers.size(), 2u);
  top = BlockHandle(nullptr, false);
  chain.reset();
  stream_owned.reset();
  commit_owned.reset();
  stream_intent.clear();
  commit_intent.clear();
  for (int i = 1; i <= 3; ++i)
    EXPECT_EQ(nodes[i].stats->closes, 1) << "node" << i << " was cut out and closed once";
  EXPECT_EQ(nodes[0].stats->closes, 0);
  EXPECT_EQ(nodes[4].stats->closes, 0);
  EXPECT_EQ(graph.listed_nodes().size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(BothOrders, OverlappingJobs,
                         ::testing::Values(Order::StreamFirst, Order::CommitFirst),
                         [](const auto& param_info) {
                           return param_info.param == Order::StreamFirst ? "StreamFirst"
                                                                         : "CommitFirst";
                         });

// What the helper prevents: resolving "the stream's base" when the job started (node2) and
// linking it after the commit finished would bring node2 back. The intent re-resolves instead.
TEST(Relink, IntentResolvesAgainstTheGraphAsItIsNow) {
  Graph graph;
  std::vector<TestNode> nodes = make_chain(graph, 5);
  ASSERT_TRUE(graph.relink({Relink::replace(nodes[2].node, nodes[0].node)}).ok());  // commit
  EXPECT_EQ(chain_names(nodes[4].node), (std::vector<std::string>{"node4", "node3", "node0"}));
  ASSERT_TRUE(graph.relink({Relink::backing_to_backing_of(nodes[4].node, nodes[3].node)}).ok());
  EXPECT_EQ(chain_names(nodes[4].node), (std::vector<std::string>{"node4", "node0"}));
}

TEST(Relink, ReplaceMovesChainsToo_AndBackingToNoneCutsEverything) {
  Graph graph;
  std::vector<TestNode> nodes = make_chain(graph, 3);
  ASSERT_TRUE(graph.add_chain("vm", nodes[2].node).ok());
  ASSERT_TRUE(graph.relink({Relink::replace(nodes[2].node, nodes[1].node)}).ok());  // active commit
  EXPECT_EQ(graph.chain("vm")->root, nodes[1].node);
  ASSERT_TRUE(graph.relink({Relink::backing_to(nodes[1].node, nullptr)}).ok());  // stream, no base
  EXPECT_EQ(chain_names(nodes[1].node), (std::vector<std::string>{"node1"}));
  EXPECT_EQ(nodes[0].node->parent_count(), 0u);
}

TEST(Relink, LoopOrStaleIntent_IsRefusedAndChangesNothing) {
  Graph graph;
  std::vector<TestNode> nodes = make_chain(graph, 3);
  auto r = graph.relink({Relink::backing_to(nodes[0].node, nodes[2].node)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Invalid);
  TestNode stray = add_test_node(graph, "stray");
  r = graph.relink({Relink::backing_to_backing_of(nodes[2].node, stray.node)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(chain_names(nodes[2].node), (std::vector<std::string>{"node2", "node1", "node0"}));
}

TEST(Relink, FailingPersist_PutsBackEdgesAlreadyChanged) {
  Graph graph;
  TestDriverOptions persisting;
  persisting.persists_backing = true;
  TestNode base = add_test_node(graph, "base", {}, "/img/base.img");
  TestNode mid = add_test_node(graph, "mid", {}, "/img/mid.img");
  TestNode a = add_test_node(graph, "a", persisting, "/img/a.qcow2");
  TestNode b = add_test_node(graph, "b", persisting, "/img/b.qcow2");
  ASSERT_TRUE(graph.set_backing(*a.node, mid.node).ok());
  ASSERT_TRUE(graph.set_backing(*b.node, mid.node).ok());
  const auto a_ref = a.driver->backing_reference();
  const auto b_ref = b.driver->backing_reference();
  ASSERT_TRUE(a_ref && b_ref);
  EXPECT_EQ(a_ref->filename, "mid.img");

  // Both parents of mid move to base (a first: its edge is older); b fails to record it, after a
  // was changed and persisted.
  b.driver->fail_next_set_backing(Errc::NoSpace);
  auto r = graph.relink({Relink::replace(mid.node, base.node)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::NoSpace);
  EXPECT_EQ(a.node->backing_ref(), mid.node);
  EXPECT_EQ(b.node->backing_ref(), mid.node);
  EXPECT_EQ(a.driver->backing_reference()->filename, "mid.img");
  EXPECT_EQ(b.driver->backing_reference()->filename, "mid.img");
  EXPECT_EQ(base.node->parent_count(), 0u);
  EXPECT_EQ(a.stats->set_backing_calls, 3) << "mid, base, and mid again";
}

}  // namespace
}  // namespace chainfs::testing
