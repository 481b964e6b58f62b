#include "blockcore/jobs/job_state.h"

namespace chainfs {

namespace {

// The table of names is the one place that spells each enum, so parse and print cannot disagree.
constexpr std::array<const char*, kJobStateCount> kStateNames = {
    "created", "running", "paused",   "ready",     "standby",
    "waiting", "pending", "aborting", "concluded",
};
constexpr std::array<const char*, kJobVerbCount> kVerbNames = {
    "pause", "resume", "cancel", "complete", "finalize", "dismiss", "speed",
};
constexpr std::array<const char*, 4> kPolicyNames = {"report", "stop", "enospc", "ignore"};
constexpr std::array<const char*, 3> kIoStatusNames = {"ok", "failed", "nospace"};

template <typename Enum, size_t N>
std::optional<Enum> parse_name(const std::array<const char*, N>& names, std::string_view name) {
  for (size_t i = 0; i < N; ++i)
    if (name == names[i]) return static_cast<Enum>(i);
  return std::nullopt;
}

// Every state can end up concluded, and nothing leaves concluded but dismiss (which is removal,
// not a transition).
constexpr bool tables_are_sane() {
  for (JobState s : kAllJobStates) {
    if (s == JobState::Concluded) continue;
    if (!job_transition_allowed(s, JobState::Aborting) && s != JobState::Aborting) return false;
  }
  for (JobState to : kAllJobStates)
    if (job_transition_allowed(JobState::Concluded, to)) return false;
  return true;
}
static_assert(tables_are_sane());

}  // namespace

const char* job_state_name(JobState state) {
  return kStateNames[static_cast<size_t>(state)];
}
const char* job_verb_name(JobVerb verb) {
  return kVerbNames[static_cast<size_t>(verb)];
}
const char* on_error_policy_name(OnErrorPolicy p) {
  return kPolicyNames[static_cast<size_t>(p)];
}
const char* io_status_name(IoStatus status) {
  return kIoStatusNames[static_cast<size_t>(status)];
}

std::optional<JobState> parse_job_state(std::string_view name) {
  return parse_name<JobState>(kStateNames, name);
}
std::optional<JobVerb> parse_job_verb(std::string_view name) {
  return parse_name<JobVerb>(kVerbNames, name);
}
std::optional<OnErrorPolicy> parse_on_error_policy(std::string_view name) {
  return parse_name<OnErrorPolicy>(kPolicyNames, name);
}

}  // namespace chainfs
