// SyncPoints: named points in the code where a test can force one interleaving of threads, so that
// a race becomes an ordinary, deterministic test (in the spirit of RocksDB's SyncPoint).
//
// The code marks a point with CHAINFS_SYNC_POINT(points, "Class::function:moment") or, with a tag
// that names the object (a node), CHAINFS_SYNC_POINT_TAG(points, name, tag). Without
// CHAINFS_SYNC_POINTS (release builds) both expand to nothing. With it, a point costs one relaxed
// atomic load while no test enabled the registry.
//
// A test then, on the registry of its own graph (one per Graph: no global state):
//   - pause_at(point)         threads that reach `point` block there until resume(point);
//   - wait_for(point, n)      blocks until `point` was reached n times (bounded by a timeout);
//   - add_order(a, b)         a thread reaching `b` first waits until `a` was reached;
//   - set_callback(point, f)  runs f(tag) in the thread that reaches `point`.
// A key is either a plain point name (matches every tag) or "point@tag" (matches that tag only).
//
// Lock order: SyncPoints::mutex_ is a leaf; callbacks run without it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace chainfs {

#ifdef CHAINFS_SYNC_POINTS
inline constexpr bool kSyncPointsEnabled = true;
#else
inline constexpr bool kSyncPointsEnabled = false;
#endif

class SyncPoints {
 public:
  using Callback = std::function<void(std::string_view tag)>;

  SyncPoints() = default;
  SyncPoints(const SyncPoints&) = delete;
  SyncPoints& operator=(const SyncPoints&) = delete;

  // ---- test side ------------------------------------------------------------------------------
  void enable();
  // Stops processing and lets every paused thread go. Counts are kept until clear().
  void disable();
  // Drops every order, pause, callback and count (and lets paused threads go).
  void clear();

  void pause_at(std::string key);
  void resume(const std::string& key);
  void add_order(std::string predecessor, std::string successor);
  void set_callback(std::string key, Callback callback);

  // Times `key` was reached since the last clear().
  uint64_t hits(const std::string& key) const;
  // Waits until `key` was reached at least `count` times; false on timeout.
  bool wait_for(const std::string& key, uint64_t count = 1,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  // ---- code side (through the macros) ---------------------------------------------------------
  void reach(std::string_view point, std::string_view tag = {}) {
    if (enabled_.load(std::memory_order_relaxed)) reach_slow(point, tag);
  }

 private:
  void reach_slow(std::string_view point, std::string_view tag);
  bool paused_locked(const std::string& point, const std::string& tagged) const;
  bool orders_met_locked(const std::string& point, const std::string& tagged) const;

  std::atomic<bool> enabled_{false};
  mutable std::mutex mutex_;  // leaf lock: guards everything below
  mutable std::condition_variable changed_;
  uint64_t epoch_ = 0;  // bumped by clear()/disable() so that paused threads leave
  std::map<std::string, uint64_t, std::less<>> hits_;
  std::set<std::string, std::less<>> paused_;
  std::multimap<std::string, std::string, std::less<>> predecessors_;  // successor -> predecessor
  std::map<std::string, Callback, std::less<>> callbacks_;
};

}  // namespace chainfs

#ifdef CHAINFS_SYNC_POINTS
#define CHAINFS_SYNC_POINT(points, name) (points).reach(name)
#define CHAINFS_SYNC_POINT_TAG(points, name, tag) (points).reach(name, tag)
#else
#define CHAINFS_SYNC_POINT(points, name) \
  do {                                   \
  } while (0)
#define CHAINFS_SYNC_POINT_TAG(points, name, tag) \
  do {                                            \
  } while (0)
#endif
