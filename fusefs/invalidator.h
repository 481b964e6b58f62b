// Invalidator: sends kernel cache invalidations from a thread of its own.
//
// Why a thread: fuse_lowlevel_notify_inval_inode() waits for the kernel to drop the inode's
// cached pages, and a page stays locked while a READ request for it is in flight. Called from a
// request handler (or from a graph observer, which runs inside a drained section while requests
// wait at the gate), it could wait for a request that waits for it. Queued here, nothing that
// serves requests ever waits for an invalidation.
//
// Requests are coalesced: an inode queued twice before the thread gets to it is sent once.
//
// Held items repeat: an item held (hold()) is sent again every period until it is released as
// often as it was held. A job writes into a node behind the kernel's back (a commit's base) with
// no event per write; while it works, an open file of that node trails it by at most a period.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <utility>

namespace chainfs::fusefs {

class Invalidator {
 public:
  // What to invalidate: `ino` alone, or (with_ancestors) the node file `ino` and the node files of
  // every node above it in the graph (their reads go through it); the byte range [offset,
  // offset + length) of their cached pages, or all of them with length 0.
  struct Item {
    uint64_t ino = 0;
    bool with_ancestors = false;
    uint64_t offset = 0;
    uint64_t length = 0;  // 0: the whole file
    friend bool operator<(const Item& a, const Item& b) {
      return std::tie(a.ino, a.with_ancestors, a.offset, a.length) <
             std::tie(b.ino, b.with_ancestors, b.offset, b.length);
    }
  };
  using Sink = std::function<void(const Item&)>;
  static constexpr std::chrono::milliseconds kDefaultPeriod{500};

  explicit Invalidator(Sink sink, std::chrono::milliseconds period = kDefaultPeriod);
  ~Invalidator();  // stop()
  Invalidator(const Invalidator&) = delete;
  Invalidator& operator=(const Invalidator&) = delete;

  // Never blocks on the kernel; safe from request handlers and graph observers.
  void post(Item item);
  // Sends `item` now and then every period until release(): counted, so two holders of one item
  // each release it once.
  void hold(Item item);
  void release(Item item);
  // Sends what is queued, then ends the thread (held items are not repeated any more). Idempotent.
  void stop();
  // Waits until everything posted before the call has been sent (tests).
  void flush();

 private:
  void run();

  Sink sink_;
  const std::chrono::milliseconds period_;
  std::mutex mutex_;  // leaf lock; never held while calling sink_
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::set<Item> pending_;
  std::map<Item, int> held_;  // item -> how many holders
  bool busy_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace chainfs::fusefs
