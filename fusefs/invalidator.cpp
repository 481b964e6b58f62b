#include "fusefs/invalidator.h"

#include <vector>

namespace chainfs::fusefs {

Invalidator::Invalidator(Sink sink, std::chrono::milliseconds period)
    : sink_(std::move(sink)), period_(period) {
  thread_ = std::thread([this] { run(); });
}

Invalidator::~Invalidator() {
  stop();
}

void Invalidator::post(Item item) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    pending_.insert(item);
  }
  wake_.notify_one();
}

void Invalidator::hold(Item item) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    ++held_[item];
    pending_.insert(item);
  }
  wake_.notify_one();
}

void Invalidator::release(Item item) {
  std::lock_guard lock(mutex_);
  auto it = held_.find(item);
  if (it != held_.end() && --it->second <= 0) held_.erase(it);
}

void Invalidator::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    held_.clear();
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Invalidator::flush() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [&] { return pending_.empty() && !busy_; });
}

void Invalidator::run() {
  std::unique_lock lock(mutex_);
  auto next_repeat = std::chrono::steady_clock::now() + period_;
  for (;;) {
    auto ready = [&] { return stopping_ || !pending_.empty(); };
    if (held_.empty())
      wake_.wait(lock, ready);
    else
      wake_.wait_until(lock, next_repeat, ready);
    auto now = std::chrono::steady_clock::now();
    if (now >= next_repeat) {
      // A period passed: send the held items again (with whatever else is queued).
      for (const auto& [item, holders] : held_) pending_.insert(item);
      next_repeat = now + period_;
    }
    if (pending_.empty()) {
      if (stopping_) break;  // everything was sent
      continue;
    }
    std::vector<Item> batch(pending_.begin(), pending_.end());
    pending_.clear();
    busy_ = true;
    lock.unlock();
    for (const Item& item : batch) sink_(item);
    lock.lock();
    busy_ = false;
    if (pending_.empty()) idle_.notify_all();
  }
  busy_ = false;
  idle_.notify_all();
}

}  // namespace chainfs::fusefs
