#include "blockcore/util/sync_point.h"

namespace chainfs {

void SyncPoints::enable() {
  std::lock_guard lock(mutex_);
  enabled_.store(true, std::memory_order_relaxed);
}

void SyncPoints::disable() {
  std::lock_guard lock(mutex_);
  enabled_.store(false, std::memory_order_relaxed);
  ++epoch_;
  changed_.notify_all();
}

void SyncPoints::clear() {
  std::lock_guard lock(mutex_);
  ++epoch_;
  hits_.clear();
  paused_.clear();
  predecessors_.clear();
  callbacks_.clear();
  changed_.notify_all();
}

void SyncPoints::pause_at(std::string key) {
  std::lock_guard lock(mutex_);
  paused_.insert(std::move(key));
}

void SyncPoints::resume(const std::string& key) {
  std::lock_guard lock(mutex_);
  paused_.erase(key);
  changed_.notify_all();
}

void SyncPoints::add_order(std::string predecessor, std::string successor) {
  std::lock_guard lock(mutex_);
  predecessors_.emplace(std::move(successor), std::move(predecessor));
}

void SyncPoints::set_callback(std::string key, Callback callback) {
  std::lock_guard lock(mutex_);
  callbacks_[std::move(key)] = std::move(callback);
}

uint64_t SyncPoints::hits(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = hits_.find(key);
  return it == hits_.end() ? 0 : it->second;
}

bool SyncPoints::wait_for(const std::string& key, uint64_t count,
                          std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    auto it = hits_.find(key);
    return it != hits_.end() && it->second >= count;
  });
}

bool SyncPoints::paused_locked(const std::string& point, const std::string& tagged) const {
  return paused_.count(point) > 0 || (!tagged.empty() && paused_.count(tagged) > 0);
}

bool SyncPoints::orders_met_locked(const std::string& point, const std::string& tagged) const {
  auto met = [&](const std::string& key) {
    auto [first, last] = predecessors_.equal_range(key);
    for (auto it = first; it != last; ++it) {
      auto hit = hits_.find(it->second);
      if (hit == hits_.end() || hit->second == 0) return false;
    }
    return true;
  };
  return met(point) && (tagged.empty() || met(tagged));
}

void SyncPoints::reach_slow(std::string_view point_view, std::string_view tag) {
  std::string point(point_view);
  std::string tagged = tag.empty() ? std::string() : point + "@" + std::string(tag);
  Callback callback;
  std::unique_lock lock(mutex_);
  const uint64_t epoch = epoch_;
  auto released = [&] { return epoch_ != epoch || !enabled_.load(std::memory_order_relaxed); };
  changed_.wait(lock, [&] { return released() || orders_met_locked(point, tagged); });
  if (released()) return;
  ++hits_[point];
  if (!tagged.empty()) ++hits_[tagged];
  changed_.notify_all();
  if (auto it = callbacks_.find(tagged); !tagged.empty() && it != callbacks_.end()) {
    callback = it->second;
  } else if (auto plain = callbacks_.find(point); plain != callbacks_.end()) {
    callback = plain->second;
  }
  if (callback) {
    lock.unlock();
    callback(tag);
    lock.lock();
  }
  changed_.wait(lock, [&] { return released() || !paused_locked(point, tagged); });
}

}  // namespace chainfs
