// The job state machine: states, verbs, and the two tables that say which transitions and which
// verbs each state accepts. QEMU's job model is the concept (qapi/job.json); the tables here are
// our own, with the refusals INTERFACE.md requires (pause of a paused job, complete before ready,
// finalize outside pending, dismiss before concluded: all EBUSY).
//
//  created --> running ------(run() returned)------> waiting --> pending --(finalize)--> concluded
//                |  ^  \                              ^                                   ^
//          pause |  |   \ ctx.ready()                 |                                   |
//                |  |    \                            |                                   |
//                v  | resume                          |                                   |
//              paused     ready -----(complete)-------+                                   |
//                          |  ^                                                           |
//                    pause |  | resume                                                    |
//                          v  |                                                           |
//                         standby                                                         |
//                                                                                         |
//  created running paused ready standby waiting pending --(cancel, failure)--> aborting --+
//
// - created:   registered, the thread has not entered run() yet.
// - running:   run() copies chunk by chunk between pause points.
// - paused:    stopped at a pause point, by `pause` or by on-error=stop (io-status says which).
// - ready:     run() has converged and keeps mirroring until `complete` (active commit).
// - standby:   a ready job, paused.
// - waiting:   run() returned; reserved for job groups (passes straight on to pending today).
// - pending:   the work is done; the graph change is made on finalize (at once with
//              auto-finalize, else on the `finalize` verb): prepare, then commit, then clean.
// - aborting:  cancelled or failed: the engine calls abort, then clean; the graph is unchanged.
// - concluded: finished, successfully or with an error; listed until `dismiss` (or removed at once
//              with auto-dismiss=on when it succeeded).
//
// A verb that the state does not accept is refused (Errc::Busy). The state a verb moves to is set
// when the verb is accepted, so a status read right after `pause` shows `paused` and one right
// after `cancel` shows `aborting`; the job's thread catches up at its next pause point (at most one
// chunk later).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace chainfs {

enum class JobState : uint8_t {
  Created,
  Running,
  Paused,
  Ready,
  Standby,
  Waiting,
  Pending,
  Aborting,
  Concluded,
};
inline constexpr size_t kJobStateCount = 9;
inline constexpr std::array<JobState, kJobStateCount> kAllJobStates = {
    JobState::Created, JobState::Running,  JobState::Paused,
    JobState::Ready,   JobState::Standby,  JobState::Waiting,
    JobState::Pending, JobState::Aborting, JobState::Concluded,
};

// What a user asks of a job (control/job, `chainfs job`). Speed is `speed ID RATE`.
enum class JobVerb : uint8_t { Pause, Resume, Cancel, Complete, Finalize, Dismiss, Speed };
inline constexpr size_t kJobVerbCount = 7;
inline constexpr std::array<JobVerb, kJobVerbCount> kAllJobVerbs = {
    JobVerb::Pause,    JobVerb::Resume,  JobVerb::Cancel, JobVerb::Complete,
    JobVerb::Finalize, JobVerb::Dismiss, JobVerb::Speed,
};

// What a job does when an I/O error reaches it (INTERFACE.md "POLICY").
enum class OnErrorPolicy : uint8_t {
  Report,  // fail the job; the graph is unchanged (default)
  Stop,    // pause with io-status failed/nospace; `resume` retries the failed chunk
  Enospc,  // Stop on ENOSPC, Report otherwise
  Ignore,  // skip the chunk and go on; the job then ends failed and the graph is unchanged
};

// io-status of the status file: set while a job is stopped by on-error, ok otherwise.
enum class IoStatus : uint8_t { Ok, Failed, NoSpace };

// ---- the tables ----------------------------------------------------------------------------
// clang-format off
// Rows: from-state, in JobState order. Columns: to-state, in the same order.
//                                                  C  R  P  Y  S  W  D  X  E
inline constexpr bool kJobTransitions[kJobStateCount][kJobStateCount] = {
    /* created   */ {0, 1, 0, 0, 0, 0, 0, 1, 0},
    /* running   */ {0, 0, 1, 1, 0, 1, 0, 1, 0},
    /* paused    */ {0, 1, 0, 0, 0, 0, 0, 1, 0},
    /* ready     */ {0, 0, 0, 0, 1, 1, 0, 1, 0},
    /* standby   */ {0, 0, 0, 1, 0, 0, 0, 1, 0},
    /* waiting   */ {0, 0, 0, 0, 0, 0, 1, 1, 0},
    /* pending   */ {0, 0, 0, 0, 0, 0, 0, 1, 1},
    /* aborting  */ {0, 0, 0, 0, 0, 0, 0, 0, 1},
    /* concluded */ {0, 0, 0, 0, 0, 0, 0, 0, 0},
};

// Rows: verb, in JobVerb order. Columns: state, in JobState order.
//                                                C  R  P  Y  S  W  D  X  E
inline constexpr bool kJobVerbs[kJobVerbCount][kJobStateCount] = {
    /* pause    */ {0, 1, 0, 1, 0, 0, 0, 0, 0},
    /* resume   */ {0, 0, 1, 0, 1, 0, 0, 0, 0},
    /* cancel   */ {1, 1, 1, 1, 1, 1, 1, 0, 0},
    /* complete */ {0, 0, 0, 1, 0, 0, 0, 0, 0},
    /* finalize */ {0, 0, 0, 0, 0, 0, 1, 0, 0},
    /* dismiss  */ {0, 0, 0, 0, 0, 0, 0, 0, 1},
    /* speed    */ {1, 1, 1, 1, 1, 0, 0, 0, 0},
};

// clang-format on

constexpr bool job_transition_allowed(JobState from, JobState to) {
  return kJobTransitions[static_cast<size_t>(from)][static_cast<size_t>(to)];
}
constexpr bool job_verb_allowed(JobState state, JobVerb verb) {
  return kJobVerbs[static_cast<size_t>(verb)][static_cast<size_t>(state)];
}
// paused and standby: the job's thread parks at its next pause point.
constexpr bool job_state_is_paused(JobState state) {
  return state == JobState::Paused || state == JobState::Standby;
}

// Names as the status file and the control files spell them.
const char* job_state_name(JobState state);         // "running", "standby", ...
const char* job_verb_name(JobVerb verb);            // "pause", ..., "speed"
const char* on_error_policy_name(OnErrorPolicy p);  // "report", "stop", "enospc", "ignore"
const char* io_status_name(IoStatus status);        // "ok", "failed", "nospace"
std::optional<JobState> parse_job_state(std::string_view name);
std::optional<JobVerb> parse_job_verb(std::string_view name);
std::optional<OnErrorPolicy> parse_on_error_policy(std::string_view name);

}  // namespace chainfs
