// Whole lives of jobs: pause/resume/cancel in each state, ready/standby/complete, auto-finalize,
// auto-dismiss, ids, observer order, status text, shutdown.
#include <gtest/gtest.h>

#include "rig.h"

namespace chainfs::testing {
namespace {

using S = JobState;

TEST(JobFlow, Success_RunsPrepareCommitCleanAndCopiesEverything) {
  Rig rig;
  auto p = rig.probe(8);
  const std::string id = rig.start(p);
  JobInfo end = rig.wait_concluded(id);
  EXPECT_FALSE(end.error);
  EXPECT_EQ(end.progress, 8 * kChunk);
  EXPECT_EQ(end.total, 8 * kChunk);
  EXPECT_EQ(rig.dst(p), rig.src(p));
  EXPECT_EQ(p->calls_so_far(), (Calls{"prepare", "commit", "clean"}));
  EXPECT_TRUE(p->destroyed);  // the Job (and what it holds) is gone once concluded
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Pending, S::Concluded));
  EXPECT_EQ(rig.log.path(id), (Path{S::Created, S::Running, S::Waiting, S::Pending, S::Concluded}));
}

TEST(JobFlow, Observer_SeesAddedThenEveryChangeInOrder) {
  Rig rig;
  auto p = rig.probe(2);
  const std::string id = rig.start(p, {}, false, "commit", "base");
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Pending, S::Concluded));
  std::vector<JobEvent> events = rig.log.events();
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].kind, JobEvent::Kind::Added);
  EXPECT_EQ(events[0].id, "commit0");
  EXPECT_EQ(events[0].type, "commit");
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kind, JobEvent::Kind::StateChanged);
    EXPECT_EQ(events[i].from, events[i - 1].to);
  }
}

TEST(JobFlow, PauseRunning_ParksAtTheNextPausePoint_ResumeFinishes) {
  Rig rig;
  auto p = rig.probe(8);
  p->chunk_gate.block_at(2);
  const std::string id = rig.start(p);
  ASSERT_TRUE(p->chunk_gate.wait_reached(2));
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Pause).ok());
  EXPECT_EQ(rig.info(id).state, S::Paused);  // shown at once
  p->chunk_gate.release();
  // Chunk 2 was under way: it is finished, then the job parks before chunk 3.
  JobInfo parked = rig.wait_state(id, S::Paused, /*parked=*/true);
  EXPECT_EQ(parked.progress, 3 * kChunk);
  {
    std::lock_guard lock(p->mutex);
    EXPECT_EQ(p->attempts.count(3), 0u);
  }
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_FALSE(end.error);
  EXPECT_EQ(rig.dst(p), rig.src(p));
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Pending, S::Concluded));
  EXPECT_EQ(rig.log.path(id), (Path{S::Created, S::Running, S::Paused, S::Running, S::Waiting,
                                    S::Pending, S::Concluded}));
}

TEST(JobFlow, CancelRunning_AbortsWithoutPrepareAndStopsCopying) {
  Rig rig;
  auto p = rig.probe(8);
  p->chunk_gate.block_at(2);
  const std::string id = rig.start(p);
  ASSERT_TRUE(p->chunk_gate.wait_reached(2));
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Cancel).ok());
  EXPECT_EQ(rig.info(id).state, S::Aborting);
  EXPECT_EQ(rig.manager.verb(id, JobVerb::Cancel).error().code, Errc::Busy);
  p->chunk_gate.release();
  JobInfo end = rig.wait_concluded(id);
  EXPECT_EQ(end.error, "job cancelled");
  EXPECT_EQ(end.progress, 3 * kChunk);
  EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Aborting, S::Concluded));
  EXPECT_EQ(rig.log.path(id), (Path{S::Created, S::Running, S::Aborting, S::Concluded}));
  EXPECT_EQ(rig.manager.list().size(), 1u);  // failed jobs stay listed until dismiss
}

TEST(JobFlow, CancelPaused_ConcludesWithoutResuming) {
  Rig rig;
  auto p = rig.probe(8);
  p->chunk_gate.block_at(1);
  const std::string id = rig.start(p);
  ASSERT_TRUE(p->chunk_gate.wait_reached(1));
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Pause).ok());
  p->chunk_gate.release();
  rig.wait_state(id, S::Paused, true);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Cancel).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_EQ(end.error, "job cancelled");
  EXPECT_EQ(end.progress, 2 * kChunk);
  EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
}

TEST(JobFlow, ReadyStandby_MirrorsNewWritesThenCompletes) {
  Rig rig;
  auto p = rig.probe(4);
  const std::string id = rig.start(p, {}, /*mirror=*/true, "active-commit");
  JobInfo ready = rig.wait_state(id, S::Ready, true);
  EXPECT_EQ(ready.progress, 4 * kChunk);
  EXPECT_EQ(ready.total, 4 * kChunk);

  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Pause).ok());
  EXPECT_EQ(rig.info(id).state, S::Standby);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  EXPECT_EQ(rig.info(id).state, S::Ready);

  // A guest write: the total grows and the job copies the chunk again.
  p->dirty(2, std::byte{0xAA});
  JobInfo synced =
      *rig.manager.wait_until(id, [](const JobInfo& j) { return j.progress == 5 * kChunk; });
  EXPECT_EQ(synced.total, 5 * kChunk);
  EXPECT_EQ(rig.dst(p), rig.src(p));

  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Complete).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_FALSE(end.error);
  EXPECT_EQ(p->calls_so_far(), (Calls{"prepare", "commit", "clean"}));
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Pending, S::Concluded));
  EXPECT_EQ(rig.log.path(id), (Path{S::Created, S::Running, S::Ready, S::Standby, S::Ready,
                                    S::Waiting, S::Pending, S::Concluded}));
}

TEST(JobFlow, WriteWhileStandby_IsCopiedAfterResume) {
  Rig rig;
  auto p = rig.probe(4);
  const std::string id = rig.start(p, {}, /*mirror=*/true, "active-commit");
  rig.wait_state(id, S::Ready, true);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Pause).ok());
  // The pause ends the job's idle wait; it parks at the pause point, where standby holds it.
  JobInfo held = rig.wait_state(id, S::Standby, true);
  p->dirty(1, std::byte{0x55});
  EXPECT_EQ(held.progress, 4 * kChunk);
  EXPECT_EQ(held.total, 4 * kChunk);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  JobInfo synced = *rig.manager.wait_until(
      id, [](const JobInfo& j) { return j.progress == 5 * kChunk && j.parked; });
  EXPECT_EQ(synced.total, 5 * kChunk);
  EXPECT_EQ(synced.state, S::Ready);
  EXPECT_EQ(rig.dst(p), rig.src(p));
}

TEST(JobFlow, CancelReady_GoesBackUntouched) {
  Rig rig;
  auto p = rig.probe(4);
  const std::string id = rig.start(p, {}, /*mirror=*/true, "active-commit");
  rig.wait_state(id, S::Ready, true);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Cancel).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_EQ(end.error, "job cancelled");
  EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
}

TEST(JobFlow, CancelStandby_GoesBackUntouched) {
  Rig rig;
  auto p = rig.probe(4);
  const std::string id = rig.start(p, {}, /*mirror=*/true, "active-commit");
  rig.wait_state(id, S::Ready, true);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Pause).ok());
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Cancel).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_EQ(end.error, "job cancelled");
  EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Aborting, S::Concluded));
  EXPECT_EQ(rig.log.path(id),
            (Path{S::Created, S::Running, S::Ready, S::Standby, S::Aborting, S::Concluded}));
}

TEST(JobFlow, PauseAfterLastChunk_HeldBeforeWaiting) {
  Rig rig;
  auto p = rig.probe(3);
  p->chunk_gate.block_at(2);  // the last chunk
  const std::string id = rig.start(p);
  ASSERT_TRUE(p->chunk_gate.wait_reached(2));
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Pause).ok());
  p->chunk_gate.release();
  // run() returns with the pause pending: the engine holds the job before waiting/pending.
  JobInfo held = rig.wait_state(id, S::Paused, true);
  EXPECT_EQ(held.progress, 3 * kChunk);
  EXPECT_TRUE(p->calls_so_far().empty());
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  EXPECT_FALSE(rig.wait_concluded(id).error);
}

TEST(JobFlow, AutoFinalizeOff_WaitsInPending_GraphChangeOnlyOnFinalize) {
  Rig rig;
  auto p = rig.probe(4);
  JobOptions options;
  options.auto_finalize = false;
  const std::string id = rig.start(p, options);
  JobInfo pending = rig.wait_state(id, S::Pending, true);
  EXPECT_EQ(pending.progress, 4 * kChunk);
  EXPECT_TRUE(p->calls_so_far().empty());  // no graph change yet
  EXPECT_FALSE(p->destroyed);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Finalize).ok());
  // finalize answers after the change: a script sees the new shape when its write returns.
  EXPECT_EQ(p->calls_so_far(), (Calls{"prepare", "commit", "clean"}));
  EXPECT_EQ(rig.info(id).state, S::Concluded);
  EXPECT_FALSE(rig.info(id).error);
}

TEST(JobFlow, AutoFinalizeOff_CancelInPending_Aborts) {
  Rig rig;
  auto p = rig.probe(4);
  JobOptions options;
  options.auto_finalize = false;
  const std::string id = rig.start(p, options);
  rig.wait_state(id, S::Pending, true);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Cancel).ok());
  JobInfo end = rig.wait_concluded(id);
  EXPECT_EQ(end.error, "job cancelled");
  EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
}

TEST(JobFlow, FinalizeWhosePrepareFails_ReturnsTheErrorAndAborts) {
  Rig rig;
  auto p = rig.probe(2);
  p->prepare_error = make_error(Errc::Busy, "node mid is claimed by commit1");
  JobOptions options;
  options.auto_finalize = false;
  const std::string id = rig.start(p, options);
  rig.wait_state(id, S::Pending, true);
  Result<void> result = rig.manager.verb(id, JobVerb::Finalize);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::Busy);
  EXPECT_EQ(result.error().message, "node mid is claimed by commit1");
  EXPECT_EQ(p->calls_so_far(), (Calls{"prepare", "abort", "clean"}));
  JobInfo end = rig.info(id);
  EXPECT_EQ(end.state, S::Concluded);
  EXPECT_EQ(end.error, "node mid is claimed by commit1");
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Aborting, S::Concluded));
  EXPECT_EQ(rig.log.path(id),
            (Path{S::Created, S::Running, S::Waiting, S::Pending, S::Aborting, S::Concluded}));
}

TEST(JobFlow, CancelWhileFinalizing_IsBusy) {
  Rig rig;
  auto p = rig.probe(2);
  p->prepare_gate.block_at(0);
  const std::string id = rig.start(p);
  ASSERT_TRUE(p->prepare_gate.wait_reached(0));
  EXPECT_EQ(rig.info(id).state, S::Pending);
  Result<void> cancel = rig.manager.verb(id, JobVerb::Cancel);
  ASSERT_FALSE(cancel.ok());
  EXPECT_EQ(cancel.error().code, Errc::Busy);
  EXPECT_NE(cancel.error().message.find("pending"), std::string::npos);
  p->prepare_gate.release();
  EXPECT_FALSE(rig.wait_concluded(id).error);
}

TEST(JobFlow, AutoDismissOn_SuccessfulJobDisappears) {
  Rig rig;
  auto p = rig.probe(2);
  JobOptions options;
  options.auto_dismiss = true;
  const std::string id = rig.start(p, options);
  ASSERT_TRUE(rig.log.wait_for(id, JobEvent::Kind::Removed));
  EXPECT_EQ(rig.manager.info(id).error().code, Errc::NotFound);
  EXPECT_TRUE(rig.manager.list().empty());
  EXPECT_EQ(p->calls_so_far(), (Calls{"prepare", "commit", "clean"}));
}

TEST(JobFlow, AutoDismissOn_FailedJobStaysListed) {
  Rig rig;
  auto p = rig.probe(2);
  p->fail_chunk(1, Errc::Io);
  JobOptions options;
  options.auto_dismiss = true;
  const std::string id = rig.start(p, options);
  JobInfo end = rig.wait_concluded(id);
  EXPECT_EQ(end.error, "injected EIO at chunk 1");
  ASSERT_TRUE(rig.log.wait_for_change(id, S::Aborting, S::Concluded));
  EXPECT_EQ(rig.manager.list().size(), 1u);
  EXPECT_TRUE(rig.manager.verb(id, JobVerb::Dismiss).ok());
}

TEST(JobIds, DefaultIdsCountAcrossTypes_GivenIdsMustBeFree) {
  Rig rig;
  auto p = rig.probe(1);
  EXPECT_EQ(rig.start(p), "stream0");
  EXPECT_EQ(rig.start(rig.probe(1), {}, false, "commit"), "commit1");
  JobOptions mine;
  mine.id = "commit2";
  EXPECT_EQ(rig.start(rig.probe(1), mine, false, "commit"), "commit2");
  // The counter is at 2; commit2 is taken, so the next default skips it.
  EXPECT_EQ(rig.start(rig.probe(1), {}, false, "commit"), "commit3");
  EXPECT_EQ(rig.start(rig.probe(1), {}, false, "active-commit"), "active-commit4");

  auto taken = rig.manager.start(std::make_unique<FakeCopyJob>(rig.probe(1)), mine);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.error().code, Errc::Exists);
  EXPECT_NE(taken.error().message.find("commit2"), std::string::npos);

  for (const char* bad : {"a/b", "a b", ".", "..", "tab\there", "nl\n"}) {
    JobOptions options;
    options.id = bad;
    auto refused = rig.manager.start(std::make_unique<FakeCopyJob>(rig.probe(1)), options);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.error().code, Errc::Invalid) << bad;
  }
}

TEST(JobIds, DismissedIdIsFreeAgain) {
  Rig rig;
  JobOptions mine;
  mine.id = "backup";
  const std::string id = rig.start(rig.probe(1), mine);
  rig.wait_concluded(id);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Dismiss).ok());
  EXPECT_EQ(rig.start(rig.probe(1), mine), "backup");
}

TEST(JobIds, TwoManagersInOneProcess_AreIndependent) {
  Rig a, b;
  EXPECT_EQ(a.start(a.probe(1)), "stream0");
  EXPECT_EQ(b.start(b.probe(1)), "stream0");
  EXPECT_EQ(a.start(a.probe(1)), "stream1");
  a.wait_concluded("stream0");
  ASSERT_TRUE(a.manager.verb("stream0", JobVerb::Dismiss).ok());
  EXPECT_TRUE(b.manager.info("stream0").ok());
}

TEST(JobStatus, PausedJob_StatusFileExactText) {
  Rig rig;
  auto p = rig.probe(8);
  p->chunk_gate.block_at(2);
  const std::string id = rig.start(p, {}, false, "commit", "base");
  ASSERT_TRUE(p->chunk_gate.wait_reached(2));
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Pause).ok());
  p->chunk_gate.release();
  rig.wait_state(id, S::Paused, true);
  ASSERT_TRUE(rig.manager.set_speed(id, 1048576).ok());
  auto text = rig.manager.status_yaml(id);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "id: commit0\n"
            "type: commit\n"
            "state: paused\n"
            "node: top\n"
            "base: base\n"
            "progress: 12288\n"
            "total: 32768\n"
            "speed: 1048576\n"
            "rate: 0\n"
            "io-status: ok\n"
            "error: ~\n");
}

TEST(JobStatus, FailedJob_StatusFileShowsTheError) {
  Rig rig;
  auto p = rig.probe(4);
  p->fail_chunk(3, Errc::Io);
  const std::string id = rig.start(p);
  rig.wait_concluded(id);
  EXPECT_EQ(*rig.manager.status_yaml(id),
            "id: stream0\n"
            "type: stream\n"
            "state: concluded\n"
            "node: top\n"
            "base: ~\n"
            "progress: 12288\n"
            "total: 16384\n"
            "speed: 0\n"
            "rate: 0\n"
            "io-status: ok\n"
            "error: injected EIO at chunk 3\n");
}

TEST(JobShutdown, CancelAllAndWait_StopsJobsInEveryState) {
  Rig rig;
  auto throttled = rig.probe(4);
  JobOptions slow;
  slow.speed = 1;  // one byte per second: parked in the rate limit for hours
  const std::string t = rig.start(throttled, slow);
  auto paused = rig.probe(4);
  paused->chunk_gate.block_at(1);
  const std::string pa = rig.start(paused);
  auto mirror = rig.probe(4);
  const std::string m = rig.start(mirror, {}, true, "active-commit");
  auto pending = rig.probe(4);
  JobOptions manual;
  manual.auto_finalize = false;
  const std::string pe = rig.start(pending, manual);
  auto done = rig.probe(1);
  const std::string d = rig.start(done);

  rig.wait_state(t, S::Running, true);
  ASSERT_TRUE(paused->chunk_gate.wait_reached(1));
  ASSERT_TRUE(rig.manager.verb(pa, JobVerb::Pause).ok());
  paused->chunk_gate.release();
  rig.wait_state(pa, S::Paused, true);
  rig.wait_state(m, S::Ready, true);
  rig.wait_state(pe, S::Pending, true);
  rig.wait_concluded(d);

  rig.manager.cancel_all_and_wait();
  for (const std::string& id : {t, pa, m, pe}) {
    JobInfo end = rig.info(id);
    EXPECT_EQ(end.state, S::Concluded) << id;
    EXPECT_EQ(end.error, "job cancelled") << id;
  }
  for (const auto& p : {throttled, paused, mirror, pending})
    EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
  EXPECT_FALSE(rig.info(d).error);
  EXPECT_EQ(done->calls_so_far(), (Calls{"prepare", "commit", "clean"}));

  auto refused = rig.manager.start(std::make_unique<FakeCopyJob>(rig.probe(1)));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::Busy);
}

TEST(JobShutdown, DestroyingTheManager_CancelsAndJoins) {
  auto p = std::make_shared<Probe>(4);
  {
    JobManager manager;
    JobOptions slow;
    slow.speed = 1;
    ASSERT_TRUE(manager.start(std::make_unique<FakeCopyJob>(p), slow).ok());
  }
  EXPECT_TRUE(p->destroyed);
  EXPECT_EQ(p->calls_so_far(), (Calls{"abort", "clean"}));
}

}  // namespace
}  // namespace chainfs::testing
