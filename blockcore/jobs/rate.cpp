#include "blockcore/jobs/rate.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace chainfs {

using std::chrono::duration;

// ---- TokenBucket ------------------------------------------------------------------------------

TokenBucket::TokenBucket(uint64_t bytes_per_second, JobClock::time_point now)
    : rate_(bytes_per_second), last_refill_(now) {
  tokens_ = static_cast<double>(burst());
}

uint64_t TokenBucket::burst() const {
  const double burst = static_cast<double>(rate_) * duration<double>(kBurstWindow).count();
  return std::max<uint64_t>(1, static_cast<uint64_t>(burst));
}

void TokenBucket::refill(JobClock::time_point now) {
  if (now <= last_refill_) return;
  const double earned = static_cast<double>(rate_) * duration<double>(now - last_refill_).count();
  tokens_ = std::min(tokens_ + earned, static_cast<double>(burst()));
  last_refill_ = now;
}

void TokenBucket::set_rate(uint64_t bytes_per_second, JobClock::time_point now) {
  refill(now);
  rate_ = bytes_per_second;
  if (rate_ == 0)
    tokens_ = 0;
  else
    tokens_ = std::min(tokens_, static_cast<double>(burst()));
  last_refill_ = std::max(last_refill_, now);
}

void TokenBucket::charge(uint64_t bytes, JobClock::time_point now) {
  if (rate_ == 0) return;
  refill(now);
  tokens_ -= static_cast<double>(bytes);
}

JobClock::time_point TokenBucket::ready_at(JobClock::time_point now) {
  if (rate_ == 0) return now;
  refill(now);
  if (tokens_ >= 0) return now;
  const duration<double> wait(-tokens_ / static_cast<double>(rate_));
  // Round up so that the sleeper wakes when the debt is paid, not a nanosecond before.
  return now + std::chrono::ceil<JobClock::duration>(wait);
}

// ---- RateMeter --------------------------------------------------------------------------------

RateMeter::RateMeter(JobClock::time_point start) : start_(start) {
  slot_ids_.fill(-1);
}

int64_t RateMeter::slot_of(JobClock::time_point t) const {
  if (t <= start_) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(t - start_) / kSlot;
}

void RateMeter::add(uint64_t bytes, JobClock::time_point now) {
  const int64_t slot = slot_of(now);
  const size_t i = static_cast<size_t>(slot) % kSlots;
  if (slot_ids_[i] != slot) {
    slot_ids_[i] = slot;
    bytes_[i] = 0;
  }
  bytes_[i] += bytes;
}

double RateMeter::bytes_per_second(JobClock::time_point now) const {
  const int64_t current = slot_of(now);
  const int64_t oldest = std::max<int64_t>(0, current - static_cast<int64_t>(kSlots) + 1);
  uint64_t sum = 0;
  for (size_t i = 0; i < kSlots; ++i)
    if (slot_ids_[i] >= oldest && slot_ids_[i] <= current) sum += bytes_[i];
  // The window is the counted slots: whole ones from `oldest`, and the current one up to `now`.
  const JobClock::time_point window_start = start_ + kSlot * oldest;
  const double seconds = duration<double>(now - window_start).count();
  // A meter a few microseconds old would report absurd rates; count at least one slot.
  return static_cast<double>(sum) / std::max(seconds, duration<double>(kSlot).count());
}

// ---- format_rate ------------------------------------------------------------------------------

std::string format_rate(double bytes_per_second) {
  if (!(bytes_per_second >= 1024)) {
    const double whole = std::max(0.0, std::floor(bytes_per_second));
    if (whole < 1024) return fmt::format("{}", static_cast<uint64_t>(whole));
  }
  static constexpr const char* kUnits[] = {"K", "M", "G", "T"};
  double value = bytes_per_second / 1024;
  size_t unit = 0;
  // Move up while the value would print as 1024.0 or more.
  while (unit + 1 < std::size(kUnits) && std::round(value * 10) >= 1024 * 10) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f}{}", value, kUnits[unit]);
}

}  // namespace chainfs
