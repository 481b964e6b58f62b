// Inode numbers and names of the mount tree (fusefs/inodes.h).
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "fusefs/inodes.h"

namespace chainfs::fusefs {
namespace {

TEST(Inodes, KindAndValue_RoundTrip) {
  for (InodeKind kind : {InodeKind::Fixed, InodeKind::Node, InodeKind::ChainDir,
                         InodeKind::ChainLink, InodeKind::Job}) {
    for (uint64_t value : {uint64_t{1}, uint64_t{42}, kValueMask}) {
      Ino ino = make_ino(kind, value);
      EXPECT_EQ(ino_kind(ino), kind);
      EXPECT_EQ(ino_value(ino), value);
    }
  }
}

TEST(Inodes, NodeInodes_NeverCollideWithFixedOnes) {
  for (uint64_t id = 1; id <= kFixedLast + 5; ++id) {
    Ino ino = make_ino(InodeKind::Node, id);
    EXPECT_FALSE(fixed_entry(ino).has_value()) << id;
    EXPECT_NE(ino, Ino{kRoot});
  }
}

TEST(Inodes, FixedEntries_FormTheTreeOfTheInterface) {
  EXPECT_EQ(kRoot, 1u);  // FUSE_ROOT_ID
  EXPECT_EQ(fixed_child(kRoot, "nodes"), Ino{kNodesDir});
  EXPECT_EQ(fixed_child(kRoot, "chains"), Ino{kChainsDir});
  EXPECT_EQ(fixed_child(kRoot, "jobs"), Ino{kJobsDir});
  EXPECT_EQ(fixed_child(kRoot, "control"), Ino{kControlDir});
  EXPECT_EQ(fixed_child(kRoot, "graph.json"), Ino{kGraphJson});
  EXPECT_EQ(fixed_child(kRoot, "graph.dot"), Ino{kGraphDot});
  EXPECT_EQ(fixed_child(kRoot, "log"), Ino{kLog});
  for (const char* name : {"stream", "commit", "snapshot", "job", "node"}) {
    auto ino = fixed_child(kControlDir, name);
    ASSERT_TRUE(ino.has_value()) << name;
    EXPECT_STREQ(control_file_name(*ino), name);
    EXPECT_EQ(control_file_ino(name), ino);
    EXPECT_FALSE(fixed_entry(*ino)->directory);
  }
  EXPECT_FALSE(fixed_child(kRoot, "stream").has_value());  // control files live in control/
  EXPECT_FALSE(fixed_child(kNodesDir, "log").has_value());
  EXPECT_FALSE(fixed_child(kRoot, "").has_value());
  EXPECT_TRUE(fixed_entry(kNodesDir)->directory);
  EXPECT_FALSE(fixed_entry(kGraphJson)->directory);
  EXPECT_EQ(control_file_name(kGraphJson), nullptr);
}

TEST(ChainLinkName, FormatsDepthDashNode) {
  EXPECT_EQ(chain_link_name(0, "top"), "0-top");
  EXPECT_EQ(chain_link_name(12, "my-base"), "12-my-base");
  EXPECT_EQ(chain_link_target("base"), "../../nodes/base");
}

TEST(ChainLinkName, ParsesItsOwnOutput_NodeNamesMayHoldDashes) {
  for (auto [depth, node] : std::vector<std::pair<size_t, std::string>>{
           {0, "top"}, {3, "base-2"}, {10, "a-b-c"}, {7, "x.file"}}) {
    auto parsed = parse_chain_link_name(chain_link_name(depth, node));
    ASSERT_TRUE(parsed.has_value()) << node;
    EXPECT_EQ(parsed->depth, depth);
    EXPECT_EQ(parsed->node, node);
  }
}

TEST(ChainLinkName, RefusesWhatItNeverProduces) {
  for (const char* bad : {"", "top", "-top", "1-", "01-top", "x-top", "1x-top", "+1-top",
                          "99999999999999999999999-top"})
    EXPECT_FALSE(parse_chain_link_name(bad).has_value()) << bad;
}

TEST(DynamicInodes, SameNameSameNumber_DifferentNamesDifferentNumbers) {
  DynamicInodes table;
  Ino vm = table.chain_dir("vm");
  EXPECT_EQ(table.chain_dir("vm"), vm);
  Ino other = table.chain_dir("other");
  EXPECT_NE(other, vm);
  Ino link = table.chain_link("vm", "0-top");
  EXPECT_EQ(table.chain_link("vm", "0-top"), link);
  EXPECT_NE(table.chain_link("other", "0-top"), link);  // the same link name in another chain
  Ino job = table.job("stream0");
  EXPECT_EQ(ino_kind(vm), InodeKind::ChainDir);
  EXPECT_EQ(ino_kind(link), InodeKind::ChainLink);
  EXPECT_EQ(ino_kind(job), InodeKind::Job);
  // A chain named like a job gets its own number.
  EXPECT_NE(table.chain_dir("stream0"), job);
}

TEST(DynamicInodes, LookupReturnsWhatTheNumberWasGivenFor) {
  DynamicInodes table;
  Ino link = table.chain_link("vm", "1-base");
  auto entry = table.lookup(link);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->kind, InodeKind::ChainLink);
  EXPECT_EQ(entry->chain, "vm");
  EXPECT_EQ(entry->name, "1-base");
  EXPECT_FALSE(table.lookup(link + 1000).has_value());
  EXPECT_FALSE(table.lookup(make_ino(InodeKind::Node, 1)).has_value());
}

TEST(DynamicInodes, ConcurrentInterning_GivesOneNumberPerName) {
  DynamicInodes table;
  std::vector<std::thread> threads;
  std::vector<std::vector<Ino>> seen(4);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) seen[t].push_back(table.chain_dir("c" + std::to_string(i)));
    });
  for (auto& th : threads) th.join();
  for (int t = 1; t < 4; ++t) EXPECT_EQ(seen[t], seen[0]);
  EXPECT_EQ(std::set<Ino>(seen[0].begin(), seen[0].end()).size(), 200u);
}

}  // namespace
}  // namespace chainfs::fusefs
