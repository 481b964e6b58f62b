// The on-error policies with injected I/O errors: report, stop, enospc, ignore.
#include <gtest/gtest.h>

#include "rig.h"

namespace chainfs::testing {
namespace {

using S = JobState;

JobOptions policy(OnErrorPolicy p) {
  JobOptions options;
  options.on_error = p;
  return options;
}

int attempts(const std::shared_ptr<Probe>& p, size_t chunk) {
  std::lock_guard lock(p->mutex);
  auto it = p->attempts.find(chunk);
  return it == p->attempts.end() ? 0 : it->second;
}

TEST(OnError, ReportEio_JobFailsAndGraphIsUnchanged) {
  Rig rig;
  auto p = rig.probe(6);
  p->fail_chunk(2, Errc::Io);
  const std::string id = rig.start(p);  // report is the default
  JobInfo end = rig.wait_concluded(id);
  EXPECT_EQ(end.error, "injected EIO at chunk 2");
  EXPECT_EQ(end.io_status, IoStatus::Ok);
  EXPECT_EQ(end.progress, 2 * kChunk);
  EXPECT_EQ(attempts(p, 3), 0);  // nothing after the failure
  EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Aborting, S::Concluded));
  EXPECT_EQ(rig.log.path(id), (Path{S::Created, S::Running, S::Aborting, S::Concluded}));
}

TEST(OnError, StopEio_PausesWithIoStatusFailed_ResumeRetriesTheChunk) {
  Rig rig;
  auto p = rig.probe(6);
  p->fail_chunk(2, Errc::Io);
  const std::string id = rig.start(p, policy(OnErrorPolicy::Stop));
  JobInfo stopped = rig.wait_state(id, S::Paused, true);
  EXPECT_EQ(stopped.io_status, IoStatus::Failed);
  EXPECT_EQ(stopped.progress, 2 * kChunk);
  EXPECT_FALSE(stopped.error);
  EXPECT_EQ(attempts(p, 2), 1);
  EXPECT_NE(rig.manager.status_yaml(id)->find("io-status: failed\n"), std::string::npos);
  // The stop's event says why.
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Running, S::Paused));
  bool found = false;
  for (const JobEvent& e : rig.log.events())
    if (e.to == S::Paused && e.io_status == IoStatus::Failed) {
      EXPECT_EQ(e.message, "injected EIO at chunk 2");
      found = true;
    }
  EXPECT_TRUE(found);
  // A stopped job is paused: pause is refused, resume retries.
  EXPECT_EQ(rig.manager.verb(id, JobVerb::Pause).error().code, Errc::Busy);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_FALSE(end.error);
  EXPECT_EQ(end.io_status, IoStatus::Ok);
  EXPECT_EQ(attempts(p, 2), 2);
  EXPECT_EQ(rig.dst(p), rig.src(p));
  EXPECT_EQ(p->calls_so_far(), (Calls{"prepare", "commit", "clean"}));
}

TEST(OnError, StopEnospc_IoStatusNospace) {
  Rig rig;
  auto p = rig.probe(4);
  p->fail_chunk(1, Errc::NoSpace);
  const std::string id = rig.start(p, policy(OnErrorPolicy::Stop));
  EXPECT_EQ(rig.wait_state(id, S::Paused, true).io_status, IoStatus::NoSpace);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  EXPECT_FALSE(rig.wait_concluded(id).error);
}

TEST(OnError, StopTwiceOnOneChunk_StopsAgainAfterResume) {
  Rig rig;
  auto p = rig.probe(4);
  p->fail_chunk(1, Errc::Io);
  p->fail_chunk(1, Errc::Io);
  const std::string id = rig.start(p, policy(OnErrorPolicy::Stop));
  rig.wait_state(id, S::Paused, true);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  // resume cleared io-status; only the second stop sets it again.
  ASSERT_TRUE(rig.manager
                  .wait_until(id,
                              [](const JobInfo& j) {
                                return j.state == S::Paused && j.parked &&
                                       j.io_status == IoStatus::Failed;
                              })
                  .ok());
  EXPECT_EQ(attempts(p, 1), 2);
  EXPECT_EQ(rig.info(id).io_status, IoStatus::Failed);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  EXPECT_FALSE(rig.wait_concluded(id).error);
  EXPECT_EQ(attempts(p, 1), 3);
  EXPECT_EQ(rig.dst(p), rig.src(p));
}

TEST(OnError, StopThenCancel_ConcludesCancelledKeepingIoStatus) {
  Rig rig;
  auto p = rig.probe(4);
  p->fail_chunk(1, Errc::Io);
  const std::string id = rig.start(p, policy(OnErrorPolicy::Stop));
  rig.wait_state(id, S::Paused, true);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Cancel).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_EQ(end.error, "job cancelled");
  EXPECT_EQ(end.io_status, IoStatus::Failed);
  EXPECT_EQ(attempts(p, 1), 1);
  EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
}

TEST(OnError, StopWhileReady_GoesToStandbyAndBack) {
  Rig rig;
  auto p = rig.probe(4);
  const std::string id =
      rig.start(p, policy(OnErrorPolicy::Stop), /*mirror=*/true, "active-commit");
  rig.wait_state(id, S::Ready, true);
  p->fail_chunk(3, Errc::Io);
  p->dirty(3, std::byte{0x77});
  JobInfo stopped = rig.wait_state(id, S::Standby, true);
  EXPECT_EQ(stopped.io_status, IoStatus::Failed);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  ASSERT_TRUE(
      rig.manager.wait_until(id, [](const JobInfo& j) { return j.progress == 5 * kChunk; }).ok());
  JobInfo synced = rig.info(id);
  EXPECT_EQ(synced.state, S::Ready);
  EXPECT_EQ(synced.io_status, IoStatus::Ok);
  EXPECT_EQ(rig.dst(p), rig.src(p));
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Complete).ok());
  EXPECT_FALSE(rig.wait_concluded(id).error);
}

TEST(OnError, EnospcPolicyEnospc_Stops) {
  Rig rig;
  auto p = rig.probe(4);
  p->fail_chunk(2, Errc::NoSpace);
  const std::string id = rig.start(p, policy(OnErrorPolicy::Enospc));
  JobInfo stopped = rig.wait_state(id, S::Paused, true);
  EXPECT_EQ(stopped.io_status, IoStatus::NoSpace);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_FALSE(end.error);
  EXPECT_EQ(rig.dst(p), rig.src(p));
}

TEST(OnError, EnospcPolicyEio_Reports) {
  Rig rig;
  auto p = rig.probe(4);
  p->fail_chunk(2, Errc::Io);
  const std::string id = rig.start(p, policy(OnErrorPolicy::Enospc));
  JobInfo end = rig.wait_concluded(id);
  EXPECT_EQ(end.error, "injected EIO at chunk 2");
  EXPECT_EQ(end.io_status, IoStatus::Ok);
  EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Aborting, S::Concluded));
  EXPECT_EQ(rig.log.path(id), (Path{S::Created, S::Running, S::Aborting, S::Concluded}));
}

TEST(OnError, IgnoreEio_GoesOnThenEndsFailedWithoutGraphChange) {
  Rig rig;
  auto p = rig.probe(6);
  p->fail_chunk(2, Errc::Io);
  const std::string id = rig.start(p, policy(OnErrorPolicy::Ignore));
  JobInfo end = rig.wait_concluded(id);
  ASSERT_TRUE(end.error);
  EXPECT_EQ(*end.error,
            "1 chunk(s) failed and were skipped (on-error=ignore); first: injected EIO at chunk 2");
  EXPECT_EQ(end.progress, end.total);  // it went on to the end
  EXPECT_EQ(attempts(p, 2), 1);
  std::vector<std::byte> dst = rig.dst(p), src = rig.src(p);
  for (size_t k = 0; k < 6; ++k) {
    const bool same = std::equal(dst.begin() + k * kChunk, dst.begin() + (k + 1) * kChunk,
                                 src.begin() + k * kChunk);
    EXPECT_EQ(same, k != 2) << "chunk " << k;
  }
  EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Aborting, S::Concluded));
  EXPECT_EQ(rig.log.path(id), (Path{S::Created, S::Running, S::Aborting, S::Concluded}));
}

}  // namespace
}  // namespace chainfs::testing
