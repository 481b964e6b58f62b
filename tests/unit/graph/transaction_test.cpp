// Rule 5: transactions are prepare / commit / abort / clean; each action's drained section begun
// in prepare ends in clean, exactly once, on every path (seed 001).
#include <map>

#include <gtest/gtest.h>

#include "blockcore/graph/graph.h"
#include "blockcore/graph/transaction.h"
#include "tests/unit/graph/test_driver.h"

namespace chainfs::testing {
namespace {

// Everything a failed transaction must leave as it found: edges, chains, listing, references,
// drain counters, requests in flight.
struct GraphState {
  std::map<std::string, std::string> backing_of;  // node -> backing ("" for none)
  std::map<std::string, uint64_t> use_count;
  std::map<std::string, int> quiesce;
  std::map<std::string, int> in_flight;
  std::map<std::string, std::string> chain_roots;
  std::vector<std::string> listed;
  bool operator==(const GraphState&) const = default;
};

void PrintTo(const GraphState& s, std::ostream* os) {
  for (const auto& [name, backing] : s.backing_of)
    *os << "\n  " << name << ": backing=" << backing << " refs=" << s.use_count.at(name)
        << " quiesce=" << s.quiesce.at(name) << " in_flight=" << s.in_flight.at(name);
  for (const auto& [chain, root] : s.chain_roots) *os << "\n  chain " << chain << " -> " << root;
  *os << "\n  listed:";
  for (const auto& n : s.listed) *os << " " << n;
}

GraphState capture(Graph& graph, const std::vector<NodeRef>& known) {
  GraphState s;
  for (const NodeRef& n : known) {
    NodeRef b = n->backing_ref();
    s.backing_of[n->name()] = b ? b->name() : "";
    b.reset();
    s.use_count[n->name()] = n->use_count();
    s.quiesce[n->name()] = n->gate().quiesce_count();
    s.in_flight[n->name()] = n->gate().in_flight();
  }
  for (const ChainView& c : graph.chains()) s.chain_roots[c.name] = c.root->name();
  for (const NodeRef& n : graph.listed_nodes()) s.listed.push_back(n->name());
  return s;
}

// A snapshot-like action: puts a new overlay above `node` (every parent and chain of `node` moves
// to it). `fail_early` fails before touching the graph, `fail_late` after linking everything.
class OverlayAction : public TransactionAction {
 public:
  enum class Fail { Never, Early, Late };
  OverlayAction(Graph& graph, NodeRef node, std::string overlay, Fail fail,
                std::vector<std::string>& log)
      : graph_(graph),
        node_(std::move(node)),
        overlay_name_(std::move(overlay)),
        fail_(fail),
        log_(log) {}

  std::string describe() const override { return "overlay " + overlay_name_; }

  Result<void> prepare() override {
    log_.push_back("prepare " + overlay_name_);
    drain_until_clean(*node_);
    if (fail_ == Fail::Early) return make_error(Errc::Exists, "overlay file exists");
    overlay_ = add_test_node(graph_, overlay_name_);
    overlay_stats_ = overlay_.stats;
    CHAINFS_TRY(graph_.set_backing(*overlay_.node, node_));
    CHAINFS_TRY(graph_.relink({Relink::replace(node_, overlay_.node)}));
    linked_ = true;
    // Inside the transaction the new overlay is a parent of a drained node: it inherited the
    // section, so no request can reach node_ through it before clean.
    quiesce_seen_on_overlay_ = overlay_.node->gate().quiesce_count();
    if (fail_ == Fail::Late) return make_error(Errc::NoSpace, "no space for the overlay");
    return {};
  }
  void commit() override { log_.push_back("commit " + overlay_name_); }
  void abort() override {
    log_.push_back("abort " + overlay_name_);
    if (linked_) {
      auto r = graph_.relink({Relink::replace(overlay_.node, node_)});
      EXPECT_TRUE(r.ok()) << r.error().message;
      EXPECT_TRUE(graph_.set_backing(*overlay_.node, nullptr).ok());
    }
    overlay_.node.reset();
  }
  void clean() override {
    log_.push_back("clean " + overlay_name_);
    EXPECT_GT(node_->gate().quiesce_count(), 0) << "the drain begun in prepare lasts until clean";
    overlay_.node.reset();  // (node_ stays: the action holds it for its whole life)
  }

  std::shared_ptr<TestStats> overlay_stats_;
  int quiesce_seen_on_overlay_ = -1;

 private:
  Graph& graph_;
  NodeRef node_;
  std::string overlay_name_;
  Fail fail_;
  std::vector<std::string>& log_;
  TestNode overlay_;
  bool linked_ = false;
};

struct Fixture {
  Fixture() {
    for (int i = 0; i < 3; ++i) {
      std::string prefix = "vm" + std::to_string(i) + "-";
      auto chain = make_chain(graph, 2, prefix);
      EXPECT_TRUE(graph.add_chain("vm" + std::to_string(i), chain[1].node).ok());
      for (auto& n : chain) nodes.push_back(n.node);
      tops.push_back(chain[1].node);
    }
  }
  Graph graph;
  std::vector<NodeRef> nodes;
  std::vector<NodeRef> tops;
};

class TransactionFailure : public ::testing::TestWithParam<std::tuple<int, OverlayAction::Fail>> {};

TEST_P(TransactionFailure, EachPrepareFailing_LeavesGraphReferencesAndDrainsAsBefore) {
  const auto [failing, how] = GetParam();
  Fixture f;
  std::vector<std::string> log;
  std::vector<OverlayAction*> actions;
  Transaction tx;
  for (int i = 0; i < 3; ++i) {
    auto action =
        std::make_unique<OverlayAction>(f.graph, f.tops[i], "snap" + std::to_string(i),
                                        i == failing ? how : OverlayAction::Fail::Never, log);
    actions.push_back(action.get());
    tx.add(std::move(action));
  }
  const GraphState before = capture(f.graph, f.nodes);  // the actions' own references included
  auto result = tx.run();
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("overlay snap" + std::to_string(failing)),
            std::string::npos)
      << result.error().message;

  EXPECT_EQ(capture(f.graph, f.nodes), before);
  std::vector<std::string> expected;
  for (int i = 0; i <= failing; ++i) expected.push_back("prepare snap" + std::to_string(i));
  for (int i = failing; i >= 0; --i) expected.push_back("abort snap" + std::to_string(i));
  for (int i = failing; i >= 0; --i) expected.push_back("clean snap" + std::to_string(i));
  EXPECT_EQ(log, expected);
  for (int i = 0; i <= failing; ++i) {
    auto& stats = actions[i]->overlay_stats_;
    if (!stats) continue;  // failed before creating it
    EXPECT_EQ(stats->opens, 1);
    EXPECT_EQ(stats->closes, 1) << "the overlay of a failed transaction is gone";
  }
  for (int i = failing + 1; i < 3; ++i) EXPECT_FALSE(actions[i]->overlay_stats_) << "untouched";
}

INSTANTIATE_TEST_SUITE_P(EveryAction, TransactionFailure,
                         ::testing::Combine(::testing::Values(0, 1, 2),
                                            ::testing::Values(OverlayAction::Fail::Early,
                                                              OverlayAction::Fail::Late)),
                         [](const auto& param_info) {
                           return "Action" + std::to_string(std::get<0>(param_info.param)) +
                                  (std::get<1>(param_info.param) == OverlayAction::Fail::Early
                                       ? "FailsEarly"
                                       : "FailsLate");
                         });

TEST(Transaction, AllPrepared_CommitsInOrderAndCleansOnce) {
  Fixture f;
  std::vector<std::string> log;
  std::vector<OverlayAction*> actions;
  Transaction tx;
  for (int i = 0; i < 3; ++i) {
    auto action = std::make_unique<OverlayAction>(f.graph, f.tops[i], "snap" + std::to_string(i),
                                                  OverlayAction::Fail::Never, log);
    actions.push_back(action.get());
    tx.add(std::move(action));
  }
  auto result = tx.run();
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(log, (std::vector<std::string>{"prepare snap0", "prepare snap1", "prepare snap2",
                                           "commit snap0", "commit snap1", "commit snap2",
                                           "clean snap2", "clean snap1", "clean snap0"}));
  for (int i = 0; i < 3; ++i) {
    auto chain = f.graph.chain("vm" + std::to_string(i));
    ASSERT_TRUE(chain);
    EXPECT_EQ(chain->root->name(), "snap" + std::to_string(i));
    EXPECT_EQ(chain_names(chain->root),
              (std::vector<std::string>{"snap" + std::to_string(i), "vm" + std::to_string(i) + "-1",
                                        "vm" + std::to_string(i) + "-0"}));
    EXPECT_EQ(actions[i]->quiesce_seen_on_overlay_, 1) << "the overlay inherited the drain";
  }
  for (const NodeRef& n : f.graph.listed_nodes()) {
    EXPECT_EQ(n->gate().quiesce_count(), 0) << n->name();
  }
  EXPECT_FALSE(tx.run().ok()) << "a transaction runs once";
}

// An action whose clean() forgets its drain: the framework still ends it after clean().
class ForgetfulAction : public TransactionAction {
 public:
  ForgetfulAction(NodeRef node, bool fail) : node_(std::move(node)), fail_(fail) {}
  std::string describe() const override { return "forgetful"; }
  Result<void> prepare() override {
    drain_until_clean(*node_);
    drain_until_clean(*node_, DrainScope::Subtree);
    if (fail_) return make_error(Errc::Io, "fails");
    return {};
  }
  void clean() override { quiesce_in_clean = node_->gate().quiesce_count(); }
  int quiesce_in_clean = -1;

 private:
  NodeRef node_;
  bool fail_;
};

TEST(Transaction, DrainsBegunInPrepare_EndAfterCleanOnEveryPath) {
  for (bool fail : {false, true}) {
    Graph graph;
    TestNode n = add_test_node(graph, "n");
    auto action = std::make_unique<ForgetfulAction>(n.node, fail);
    ForgetfulAction* raw = action.get();
    Transaction tx;
    tx.add(std::move(action));
    EXPECT_EQ(tx.run().ok(), !fail);
    EXPECT_EQ(raw->quiesce_in_clean, 2) << "still drained while clean() runs";
    EXPECT_EQ(n.node->gate().quiesce_count(), 0) << "ended after clean()";
  }
}

}  // namespace
}  // namespace chainfs::testing
