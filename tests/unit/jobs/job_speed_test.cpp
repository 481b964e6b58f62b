// The rate limit on a real clock (about a second), and how speed, pause and cancel reach a job
// that the limit put to sleep.
#include <gtest/gtest.h>

#include <thread>

#include "rig.h"

namespace chainfs::testing {
namespace {

using S = JobState;
using Clock = JobClock;

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

TEST(JobSpeed, ProgressOverAnyWindow_BoundedBySpeedTimesWindowPlusBurstAndChunk) {
  constexpr uint64_t kSpeed = 2 << 20;  // 2 MiB/s
  constexpr size_t kBigChunk = 64 << 10;
  Rig rig;
  auto p = rig.probe(80, kBigChunk);  // 5 MiB: more than 2 s at the limit, the test takes ~1 s
  JobOptions options;
  options.speed = kSpeed;
  const double burst = kSpeed * 0.1;  // TokenBucket::kBurstWindow worth
  const double slack = burst + kBigChunk;

  struct Sample {
    Clock::time_point before, after;
    uint64_t progress;
  };
  std::vector<Sample> samples;
  const Clock::time_point start = Clock::now();
  samples.push_back({start, start, 0});
  const std::string id = rig.start(p, options);
  while (Clock::now() - start < std::chrono::milliseconds(1000)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(40));  // sampling, not syncing
    Sample s;
    s.before = Clock::now();
    s.progress = rig.info(id).progress;
    s.after = Clock::now();
    samples.push_back(s);
  }
  const JobInfo running = rig.info(id);
  for (size_t a = 0; a < samples.size(); ++a)
    for (size_t b = a + 1; b < samples.size(); ++b) {
      // The two reads happened somewhere in [a.before, b.after]: the widest the window can be.
      const double window = seconds(samples[b].after - samples[a].before);
      const double moved = static_cast<double>(samples[b].progress - samples[a].progress);
      EXPECT_LE(moved, kSpeed * window + slack) << "samples " << a << ".." << b;
    }
  // It does move (loosely: sanitizers and a busy machine slow it down, never speed it up).
  EXPECT_GE(samples.back().progress, kSpeed / 4);
  // The measured rate is about the limit.
  EXPECT_GT(running.rate, 0.2 * kSpeed);
  EXPECT_LT(running.rate, 2.0 * kSpeed);
  EXPECT_EQ(running.speed, kSpeed);

  // Unlimited from now on: the rest goes at once.
  ASSERT_TRUE(rig.manager.set_speed(id, 0).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_FALSE(end.error);
  EXPECT_EQ(end.rate, 0);  // a concluded job shows no rate
  EXPECT_EQ(rig.dst(p), rig.src(p));
}

// One byte per second: after its first chunk the job owes an hour of sleep.
std::string start_throttled(Rig& rig, const std::shared_ptr<Probe>& p) {
  JobOptions options;
  options.speed = 1;
  const std::string id = rig.start(p, options);
  JobInfo parked = rig.wait_state(id, S::Running, /*parked=*/true);
  EXPECT_EQ(parked.progress, kChunk);
  return id;
}

TEST(JobSpeed, RaisingTheSpeed_WakesAThrottledJobAtOnce) {
  Rig rig;
  auto p = rig.probe(4);
  const std::string id = start_throttled(rig, p);
  ASSERT_TRUE(rig.manager.set_speed(id, 0).ok());
  EXPECT_FALSE(rig.wait_concluded(id).error);
}

TEST(JobSpeed, CancelWhileThrottled_ConcludesAtOnce) {
  Rig rig;
  auto p = rig.probe(4);
  const std::string id = start_throttled(rig, p);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Cancel).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_EQ(end.error, "job cancelled");
  EXPECT_EQ(end.progress, kChunk);
}

TEST(JobSpeed, PauseWhileThrottled_ParksPausedAndResumeKeepsTheLimit) {
  Rig rig;
  auto p = rig.probe(4);
  const std::string id = start_throttled(rig, p);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Pause).ok());
  EXPECT_EQ(rig.wait_state(id, S::Paused, true).progress, kChunk);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  // Back to the rate limit's sleep: still one chunk done.
  EXPECT_EQ(rig.wait_state(id, S::Running, true).progress, kChunk);
  ASSERT_TRUE(rig.manager.set_speed(id, 0).ok());
  EXPECT_FALSE(rig.wait_concluded(id).error);
}

TEST(JobSpeed, SpeedOutsideRunningStates_IsBusy) {
  Rig rig;
  auto p = rig.probe(2);
  JobOptions options;
  options.auto_finalize = false;
  const std::string id = rig.start(p, options);
  rig.wait_state(id, S::Pending, true);
  Result<void> refused = rig.manager.set_speed(id, 100);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::Busy);
  EXPECT_EQ(refused.error().message, "job stream0: cannot speed while pending");
}

}  // namespace
}  // namespace chainfs::testing
