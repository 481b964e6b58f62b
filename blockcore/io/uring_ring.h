// One io_uring instance and the loop that runs a batch of host I/Os through it, plus the pool that
// hands rings to concurrent callers.
//
// A ring is used by one caller at a time (the pool guarantees it), so UringRing has no lock. It is
// set up without IORING_SETUP_SINGLE_ISSUER and without a registered ring fd: pooled rings move
// between threads, and both of those bind a ring to one task.
#pragma once

#include <liburing.h>

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "blockcore/driver.h"
#include "blockcore/result.h"

namespace chainfs::io_detail {

class UringRing {
 public:
  // Sets up a ring with `entries` submission slots; the error says why io_uring is unusable.
  static Result<std::unique_ptr<UringRing>> create(unsigned entries);
  ~UringRing();
  UringRing(const UringRing&) = delete;
  UringRing& operator=(const UringRing&) = delete;

  // Submits the ops (as many as the ring holds at once, in one io_uring_enter that also waits for
  // them), resubmits the rest of short transfers and EINTR/EAGAIN failures, zero-fills reads past
  // EOF, and returns once every op has finished: the first failing op's error, or success.
  Result<void> run(int fd, std::span<IoOp> ops);

  // False after an io_uring_enter failure that left the ring in an unknown state: the pool then
  // drops it instead of reusing it.
  bool healthy() const { return healthy_; }
  unsigned entries() const { return entries_; }

 private:
  UringRing() = default;
  void queue(int fd, const IoOp& op, size_t index);
  // After io_uring_enter failed for good: wait for whatever the kernel took, so that no buffer is
  // written after run() returns.
  void reap_after_failure(unsigned in_flight);

  io_uring ring_{};
  unsigned entries_ = 0;
  bool healthy_ = true;
  std::vector<size_t> done_;  // bytes finished per op of the current run (reused between runs)
};

// Rings for concurrent callers: take a free one, or create one up to max_rings, or wait for one to
// come back. The lock is held only to pop/push, never across I/O or ring setup.
class RingPool {
 public:
  RingPool(unsigned entries, unsigned max_rings, std::unique_ptr<UringRing> first);
  ~RingPool();

  class Lease {
   public:
    Lease(RingPool* pool, std::unique_ptr<UringRing> ring) : pool_(pool), ring_(std::move(ring)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (ring_) pool_->give_back(std::move(ring_));
    }
    explicit operator bool() const { return ring_ != nullptr; }
    UringRing* operator->() const { return ring_.get(); }

   private:
    RingPool* pool_;
    std::unique_ptr<UringRing> ring_;
  };

  // An empty lease only if no ring exists and none can be created (the caller then uses the
  // pread/pwrite path for this call).
  Lease acquire();

 private:
  void give_back(std::unique_ptr<UringRing> ring);

  const unsigned entries_;
  std::mutex mutex_;   // leaf lock: guards everything below
  unsigned ring_cap_;  // max_rings, lowered to what exists once the host refuses a new ring
  std::condition_variable ring_returned_;
  std::vector<std::unique_ptr<UringRing>> free_;
  unsigned rings_alive_ = 0;  // free + leased + being created
  unsigned waiters_ = 0;
};

}  // namespace chainfs::io_detail
