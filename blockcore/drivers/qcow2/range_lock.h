// Per-guest-cluster range locks of one qcow2 image. Data I/O on clusters whose mapping does not
// change (reads, in-place writes) takes its cluster range shared; anything that changes a
// cluster's mapping (allocation, copy-on-write, discard, zeroing) takes it exclusive. So two
// writers allocating the same cluster serialise, a read of a cluster being allocated waits for
// the new mapping, and a host cluster is never freed while I/O to it is in flight.
//
// Active ranges are few (one per request in flight), so a list scan is cheaper than a tree.
// Lock order: RangeLock::mutex_ is a leaf; callers take ranges before Image::meta_mutex_ and
// never wait for a range while holding meta_mutex_.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>

namespace chainfs::qcow2 {

class RangeLock {
 public:
  struct Range {
    uint64_t first = 0, last = 0;  // inclusive cluster indexes
    bool exclusive = false;
  };

  class Guard {
   public:
    Guard() = default;
    Guard(RangeLock* owner, std::list<Range>::iterator it) : owner_(owner), it_(it) {}
    Guard(Guard&& o) noexcept : owner_(o.owner_), it_(o.it_) { o.owner_ = nullptr; }
    Guard& operator=(Guard&& o) noexcept {
      if (this != &o) {
        release();
        owner_ = o.owner_;
        it_ = o.it_;
        o.owner_ = nullptr;
      }
      return *this;
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() { release(); }
    void release() {
      if (owner_) owner_->unlock(it_);
      owner_ = nullptr;
    }

   private:
    RangeLock* owner_ = nullptr;
    std::list<Range>::iterator it_;
  };

  Guard lock(uint64_t first, uint64_t last, bool exclusive) {
    std::unique_lock lk(mutex_);
    cv_.wait(lk, [&] { return !conflicts(first, last, exclusive); });
    active_.push_back(Range{first, last, exclusive});
    return Guard(this, std::prev(active_.end()));
  }

 private:
  bool conflicts(uint64_t first, uint64_t last, bool exclusive) const {
    for (const Range& r : active_)
      if (r.first <= last && first <= r.last && (exclusive || r.exclusive)) return true;
    return false;
  }
  void unlock(std::list<Range>::iterator it) {
    {
      std::lock_guard lk(mutex_);
      active_.erase(it);
    }
    cv_.notify_all();
  }

  std::mutex mutex_;  // leaf lock
  std::condition_variable cv_;
  std::list<Range> active_;
};

}  // namespace chainfs::qcow2
