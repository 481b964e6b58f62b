#include "blockcore/graph/request_gate.h"

#include "blockcore/util/sync_point.h"

namespace chainfs {

void RequestGate::enter_external_slow() {
  // We are counted in flight but saw a quiesce: back out (a drain may be waiting for exactly us),
  // sleep until the node is unquiesced, and try again.
  for (;;) {
    leave();
    if (sync_) CHAINFS_SYNC_POINT_TAG(*sync_, "RequestGate::enter_external:wait", tag_);
    {
      std::unique_lock lock(mutex_);
      waiters_.fetch_add(1, std::memory_order_seq_cst);
      cv_.wait(lock, [&] { return quiesce_.load(std::memory_order_seq_cst) == 0; });
      waiters_.fetch_sub(1, std::memory_order_relaxed);
    }
    in_flight_.fetch_add(1, std::memory_order_seq_cst);
    if (quiesce_.load(std::memory_order_seq_cst) == 0) return;
  }
}

void RequestGate::wait_idle() {
  if (in_flight_.load(std::memory_order_seq_cst) == 0) return;
  if (sync_) CHAINFS_SYNC_POINT_TAG(*sync_, "RequestGate::wait_idle:wait", tag_);
  std::unique_lock lock(mutex_);
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  cv_.wait(lock, [&] { return in_flight_.load(std::memory_order_seq_cst) == 0; });
  waiters_.fetch_sub(1, std::memory_order_relaxed);
}

void RequestGate::unquiesce() {
  if (quiesce_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
      waiters_.load(std::memory_order_seq_cst) > 0)
    wake_all();
}

void RequestGate::wait_unquiesced() {
  if (quiesce_.load(std::memory_order_seq_cst) == 0) return;
  if (sync_) CHAINFS_SYNC_POINT_TAG(*sync_, "RequestGate::wait_unquiesced:wait", tag_);
  std::unique_lock lock(mutex_);
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  cv_.wait(lock, [&] { return quiesce_.load(std::memory_order_seq_cst) == 0; });
  waiters_.fetch_sub(1, std::memory_order_relaxed);
}

void RequestGate::wake_all() {
  std::lock_guard lock(mutex_);
  cv_.notify_all();
}

}  // namespace chainfs
