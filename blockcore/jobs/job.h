// Job and JobContext: what a job author writes, and what the engine gives it.
//
// A job (stream, commit, active commit) is a subclass of Job. The engine (JobManager) runs it on
// its own thread and drives the state machine of job_state.h around it:
//
//   on_start(id)       before the thread starts: claim the job's nodes (refuses the start on
//   error). run(ctx)           the work, in chunks. Before each chunk:
//   CHAINFS_TRY(ctx.pause_point()),
//                      which parks while the job is paused, while the rate limit says wait, or
//                      while one of its nodes is drained, and returns Errc::Cancelled once the job
//                      is cancelled. After each chunk: ctx.account(bytes). An I/O error goes
//                      through ctx.handle_io_error(error) (the on-error policy): Retry the chunk,
//                      Fail (return the error), or Skip it (account it and go on).
//                      A mirroring job calls ctx.ready() once it has converged and then keeps
//                      copying new writes (ctx.idle() between them) until ctx.should_complete().
//   prepare()          after run() succeeded, on finalize: begin the final graph change (its
//                      drained section, re-reading the graph inside it: ARCHITECTURE rule 4).
//   commit()           prepare() succeeded: make the change; must not fail.
//   abort()            the job was cancelled, failed, or prepare() failed: undo whatever prepare
//                      did (if it ran at all); the graph is left as it was.
//   clean()            always last, exactly once, on every path: end the drained section, drop
//                      what the job holds.
//
// All of these run on the job's thread, never two at a time. The Job object is destroyed on that
// thread right after clean(), before the state becomes `concluded`, so the nodes it held are
// released by the time a user sees the job concluded.
//
// Jobs never hold a drained section while copying: a drain waits for requests in flight, and a
// job's copy requests are ordinary external requests (BlockHandle) that wait at drained nodes like
// any other. Only prepare() begins a section (ended in clean()).
//
// Lock order: JobManager::mutex_ -> JobContext::mutex_ -> JobManager::events_mutex_. A job holds
// none of them while it runs its own code.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "blockcore/graph/node_ref.h"
#include "blockcore/jobs/job_state.h"
#include "blockcore/jobs/job_status.h"
#include "blockcore/jobs/rate.h"
#include "blockcore/result.h"

namespace chainfs {

class JobContext;
class JobManager;

// Fixed at construction: what the status file shows as type, node and base.
struct JobDescription {
  std::string type;  // "stream" | "commit" | "active-commit"; also the prefix of default ids
  std::string node;  // the node the job was started on
  std::string base;  // empty: none (`base: ~`)
};

// How a job is started (the options of a control/stream or control/commit line).
struct JobOptions {
  std::string id;      // empty: "<type><n>"
  uint64_t speed = 0;  // bytes/s, 0 = unlimited
  OnErrorPolicy on_error = OnErrorPolicy::Report;
  bool auto_finalize = true;
  bool auto_dismiss = false;
};

// What ctx.handle_io_error() tells the job to do with the chunk that failed.
enum class IoErrorAction : uint8_t {
  Retry,  // copy the same chunk again (the job was stopped and then resumed)
  Fail,   // return the error from run(): the job fails (or was cancelled while stopped)
  Skip,   // account the chunk and go on with the next one (on-error=ignore)
};

class Job {
 public:
  virtual ~Job() = default;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  const JobDescription& description() const { return description_; }

  // Wakes the job from ctx.idle() (e.g. an active commit told that new writes arrived). Thread
  // safe; does nothing before the job starts. Whoever calls it must stop before clean() returns.
  void wake();

 protected:
  explicit Job(JobDescription description) : description_(std::move(description)) {}

  // Called once by JobManager::start() with the job's id, before its thread starts and before it
  // is listed: claim the nodes here ("job <id>"). An error refuses the start (nothing is listed).
  virtual Result<void> on_start(const std::string& id) {
    (void)id;
    return ok_result();
  }
  virtual Result<void> run(JobContext& ctx) = 0;
  virtual Result<void> prepare() { return ok_result(); }
  virtual void commit() {}
  virtual void abort() {}
  virtual void clean() {}

  // The drain hook of pause_point(): returns once none of the job's nodes is inside a drained
  // section. The default waits at the gate of every node given to watch_nodes(); a job whose
  // nodes change while it runs (or a test) overrides it.
  virtual void wait_while_drained();
  // The nodes the default wait_while_drained() watches. Call from the constructor or run().
  void watch_nodes(std::vector<NodeRef> nodes) { watched_nodes_ = std::move(nodes); }

 private:
  friend class JobContext;
  friend class JobManager;  // on_start()

  JobDescription description_;
  std::vector<NodeRef> watched_nodes_;         // job thread only (after construction)
  std::atomic<JobContext*> context_{nullptr};  // set once before the job's thread starts
};

// The engine's side of one job: its state machine, progress, rate limit and thread. run() sees the
// first section only; the rest belongs to JobManager.
class JobContext {
 public:
  JobContext(const JobContext&) = delete;
  JobContext& operator=(const JobContext&) = delete;
  ~JobContext();

  // ---- for Job::run() -------------------------------------------------------------------------
  // Parks while paused/standby, while the rate limit owes time, while a job node is drained.
  // Errc::Cancelled once the job is cancelled.
  [[nodiscard]] Result<void> pause_point();
  // `bytes` more done: progress, rate limit and measured rate.
  void account(uint64_t bytes);
  // `bytes` more done without moving data (ranges skipped as unallocated or zero): progress only,
  // neither charged to the rate limit nor counted in the measured rate.
  void advance(uint64_t bytes);
  void set_total(uint64_t bytes);
  void add_total(uint64_t bytes);  // an active commit's total grows with new writes
  // running -> ready (first waits at a pause point if paused; Cancelled if cancelled). The job
  // then keeps mirroring until should_complete().
  [[nodiscard]] Result<void> ready();
  bool should_complete() const;
  // The speed limit now (bytes/s, 0 = unlimited).
  uint64_t speed() const;
  bool cancel_requested() const;
  // Applies the on-error policy to an I/O error of the current chunk. With `stop` (or `enospc`
  // and ENOSPC) this parks the job (paused/standby, io-status failed/nospace) until `resume`
  // (Retry) or `cancel` (Fail).
  [[nodiscard]] IoErrorAction handle_io_error(const Error& error);
  // For a ready job with nothing to copy: sleeps until wake(), complete, cancel, pause or
  // `max_wait`, then passes a pause point.
  [[nodiscard]] Result<void> idle(std::chrono::milliseconds max_wait);
  const std::string& id() const { return id_; }

 private:
  friend class Job;
  friend class JobManager;

  JobContext(JobManager& manager, std::string id, std::unique_ptr<Job> job,
             const JobOptions& options);

  // ---- engine (job_engine.cpp) ----------------------------------------------------------------
  void start_thread();                 // under JobManager::mutex_
  void run_to_conclusion();            // the job's thread
  Result<void> finalize_and_commit();  // pending: prepare, commit, clean
  void fail_and_abort(Error error);    // -> aborting: abort, clean
  void conclude(std::optional<Error> error);
  // Verbs other than dismiss and speed; dismiss is the manager's (it removes the job).
  Result<void> request(JobVerb verb);
  Result<void> set_speed(uint64_t bytes_per_second);
  bool concluded() const;
  // Waits until the job concluded; its error, if it failed.
  Result<void> wait_concluded();
  bool on_own_thread() const { return std::this_thread::get_id() == thread_id_.load(); }
  // Joins the job's thread (idempotent; callers race to join, join_mutex_ serialises them).
  void join_thread();

  // ---- shared helpers (job_context.cpp) -------------------------------------------------------
  JobInfo snapshot_locked() const;
  void transition_locked(JobState to, std::string message = {});
  // Parks while paused or throttled; Cancelled once cancelled.
  Result<void> park_locked(std::unique_lock<std::mutex>& lock);
  void set_parked_locked(bool parked);
  Error refused_locked(JobVerb verb, std::string_view why = {}) const;
  Error cancelled_error() const;

  JobManager& manager_;
  const std::string id_;
  const JobDescription description_;  // a copy: the Job is gone once concluded
  const JobOptions options_;

  std::unique_ptr<Job> job_;  // the job's thread only, after start; reset at conclusion
  std::mutex join_mutex_;     // guards thread_; taken alone (no other lock held)
  std::jthread thread_;       // set once, under JobManager::mutex_, before anyone may join
  std::atomic<std::thread::id> thread_id_{};
  std::atomic<bool> thread_done_{false};  // the thread body returned: joining will not block

  // Lock order: JobManager::mutex_ before mutex_ before JobManager::events_mutex_.
  mutable std::mutex mutex_;
  // Notified on every change of the fields below: the job's thread parks on it, verbs wake it, and
  // waiters (finalize, wait_until) watch it.
  mutable std::condition_variable changed_;
  JobState state_ = JobState::Created;
  bool cancel_requested_ = false;
  bool complete_requested_ = false;
  bool finalize_requested_ = false;
  bool finalizing_ = false;  // prepare/commit under way: too late to cancel
  bool woken_ = false;       // Job::wake() since the last idle()
  bool parked_ = false;      // the job's thread is waiting at a pause point
  uint64_t progress_ = 0;
  uint64_t total_ = 0;
  TokenBucket bucket_;
  RateMeter meter_;
  IoStatus io_status_ = IoStatus::Ok;
  std::optional<Error> error_;          // set once the job failed
  uint64_t ignored_errors_ = 0;         // on-error=ignore: chunks skipped
  std::optional<Error> first_ignored_;  // ... and the first of their errors
};

}  // namespace chainfs
