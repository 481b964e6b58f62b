// The batch loop of one ring. A run keeps up to entries() ops in flight; every io_uring_enter both
// submits what was queued and waits for all of it, so a batch that fits the ring costs one syscall
// when nothing comes back short. Completions are matched to ops by index (user_data); done_[i]
// counts the bytes op i has finished, so a short transfer is resubmitted for its remainder only.
#include "blockcore/io/uring_ring.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "blockcore/io/host_io.h"

namespace chainfs::io_detail {

// ---- UringRing ----------------------------------------------------------------------------------

Result<std::unique_ptr<UringRing>> UringRing::create(unsigned entries) {
  std::unique_ptr<UringRing> ring(new UringRing());
  // COOP_TASKRUN: completions are run when we enter the kernel anyway (we always wait), so there
  // is no need to interrupt the thread for them. SUBMIT_ALL: an SQE that fails at submission does
  // not stop the ones after it. Both are 5.18+; without them the ring still works.
  io_uring_params params{};
  params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CLAMP;
  int rc = io_uring_queue_init_params(entries, &ring->ring_, &params);
  if (rc == -EINVAL) {
    params = {};
    params.flags = IORING_SETUP_CLAMP;
    rc = io_uring_queue_init_params(entries, &ring->ring_, &params);
  }
  if (rc < 0)
    return make_error(errc_from_errno(-rc), "io_uring_queue_init({}) failed: {}", entries,
                      std::strerror(-rc));
  ring->entries_ = params.sq_entries;
  return ring;
}

UringRing::~UringRing() {
  io_uring_queue_exit(&ring_);
}

void UringRing::queue(int fd, const IoOp& op, size_t index) {
  // Never null: at most entries_ ops are in flight and every queued SQE was handed to the kernel
  // by the previous io_uring_enter.
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  const size_t done = done_[index];
  const unsigned length = static_cast<unsigned>(std::min(op.length - done, kMaxTransfer));
  if (op.kind == IoOp::Kind::Read)
    io_uring_prep_read(sqe, fd, op.buf + done, length, op.offset + done);
  else
    io_uring_prep_write(sqe, fd, op.buf + done, length, op.offset + done);
  io_uring_sqe_set_data64(sqe, index);
}

void UringRing::reap_after_failure(unsigned in_flight) {
  healthy_ = false;
  // SQEs still in the submission queue were never seen by the kernel; the rest will complete.
  unsigned taken = in_flight - std::min(in_flight, io_uring_sq_ready(&ring_));
  while (taken > 0) {
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_wait_cqe(&ring_, &cqe);
    if (rc == -EINTR || rc == -EAGAIN) continue;
    if (rc < 0) break;  // nothing more can be learnt from this ring
    io_uring_cqe_seen(&ring_, cqe);
    --taken;
  }
}

Result<void> UringRing::run(int fd, std::span<IoOp> ops) {
  const size_t count = ops.size();
  done_.assign(count, 0);
  size_t first_failed = std::numeric_limits<size_t>::max();  // lowest index of a failed op
  int first_errno = 0;
  auto fail = [&](size_t index, int err) {
    if (index < first_failed) {
      first_failed = index;
      first_errno = err;
    }
  };

  size_t next = 0;
  unsigned in_flight = 0;
  while (next < count || in_flight > 0) {
    for (; next < count && in_flight < entries_; ++next) {
      if (ops[next].length == 0) continue;
      queue(fd, ops[next], next);
      ++in_flight;
    }
    if (in_flight == 0) break;  // only empty ops were left

    int rc = io_uring_submit_and_wait(&ring_, in_flight);
    if (rc < 0) {
      if (rc == -EINTR) continue;           // queued SQEs stay queued; the next enter takes them
      if (rc == -EAGAIN || rc == -EBUSY) {  // kernel short of resources for a moment
        sched_yield();
        continue;
      }
      reap_after_failure(in_flight);
      return make_error(errc_from_errno(-rc), "io_uring_enter failed: {}", std::strerror(-rc));
    }

    unsigned head = 0;
    unsigned seen = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      const size_t index = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
      const IoOp& op = ops[index];
      const int res = cqe->res;
      if (res == -EINTR || res == -EAGAIN) {
        queue(fd, op, index);  // same remainder again; still in flight
        continue;
      }
      if (res < 0) {
        fail(index, -res);
      } else if (res == 0) {
        if (op.kind == IoOp::Kind::Read)
          std::memset(op.buf + done_[index], 0, op.length - done_[index]);  // past EOF
        else
          fail(index, EIO);  // a write that makes no progress would loop forever
      } else {
        done_[index] += static_cast<size_t>(res);
        if (done_[index] < op.length) {
          queue(fd, op, index);  // short transfer: the rest, still in flight
          continue;
        }
      }
      --in_flight;
    }
    io_uring_cq_advance(&ring_, seen);
  }
  if (first_errno != 0) return op_error(ops[first_failed], first_errno);
  return {};
}

// ---- RingPool -----------------------------------------------------------------------------------

RingPool::RingPool(unsigned entries, unsigned max_rings, std::unique_ptr<UringRing> first)
    : entries_(entries), ring_cap_(std::max(1u, max_rings)) {
  if (first) {
    free_.push_back(std::move(first));
    rings_alive_ = 1;
  }
}

RingPool::~RingPool() = default;  // every lease has come back: the engine outlives its callers

RingPool::Lease RingPool::acquire() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!free_.empty()) {
      std::unique_ptr<UringRing> ring = std::move(free_.back());
      free_.pop_back();
      return Lease(this, std::move(ring));
    }
    if (rings_alive_ < ring_cap_) {
      ++rings_alive_;
      lock.unlock();
      auto created = UringRing::create(entries_);  // a syscall and mmaps: not under the lock
      if (created.ok()) return Lease(this, std::move(created).value());
      lock.lock();
      --rings_alive_;
      // The host refuses more rings (memory, ulimits): live with those there are, or do without
      // if there is none.
      ring_cap_ = std::max(1u, rings_alive_);
      if (rings_alive_ == 0) return Lease(this, nullptr);
    }
    ++waiters_;
    ring_returned_.wait(lock, [&] { return !free_.empty() || rings_alive_ < ring_cap_; });
    --waiters_;
  }
}

void RingPool::give_back(std::unique_ptr<UringRing> ring) {
  std::unique_ptr<UringRing> broken;  // destroyed outside the lock
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (ring->healthy()) {
      free_.push_back(std::move(ring));
    } else {
      broken = std::move(ring);
      --rings_alive_;
    }
    wake = waiters_ > 0;
  }
  if (wake) ring_returned_.notify_one();
}

}  // namespace chainfs::io_detail
