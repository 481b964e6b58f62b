// The engine's side of JobContext: the job thread's life from created to concluded, and the verbs.
//
// The job thread:
//   created -> running -> run() -> (wait out a pause that came after the last pause point)
//     success: -> waiting -> pending -> [wait for finalize unless auto-finalize]
//              -> prepare -> commit -> clean -> concluded
//     failure, cancel, ignored errors, or prepare failed:
//              -> aborting -> abort -> clean -> concluded (with the error)
// The Job object is destroyed just before `concluded`, so its node references are gone by then.
#include <cassert>

#include <fmt/format.h>

#include "blockcore/io/io_hint.h"
#include "blockcore/jobs/job.h"
#include "blockcore/jobs/job_manager.h"

namespace chainfs {

void JobContext::start_thread() {
  std::lock_guard lock(join_mutex_);
  thread_ = std::jthread([this] {
    thread_id_.store(std::this_thread::get_id());  // before anything can ask on_own_thread()
    const ScopedBackgroundIo background;  // page cache, unless a copy window says otherwise
    run_to_conclusion();
    thread_done_.store(true, std::memory_order_release);
  });
  thread_id_.store(thread_.get_id());
}

void JobContext::join_thread() {
  std::lock_guard lock(join_mutex_);
  if (thread_.joinable()) thread_.join();
}

void JobContext::run_to_conclusion() {
  Result<void> result = ok_result();
  {
    std::lock_guard lock(mutex_);
    if (cancel_requested_)
      result = cancelled_error();  // cancelled while created: already aborting
    else
      transition_locked(JobState::Running);
  }
  manager_.deliver_events();

  if (result.ok()) result = job_->run(*this);

  if (result.ok()) {
    // run() may return while a pause is pending (it came after the last pause point); honour it
    // before moving on, since paused -> waiting is no transition.
    std::unique_lock lock(mutex_);
    while (!cancel_requested_ && job_state_is_paused(state_)) {
      set_parked_locked(true);
      changed_.wait(lock);
    }
    set_parked_locked(false);
  }

  {
    std::lock_guard lock(mutex_);
    // A cancel is honoured even if run() finished its last chunk meanwhile: the user asked for the
    // graph to stay as it is.
    if (cancel_requested_) result = cancelled_error();
    if (result.ok() && ignored_errors_ > 0)
      result =
          make_error(Errc::Io, "{} chunk(s) failed and were skipped (on-error=ignore); first: {}",
                     ignored_errors_, first_ignored_->message);
    if (result.ok()) transition_locked(JobState::Waiting);
  }
  manager_.deliver_events();

  if (result.ok()) result = finalize_and_commit();
  if (!result.ok()) fail_and_abort(result.take_error());
}

Result<void> JobContext::finalize_and_commit() {
  {
    std::unique_lock lock(mutex_);
    // Waiting is where a job would wait for the others of its group; alone, it moves on.
    if (cancel_requested_) return cancelled_error();
    transition_locked(JobState::Pending);
    lock.unlock();
    manager_.deliver_events();
    lock.lock();
    while (!cancel_requested_ && !options_.auto_finalize && !finalize_requested_) {
      set_parked_locked(true);
      changed_.wait(lock);
    }
    set_parked_locked(false);
    if (cancel_requested_) return cancelled_error();
    finalizing_ = true;
  }
  CHAINFS_TRY(job_->prepare());
  job_->commit();
  job_->clean();
  conclude(std::nullopt);
  return ok_result();
}

void JobContext::fail_and_abort(Error error) {
  // A cancelled job reports the cancel, not how run() happened to notice it.
  {
    std::lock_guard lock(mutex_);
    if (cancel_requested_) error = cancelled_error();
    error_ = error;
    if (state_ != JobState::Aborting) transition_locked(JobState::Aborting, error.message);
  }
  manager_.deliver_events();
  job_->abort();
  job_->clean();
  conclude(std::move(error));
}

void JobContext::conclude(std::optional<Error> error) {
  job_.reset();  // releases the job's nodes before anyone sees `concluded`
  {
    std::lock_guard lock(mutex_);
    error_ = error;
    transition_locked(JobState::Concluded, error ? error->message : std::string());
  }
  manager_.deliver_events();
  if (!error && options_.auto_dismiss) manager_.auto_dismiss(*this);
}

// ---- verbs ------------------------------------------------------------------------------------

Result<void> JobContext::request(JobVerb verb) {
  {
    std::lock_guard lock(mutex_);
    if (!job_verb_allowed(state_, verb)) {
      if (verb == JobVerb::Complete) return refused_locked(verb, "complete needs a ready job");
      if (verb == JobVerb::Finalize) return refused_locked(verb, "finalize needs a pending job");
      if (verb == JobVerb::Dismiss) return refused_locked(verb, "dismiss needs a concluded job");
      return refused_locked(verb);
    }
    switch (verb) {
      case JobVerb::Pause:
        transition_locked(state_ == JobState::Running ? JobState::Paused : JobState::Standby);
        break;
      case JobVerb::Resume:
        io_status_ = IoStatus::Ok;
        transition_locked(state_ == JobState::Paused ? JobState::Running : JobState::Ready);
        break;
      case JobVerb::Cancel:
        if (finalizing_) return refused_locked(verb, "its graph change is being made");
        cancel_requested_ = true;
        transition_locked(JobState::Aborting, "cancelled");
        break;
      case JobVerb::Complete:
        if (complete_requested_) return refused_locked(verb, "already completing");
        complete_requested_ = true;
        changed_.notify_all();
        break;
      case JobVerb::Finalize:
        if (finalize_requested_ || finalizing_) return refused_locked(verb, "already finalizing");
        finalize_requested_ = true;
        changed_.notify_all();
        break;
      case JobVerb::Dismiss:
      case JobVerb::Speed:
        assert(false && "dismiss and speed are not requests");
        return make_error(Errc::Invalid, "job {}: {} is not a request", id_, job_verb_name(verb));
    }
  }
  manager_.deliver_events();
  return ok_result();
}

Result<void> JobContext::set_speed(uint64_t bytes_per_second) {
  std::lock_guard lock(mutex_);
  if (!job_verb_allowed(state_, JobVerb::Speed)) return refused_locked(JobVerb::Speed);
  bucket_.set_rate(bytes_per_second, JobClock::now());
  changed_.notify_all();  // a throttled job recomputes its sleep at once
  return ok_result();
}

bool JobContext::concluded() const {
  std::lock_guard lock(mutex_);
  return state_ == JobState::Concluded;
}

Result<void> JobContext::wait_concluded() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return state_ == JobState::Concluded; });
  if (error_) return *error_;
  return ok_result();
}

}  // namespace chainfs
