// Many threads of real requests through BlockHandle while drains, claims, relinks, iteration and
// node churn happen at the same time. Run under ASan and TSan; bounded in iterations, not time.
#include <chrono>
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "blockcore/graph/drain.h"
#include "blockcore/graph/graph.h"
#include "tests/unit/graph/test_driver.h"

namespace chainfs::testing {
namespace {

constexpr int kChanges = 120;

TEST(Concurrency, RequestsDrainsClaimsAndRelinksTogether_StayConsistent) {
  Graph graph;
  TestNode b1 = add_test_node(graph, "b1", {.fill = 0x11});
  TestNode b2 = add_test_node(graph, "b2", {.fill = 0x22});
  TestNode top = add_test_node(graph, "top");
  TestNode work = add_test_node(graph, "work");  // writers' own node, also drained now and then
  ASSERT_TRUE(graph.attach_child(*top.node, b1.node, ChildRole::Backing).ok());
  ASSERT_TRUE(graph.add_chain("vm", top.node).ok());
  graph.hold_for_user(b1.node);
  graph.hold_for_user(b2.node);
  graph.hold_for_user(work.node);

  std::atomic<bool> done{false};
  std::atomic<int> bad_reads{0}, bad_writes{0}, failures{0}, requests{0};
  std::vector<std::thread> threads;

  for (int t = 0; t < 4; ++t)  // readers through the top: one backing per request
    threads.emplace_back([&] {
      auto handle = graph.open_handle(top.node, false);
      std::vector<std::byte> buf(3 * kBlock);
      while (!done.load(std::memory_order_relaxed)) {
        if (!handle->read(kBlock, buf).ok()) failures.fetch_add(1);
        const std::byte first = buf[0];
        if ((first != std::byte{0x11} && first != std::byte{0x22}) ||
            std::any_of(buf.begin(), buf.end(), [&](std::byte b) { return b != first; }))
          bad_reads.fetch_add(1);
        requests.fetch_add(1, std::memory_order_relaxed);
      }
    });
  for (int t = 0; t < 2; ++t)  // writers on their own block, reading back what they wrote
    threads.emplace_back([&, t] {
      auto handle = graph.open_handle(work.node, true);
      ASSERT_TRUE(handle.ok());
      std::vector<std::byte> out(kBlock), in(kBlock);
      for (uint8_t round = 1; !done.load(std::memory_order_relaxed); ++round) {
        std::fill(out.begin(), out.end(), std::byte{round});
        if (!handle->write(t * kBlock, out).ok() || !handle->read(t * kBlock, in).ok())
          failures.fetch_add(1);
        if (in != out) bad_writes.fetch_add(1);
        requests.fetch_add(1, std::memory_order_relaxed);
      }
    });
  threads.emplace_back([&] {  // observers: iteration, listing, chains, lookups
    while (!done.load(std::memory_order_relaxed)) {
      for (auto it = graph.begin_all(); !it.done(); it.next()) (void)it.current()->filename();
      (void)graph.listed_nodes();
      (void)graph.chains();
      (void)graph.find("top");
    }
  });
  threads.emplace_back([&] {  // churn: short-lived nodes that come and go under the top's base
    for (int i = 0; !done.load(std::memory_order_relaxed); ++i) {
      TestNode temp = add_test_node(graph, "temp" + std::to_string(i));
      if (graph.attach_child(*temp.node, b2.node, ChildRole::Backing).ok()) {
        DrainedSection drain(*temp.node);
      }
    }
  });

  // The changer: the graph changes under the traffic — once there is traffic (on a busy machine
  // the changes could otherwise all be over before the first request, and the test prove nothing).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (requests.load(std::memory_order_relaxed) < 8 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  for (int i = 0; i < kChanges; ++i) {
    NodeRef next = (i % 2 == 0) ? b2.node : b1.node;
    switch (i % 4) {
      case 0:
        EXPECT_TRUE(graph.set_backing(*top.node, next).ok());
        break;
      case 1:
        EXPECT_TRUE(graph.relink({Relink::backing_to(top.node, next)}).ok());
        break;
      case 2: {
        auto claim = graph.claim("job stream" + std::to_string(i),
                                 {{top.node, ClaimKind::JobTop}, {work.node, ClaimKind::JobTop}});
        EXPECT_TRUE(claim.ok());
        DrainedSection drain({top.node, work.node}, DrainScope::Subtree);
        EXPECT_TRUE(graph.relink({Relink::backing_to(top.node, next)}).ok()) << "nested drains";
        break;
      }
      case 3: {
        DrainedSection drain(*b1.node);
        EXPECT_TRUE(graph.set_backing(*top.node, next).ok());
        break;
      }
    }
  }
  done = true;
  for (auto& t : threads) t.join();

  EXPECT_EQ(bad_reads.load(), 0) << "a read mixed two backings";
  EXPECT_EQ(bad_writes.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(requests.load(), 0);
  for (const NodeRef& n : graph.listed_nodes()) {
    EXPECT_EQ(n->gate().quiesce_count(), 0) << n->name();
    EXPECT_EQ(n->gate().in_flight(), 0) << n->name();
  }
}

}  // namespace
}  // namespace chainfs::testing
