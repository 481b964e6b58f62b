// A JobManager with an event log and the probes of its fake jobs, torn down safely: probes are
// opened (no checkpoint blocks any more) before the manager cancels and joins its jobs.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fake_jobs.h"

namespace chainfs::testing {

inline constexpr size_t kChunk = 4096;

struct Rig {
  Rig() { log.attach(manager); }
  ~Rig() {
    for (auto& p : probes) p->open_all_forever();
    manager.cancel_all_and_wait();
  }

  std::shared_ptr<Probe> probe(size_t chunks = 8, size_t chunk_size = kChunk) {
    probes.push_back(std::make_shared<Probe>(chunks, chunk_size));
    return probes.back();
  }
  // Starts a FakeCopyJob; fails the test (and returns "") if the manager refuses.
  std::string start(const std::shared_ptr<Probe>& p, JobOptions options = {}, bool mirror = false,
                    std::string type = "stream", std::string base = "") {
    auto id = manager.start(
        std::make_unique<FakeCopyJob>(p, mirror, std::move(type), "top", std::move(base)),
        std::move(options));
    EXPECT_TRUE(id.ok()) << id.error().message;
    return id.ok() ? *id : std::string();
  }
  JobInfo info(const std::string& id) {
    auto i = manager.info(id);
    EXPECT_TRUE(i.ok()) << i.error().message;
    return i.ok() ? *i : JobInfo{};
  }
  // Waits until the job is in `state` (and its thread parked at a pause point, if asked).
  JobInfo wait_state(const std::string& id, JobState state, bool parked = false) {
    auto i = manager.wait_until(
        id, [&](const JobInfo& j) { return j.state == state && (!parked || j.parked); });
    EXPECT_TRUE(i.ok()) << "waiting for " << job_state_name(state) << ": " << i.error().message;
    return i.ok() ? *i : JobInfo{};
  }
  JobInfo wait_concluded(const std::string& id) {
    auto i = manager.wait_concluded(id);
    EXPECT_TRUE(i.ok()) << i.error().message;
    return i.ok() ? *i : JobInfo{};
  }
  std::vector<std::byte> dst(const std::shared_ptr<Probe>& p) {
    std::lock_guard lock(p->mutex);
    return p->dst;
  }
  std::vector<std::byte> src(const std::shared_ptr<Probe>& p) {
    std::lock_guard lock(p->mutex);
    return p->src;
  }

  EventLog log;  // before the manager: it must outlive the observer calls
  JobManager manager;
  std::vector<std::shared_ptr<Probe>> probes;
};

using Calls = std::vector<std::string>;
using Path = std::vector<JobState>;

}  // namespace chainfs::testing
