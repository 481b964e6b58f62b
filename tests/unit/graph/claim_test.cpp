// Rule 2: being busy is not lifetime (seed 004). Claims and edge permissions decide whether a node
// may be used for an operation; references only keep it alive.
#include <gtest/gtest.h>

#include "blockcore/graph/graph.h"
#include "tests/unit/graph/test_driver.h"

namespace chainfs::testing {
namespace {

bool mentions(const Error& e, const std::string& what) {
  return e.message.find(what) != std::string::npos;
}

TEST(Claim, ReferencedButIdleNode_AcceptsJobClaim) {
  Graph graph;
  TestNode node = add_test_node(graph, "top");
  graph.hold_for_user(node.node);
  ASSERT_TRUE(graph.add_chain("vm", node.node).ok());
  auto handle = graph.open_handle(node.node, false);
  NodeRef extra = node.node;
  ASSERT_GE(node.node->use_count(), 5u);  // referenced by many, busy for none
  auto claim = graph.claim("job stream0", {{node.node, ClaimKind::JobTop}});
  ASSERT_TRUE(claim.ok()) << claim.error().message;
  ASSERT_EQ(node.node->claims().size(), 1u);
  EXPECT_EQ(node.node->claims()[0].claimant, "job stream0");
}

TEST(Claim, ClaimedNodeWithOneReference_RefusesConflictingClaimNamingTheClaimant) {
  Graph graph;
  TestNode node = add_test_node(graph, "mid");
  auto first = graph.claim("job stream0", {{node.node, ClaimKind::JobIntermediate}});
  ASSERT_TRUE(first.ok());
  node.node.reset();  // the claim is the only reference now
  const NodeRef& claimed = first->targets()[0].node;
  ASSERT_EQ(claimed->use_count(), 1u);
  auto second = graph.claim("job commit1", {{claimed, ClaimKind::JobTop}});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::Busy);
  EXPECT_TRUE(mentions(second.error(), "job stream0")) << second.error().message;
  EXPECT_TRUE(mentions(second.error(), "'mid'")) << second.error().message;
}

TEST(Claim, DroppingOtherReferences_ClaimKeepsNodeOpenAndListedUntilReleased) {
  Graph graph;
  TestNode node = add_test_node(graph, "base");
  auto claim = graph.claim("job commit0", {{node.node, ClaimKind::JobBase}});
  ASSERT_TRUE(claim.ok());
  node.node.reset();
  EXPECT_EQ(node.stats->closes, 0) << "the last reference of a claimed node is the claim's";
  EXPECT_TRUE(graph.find("base").ok()) << "a node held by a running job is listed";
  claim->release();
  EXPECT_EQ(node.stats->closes, 1);
  EXPECT_EQ(graph.find("base").error().code, Errc::NotFound);
}

TEST(Claim, AllOrNone_RefusedClaimLeavesNoRecord) {
  Graph graph;
  TestNode a = add_test_node(graph, "a");
  TestNode b = add_test_node(graph, "b");
  auto held = graph.claim("job stream0", {{b.node, ClaimKind::JobTop}});
  ASSERT_TRUE(held.ok());
  auto refused = graph.claim("job commit1",
                             {{a.node, ClaimKind::JobTop}, {b.node, ClaimKind::JobIntermediate}});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(a.node->claims().empty());
  EXPECT_EQ(b.node->claims().size(), 1u);
}

TEST(Claim, InvalidTargets_AreRefused) {
  Graph graph;
  TestNode a = add_test_node(graph, "a");
  EXPECT_EQ(graph.claim("", {{a.node, ClaimKind::JobTop}}).error().code, Errc::Invalid);
  EXPECT_EQ(graph.claim("job x", {}).error().code, Errc::Invalid);
  EXPECT_EQ(graph.claim("job x", {{a.node, ClaimKind::JobTop}, {a.node, ClaimKind::JobBase}})
                .error()
                .code,
            Errc::Invalid);
}

TEST(Claim, MovedClaim_ReleasesOnce) {
  Graph graph;
  TestNode a = add_test_node(graph, "a");
  Claim outer;
  {
    auto claim = graph.claim("job stream0", {{a.node, ClaimKind::JobTop}});
    ASSERT_TRUE(claim.ok());
    outer = std::move(claim).value();
  }
  EXPECT_EQ(a.node->claims().size(), 1u);
  outer.release();
  outer.release();
  EXPECT_TRUE(a.node->claims().empty());
}

TEST(RemoveNode, ReferencedOrClaimed_IsRefusedUnreferencedCloses) {
  Graph graph;
  TestNode base = add_test_node(graph, "base");
  TestNode top = add_test_node(graph, "top");
  graph.hold_for_user(base.node);
  graph.hold_for_user(top.node);
  ASSERT_TRUE(graph.attach_child(*top.node, base.node, ChildRole::Backing).ok());

  auto r = graph.remove_node("base");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Busy);
  EXPECT_TRUE(mentions(r.error(), "'top'")) << r.error().message;

  auto claim = graph.claim("job stream0", {{top.node, ClaimKind::JobTop}});
  ASSERT_TRUE(claim.ok());
  r = graph.remove_node("top");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Busy);
  EXPECT_TRUE(mentions(r.error(), "job stream0")) << r.error().message;
  claim->release();

  ASSERT_TRUE(graph.add_chain("vm", top.node).ok());
  EXPECT_EQ(graph.remove_node("top").error().code, Errc::Busy) << "a chain's active layer";
  ASSERT_TRUE(graph.remove_chain("vm").ok());

  top.node.reset();
  base.node.reset();
  ASSERT_TRUE(graph.remove_node("top").ok());
  EXPECT_EQ(top.stats->closes, 1);
  EXPECT_EQ(base.stats->closes, 0) << "still held by the user";
  ASSERT_TRUE(graph.remove_node("base").ok());
  EXPECT_EQ(base.stats->closes, 1);
  EXPECT_EQ(graph.remove_node("base").error().code, Errc::NotFound);
}

TEST(Permissions, IntermediateClaim_RefusesNewWritersUntilReleased) {
  Graph graph;
  TestNode node = add_test_node(graph, "mid");
  graph.hold_for_user(node.node);
  ASSERT_TRUE(graph.check_writable(*node.node).ok());
  auto claim = graph.claim("job commit0", {{node.node, ClaimKind::JobIntermediate}});
  ASSERT_TRUE(claim.ok());
  auto r = graph.check_writable(*node.node);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Busy);
  EXPECT_TRUE(mentions(r.error(), "job commit0")) << r.error().message;
  EXPECT_FALSE(graph.open_handle(node.node, true).ok());
  EXPECT_TRUE(graph.open_handle(node.node, false).ok()) << "readers are welcome";
  claim->release();
  EXPECT_TRUE(graph.check_writable(*node.node).ok());
}

TEST(Permissions, TopClaim_LetsGuestWritesGoOn) {
  Graph graph;
  TestNode node = add_test_node(graph, "top");
  auto writer = graph.open_handle(node.node, true);
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ(node.node->writers(), 1);
  auto claim = graph.claim("job stream0", {{node.node, ClaimKind::JobTop}});
  ASSERT_TRUE(claim.ok()) << claim.error().message;
  EXPECT_TRUE(graph.check_writable(*node.node).ok());
}

TEST(Permissions, OpenWriter_RefusesClaimThatBlocksWriters) {
  Graph graph;
  TestNode node = add_test_node(graph, "n");
  {
    auto writer = graph.open_handle(node.node, true);
    ASSERT_TRUE(writer.ok());
    BlockHandle copy = *writer;  // a copy is one more writer
    EXPECT_EQ(node.node->writers(), 2);
    auto claim = graph.claim("job commit0", {{node.node, ClaimKind::JobBase}});
    ASSERT_FALSE(claim.ok());
    EXPECT_EQ(claim.error().code, Errc::Busy);
    EXPECT_TRUE(mentions(claim.error(), "writer")) << claim.error().message;
  }
  EXPECT_EQ(node.node->writers(), 0);
  EXPECT_TRUE(graph.claim("job commit0", {{node.node, ClaimKind::JobBase}}).ok());
}

TEST(Permissions, BackingEdgeForbidsWriters_ButCommitClaimCoveringTheParentsMayWriteBase) {
  Graph graph;
  std::vector<TestNode> chain = make_chain(graph, 3);  // node0 <- node1 <- node2
  Node& base = *chain[0].node;
  auto r = graph.check_writable(base);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Access);
  EXPECT_TRUE(mentions(r.error(), "backing node of 'node1'")) << r.error().message;
  EXPECT_TRUE(graph.check_writable(*chain[2].node).ok()) << "the top takes writers";

  auto commit = graph.claim("job commit0", {{chain[2].node, ClaimKind::JobTop},
                                            {chain[1].node, ClaimKind::JobIntermediate},
                                            {chain[0].node, ClaimKind::JobBase}});
  ASSERT_TRUE(commit.ok());
  EXPECT_TRUE(graph.check_writable(base, *commit, PermWrite).ok())
      << "node1, which reads node0, is the commit's to cut out";
  EXPECT_EQ(graph.check_writable(base).error().code, Errc::Busy) << "others still may not";
  EXPECT_FALSE(graph.check_writable(*chain[1].node, *commit, PermWrite).ok())
      << "an intermediate grants nothing";
  auto handle = graph.open_handle(chain[0].node, *commit, PermWrite);
  ASSERT_TRUE(handle.ok()) << handle.error().message;
  EXPECT_TRUE(handle->writable());

  // A second overlay on the same base, not covered by the claim, still forbids the write.
  TestNode other = add_test_node(graph, "other");
  ASSERT_TRUE(graph.attach_child(*other.node, chain[0].node, ChildRole::Backing).ok());
  r = graph.check_writable(base, *commit, PermWrite);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Access);
  EXPECT_TRUE(mentions(r.error(), "'other'")) << r.error().message;
}

TEST(Permissions, StreamIntoMiddleLayer_MayWriteUnchangedOnly) {
  Graph graph;
  std::vector<TestNode> chain = make_chain(graph, 3);
  auto stream = graph.claim("job stream0", {{chain[1].node, ClaimKind::JobTop}});
  ASSERT_TRUE(stream.ok());
  EXPECT_TRUE(graph.check_writable(*chain[1].node, *stream, PermWriteUnchanged).ok());
  EXPECT_EQ(graph.check_writable(*chain[1].node, *stream, PermWrite).error().code, Errc::Access);
}

TEST(Permissions, ProtocolNodeUnderFormat_MayNotTakeWriters) {
  Graph graph;
  TestNode file = add_test_node(graph, "img.file");
  TestNode format = add_test_node(graph, "img");
  ASSERT_TRUE(graph.attach_child(*format.node, file.node, ChildRole::File).ok());
  auto r = graph.check_writable(*file.node);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Access);
  EXPECT_TRUE(mentions(r.error(), "file node of 'img'")) << r.error().message;
}

TEST(Permissions, ReadOnlyMountOrNode_RefusesWriters) {
  GraphOptions options;
  options.read_only = true;
  Graph ro_graph(options);
  TestNode n = add_test_node(ro_graph, "n");
  EXPECT_EQ(ro_graph.check_writable(*n.node).error().code, Errc::ReadOnly);
  EXPECT_TRUE(n.node->read_only()) << "add_node forces read-only on a read-only mount";

  Graph graph;
  TestNode m = add_test_node(graph, "m");
  m.node->set_read_only(true);
  EXPECT_EQ(graph.check_writable(*m.node).error().code, Errc::ReadOnly);
  auto handle = graph.open_handle(m.node, false);
  ASSERT_TRUE(handle.ok());
  std::vector<std::byte> buf(512);
  EXPECT_EQ(handle->write(0, buf).error().code, Errc::ReadOnly);
}

TEST(Claim, StreamAndCommitOnOverlappingChain_BothAllowed) {
  // Seed 002's pair: stream node4 down to node2, commit node2 into node0. The stream does not
  // claim its base (node2), so the two claims do not meet.
  Graph graph;
  std::vector<TestNode> chain = make_chain(graph, 5);
  auto stream = graph.claim("job stream0", {{chain[4].node, ClaimKind::JobTop},
                                            {chain[3].node, ClaimKind::JobIntermediate}});
  auto commit = graph.claim("job commit1", {{chain[2].node, ClaimKind::JobTop},
                                            {chain[1].node, ClaimKind::JobIntermediate},
                                            {chain[0].node, ClaimKind::JobBase}});
  EXPECT_TRUE(stream.ok());
  EXPECT_TRUE(commit.ok()) << commit.error().message;
  auto third = graph.claim("job stream2", {{chain[3].node, ClaimKind::JobTop}});
  ASSERT_FALSE(third.ok());
  EXPECT_TRUE(mentions(third.error(), "job stream0"));
}

}  // namespace
}  // namespace chainfs::testing
