#include "blockcore/jobs/job_manager.h"

#include <algorithm>
#include <cctype>

namespace chainfs {

namespace {

// An id names a file in jobs/ and is one word of a control line.
Result<void> check_id(const std::string& id) {
  if (id.empty()) return make_error(Errc::Invalid, "empty job id");
  if (id == "." || id == "..")
    return make_error(Errc::Invalid, "job id '{}' is not a file name", id);
  const bool bad = std::any_of(id.begin(), id.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return c == '/' || u < 0x20 || u == 0x7f || std::isspace(u);
  });
  if (bad)
    return make_error(Errc::Invalid, "job id '{}' has a '/', a space or a control character", id);
  return ok_result();
}

}  // namespace

JobManager::~JobManager() {
  cancel_all_and_wait();
  std::vector<std::shared_ptr<JobContext>> retired;
  {
    std::lock_guard lock(mutex_);
    retired.swap(retired_);
  }
  for (auto& job : retired) job->join_thread();
}

// ---- starting -----------------------------------------------------------------------------------

Result<std::string> JobManager::pick_id_locked(const Job& job, const std::string& requested) {
  if (!requested.empty()) {
    CHAINFS_TRY(check_id(requested));
    if (jobs_.count(requested) || reserved_.count(requested))
      return make_error(Errc::Exists, "job id '{}' is taken", requested);
    return requested;
  }
  const std::string& type = job.description().type;
  // One counter for all types (stream0, commit1, ...); ids the user took are skipped.
  for (;;) {
    std::string id = type + std::to_string(next_index_++);
    if (!jobs_.count(id) && !reserved_.count(id)) {
      CHAINFS_TRY(check_id(id));
      return id;
    }
  }
}

Result<std::string> JobManager::start(std::unique_ptr<Job> job, JobOptions options) {
  if (!job) return make_error(Errc::Invalid, "no job to start");
  if (job->description().type.empty()) return make_error(Errc::Invalid, "job without a type");
  reap_finished_threads();
  std::string id;
  uint64_t index_after_pick = 0;
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) return make_error(Errc::Busy, "jobs are shutting down");
    CHAINFS_ASSIGN_OR_RETURN(id, pick_id_locked(*job, options.id));
    reserved_.insert(id);
    index_after_pick = next_index_;
  }
  // The job claims its nodes with its id, without our lock held (it takes the graph's locks).
  Result<void> started = job->on_start(id);
  {
    std::lock_guard lock(mutex_);
    reserved_.erase(id);
    if (started.ok() && shutting_down_) started = make_error(Errc::Busy, "jobs are shutting down");
    if (!started.ok()) {
      // A refused job does not use up a default number, unless another job took one since.
      if (options.id.empty() && next_index_ == index_after_pick) --next_index_;
      return started.take_error();
    }
    options.id = id;
    const std::string type = job->description().type;
    std::shared_ptr<JobContext> ctx(new JobContext(*this, id, std::move(job), options));
    {
      std::lock_guard job_lock(ctx->mutex_);
      JobEvent event;
      event.kind = JobEvent::Kind::Added;
      event.id = id;
      event.type = type;
      queue_event(std::move(event));
    }
    jobs_.emplace(id, ctx);
    ctx->start_thread();
  }
  deliver_events();
  return id;
}

// ---- verbs --------------------------------------------------------------------------------------

Result<std::shared_ptr<JobContext>> JobManager::find(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return make_error(Errc::NotFound, "no job '{}'", id);
  return it->second;
}

Result<void> JobManager::verb(const std::string& id, JobVerb verb) {
  reap_finished_threads();
  if (verb == JobVerb::Speed) return make_error(Errc::Invalid, "job {}: speed needs a rate", id);
  if (verb == JobVerb::Dismiss) return dismiss(id);
  CHAINFS_ASSIGN_OR_RETURN(std::shared_ptr<JobContext> job, find(id));
  CHAINFS_TRY(job->request(verb));
  // finalize answers once the graph change is made (so a script sees the new shape as soon as its
  // write returns) -- except when called from the job's own thread (its observer), which would
  // wait for itself.
  if (verb == JobVerb::Finalize) {
    if (!job->on_own_thread()) return job->wait_concluded();
  }
  return ok_result();
}

Result<void> JobManager::set_speed(const std::string& id, uint64_t bytes_per_second) {
  CHAINFS_ASSIGN_OR_RETURN(std::shared_ptr<JobContext> job, find(id));
  return job->set_speed(bytes_per_second);
}

Result<void> JobManager::dismiss(const std::string& id) {
  std::shared_ptr<JobContext> job;
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return make_error(Errc::NotFound, "no job '{}'", id);
    job = it->second;
    {
      std::lock_guard job_lock(job->mutex_);
      if (job->state_ != JobState::Concluded)
        return job->refused_locked(JobVerb::Dismiss, "dismiss needs a concluded job");
    }
    remove_locked(job);
  }
  deliver_events();
  reap_finished_threads();
  return ok_result();
}

void JobManager::remove_locked(std::shared_ptr<JobContext> job) {
  // `job` is a copy: the map's entry, which a caller may have passed in, goes away here.
  retired_.push_back(job);
  jobs_.erase(job->id_);
  std::lock_guard job_lock(job->mutex_);
  JobEvent event;
  event.kind = JobEvent::Kind::Removed;
  event.id = job->id_;
  event.type = job->description_.type;
  event.from = event.to = job->state_;
  queue_event(std::move(event));
}

void JobManager::auto_dismiss(JobContext& job) {
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(job.id_);
    // The user may have dismissed it already, between `concluded` and here.
    if (it == jobs_.end() || it->second.get() != &job) return;
    remove_locked(it->second);
  }
  deliver_events();
}

void JobManager::reap_finished_threads() {
  std::vector<std::shared_ptr<JobContext>> finished;
  {
    std::lock_guard lock(mutex_);
    auto done = [](const std::shared_ptr<JobContext>& job) {
      return job->thread_done_.load(std::memory_order_acquire) && !job->on_own_thread();
    };
    for (auto& job : retired_)
      if (done(job)) finished.push_back(job);
    std::erase_if(retired_, done);
  }
  // The bodies returned: these joins only collect the OS threads.
  for (auto& job : finished) job->join_thread();
}

// ---- queries ------------------------------------------------------------------------------------

std::vector<JobInfo> JobManager::list() const {
  std::lock_guard lock(mutex_);
  std::vector<JobInfo> out;
  out.reserve(jobs_.size());
  for (const auto& [id, job] : jobs_) {
    std::lock_guard job_lock(job->mutex_);
    out.push_back(job->snapshot_locked());
  }
  return out;
}

Result<JobInfo> JobManager::info(const std::string& id) const {
  CHAINFS_ASSIGN_OR_RETURN(std::shared_ptr<JobContext> job, find(id));
  std::lock_guard lock(job->mutex_);
  return job->snapshot_locked();
}

Result<std::string> JobManager::status_yaml(const std::string& id) const {
  CHAINFS_ASSIGN_OR_RETURN(JobInfo job, info(id));
  return render_job_status_yaml(job);
}

Result<JobInfo> JobManager::wait_until(const std::string& id,
                                       const std::function<bool(const JobInfo&)>& predicate,
                                       std::chrono::milliseconds timeout) {
  CHAINFS_ASSIGN_OR_RETURN(std::shared_ptr<JobContext> job, find(id));
  std::unique_lock lock(job->mutex_);
  JobInfo info = job->snapshot_locked();
  const bool met = job->changed_.wait_for(lock, timeout, [&] {
    info = job->snapshot_locked();
    return predicate(info);
  });
  if (!met)
    return make_error(Errc::Again, "timed out waiting for job {} (state {})", id,
                      job_state_name(info.state));
  return info;
}

Result<JobInfo> JobManager::wait_concluded(const std::string& id,
                                           std::chrono::milliseconds timeout) {
  return wait_until(
      id, [](const JobInfo& info) { return info.state == JobState::Concluded; }, timeout);
}

// ---- shutdown -----------------------------------------------------------------------------------

void JobManager::cancel_all_and_wait() {
  std::vector<std::shared_ptr<JobContext>> jobs;
  {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
    for (const auto& [id, job] : jobs_) jobs.push_back(job);
    for (const auto& job : retired_) jobs.push_back(job);
  }
  // Refusals are expected here: concluded or aborting jobs, and jobs already making their graph
  // change (which they finish).
  for (const auto& job : jobs) job->request(JobVerb::Cancel).ignore_error();
  for (const auto& job : jobs) {
    // Called from a job's own observer this would wait for itself; that thread ends on its own.
    if (!job->on_own_thread()) job->join_thread();
  }
}

// ---- events -------------------------------------------------------------------------------------

void JobManager::set_observer(Observer observer) {
  std::lock_guard lock(events_mutex_);
  observer_ = std::move(observer);
}

void JobManager::queue_event(JobEvent event) {
  std::lock_guard lock(events_mutex_);
  events_.push_back(std::move(event));
}

void JobManager::deliver_events() {
  std::unique_lock lock(events_mutex_);
  if (delivering_) return;  // that thread will deliver ours too, in order
  delivering_ = true;
  while (!events_.empty()) {
    JobEvent event = std::move(events_.front());
    events_.pop_front();
    Observer observer = observer_;
    lock.unlock();
    if (observer) observer(event);
    lock.lock();
  }
  delivering_ = false;
}

}  // namespace chainfs
