// Rate limiting and rate measurement for jobs. Both are plain values driven by explicit time
// points, so tests feed them a synthetic clock; JobContext feeds them steady_clock and does the
// sleeping.
//
// TokenBucket: `speed` bytes/s refill a bucket that holds at most kBurstWindow worth of bytes.
// A job is charged *after* it copied a chunk, so the bucket may go into debt by up to one chunk;
// the next chunk starts only once the debt is paid (ready_at()). Over any window of W seconds a job
// therefore moves at most  speed * W + burst + one chunk  bytes. Rate 0 = unlimited, never in debt.
//
// RateMeter: bytes per 100 ms slot over the last kMeterWindow, giving the `rate:` of the status
// file.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

namespace chainfs {

using JobClock = std::chrono::steady_clock;

class TokenBucket {
 public:
  static constexpr std::chrono::milliseconds kBurstWindow{100};

  explicit TokenBucket(uint64_t bytes_per_second = 0, JobClock::time_point now = JobClock::now());

  // Changes the rate from `now` on: what was earned so far at the old rate is kept (up to the new
  // burst) and a debt is paid at the new rate. Setting 0 forgives any debt.
  void set_rate(uint64_t bytes_per_second, JobClock::time_point now);
  uint64_t rate() const { return rate_; }
  // Largest balance the bucket holds: kBurstWindow worth of bytes (at least one byte).
  uint64_t burst() const;

  // Takes `bytes` from the bucket (it may go negative).
  void charge(uint64_t bytes, JobClock::time_point now);
  // When the next chunk may start: `now` if nothing is owed, else the moment the debt is paid.
  JobClock::time_point ready_at(JobClock::time_point now);

 private:
  void refill(JobClock::time_point now);

  uint64_t rate_ = 0;
  double tokens_ = 0;  // bytes; negative while in debt
  JobClock::time_point last_refill_;
};

class RateMeter {
 public:
  static constexpr std::chrono::milliseconds kSlot{100};
  static constexpr size_t kSlots = 30;  // kMeterWindow = 3 s
  static constexpr std::chrono::milliseconds kMeterWindow = kSlot * kSlots;

  explicit RateMeter(JobClock::time_point start = JobClock::now());

  void add(uint64_t bytes, JobClock::time_point now);
  // Bytes per second over the last kMeterWindow (or since start, if the meter is younger).
  double bytes_per_second(JobClock::time_point now) const;

 private:
  int64_t slot_of(JobClock::time_point t) const;

  JobClock::time_point start_;
  std::array<uint64_t, kSlots> bytes_{};
  std::array<int64_t, kSlots> slot_ids_{};  // which slot (since start_) bytes_[i] counts; -1 = none
};

// A rate as the status file shows it: "0", "512", "1.5K", "412.3M", "2.0G" (powers of 1024, one
// decimal from 1K up).
std::string format_rate(double bytes_per_second);

}  // namespace chainfs
