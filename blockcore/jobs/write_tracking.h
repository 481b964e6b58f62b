// How jobs follow the guest writes to the node they work on, through the node's WriteObserver
// (node.h: every write, write-zeroes, discard and truncate reaching the node, whoever sent it).
//
// DirtyTracker (active commit): every write that *completed* marks its range dirty. The job takes
// a dirty range out of the set before it reads it, so a write that lands after the take marks it
// again and is copied again; a write that completed before the take is in what the job reads.
// At completion the job drains the node (no write in flight), takes what is left and copies it:
// nothing acknowledged before the switch is missing from base.
//
// CopyOnReadLock (stream): the stream copies a window of its top node (reads what the chain
// below shows and writes it into the node where the node holds nothing) while guest writes go on.
// A guest write landing between the job's read and its write would be overwritten with the older
// chain data, so the two are kept apart: a job thread holds its window exclusively while it checks
// allocation, reads and writes; guest writes into the window wait for it (and the job waits for
// guest writes already inside the window before it takes it). Writes elsewhere pass untouched. A
// write that lies inside a window held by the writing thread is the job's own and passes. Several
// job threads may each hold one window (parallel windows).
//
// Deadlock freedom: a guest write waits for the window while it is in flight on the node, so the
// job must never wait for a drain of that node while it holds the window. It does not: it enters
// the node as an external request *before* it takes the window and does all its window I/O as
// requests nested in that one.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "blockcore/graph/node.h"

namespace chainfs {

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t end() const { return offset + length; }
};

// A set of byte ranges, kept as disjoint, non-adjacent intervals. Not thread safe.
class RangeSet {
 public:
  void add(uint64_t offset, uint64_t length);
  void remove(uint64_t offset, uint64_t length);
  bool empty() const { return ranges_.empty(); }
  uint64_t bytes() const { return bytes_; }
  // The first range at or after `from` (else the first one), cut to at most `max_length`.
  std::optional<ByteRange> first_from(uint64_t from, uint64_t max_length) const;

 private:
  std::map<uint64_t, uint64_t> ranges_;  // offset -> end
  uint64_t bytes_ = 0;
};

class DirtyTracker final : public WriteObserver {
 public:
  // `on_dirty` is called (without the tracker's lock) when the set turns from empty to non-empty.
  explicit DirtyTracker(std::function<void()> on_dirty = {}) : on_dirty_(std::move(on_dirty)) {}

  void begin_write(uint64_t, uint64_t) override {}
  void end_write(uint64_t offset, uint64_t length) override { mark(offset, length); }

  void mark(uint64_t offset, uint64_t length);
  // Removes and returns a dirty range of at most `max_length` bytes, the first at or after the
  // previous take (so a busy region does not starve the rest).
  std::optional<ByteRange> take(uint64_t max_length);
  void forget(uint64_t offset, uint64_t length);  // the job is about to copy this range anyway
  uint64_t dirty_bytes() const;
  // Stops calling on_dirty (the job is going away).
  void mute();

 private:
  mutable std::mutex mutex_;  // leaf
  RangeSet dirty_;
  uint64_t cursor_ = 0;
  std::function<void()> on_dirty_;
  bool muted_ = false;
};

class CopyOnReadLock final : public WriteObserver {
 public:
  void begin_write(uint64_t offset, uint64_t length) override;
  void end_write(uint64_t offset, uint64_t length) override;

  // The job's side: the calling thread holds [offset, offset + length) until unlock_window().
  // Guest writes into it wait from now on; the call returns once those already inside it have
  // finished. One window per thread.
  void lock_window(uint64_t offset, uint64_t length);
  void unlock_window();

  class WindowGuard {
   public:
    WindowGuard(CopyOnReadLock& lock, uint64_t offset, uint64_t length) : lock_(lock) {
      lock_.lock_window(offset, length);
    }
    ~WindowGuard() { lock_.unlock_window(); }
    WindowGuard(const WindowGuard&) = delete;
    WindowGuard& operator=(const WindowGuard&) = delete;

   private:
    CopyOnReadLock& lock_;
  };

 private:
  struct Window {
    ByteRange range;
    std::thread::id owner;
  };
  bool overlaps_window_locked(uint64_t offset, uint64_t length) const;
  bool own_write_locked(uint64_t offset, uint64_t length) const;
  bool writes_in_locked(const ByteRange& window) const;

  std::mutex mutex_;  // leaf
  std::condition_variable changed_;
  std::vector<Window> windows_;
  std::multimap<uint64_t, uint64_t> writes_;  // guest writes in flight: offset -> length
};

}  // namespace chainfs
