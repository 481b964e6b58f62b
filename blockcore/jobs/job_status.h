// JobInfo: a consistent snapshot of one job, and its rendering as the jobs/<id> status file
// (INTERFACE.md "Job status file": a YAML mapping, one key per line, keys in a fixed order).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "blockcore/jobs/job_state.h"

namespace chainfs {

struct JobInfo {
  std::string id;
  std::string type;  // stream | commit | active-commit
  JobState state = JobState::Created;
  std::string node;
  std::string base;  // empty: none
  uint64_t progress = 0;
  uint64_t total = 0;
  uint64_t speed = 0;  // limit, bytes/s, 0 = unlimited
  double rate = 0;     // measured bytes/s over the last seconds (0 unless running or ready)
  IoStatus io_status = IoStatus::Ok;
  std::optional<std::string> error;  // the failure's message once the job failed
  OnErrorPolicy on_error = OnErrorPolicy::Report;
  bool auto_finalize = true;
  bool auto_dismiss = false;
  bool parked = false;  // the job's thread waits at a pause point (paused, stopped, throttled)
};

// The status file's text:
//   id: stream0
//   type: stream
//   state: running
//   node: top
//   base: base          (~ for none)
//   progress: 536870912
//   total: 2147483648
//   speed: 0
//   rate: 412.3M
//   io-status: ok
//   error: ~            (or the message)
std::string render_job_status_yaml(const JobInfo& info);

// A YAML scalar for any text: plain when it reads back as the same string, else double-quoted with
// escapes (messages with ": ", names like "~", "null" or "1e3").
std::string yaml_scalar(std::string_view text);

}  // namespace chainfs
