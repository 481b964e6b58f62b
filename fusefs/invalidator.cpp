#include "fusefs/invalidator.h"

#include <vector>

namespace chainfs::fusefs {

Invalidator::Invalidator(Sink sink) : sink_(std::move(sink)) {
  thread_ = std::thread([this] { run(); });
}

Invalidator::~Invalidator() { stop(); }

void Invalidator::post(Item item) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    pending_.insert(item);
  }
  wake_.notify_one();
}

void Invalidator::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
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
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) break;  // stopping, and everything was sent
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
