// The state machine's tables against the behaviour INTERFACE.md and docs/jobs.md promise, written
// out here independently of blockcore/jobs/job_state.h.
#include <gtest/gtest.h>

#include <set>
#include <utility>

#include "blockcore/jobs/job_state.h"

namespace chainfs {
namespace {

using S = JobState;
using V = JobVerb;

// clang-format off
TEST(JobStateTable, EveryTransition_MatchesTheDiagram) {
  const std::set<std::pair<S, S>> expected = {
      {S::Created, S::Running},   {S::Created, S::Aborting},
      {S::Running, S::Paused},    {S::Running, S::Ready},    {S::Running, S::Waiting},
      {S::Running, S::Aborting},  {S::Paused, S::Running},   {S::Paused, S::Aborting},
      {S::Ready, S::Standby},     {S::Ready, S::Waiting},    {S::Ready, S::Aborting},
      {S::Standby, S::Ready},     {S::Standby, S::Aborting}, {S::Waiting, S::Pending},
      {S::Waiting, S::Aborting},  {S::Pending, S::Concluded}, {S::Pending, S::Aborting},
      {S::Aborting, S::Concluded},
  };
  for (S from : kAllJobStates)
    for (S to : kAllJobStates)
      EXPECT_EQ(job_transition_allowed(from, to), expected.count({from, to}) > 0)
          << job_state_name(from) << " -> " << job_state_name(to);
}

TEST(JobStateTable, EveryVerb_AcceptedExactlyWhereInterfaceSays) {
  const std::set<std::pair<S, V>> accepted = {
      // pause of a paused job is refused; a ready job pauses into standby
      {S::Running, V::Pause},    {S::Ready, V::Pause},
      {S::Paused, V::Resume},    {S::Standby, V::Resume},
      // cancel anything not yet aborting or concluded
      {S::Created, V::Cancel},   {S::Running, V::Cancel},  {S::Paused, V::Cancel},
      {S::Ready, V::Cancel},     {S::Standby, V::Cancel},  {S::Waiting, V::Cancel},
      {S::Pending, V::Cancel},
      {S::Ready, V::Complete},   // complete before ready: EBUSY
      {S::Pending, V::Finalize}, // finalize outside pending: EBUSY
      {S::Concluded, V::Dismiss},// dismiss before concluded: EBUSY
      {S::Created, V::Speed},    {S::Running, V::Speed},   {S::Paused, V::Speed},
      {S::Ready, V::Speed},      {S::Standby, V::Speed},
  };
  for (S state : kAllJobStates)
    for (V verb : kAllJobVerbs)
      EXPECT_EQ(job_verb_allowed(state, verb), accepted.count({state, verb}) > 0)
          << job_verb_name(verb) << " in " << job_state_name(state);
}

// clang-format on

TEST(JobStateTable, EveryStateButConcluded_CanReachConcluded) {
  for (S start : kAllJobStates) {
    std::set<S> seen{start};
    std::vector<S> todo{start};
    while (!todo.empty()) {
      S s = todo.back();
      todo.pop_back();
      for (S to : kAllJobStates)
        if (job_transition_allowed(s, to) && seen.insert(to).second) todo.push_back(to);
    }
    EXPECT_TRUE(seen.count(S::Concluded)) << job_state_name(start);
  }
}

TEST(JobStateNames, RoundTripAndSpelling) {
  for (S s : kAllJobStates) EXPECT_EQ(parse_job_state(job_state_name(s)), s);
  for (V v : kAllJobVerbs) EXPECT_EQ(parse_job_verb(job_verb_name(v)), v);
  EXPECT_STREQ(job_state_name(S::Standby), "standby");
  EXPECT_STREQ(job_state_name(S::Concluded), "concluded");
  EXPECT_EQ(parse_job_verb("finalize"), V::Finalize);
  EXPECT_EQ(parse_job_verb("speed"), V::Speed);
  EXPECT_FALSE(parse_job_verb("Pause"));
  EXPECT_FALSE(parse_job_verb(""));
  EXPECT_EQ(parse_on_error_policy("report"), OnErrorPolicy::Report);
  EXPECT_EQ(parse_on_error_policy("stop"), OnErrorPolicy::Stop);
  EXPECT_EQ(parse_on_error_policy("enospc"), OnErrorPolicy::Enospc);
  EXPECT_EQ(parse_on_error_policy("ignore"), OnErrorPolicy::Ignore);
  EXPECT_FALSE(parse_on_error_policy("retry"));
  EXPECT_STREQ(io_status_name(IoStatus::NoSpace), "nospace");
  EXPECT_STREQ(io_status_name(IoStatus::Failed), "failed");
  EXPECT_STREQ(io_status_name(IoStatus::Ok), "ok");
}

}  // namespace
}  // namespace chainfs
