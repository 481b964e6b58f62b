// The job's side of JobContext: pause points, progress, the rate limit, ready, idle and the
// on-error policies. Everything here runs on the job's own thread, except Job::wake().
#include <cassert>

#include "blockcore/graph/node.h"
#include "blockcore/jobs/job.h"
#include "blockcore/jobs/job_manager.h"

namespace chainfs {

// ---- Job ----------------------------------------------------------------------------------------

void Job::wake() {
  JobContext* ctx = context_.load(std::memory_order_acquire);
  if (!ctx) return;
  std::lock_guard lock(ctx->mutex_);
  ctx->woken_ = true;
  ctx->changed_.notify_all();
}

void Job::wait_while_drained() {
  for (const NodeRef& node : watched_nodes_) node->gate().wait_unquiesced();
}

// ---- construction -----------------------------------------------------------------------------

JobContext::JobContext(JobManager& manager, std::string id, std::unique_ptr<Job> job,
                       const JobOptions& options)
    : manager_(manager),
      id_(std::move(id)),
      description_(job->description()),
      options_(options),
      job_(std::move(job)),
      bucket_(options.speed) {
  job_->context_.store(this, std::memory_order_release);
}

JobContext::~JobContext() {
  // The manager joined the thread already (it never lets a job thread destroy its own context);
  // this is the safety net that keeps a std::jthread from outliving what it runs on.
  join_thread();
}

// ---- helpers shared with the engine -----------------------------------------------------------

JobInfo JobContext::snapshot_locked() const {
  JobInfo info;
  info.id = id_;
  info.type = description_.type;
  info.state = state_;
  info.node = description_.node;
  info.base = description_.base;
  info.progress = progress_;
  info.total = total_;
  info.speed = bucket_.rate();
  // Only a job that is copying has a rate; a paused or finished one shows 0, not a fading echo.
  if (state_ == JobState::Running || state_ == JobState::Ready)
    info.rate = meter_.bytes_per_second(JobClock::now());
  info.io_status = io_status_;
  if (error_) info.error = error_->message;
  info.on_error = options_.on_error;
  info.auto_finalize = options_.auto_finalize;
  info.auto_dismiss = options_.auto_dismiss;
  info.parked = parked_;
  return info;
}

void JobContext::transition_locked(JobState to, std::string message) {
  assert(job_transition_allowed(state_, to) && "transition not in kJobTransitions");
  JobEvent event;
  event.kind = JobEvent::Kind::StateChanged;
  event.id = id_;
  event.type = description_.type;
  event.from = state_;
  event.to = to;
  event.io_status = io_status_;
  event.auto_finalize = options_.auto_finalize;
  event.message = std::move(message);
  state_ = to;
  manager_.queue_event(std::move(event));
  changed_.notify_all();
}

void JobContext::set_parked_locked(bool parked) {
  if (parked_ == parked) return;
  parked_ = parked;
  changed_.notify_all();
}

Error JobContext::refused_locked(JobVerb verb, std::string_view why) const {
  if (!why.empty())
    return make_error(Errc::Busy, "job {}: cannot {} while {}: {}", id_, job_verb_name(verb),
                      job_state_name(state_), why);
  return make_error(Errc::Busy, "job {}: cannot {} while {}", id_, job_verb_name(verb),
                    job_state_name(state_));
}

Error JobContext::cancelled_error() const {
  return make_error(Errc::Cancelled, "job cancelled");
}

Result<void> JobContext::park_locked(std::unique_lock<std::mutex>& lock) {
  for (;;) {
    if (cancel_requested_) break;
    if (job_state_is_paused(state_)) {
      set_parked_locked(true);
      changed_.wait(lock);
      continue;
    }
    const JobClock::time_point now = JobClock::now();
    const JobClock::time_point ready_at = bucket_.ready_at(now);
    if (ready_at > now) {
      // Throttled. Any verb (pause, cancel, speed) notifies changed_ and ends the sleep early.
      set_parked_locked(true);
      changed_.wait_until(lock, ready_at);
      continue;
    }
    break;
  }
  set_parked_locked(false);
  if (cancel_requested_) return cancelled_error();
  return ok_result();
}

// ---- for Job::run() ---------------------------------------------------------------------------

Result<void> JobContext::pause_point() {
  {
    std::unique_lock lock(mutex_);
    CHAINFS_TRY(park_locked(lock));
  }
  // Outside our lock: a drain may take a while, and verbs must still be answered meanwhile.
  job_->wait_while_drained();
  std::lock_guard lock(mutex_);
  if (cancel_requested_) return cancelled_error();
  return ok_result();
}

void JobContext::account(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  const JobClock::time_point now = JobClock::now();
  progress_ += bytes;
  bucket_.charge(bytes, now);
  meter_.add(bytes, now);
  changed_.notify_all();
}

void JobContext::advance(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  progress_ += bytes;
  changed_.notify_all();
}

void JobContext::set_total(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  total_ = bytes;
  changed_.notify_all();
}

void JobContext::add_total(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  total_ += bytes;
  changed_.notify_all();
}

Result<void> JobContext::ready() {
  {
    std::unique_lock lock(mutex_);
    // A pause that arrived while the job was converging is honoured first: paused -> ready is not
    // a transition; paused -> running -> ready is.
    for (;;) {
      if (cancel_requested_) return cancelled_error();
      if (!job_state_is_paused(state_)) break;
      set_parked_locked(true);
      changed_.wait(lock);
    }
    set_parked_locked(false);
    if (state_ == JobState::Running) transition_locked(JobState::Ready);
  }
  manager_.deliver_events();
  return ok_result();
}

bool JobContext::should_complete() const {
  std::lock_guard lock(mutex_);
  return complete_requested_;
}

uint64_t JobContext::speed() const {
  std::lock_guard lock(mutex_);
  return bucket_.rate();
}

bool JobContext::cancel_requested() const {
  std::lock_guard lock(mutex_);
  return cancel_requested_;
}

IoErrorAction JobContext::handle_io_error(const Error& error) {
  const bool no_space = error.code == Errc::NoSpace;
  bool stop = false;
  switch (options_.on_error) {
    case OnErrorPolicy::Report:
      return IoErrorAction::Fail;
    case OnErrorPolicy::Ignore: {
      std::lock_guard lock(mutex_);
      if (cancel_requested_) return IoErrorAction::Fail;
      if (ignored_errors_++ == 0) first_ignored_ = error;
      return IoErrorAction::Skip;
    }
    case OnErrorPolicy::Enospc:
      stop = no_space;
      break;
    case OnErrorPolicy::Stop:
      stop = true;
      break;
  }
  if (!stop) return IoErrorAction::Fail;

  std::unique_lock lock(mutex_);
  if (cancel_requested_) return IoErrorAction::Fail;
  io_status_ = no_space ? IoStatus::NoSpace : IoStatus::Failed;
  // Stopped like a pause: running -> paused, ready -> standby; a job the user paused meanwhile
  // just records the io-status.
  if (state_ == JobState::Running) {
    transition_locked(JobState::Paused, error.message);
  } else if (state_ == JobState::Ready) {
    transition_locked(JobState::Standby, error.message);
  } else {
    changed_.notify_all();
  }
  lock.unlock();
  manager_.deliver_events();
  lock.lock();
  while (!cancel_requested_ && job_state_is_paused(state_)) {
    set_parked_locked(true);
    changed_.wait(lock);
  }
  set_parked_locked(false);
  // `resume` cleared io_status_; a cancelled job keeps it, as the reason it stopped.
  return cancel_requested_ ? IoErrorAction::Fail : IoErrorAction::Retry;
}

Result<void> JobContext::idle(std::chrono::milliseconds max_wait) {
  {
    std::unique_lock lock(mutex_);
    set_parked_locked(true);
    changed_.wait_for(lock, max_wait, [&] {
      return woken_ || cancel_requested_ || complete_requested_ || job_state_is_paused(state_);
    });
    woken_ = false;
    set_parked_locked(false);
  }
  return pause_point();
}

}  // namespace chainfs
