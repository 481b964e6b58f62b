// `--wait`: follows jobs/<id> of a mount until the job ends (or, for an active commit, is ready).
//
// On a terminal (isatty(stdout)) one progress bar is redrawn in place five times a second:
//   [###########.................]  38%  1.5G/4.0G  412.3M/s  ETA 0:06  running
// Otherwise (a pipe, a log file) one plain line at most once a second, and only when something
// changed:
//   stream0: running 38% (1.5G of 4.0G) 412.3M/s ETA 6s
// The rate is the job's own measured rate (`rate:` of the status file); the ETA divides what is
// left by it. The status file is YAML (INTERFACE.md "Job status file"); yaml-cpp reads it.
#include <unistd.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "blockcore/jobs/control_parse.h"
#include "fusefs/render.h"
#include "src/cli.h"

namespace chainfs::cli {

namespace {

struct JobSnapshot {
  std::string type;
  std::string state;
  std::string error;  // empty: none
  uint64_t progress = 0;
  uint64_t total = 0;
  std::string rate;  // as the status file writes it ("412.3M")
};

std::string scalar(const YAML::Node& node) {
  return node && !node.IsNull() ? node.as<std::string>() : std::string();
}

Result<JobSnapshot> parse_status(const std::string& text) {
  try {
    YAML::Node node = YAML::Load(text);
    if (!node.IsMap()) return make_error(Errc::Invalid, "not a YAML mapping");
    JobSnapshot job;
    job.type = scalar(node["type"]);
    job.state = scalar(node["state"]);
    job.error = scalar(node["error"]);
    job.progress = node["progress"] ? node["progress"].as<uint64_t>() : 0;
    job.total = node["total"] ? node["total"].as<uint64_t>() : 0;
    job.rate = scalar(node["rate"]);
    return job;
  } catch (const YAML::Exception& e) {
    return make_error(Errc::Invalid, "{}", e.what());
  }
}

// "0:06", "1:02:03"; "-" when unknown.
std::string format_eta(std::optional<uint64_t> seconds) {
  if (!seconds) return "-";
  uint64_t s = *seconds;
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

std::optional<uint64_t> eta_seconds(const JobSnapshot& job) {
  if (job.total <= job.progress) return job.total ? std::optional<uint64_t>(0) : std::nullopt;
  Result<uint64_t> rate = parse_rate(job.rate.empty() ? "0" : job.rate);
  if (!rate.ok() || *rate == 0) return std::nullopt;
  return (job.total - job.progress + *rate - 1) / *rate;
}

unsigned percent_of(const JobSnapshot& job) {
  if (job.total == 0) return 0;
  return static_cast<unsigned>(std::min(job.progress, job.total) * 100 / job.total);
}

std::string bar_line(const JobSnapshot& job) {
  constexpr unsigned kWidth = 28;
  unsigned percent = percent_of(job);
  std::string bar(kWidth, '.');
  for (unsigned i = 0; i < percent * kWidth / 100; ++i) bar[i] = '#';
  return fmt::format("[{}] {:3}%  {}/{}  {}/s  ETA {}  {}", bar, percent,
                     fusefs::human_size(job.progress), fusefs::human_size(job.total),
                     job.rate.empty() ? "0" : job.rate, format_eta(eta_seconds(job)), job.state);
}

std::string plain_line(const std::string& id, const JobSnapshot& job) {
  std::optional<uint64_t> eta = eta_seconds(job);
  return fmt::format("{}: {} {}% ({} of {}) {}/s ETA {}", id, job.state, percent_of(job),
                     fusefs::human_size(job.progress), fusefs::human_size(job.total),
                     job.rate.empty() ? "0" : job.rate, eta ? fmt::format("{}s", *eta) : "-");
}

}  // namespace

int wait_for_job(const std::string& mountpoint, const std::string& id) {
  using Clock = std::chrono::steady_clock;
  const std::string path = fmt::format("{}/jobs/{}", mountpoint, id);
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  bool bar_shown = false;
  auto end_bar = [&] {
    if (bar_shown) fmt::print("\n");
    bar_shown = false;
    std::fflush(stdout);
  };
  std::string last_plain;
  Clock::time_point last_plain_at = Clock::now() - std::chrono::seconds(10);

  for (;;) {
    Result<std::string> text = read_text_file(path);
    if (!text.ok()) {
      end_bar();
      if (text.error().code == Errc::NotFound)
        return failure(
            fmt::format("job {} was dismissed before its outcome could be read "
                        "(see the mount's log)",
                        id));
      return failure(text.error().message);
    }
    Result<JobSnapshot> job = parse_status(*text);
    if (!job.ok()) {
      end_bar();
      return failure(fmt::format("{} does not parse: {}", path, job.error().message));
    }
    if (tty) {
      fmt::print("\r\x1b[K{}", bar_line(*job));
      std::fflush(stdout);
      bar_shown = true;
    } else if (std::string line = plain_line(id, *job);
               line != last_plain && Clock::now() - last_plain_at >= std::chrono::seconds(1)) {
      fmt::print("{}\n", line);
      std::fflush(stdout);
      last_plain = line;
      last_plain_at = Clock::now();
    }

    if (job->state == "concluded") {
      end_bar();
      if (!job->error.empty()) return failure(fmt::format("job {} failed: {}", id, job->error));
      fmt::print("job {} completed\n", id);
      return kExitOk;
    }
    if (job->state == "ready") {
      // An active commit: base is in sync and stays so until someone completes the job.
      end_bar();
      fmt::print(
          "job {} is ready: base is in sync with {}; finish it with "
          "'chainfs job {} complete {}' (or cancel it to stay on the top layer)\n",
          id, job->type == "active-commit" ? "the active layer" : "its node", mountpoint, id);
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace chainfs::cli
