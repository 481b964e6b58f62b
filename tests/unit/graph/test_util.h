// Small helpers for the graph's concurrency tests.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "blockcore/util/sync_point.h"

namespace chainfs::testing {

#define SKIP_WITHOUT_SYNC_POINTS()                                                         \
  do {                                                                                     \
    if (!kSyncPointsEnabled)                                                               \
      GTEST_SKIP() << "sync points are compiled out (release build): this test forces an " \
                      "interleaving with them";                                            \
  } while (0)

// Lets a test walk another thread through a sync point one step at a time: installed as the
// point's callback, every arrival records its tag and blocks until the test allows that step.
class Stepper {
 public:
  void install(SyncPoints& points, const std::string& key) {
    points.set_callback(key, [this](std::string_view tag) { arrive(tag); });
  }
  // Waits until the n-th arrival (1-based); returns its tag.
  std::string wait_arrival(uint64_t n) {
    std::unique_lock lock(mutex_);
    bool ok = cv_.wait_for(lock, std::chrono::seconds(10), [&] { return tags_.size() >= n; });
    EXPECT_TRUE(ok) << "no arrival " << n;
    return ok ? tags_[n - 1] : std::string();
  }
  // Lets arrivals up to n go on.
  void allow(uint64_t n) {
    std::lock_guard lock(mutex_);
    allowed_ = n;
    cv_.notify_all();
  }
  void allow_all() { allow(UINT64_MAX); }

 private:
  void arrive(std::string_view tag) {
    std::unique_lock lock(mutex_);
    tags_.emplace_back(tag);
    const uint64_t me = tags_.size();
    cv_.notify_all();
    cv_.wait(lock, [&] { return allowed_ >= me; });
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> tags_;
  uint64_t allowed_ = 0;
};

// A thread of a concurrency test. If the test fails half way (an ASSERT returns early), the
// destructor first lets every paused thread go (`release`, by default disabling the sync points)
// and then waits; a thread still stuck after that stops the binary with a message instead of
// hanging it.
template <typename T>
class Spawned {
 public:
  Spawned(std::future<T> f, std::function<void()> release)
      : future_(std::move(f)), release_(std::move(release)) {}
  Spawned(Spawned&&) = default;
  ~Spawned() {
    if (!future_.valid()) return;
    if (release_) release_();
    if (future_.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      std::fprintf(stderr, "a test thread is still blocked after the test ended; stopping\n");
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
  std::future<T>& future() { return future_; }
  T get() { return future_.get(); }

 private:
  std::future<T> future_;
  std::function<void()> release_;
};

template <typename Fn>
auto spawn(SyncPoints& points, Fn fn) {
  using T = decltype(fn());
  return Spawned<T>(std::async(std::launch::async, std::move(fn)), [&points] { points.disable(); });
}
template <typename Fn>
auto spawn(std::function<void()> release, Fn fn) {
  using T = decltype(fn());
  return Spawned<T>(std::async(std::launch::async, std::move(fn)), std::move(release));
}

// Whether a future is still pending after a short grace time (used only to assert that something
// is *blocked*; the deterministic part of each test is the sync point it waits for first).
template <typename T>
bool still_pending(std::future<T>& f,
                   std::chrono::milliseconds grace = std::chrono::milliseconds(50)) {
  return f.wait_for(grace) == std::future_status::timeout;
}

template <typename T>
bool finishes(std::future<T>& f, std::chrono::seconds limit = std::chrono::seconds(10)) {
  return f.wait_for(limit) == std::future_status::ready;
}

template <typename T>
bool still_pending(Spawned<T>& s, std::chrono::milliseconds grace = std::chrono::milliseconds(50)) {
  return still_pending(s.future(), grace);
}
template <typename T>
bool finishes(Spawned<T>& s, std::chrono::seconds limit = std::chrono::seconds(10)) {
  return finishes(s.future(), limit);
}

}  // namespace chainfs::testing
