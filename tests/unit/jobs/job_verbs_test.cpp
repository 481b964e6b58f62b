// Every verb in every state a job can be held in, table-driven: the engine accepts exactly what
// kJobVerbs says, moves to the state the diagram says, and refuses the rest with EBUSY and a
// message that names the state and the verb.
#include <gtest/gtest.h>

#include <optional>

#include "rig.h"

namespace chainfs::testing {
namespace {

struct Staged {
  std::string id;
  std::shared_ptr<Probe> probe;
};

// Puts a fresh job of `rig` into `state` and keeps it there (its thread blocked in a hook, or
// parked at a pause point).
Staged stage(Rig& rig, JobState state) {
  Staged s;
  s.probe = rig.probe(8);
  switch (state) {
    case JobState::Running:
    case JobState::Paused:
      s.probe->chunk_gate.block_at(2);
      s.id = rig.start(s.probe);
      EXPECT_TRUE(s.probe->chunk_gate.wait_reached(2));
      if (state == JobState::Paused) {
        EXPECT_TRUE(rig.manager.verb(s.id, JobVerb::Pause).ok());
      }
      break;
    case JobState::Ready:
    case JobState::Standby:
      s.id = rig.start(s.probe, {}, /*mirror=*/true);
      rig.wait_state(s.id, JobState::Ready, /*parked=*/true);
      if (state == JobState::Standby) {
        EXPECT_TRUE(rig.manager.verb(s.id, JobVerb::Pause).ok());
      }
      break;
    case JobState::Pending: {
      JobOptions options;
      options.auto_finalize = false;
      s.id = rig.start(s.probe, options);
      rig.wait_state(s.id, JobState::Pending, /*parked=*/true);
      break;
    }
    case JobState::Aborting:
      s.probe->fail_chunk(1, Errc::Io);
      s.probe->abort_gate.block_at(0);
      s.id = rig.start(s.probe);
      EXPECT_TRUE(s.probe->abort_gate.wait_reached(0));
      break;
    case JobState::Concluded:
      s.id = rig.start(s.probe);
      // The event, not just the state: nothing may still be on its way to the log.
      EXPECT_TRUE(rig.log.wait_for_change(s.id, JobState::Pending, JobState::Concluded));
      break;
    default:
      ADD_FAILURE() << "cannot hold a job in " << job_state_name(state);
  }
  EXPECT_EQ(rig.info(s.id).state, state);
  return s;
}

// The first state change a verb causes, where it causes one at once.
std::optional<JobState> next_state(JobState state, JobVerb verb) {
  switch (verb) {
    case JobVerb::Pause:
      return state == JobState::Running ? JobState::Paused : JobState::Standby;
    case JobVerb::Resume:
      return state == JobState::Paused ? JobState::Running : JobState::Ready;
    case JobVerb::Cancel:
      return JobState::Aborting;
    case JobVerb::Finalize:
      return JobState::Concluded;
    default:
      return std::nullopt;
  }
}

Result<void> apply(Rig& rig, const std::string& id, JobVerb verb) {
  if (verb == JobVerb::Speed) return rig.manager.set_speed(id, 3 << 20);
  return rig.manager.verb(id, verb);
}

const JobState kHeldStates[] = {JobState::Running,  JobState::Paused,  JobState::Ready,
                                JobState::Standby,  JobState::Pending, JobState::Aborting,
                                JobState::Concluded};

TEST(JobVerbs, EveryVerbInEveryHeldState_FollowsTheTables) {
  for (JobState state : kHeldStates) {
    for (JobVerb verb : kAllJobVerbs) {
      SCOPED_TRACE(fmt::format("{} while {}", job_verb_name(verb), job_state_name(state)));
      Rig rig;
      Staged s = stage(rig, state);
      const size_t events_before = rig.log.events().size();
      Result<void> result = apply(rig, s.id, verb);

      if (!job_verb_allowed(state, verb)) {
        ASSERT_FALSE(result.ok());
        EXPECT_EQ(result.error().code, Errc::Busy);
        EXPECT_NE(result.error().message.find(job_state_name(state)), std::string::npos)
            << result.error().message;
        EXPECT_NE(result.error().message.find(job_verb_name(verb)), std::string::npos)
            << result.error().message;
        EXPECT_NE(result.error().message.find(s.id), std::string::npos) << result.error().message;
        EXPECT_EQ(rig.info(s.id).state, state);
        EXPECT_EQ(rig.log.events().size(), events_before);  // nothing happened
        continue;
      }

      ASSERT_TRUE(result.ok()) << result.error().message;
      if (std::optional<JobState> next = next_state(state, verb)) {
        // Delivery may trail the verb's return by a moment (another thread may be delivering);
        // the order may not: the verb's change is the first one after it.
        ASSERT_TRUE(rig.log.wait_for_change(s.id, state, *next, events_before));
        const JobEvent first = rig.log.events().at(events_before);
        EXPECT_EQ(first.kind, JobEvent::Kind::StateChanged);
        EXPECT_EQ(first.from, state);
        EXPECT_EQ(first.to, *next);
      }
      switch (verb) {
        case JobVerb::Speed:
          EXPECT_EQ(rig.info(s.id).speed, 3u << 20);
          EXPECT_EQ(rig.info(s.id).state, state);
          break;
        case JobVerb::Dismiss:
          EXPECT_EQ(rig.manager.info(s.id).error().code, Errc::NotFound);
          EXPECT_TRUE(rig.log.wait_for(s.id, JobEvent::Kind::Removed));
          break;
        case JobVerb::Cancel: {
          s.probe->open_all_forever();
          JobInfo end = rig.wait_concluded(s.id);
          EXPECT_EQ(end.error, "job cancelled");
          EXPECT_EQ(s.probe->calls_so_far(), (Calls{"abort", "clean"}));
          break;
        }
        case JobVerb::Complete:
        case JobVerb::Finalize: {
          JobInfo end = rig.wait_concluded(s.id);
          EXPECT_FALSE(end.error) << *end.error;
          EXPECT_EQ(s.probe->calls_so_far(), (Calls{"prepare", "commit", "clean"}));
          break;
        }
        case JobVerb::Pause:
        case JobVerb::Resume:
          EXPECT_EQ(rig.info(s.id).state, *next_state(state, verb));
          break;
      }
    }
  }
}

TEST(JobVerbs, UnknownId_IsNotFound) {
  Rig rig;
  for (JobVerb verb : kAllJobVerbs) {
    Result<void> result = apply(rig, "nope", verb);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, Errc::NotFound) << job_verb_name(verb);
    EXPECT_NE(result.error().message.find("nope"), std::string::npos);
  }
  EXPECT_EQ(rig.manager.status_yaml("nope").error().code, Errc::NotFound);
  EXPECT_EQ(rig.manager.info("nope").error().code, Errc::NotFound);
}

TEST(JobVerbs, SpeedThroughVerb_IsInvalidWithoutARate) {
  Rig rig;
  auto p = rig.probe();
  const std::string id = rig.start(p);
  Result<void> result = rig.manager.verb(id, JobVerb::Speed);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::Invalid);
}

TEST(JobVerbs, CompleteBeforeReady_IsBusy) {
  Rig rig;
  auto p = rig.probe();
  p->chunk_gate.block_at(1);
  const std::string id = rig.start(p, {}, /*mirror=*/true, "active-commit");
  ASSERT_TRUE(p->chunk_gate.wait_reached(1));
  Result<void> result = rig.manager.verb(id, JobVerb::Complete);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::Busy);
  EXPECT_EQ(result.error().message,
            "job active-commit0: cannot complete while running: complete needs a ready job");
}

TEST(JobVerbs, CompleteTwice_SecondIsBusy) {
  Rig rig;
  auto p = rig.probe();
  p->prepare_gate.block_at(0);  // holds the job after the first complete
  const std::string id = rig.start(p, {}, /*mirror=*/true, "active-commit");
  rig.wait_state(id, JobState::Ready, true);
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Complete).ok());
  Result<void> again = rig.manager.verb(id, JobVerb::Complete);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::Busy);
  p->prepare_gate.release();
  EXPECT_FALSE(rig.wait_concluded(id).error);
}

TEST(JobVerbs, FinalizeOutsidePending_IsBusy) {
  Rig rig;
  auto p = rig.probe();
  p->chunk_gate.block_at(0);
  JobOptions options;
  options.auto_finalize = false;
  const std::string id = rig.start(p, options);
  ASSERT_TRUE(p->chunk_gate.wait_reached(0));
  Result<void> result = rig.manager.verb(id, JobVerb::Finalize);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::Busy);
  EXPECT_EQ(result.error().message,
            "job stream0: cannot finalize while running: finalize needs a pending job");
  p->chunk_gate.release();
  rig.wait_state(id, JobState::Pending, true);
  EXPECT_TRUE(rig.manager.verb(id, JobVerb::Finalize).ok());
  EXPECT_EQ(rig.info(id).state, JobState::Concluded);  // finalize returned after the change
  EXPECT_EQ(rig.manager.verb(id, JobVerb::Finalize).error().code, Errc::Busy);
}

TEST(JobVerbs, DismissBeforeConcluded_IsBusyThenRemovesIt) {
  Rig rig;
  auto p = rig.probe();
  p->chunk_gate.block_at(3);
  const std::string id = rig.start(p);
  ASSERT_TRUE(p->chunk_gate.wait_reached(3));
  Result<void> early = rig.manager.verb(id, JobVerb::Dismiss);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, Errc::Busy);
  EXPECT_EQ(early.error().message,
            "job stream0: cannot dismiss while running: dismiss needs a concluded job");
  p->chunk_gate.release();
  rig.wait_concluded(id);
  ASSERT_EQ(rig.manager.list().size(), 1u);  // concluded jobs stay listed
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Dismiss).ok());
  EXPECT_TRUE(rig.manager.list().empty());
  EXPECT_EQ(rig.manager.verb(id, JobVerb::Dismiss).error().code, Errc::NotFound);
  ASSERT_TRUE(rig.log.wait_for(id, JobEvent::Kind::Removed));
}

TEST(JobVerbs, PauseTwice_SecondIsBusy_ResumeTwice_SecondIsBusy) {
  Rig rig;
  auto p = rig.probe();
  p->chunk_gate.block_at(1);
  const std::string id = rig.start(p);
  ASSERT_TRUE(p->chunk_gate.wait_reached(1));
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Pause).ok());
  Result<void> again = rig.manager.verb(id, JobVerb::Pause);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::Busy);
  EXPECT_EQ(again.error().message, "job stream0: cannot pause while paused");
  ASSERT_TRUE(rig.manager.verb(id, JobVerb::Resume).ok());
  Result<void> resumed = rig.manager.verb(id, JobVerb::Resume);
  ASSERT_FALSE(resumed.ok());
  EXPECT_EQ(resumed.error().message, "job stream0: cannot resume while running");
}

}  // namespace
}  // namespace chainfs::testing
