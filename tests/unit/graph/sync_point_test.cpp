// The sync points themselves: orders, pauses, callbacks, tags; per graph, no global state.
#include <future>

#include <gtest/gtest.h>

#include "blockcore/util/sync_point.h"
#include "tests/unit/graph/test_util.h"

namespace chainfs::testing {
namespace {

TEST(SyncPoints, Order_MakesSuccessorWaitForPredecessor) {
  SyncPoints points;
  points.enable();
  points.add_order("A", "B");
  std::vector<std::string> log;
  std::mutex m;
  auto b = spawn(points, [&] {
    points.reach("B");
    std::lock_guard lock(m);
    log.push_back("B");
  });
  EXPECT_TRUE(still_pending(b));
  {
    std::lock_guard lock(m);
    log.push_back("A");
  }
  points.reach("A");
  ASSERT_TRUE(finishes(b));
  EXPECT_EQ(log, (std::vector<std::string>{"A", "B"}));
}

TEST(SyncPoints, PauseAndTags) {
  SyncPoints points;
  points.enable();
  points.pause_at("P@x");
  auto x = spawn(points, [&] { points.reach("P", "x"); });
  points.reach("P", "y");  // another tag passes
  ASSERT_TRUE(points.wait_for("P@x"));
  EXPECT_TRUE(still_pending(x));
  EXPECT_EQ(points.hits("P"), 2u);
  points.resume("P@x");
  EXPECT_TRUE(finishes(x));
}

TEST(SyncPoints, DisabledOrCleared_LetsEveryoneGo) {
  SyncPoints points;
  points.reach("nothing");  // not enabled: no effect
  EXPECT_EQ(points.hits("nothing"), 0u);
  points.enable();
  points.pause_at("P");
  auto t = spawn(points, [&] { points.reach("P"); });
  ASSERT_TRUE(points.wait_for("P"));
  points.disable();
  EXPECT_TRUE(finishes(t));
}

TEST(SyncPoints, Callback_RunsWithTheTag) {
  SyncPoints points;
  points.enable();
  std::string seen;
  points.set_callback("C", [&](std::string_view tag) { seen = tag; });
  points.reach("C", "node7");
  EXPECT_EQ(seen, "node7");
}

}  // namespace
}  // namespace chainfs::testing
