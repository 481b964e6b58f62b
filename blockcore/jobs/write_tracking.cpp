#include "blockcore/jobs/write_tracking.h"

#include <algorithm>
#include <iterator>

namespace chainfs {

// ---- RangeSet -----------------------------------------------------------------------------------

void RangeSet::add(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  uint64_t start = offset;
  uint64_t end = offset + length;
  auto it = ranges_.upper_bound(start);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= start) it = prev;  // overlaps or touches: merge from there
  }
  while (it != ranges_.end() && it->first <= end) {
    start = std::min(start, it->first);
    end = std::max(end, it->second);
    bytes_ -= it->second - it->first;
    it = ranges_.erase(it);
  }
  ranges_.emplace(start, end);
  bytes_ += end - start;
}

void RangeSet::remove(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  const uint64_t end = offset + length;
  auto it = ranges_.upper_bound(offset);
  if (it != ranges_.begin() && std::prev(it)->second > offset) it = std::prev(it);
  while (it != ranges_.end() && it->first < end) {
    const uint64_t r_start = it->first;
    const uint64_t r_end = it->second;
    bytes_ -= r_end - r_start;
    it = ranges_.erase(it);
    if (r_start < offset) {
      ranges_.emplace(r_start, offset);
      bytes_ += offset - r_start;
    }
    if (r_end > end) {
      it = ranges_.emplace(end, r_end).first;
      bytes_ += r_end - end;
      ++it;
    }
  }
}

std::optional<ByteRange> RangeSet::first_from(uint64_t from, uint64_t max_length) const {
  if (ranges_.empty() || max_length == 0) return std::nullopt;
  uint64_t start = 0, end = 0;
  auto it = ranges_.upper_bound(from);
  if (it != ranges_.begin() && std::prev(it)->second > from) {
    start = from;
    end = std::prev(it)->second;
  } else {
    if (it == ranges_.end()) it = ranges_.begin();
    start = it->first;
    end = it->second;
  }
  return ByteRange{start, std::min(end - start, max_length)};
}

// ---- DirtyTracker -------------------------------------------------------------------------------

void DirtyTracker::mark(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  bool became_dirty = false;
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    became_dirty = dirty_.empty();
    dirty_.add(offset, length);
    if (became_dirty && !muted_) notify = on_dirty_;
  }
  if (notify) notify();
}

std::optional<ByteRange> DirtyTracker::take(uint64_t max_length) {
  std::lock_guard lock(mutex_);
  std::optional<ByteRange> range = dirty_.first_from(cursor_, max_length);
  if (range) {
    dirty_.remove(range->offset, range->length);
    cursor_ = range->end();
  }
  return range;
}

void DirtyTracker::forget(uint64_t offset, uint64_t length) {
  std::lock_guard lock(mutex_);
  dirty_.remove(offset, length);
}

uint64_t DirtyTracker::dirty_bytes() const {
  std::lock_guard lock(mutex_);
  return dirty_.bytes();
}

void DirtyTracker::mute() {
  std::lock_guard lock(mutex_);
  muted_ = true;
}

// ---- CopyOnReadLock -----------------------------------------------------------------------------

namespace {
bool overlaps(const ByteRange& r, uint64_t offset, uint64_t length) {
  return length > 0 && offset < r.end() && r.offset < offset + length;
}
}  // namespace

bool CopyOnReadLock::overlaps_window_locked(uint64_t offset, uint64_t length) const {
  for (const Window& w : windows_)
    if (overlaps(w.range, offset, length)) return true;
  return false;
}

bool CopyOnReadLock::own_write_locked(uint64_t offset, uint64_t length) const {
  const std::thread::id me = std::this_thread::get_id();
  for (const Window& w : windows_)
    if (w.owner == me && offset >= w.range.offset && offset + length <= w.range.end()) return true;
  return false;
}

bool CopyOnReadLock::writes_in_locked(const ByteRange& window) const {
  for (const auto& [offset, length] : writes_)
    if (overlaps(window, offset, length)) return true;
  return false;
}

void CopyOnReadLock::begin_write(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  std::unique_lock lock(mutex_);
  if (own_write_locked(offset, length)) return;
  changed_.wait(lock, [&] { return !overlaps_window_locked(offset, length); });
  writes_.emplace(offset, length);
}

void CopyOnReadLock::end_write(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  std::lock_guard lock(mutex_);
  // The job's own write is still inside its window (held until after the write): not recorded.
  if (own_write_locked(offset, length)) return;
  auto [first, last] = writes_.equal_range(offset);
  for (auto it = first; it != last; ++it) {
    if (it->second == length) {
      writes_.erase(it);
      break;
    }
  }
  changed_.notify_all();
}

void CopyOnReadLock::lock_window(uint64_t offset, uint64_t length) {
  std::unique_lock lock(mutex_);
  // New writes into the window wait from here on; those already inside finish first.
  const ByteRange range{offset, length};
  windows_.push_back({range, std::this_thread::get_id()});
  changed_.wait(lock, [&] { return !writes_in_locked(range); });
}

void CopyOnReadLock::unlock_window() {
  std::lock_guard lock(mutex_);
  const std::thread::id me = std::this_thread::get_id();
  std::erase_if(windows_, [&](const Window& w) { return w.owner == me; });
  changed_.notify_all();
}

}  // namespace chainfs
