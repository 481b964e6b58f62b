// The pieces jobs use to follow guest writes: RangeSet (dirty ranges), DirtyTracker (active
// commit) and CopyOnReadLock (stream), without a graph.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "blockcore/jobs/write_tracking.h"

namespace chainfs {
namespace {

using namespace std::chrono_literals;

std::vector<std::pair<uint64_t, uint64_t>> ranges_of(RangeSet set) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  uint64_t from = 0;
  while (auto r = set.first_from(from, UINT64_MAX)) {
    out.push_back({r->offset, r->end()});
    set.remove(r->offset, r->length);
    from = r->end();
  }
  return out;
}

TEST(RangeSet, AddMergesOverlappingAndAdjacentRanges) {
  RangeSet set;
  set.add(100, 10);
  set.add(200, 10);
  set.add(110, 5);   // adjacent to the first
  set.add(205, 20);  // overlaps the second
  set.add(0, 0);     // nothing
  EXPECT_EQ(set.bytes(), 15u + 25u);
  EXPECT_EQ(ranges_of(set), (std::vector<std::pair<uint64_t, uint64_t>>{{100, 115}, {200, 225}}));
  set.add(90, 200);  // swallows both
  EXPECT_EQ(ranges_of(set), (std::vector<std::pair<uint64_t, uint64_t>>{{90, 290}}));
  EXPECT_EQ(set.bytes(), 200u);
}

TEST(RangeSet, RemoveSplitsRanges) {
  RangeSet set;
  set.add(0, 100);
  set.add(200, 100);
  set.remove(50, 10);
  set.remove(90, 120);  // the end of the first and the start of the second
  EXPECT_EQ(ranges_of(set),
            (std::vector<std::pair<uint64_t, uint64_t>>{{0, 50}, {60, 90}, {210, 300}}));
  EXPECT_EQ(set.bytes(), 50u + 30u + 90u);
  set.remove(0, 1000);
  EXPECT_TRUE(set.empty());
  EXPECT_EQ(set.bytes(), 0u);
}

TEST(RangeSet, FirstFromStartsInsideARangeOrAtTheNextAndWraps) {
  RangeSet set;
  set.add(100, 100);
  set.add(500, 10);
  auto r = set.first_from(150, 1000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 150u);
  EXPECT_EQ(r->length, 50u);
  r = set.first_from(300, 4);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 500u);
  EXPECT_EQ(r->length, 4u) << "cut to the maximum";
  r = set.first_from(600, 1000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 100u) << "wraps to the first range";
}

TEST(DirtyTracker, CompletedWritesAreDirty_TakeRemovesThem_FirstDirtyNotifies) {
  std::atomic<int> notified{0};
  DirtyTracker tracker([&] { notified++; });
  tracker.begin_write(0, 4096);
  EXPECT_EQ(tracker.dirty_bytes(), 0u) << "a write counts once it completed";
  tracker.end_write(0, 4096);
  tracker.end_write(8192, 4096);
  EXPECT_EQ(notified.load(), 1) << "only the empty -> dirty change notifies";
  EXPECT_EQ(tracker.dirty_bytes(), 8192u);
  auto r = tracker.take(1 << 20);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 0u);
  EXPECT_EQ(r->length, 4096u);
  r = tracker.take(1 << 20);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 8192u);
  EXPECT_FALSE(tracker.take(1 << 20));
  tracker.mark(0, 1);
  EXPECT_EQ(notified.load(), 2);
  tracker.forget(0, 4096);
  EXPECT_EQ(tracker.dirty_bytes(), 0u);
}

TEST(CopyOnReadLock, GuestWritesIntoTheWindowWaitForIt_OthersPass) {
  CopyOnReadLock lock;
  lock.lock_window(1000, 1000);  // this thread holds the window
  lock.begin_write(1500, 10);    // its own write inside it: no wait
  lock.end_write(1500, 10);

  std::atomic<bool> outside_done{false}, inside_done{false};
  auto outside = std::async(std::launch::async, [&] {
    lock.begin_write(5000, 100);
    lock.end_write(5000, 100);
    outside_done = true;
  });
  auto inside = std::async(std::launch::async, [&] {
    lock.begin_write(1990, 100);  // overlaps the window's end
    inside_done = true;
    lock.end_write(1990, 100);
  });
  // Another job thread holds a window of its own; its writes inside it pass too.
  auto other_copier = std::async(std::launch::async, [&] {
    lock.lock_window(8000, 1000);
    lock.begin_write(8100, 10);
    lock.end_write(8100, 10);
    lock.unlock_window();
  });
  other_copier.get();
  outside.get();
  EXPECT_TRUE(outside_done.load());
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(inside_done.load()) << "a write into the held window went ahead";
  lock.unlock_window();
  inside.get();
  EXPECT_TRUE(inside_done.load());
}

TEST(CopyOnReadLock, TheWindowWaitsForGuestWritesAlreadyInside) {
  CopyOnReadLock lock;
  lock.begin_write(100, 10);  // a guest write in flight
  std::atomic<bool> locked{false};
  auto copier = std::async(std::launch::async, [&] {
    lock.lock_window(0, 1000);
    locked = true;
    lock.unlock_window();
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(locked.load()) << "the window was taken over a write in flight";
  lock.end_write(100, 10);
  copier.get();
  EXPECT_TRUE(locked.load());
}

}  // namespace
}  // namespace chainfs
