// TokenBucket, RateMeter and format_rate on a synthetic clock.
#include <gtest/gtest.h>

#include "blockcore/jobs/rate.h"

namespace chainfs {
namespace {

using namespace std::chrono_literals;

const JobClock::time_point kT0 = JobClock::time_point() + 1000s;

TEST(TokenBucket, Unlimited_NeverWaits) {
  TokenBucket bucket(0, kT0);
  bucket.charge(1ull << 40, kT0);
  EXPECT_EQ(bucket.ready_at(kT0), kT0);
}

TEST(TokenBucket, Debt_IsPaidAtTheRate) {
  TokenBucket bucket(1000, kT0);  // burst: 100 bytes
  EXPECT_EQ(bucket.burst(), 100u);
  bucket.charge(1100, kT0);  // 100 from the burst, 1000 owed: one second
  EXPECT_EQ(bucket.ready_at(kT0), kT0 + 1s);
  EXPECT_EQ(bucket.ready_at(kT0 + 500ms), kT0 + 1s);
  EXPECT_EQ(bucket.ready_at(kT0 + 1s), kT0 + 1s);
}

TEST(TokenBucket, IdleTime_EarnsAtMostOneBurst) {
  TokenBucket bucket(1000, kT0);
  bucket.charge(100, kT0);
  // An hour idle earns 100 bytes, not 3.6 MB.
  const auto later = kT0 + 3600s;
  bucket.charge(300, later);
  EXPECT_EQ(bucket.ready_at(later), later + 200ms);
}

TEST(TokenBucket, AnyWindow_BoundedBySpeedTimesWindowPlusBurstPlusChunk) {
  // A job copying 64 KiB chunks as fast as the bucket lets it, for 10 s of synthetic time.
  const uint64_t rate = 1 << 20, chunk = 64 << 10;
  TokenBucket bucket(rate, kT0);
  std::vector<std::pair<JobClock::time_point, uint64_t>> progress{{kT0, 0}};
  JobClock::time_point now = kT0;
  uint64_t done = 0;
  while (now < kT0 + 10s) {
    now = bucket.ready_at(now);
    done += chunk;
    bucket.charge(chunk, now);
    progress.emplace_back(now, done);
  }
  for (size_t a = 0; a < progress.size(); ++a)
    for (size_t b = a; b < progress.size(); b += 7) {
      const double window =
          std::chrono::duration<double>(progress[b].first - progress[a].first).count();
      const double moved = static_cast<double>(progress[b].second - progress[a].second);
      EXPECT_LE(moved, rate * window + bucket.burst() + chunk);
    }
  // And it is not slower than the rate either.
  EXPECT_GE(done, rate * 10 - chunk);
}

TEST(TokenBucket, SetRate_TakesEffectForTheDebt) {
  TokenBucket bucket(100, kT0);  // burst 10
  bucket.charge(1010, kT0);      // 1000 owed: 10 s at 100 B/s
  EXPECT_EQ(bucket.ready_at(kT0), kT0 + 10s);
  bucket.set_rate(1000, kT0 + 1s);  // 100 paid; 900 left at 1000 B/s
  EXPECT_EQ(bucket.ready_at(kT0 + 1s), kT0 + 1s + 900ms);
  bucket.set_rate(0, kT0 + 1s);  // unlimited forgives the debt
  EXPECT_EQ(bucket.ready_at(kT0 + 1s), kT0 + 1s);
}

TEST(RateMeter, SteadyRate_IsMeasuredExactly) {
  RateMeter meter(kT0);
  for (int i = 1; i <= 100; ++i) meter.add(10'000, kT0 + 50ms * i);  // 200 KB/s for 5 s
  EXPECT_NEAR(meter.bytes_per_second(kT0 + 5s), 200'000, 200'000 * 0.05);
}

TEST(RateMeter, OnlyTheLastSecondsCount) {
  RateMeter meter(kT0);
  meter.add(100'000'000, kT0 + 10ms);  // a burst at the start
  EXPECT_GT(meter.bytes_per_second(kT0 + 1s), 50'000'000);
  EXPECT_EQ(meter.bytes_per_second(kT0 + 10s), 0);  // long gone from the window
}

TEST(RateMeter, YoungMeter_DividesByItsAge) {
  RateMeter meter(kT0);
  meter.add(1'000'000, kT0 + 400ms);
  EXPECT_NEAR(meter.bytes_per_second(kT0 + 500ms), 2'000'000, 1);
}

TEST(FormatRate, LikeTheStatusFileExample) {
  EXPECT_EQ(format_rate(0), "0");
  EXPECT_EQ(format_rate(-3), "0");
  EXPECT_EQ(format_rate(512.7), "512");
  EXPECT_EQ(format_rate(1023), "1023");
  EXPECT_EQ(format_rate(1024), "1.0K");
  EXPECT_EQ(format_rate(1536), "1.5K");
  EXPECT_EQ(format_rate(412.3 * 1024 * 1024), "412.3M");
  EXPECT_EQ(format_rate(2.0 * 1024 * 1024 * 1024), "2.0G");
  EXPECT_EQ(format_rate(1024.0 * 1024 - 1), "1.0M");  // not "1024.0K"
  EXPECT_EQ(format_rate(5.0 * 1024 * 1024 * 1024 * 1024 * 1024), "5120.0T");
}

}  // namespace
}  // namespace chainfs
