// JobManager: the jobs of one graph/mount (no globals: two managers live side by side in a test).
// It starts jobs on their own threads, applies the verbs of control/job with the errno semantics
// of INTERFACE.md, renders jobs/<id>, reports state changes to one observer, and stops everything
// at unmount.
//
// Threads: one per job (JobContext::thread_), plus whoever calls in (FUSE workers, tests).
// Locks, in order: mutex_ (the id -> job map, the id counter, retired threads), then a job's
// JobContext::mutex_, then events_mutex_ (the event queue). The observer is called with none of
// them held, by whichever thread finds undelivered events first; events of all jobs come out in
// the order their changes were made, and the observer may call back into the manager.
//
// A job thread is joined by the manager, never by itself: a job removed while its thread still
// runs (dismiss, auto-dismiss) moves to retired_ and is joined once its body has returned, so
// no call ever blocks on a thread that may be busy in the observer. Only cancel_all_and_wait()
// and the destructor wait for threads.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "blockcore/jobs/job.h"
#include "blockcore/jobs/job_state.h"
#include "blockcore/jobs/job_status.h"
#include "blockcore/result.h"

namespace chainfs {

struct JobEvent {
  enum class Kind : uint8_t {
    Added,         // started (state created)
    StateChanged,  // from -> to
    Removed,       // dismissed, or auto-dismissed after success
  };
  Kind kind = Kind::StateChanged;
  std::string id;
  std::string type;
  JobState from = JobState::Created;
  JobState to = JobState::Created;
  IoStatus io_status = IoStatus::Ok;
  bool auto_finalize = true;  // the job's option: a pending job waits for `finalize` when off
  // Why, where there is a reason: the error for aborting/concluded, the I/O error for a stop.
  std::string message;
};

class JobManager {
 public:
  using Observer = std::function<void(const JobEvent&)>;

  JobManager() = default;
  ~JobManager();  // cancel_all_and_wait(); destroy before the Graph the jobs work on
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Starts a job; returns its id. Invalid: bad id (empty after defaulting, '/', whitespace, ".",
  // ".."), Exists: id taken, Busy: the manager is shutting down; or whatever the job's on_start()
  // refused with (its claims). A refused job is not listed and uses up no default number.
  Result<std::string> start(std::unique_ptr<Job> job, JobOptions options = {});

  // pause | resume | cancel | complete | finalize | dismiss. NotFound for an unknown id, Busy for
  // a verb the job's state does not accept (the message names both). `finalize` returns once the
  // graph change is made, with the job's error if it failed. Speed: use set_speed().
  Result<void> verb(const std::string& id, JobVerb verb);
  Result<void> set_speed(const std::string& id, uint64_t bytes_per_second);

  std::vector<JobInfo> list() const;  // sorted by id
  Result<JobInfo> info(const std::string& id) const;
  // The text of jobs/<id>.
  Result<std::string> status_yaml(const std::string& id) const;

  // One observer (the FUSE layer: refresh jobs/, log). Replaces the previous one.
  void set_observer(Observer observer);

  // For unmount: refuses new jobs, cancels every job that is not concluded (a job already
  // finalizing finishes its graph change), and waits for all job threads to end.
  void cancel_all_and_wait();

  // Waits until `predicate` holds for the job (checked on every change of it), for tests and
  // tools. Keeps watching a job that is removed meanwhile (its last state). Again on timeout.
  Result<JobInfo> wait_until(const std::string& id,
                             const std::function<bool(const JobInfo&)>& predicate,
                             std::chrono::milliseconds timeout = std::chrono::seconds(30));
  Result<JobInfo> wait_concluded(const std::string& id,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  friend class JobContext;

  Result<std::shared_ptr<JobContext>> find(const std::string& id) const;
  Result<std::string> pick_id_locked(const Job& job, const std::string& requested);
  Result<void> dismiss(const std::string& id);
  // A concluded job leaves the map; its thread is joined later (see the file comment).
  void remove_locked(std::shared_ptr<JobContext> job);
  // Called by a job's thread when it concluded successfully with auto-dismiss=on.
  void auto_dismiss(JobContext& job);
  // Joins retired threads whose body returned.
  void reap_finished_threads();

  // Queues an event (under the job's mutex, so that events keep the order of the changes).
  void queue_event(JobEvent event);
  // Delivers queued events to the observer unless another thread already does.
  void deliver_events();

  mutable std::mutex mutex_;  // lock order: first (see the file comment)
  std::map<std::string, std::shared_ptr<JobContext>> jobs_;
  std::vector<std::shared_ptr<JobContext>> retired_;  // removed, thread not joined yet
  std::set<std::string> reserved_;  // ids picked by start() whose job is claiming its nodes
  uint64_t next_index_ = 0;         // n of the next default id "<type><n>"
  bool shutting_down_ = false;

  std::mutex events_mutex_;  // lock order: last; never held while the observer runs
  std::deque<JobEvent> events_;
  bool delivering_ = false;
  Observer observer_;
};

}  // namespace chainfs
