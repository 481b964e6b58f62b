#include "blockcore/graph/request_gate.h"

namespace chainfs {

void RequestGate::enter_external() {
  for (;;) {
    // Fast path: count ourselves in, then re-check; a drain that started meanwhile sees us in
    // flight and waits for us, or we back out and wait for it.
    in_flight_.fetch_add(1, std::memory_order_seq_cst);
    if (quiesce_.load(std::memory_order_seq_cst) == 0) return;
    leave();
    std::unique_lock lock(mutex_);
    waiters_.fetch_add(1);
    cv_.wait(lock, [&] { return quiesce_.load() == 0; });
    waiters_.fetch_sub(1);
  }
}

void RequestGate::leave() {
  if (in_flight_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
      waiters_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard lock(mutex_);
    cv_.notify_all();
  }
}

void RequestGate::quiesce() { quiesce_.fetch_add(1, std::memory_order_seq_cst); }

void RequestGate::wait_idle() {
  std::unique_lock lock(mutex_);
  waiters_.fetch_add(1);
  cv_.wait(lock, [&] { return in_flight_.load() == 0; });
  waiters_.fetch_sub(1);
}

void RequestGate::unquiesce() {
  if (quiesce_.fetch_sub(1, std::memory_order_seq_cst) == 1) {
    std::lock_guard lock(mutex_);
    cv_.notify_all();
  }
}

}  // namespace chainfs
