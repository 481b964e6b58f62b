// The invalidation queue: posting never waits for the sink, repeated items are coalesced, stop()
// sends what is queued, and held items repeat every period until released.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "fusefs/invalidator.h"

namespace chainfs::fusefs {
namespace {

struct Recorder {
  std::mutex mutex;
  std::vector<Invalidator::Item> sent;
  void operator()(const Invalidator::Item& item) {
    std::lock_guard lock(mutex);
    sent.push_back(item);
  }
};

TEST(Invalidator, SendsWhatIsPosted) {
  Recorder rec;
  Invalidator inv([&](const Invalidator::Item& i) { rec(i); });
  inv.post({7, true});
  inv.post({8, false});
  inv.flush();
  std::lock_guard lock(rec.mutex);
  ASSERT_EQ(rec.sent.size(), 2u);
}

TEST(Invalidator, PostDoesNotWaitForASlowSink_AndRepeatsAreCoalesced) {
  std::mutex gate_mutex;
  std::condition_variable gate_cv;
  bool open = false;
  bool entered = false;
  std::atomic<int> calls{0};
  std::vector<Invalidator::Item> sent;
  Invalidator inv([&](const Invalidator::Item& item) {
    std::unique_lock lock(gate_mutex);
    entered = true;
    gate_cv.notify_all();
    gate_cv.wait(lock, [&] { return open; });  // the "kernel" is busy
    sent.push_back(item);
    ++calls;
  });
  inv.post({1, false});
  {
    std::unique_lock lock(gate_mutex);
    gate_cv.wait(lock, [&] { return entered; });
  }
  // The thread is blocked in the sink on item 1; these must return at once and pile up.
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) inv.post({2, false});
  for (int i = 0; i < 100; ++i) inv.post({3, true});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  {
    std::lock_guard lock(gate_mutex);
    open = true;
  }
  gate_cv.notify_all();
  inv.flush();
  // 1 was sent alone; the 200 posts made meanwhile were coalesced into one 2 and one 3.
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(std::count_if(sent.begin(), sent.end(), [](auto& i) { return i.ino == 2; }), 1);
  EXPECT_EQ(std::count_if(sent.begin(), sent.end(), [](auto& i) { return i.ino == 3; }), 1);
}

TEST(Invalidator, StopSendsWhatIsQueued_ThenIgnoresNewPosts) {
  std::vector<uint64_t> sent;
  std::mutex mutex;
  {
    Invalidator inv([&](const Invalidator::Item& item) {
      std::lock_guard lock(mutex);
      sent.push_back(item.ino);
    });
    for (uint64_t i = 1; i <= 50; ++i) inv.post({i, false});
    inv.stop();
    inv.post({99, false});
    inv.stop();  // idempotent
  }
  EXPECT_EQ(sent.size(), 50u);
  EXPECT_EQ(std::count(sent.begin(), sent.end(), 99u), 0);
}

TEST(Invalidator, HeldItemRepeatsEveryPeriod_UntilReleasedByEveryHolder) {
  Recorder rec;
  auto count = [&](uint64_t ino) {
    std::lock_guard lock(rec.mutex);
    return std::count_if(rec.sent.begin(), rec.sent.end(),
                         [&](const Invalidator::Item& i) { return i.ino == ino; });
  };
  Invalidator inv([&](const Invalidator::Item& i) { rec(i); }, std::chrono::milliseconds(10));
  inv.hold({5, false});
  inv.hold({5, false});  // a second holder of the same item
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GE(count(5), 5) << "sent at once and then about every 10 ms";
  inv.release({5, false});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto with_one_holder = count(5);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_GT(count(5), with_one_holder) << "still held by the other holder";
  inv.release({5, false});
  inv.flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a repeat already queued may go
  auto released = count(5);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(count(5), released) << "repeats after the last release";
}

TEST(Invalidator, HeldItemsKeepComingUnderAStreamOfPosts) {
  Recorder rec;
  Invalidator inv([&](const Invalidator::Item& i) { rec(i); }, std::chrono::milliseconds(20));
  inv.hold({1, false});
  inv.flush();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  for (uint64_t i = 100; std::chrono::steady_clock::now() < deadline; ++i) {
    inv.post({i, false});  // busier than the period: the wait never times out
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  inv.stop();
  std::lock_guard lock(rec.mutex);
  auto repeats = std::count_if(rec.sent.begin(), rec.sent.end(),
                               [](const Invalidator::Item& i) { return i.ino == 1; });
  EXPECT_GE(repeats, 4);
}

}  // namespace
}  // namespace chainfs::fusefs
