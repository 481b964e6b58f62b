// RequestGate: the per-node half of drained sections (ARCHITECTURE rule 3), in the spirit of a
// Seastar gate. Every request through a node is counted in flight. Requests that enter the graph
// from outside (FUSE handles, job copy loops: BlockHandle) come in through enter_external(), which
// waits while the node is quiesced; requests a driver passes down to its children, and requests the
// drain owner issues itself, come in through enter_internal(), which never waits (otherwise a
// drained section could not rewrite a header on the node it drained).
//
// Design note (memory ordering). The external entry and the drain form a Dekker pair:
//   entry:  in_flight_ += 1 (seq_cst);   then read quiesce_ (seq_cst)
//   drain:  quiesce_  += 1 (seq_cst);    then read in_flight_ (seq_cst, in wait_idle)
// In the single total order of seq_cst operations one of the two reads sees the other's write, so
// either the drain waits for the request, or the request sees the drain, backs out and waits. The
// fast path is one RMW and one load on entry, one RMW and one load on leave.
// Sleeping uses mutex_ + cv_ only; a thread about to sleep first increments waiters_ (seq_cst) and
// then re-checks its condition under mutex_; a waker changes the counter (seq_cst), reads waiters_
// and, if anyone may sleep, takes mutex_ before notifying. Either the sleeper's re-check sees the
// change or the waker sees the sleeper and its notify cannot run before the sleeper waits: no lost
// wake-up. The unlocked reads of the counters are atomics, so the gate is clean under TSan.
//
// Lock order: mutex_ is a leaf (quiesce/unquiesce may be called under Graph::topology_mutex_).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string_view>

namespace chainfs {

class SyncPoints;

class RequestGate {
 public:
  RequestGate() = default;
  // `sync` (may be null) receives the gate's sync points, tagged with `tag` (the node's name).
  RequestGate(SyncPoints* sync, std::string_view tag) : sync_(sync), tag_(tag) {}
  RequestGate(const RequestGate&) = delete;
  RequestGate& operator=(const RequestGate&) = delete;

  // Blocks while the node is quiesced, then counts the request in flight.
  void enter_external() {
    in_flight_.fetch_add(1, std::memory_order_seq_cst);
    if (quiesce_.load(std::memory_order_seq_cst) == 0) return;
    enter_external_slow();
  }
  // Counts the request in flight without waiting. Only a request already in flight on an ancestor
  // (a driver calling its child) or the drain owner itself enters this way, so a drain that read
  // zero before this increment is still covered: it waits for that ancestor, or owns the request.
  void enter_internal() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void leave() {
    if (in_flight_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        waiters_.load(std::memory_order_seq_cst) > 0)
      wake_all();
  }

  // Drain side: quiesce() makes new external requests wait; wait_idle() returns when none is in
  // flight; unquiesce() lets them through once the last quiesce is undone.
  void quiesce() { quiesce_.fetch_add(1, std::memory_order_seq_cst); }
  void wait_idle();
  void unquiesce();

  // Pause points of jobs: returns once the node is not quiesced. Counts no request.
  void wait_unquiesced();

  int quiesce_count() const { return quiesce_.load(std::memory_order_acquire); }
  int in_flight() const { return in_flight_.load(std::memory_order_acquire); }

 private:
  void enter_external_slow();
  void wake_all();

  std::atomic<int> in_flight_{0};
  std::atomic<int> quiesce_{0};
  std::atomic<int> waiters_{0};  // threads that may sleep on cv_ (see the design note)
  std::mutex mutex_;             // leaf; guards nothing but the sleep/wake of cv_
  std::condition_variable cv_;
  SyncPoints* sync_ = nullptr;
  std::string_view tag_;
};

// RAII: one request in flight on a node.
class RequestGuard {
 public:
  enum class Entry { External, Internal };
  RequestGuard(RequestGate& gate, Entry entry) : gate_(&gate) {
    if (entry == Entry::External)
      gate.enter_external();
    else
      gate.enter_internal();
  }
  RequestGuard(const RequestGuard&) = delete;
  RequestGuard& operator=(const RequestGuard&) = delete;
  ~RequestGuard() { gate_->leave(); }

 private:
  RequestGate* gate_;
};

}  // namespace chainfs
