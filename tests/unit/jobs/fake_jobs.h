// Fake jobs for the job engine's tests: a job that copies an in-memory buffer chunk by chunk, with
// hooks that let a test stop it at an exact chunk (Checkpoint), inject I/O errors per chunk, and
// see which of prepare/commit/abort/clean ran. The Probe outlives the job (the engine destroys
// the Job at conclusion), so tests look at it afterwards.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "blockcore/jobs/job.h"
#include "blockcore/jobs/job_manager.h"

namespace chainfs::testing {

using namespace std::chrono_literals;

// A place in a job's thread where a test can hold it: the job calls arrive(n); a test that called
// block_at(n) keeps it there until release(). wait_reached(n) returns once the job arrived at n.
class Checkpoint {
 public:
  void block_at(size_t n) {
    std::lock_guard lock(mutex_);
    blocked_at_ = n;
  }
  void release() {
    std::lock_guard lock(mutex_);
    blocked_at_.reset();
    changed_.notify_all();
  }
  // Never block again (teardown).
  void open_forever() {
    std::lock_guard lock(mutex_);
    open_forever_ = true;
    blocked_at_.reset();
    changed_.notify_all();
  }
  [[nodiscard]] bool wait_reached(size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return reached_.count(n) > 0; });
  }
  // Job side.
  void arrive(size_t n) {
    std::unique_lock lock(mutex_);
    reached_.insert(n);
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_forever_ || blocked_at_ != n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<size_t> blocked_at_;
  std::set<size_t> reached_;
  bool open_forever_ = false;
};

// What the test and the job share.
struct Probe {
  explicit Probe(size_t chunks, size_t bytes_per_chunk = 4096) : chunk_size(bytes_per_chunk) {
    src.resize(chunks * chunk_size);
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::byte>((i * 131 + 7) % 251);
    dst.assign(src.size(), std::byte{0});
  }
  size_t chunks() const { return src.size() / chunk_size; }

  // Errors to inject: chunk -> errors for its successive attempts (popped one per attempt).
  void fail_chunk(size_t chunk, Errc code) {
    std::lock_guard lock(mutex);
    failures[chunk].push_back(code);
  }
  // A new guest write for a mirroring job: the chunk changes and must be copied again.
  void dirty(size_t chunk, std::byte value) {
    std::lock_guard lock(mutex);
    for (size_t i = 0; i < chunk_size; ++i) src[chunk * chunk_size + i] = value;
    dirty_chunks.push_back(chunk);
    if (job) job->wake();
  }
  std::vector<std::string> calls_so_far() {
    std::lock_guard lock(mutex);
    return calls;
  }
  void record(std::string call) {
    std::lock_guard lock(mutex);
    calls.push_back(std::move(call));
  }
  void open_all_forever() {
    chunk_gate.open_forever();
    prepare_gate.open_forever();
    abort_gate.open_forever();
  }

  const size_t chunk_size;
  Checkpoint chunk_gate;               // arrive(k) before chunk k is copied (after its pause point)
  Checkpoint prepare_gate;             // arrive(0) inside prepare()
  Checkpoint abort_gate;               // arrive(0) inside abort()
  std::optional<Error> prepare_error;  // prepare() fails with it (set before start)

  std::mutex mutex;  // guards everything below (dst only while the job runs; read after it ends)
  std::vector<std::byte> src;
  std::vector<std::byte> dst;
  std::map<size_t, std::deque<Errc>> failures;
  std::map<size_t, int> attempts;
  std::deque<size_t> dirty_chunks;
  std::vector<std::string> calls;  // "prepare", "commit", "abort", "clean" in order
  Job* job = nullptr;              // for dirty(): set while the job exists
  std::atomic<bool> destroyed{false};
};

// Copies probe.src into probe.dst. With mirror=true it then enters ready and copies dirty chunks
// until complete.
class FakeCopyJob : public Job {
 public:
  FakeCopyJob(std::shared_ptr<Probe> probe, bool mirror = false, std::string type = "stream",
              std::string node = "top", std::string base = "")
      : Job({std::move(type), std::move(node), std::move(base)}),
        probe_(std::move(probe)),
        mirror_(mirror) {
    std::lock_guard lock(probe_->mutex);
    probe_->job = this;
  }
  ~FakeCopyJob() override {
    std::lock_guard lock(probe_->mutex);
    probe_->job = nullptr;
    probe_->destroyed = true;
  }

 protected:
  Result<void> run(JobContext& ctx) override {
    ctx.set_total(probe_->src.size());
    for (size_t k = 0; k < probe_->chunks(); ++k) {
      CHAINFS_TRY(copy_with_policy(ctx, k, /*hook=*/true));
    }
    if (!mirror_) return ok_result();
    CHAINFS_TRY(ctx.ready());
    while (!ctx.should_complete()) {
      std::optional<size_t> chunk;
      {
        std::lock_guard lock(probe_->mutex);
        if (!probe_->dirty_chunks.empty()) {
          chunk = probe_->dirty_chunks.front();
          probe_->dirty_chunks.pop_front();
        }
      }
      if (!chunk) {
        CHAINFS_TRY(ctx.idle(10s));
        continue;
      }
      ctx.add_total(probe_->chunk_size);
      CHAINFS_TRY(copy_with_policy(ctx, *chunk, /*hook=*/false));
    }
    return ok_result();
  }

  Result<void> prepare() override {
    probe_->record("prepare");
    probe_->prepare_gate.arrive(0);
    if (probe_->prepare_error) return *probe_->prepare_error;
    return ok_result();
  }
  void commit() override { probe_->record("commit"); }
  void abort() override {
    probe_->record("abort");
    probe_->abort_gate.arrive(0);
  }
  void clean() override { probe_->record("clean"); }

 private:
  Result<void> copy_with_policy(JobContext& ctx, size_t k, bool hook) {
    for (;;) {
      CHAINFS_TRY(ctx.pause_point());
      if (hook) probe_->chunk_gate.arrive(k);
      Result<void> copied = copy_chunk(k);
      if (copied.ok()) {
        ctx.account(probe_->chunk_size);
        return ok_result();
      }
      switch (ctx.handle_io_error(copied.error())) {
        case IoErrorAction::Retry:
          continue;
        case IoErrorAction::Fail:
          return copied.take_error();
        case IoErrorAction::Skip:
          ctx.account(probe_->chunk_size);
          return ok_result();
      }
    }
  }

  Result<void> copy_chunk(size_t k) {
    std::lock_guard lock(probe_->mutex);
    ++probe_->attempts[k];
    auto it = probe_->failures.find(k);
    if (it != probe_->failures.end() && !it->second.empty()) {
      const Errc code = it->second.front();
      it->second.pop_front();
      return make_error(code, "injected {} at chunk {}", errno_name(code), k);
    }
    const size_t off = k * probe_->chunk_size;
    std::copy_n(probe_->src.begin() + off, probe_->chunk_size, probe_->dst.begin() + off);
    return ok_result();
  }

  std::shared_ptr<Probe> probe_;
  bool mirror_;
};

// Records every event the manager reports.
class EventLog {
 public:
  void attach(JobManager& manager) {
    manager.set_observer([this](const JobEvent& e) {
      std::lock_guard lock(mutex_);
      events_.push_back(e);
      changed_.notify_all();
    });
  }
  std::vector<JobEvent> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }
  // The states one job went through, from its first StateChanged event on.
  std::vector<JobState> path(const std::string& id) {
    std::lock_guard lock(mutex_);
    std::vector<JobState> out;
    for (const JobEvent& e : events_) {
      if (e.id != id || e.kind != JobEvent::Kind::StateChanged) continue;
      if (out.empty()) out.push_back(e.from);
      out.push_back(e.to);
    }
    return out;
  }
  [[nodiscard]] bool wait_for(const std::string& id, JobEvent::Kind kind,
                              std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      for (const JobEvent& e : events_)
        if (e.id == id && e.kind == kind) return true;
      return false;
    });
  }

  // Waits for a state change of `id` from -> to, among the events from index `first` on.
  [[nodiscard]] bool wait_for_change(const std::string& id, JobState from, JobState to,
                                     size_t first = 0, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      for (size_t i = first; i < events_.size(); ++i) {
        const JobEvent& e = events_[i];
        if (e.id == id && e.kind == JobEvent::Kind::StateChanged && e.from == from && e.to == to)
          return true;
      }
      return false;
    });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<JobEvent> events_;
};

}  // namespace chainfs::testing
