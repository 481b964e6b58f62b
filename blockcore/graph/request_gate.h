// RequestGate: the per-node half of drained sections (ARCHITECTURE rule 3), in the spirit of a
// Seastar gate. Every request through a node is counted in flight. Requests that enter the graph
// from outside (FUSE handles, job copy loops) come in through enter_external(), which waits while
// the node is quiesced; requests a driver passes down to its children, and requests the drain owner
// issues itself, come in through enter_internal(), which never waits (otherwise a drained section
// could not rewrite a header on the node it drained).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace chainfs {

class RequestGate {
 public:
  // Blocks while the node is quiesced, then counts the request in flight.
  void enter_external();
  // Counts the request in flight without waiting.
  void enter_internal() { in_flight_.fetch_add(1, std::memory_order_acquire); }
  void leave();

  // Drain side: quiesce() makes new external requests wait; wait_idle() returns when none is in
  // flight; unquiesce() lets them through once the last quiesce is undone.
  void quiesce();
  void wait_idle();
  void unquiesce();

  int quiesce_count() const { return quiesce_.load(std::memory_order_acquire); }
  int in_flight() const { return in_flight_.load(std::memory_order_acquire); }

 private:
  std::atomic<int> in_flight_{0};
  std::atomic<int> quiesce_{0};
  std::atomic<int> waiters_{0};   // threads blocked in enter_external / wait_idle
  std::mutex mutex_;              // guards nothing but the condition variable's sleep/wake
  std::condition_variable cv_;
};

// RAII: one request in flight on a node.
class RequestGuard {
 public:
  enum class Entry { External, Internal };
  RequestGuard(RequestGate& gate, Entry entry) : gate_(&gate) {
    if (entry == Entry::External) gate.enter_external(); else gate.enter_internal();
  }
  RequestGuard(const RequestGuard&) = delete;
  RequestGuard& operator=(const RequestGuard&) = delete;
  ~RequestGuard() { gate_->leave(); }

 private:
  RequestGate* gate_;
};

}  // namespace chainfs
