// The client verbs: stream, commit, snapshot and job only write a line to the mount's control
// file and read the outcome back (INTERFACE.md); --wait then follows jobs/<id>.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "config/size.h"
#include "fusefs/render.h"
#include "src/cli.h"

namespace chainfs::cli {

namespace {

namespace fs = std::filesystem;

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

// Words go into a control line separated by spaces: they may not hold whitespace.
Result<void> check_word(std::string_view what, const std::string& word) {
  if (word.empty()) return make_error(Errc::Invalid, "{} is empty", what);
  for (char c : word)
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
      return make_error(Errc::Invalid, "{} '{}' contains whitespace", what, word);
  return {};
}

struct JobState {
  std::string state;
  std::string error;
  uint64_t progress = 0;
  uint64_t total = 0;
  std::string rate;
};

// Follows jobs/<id> until the job ends (concluded, or ready for an active commit). A job file
// that disappears was dismissed automatically, which happens only on success.
int wait_for_job(const std::string& mountpoint, const std::string& id) {
  const std::string path = fmt::format("{}/jobs/{}", mountpoint, id);
  const bool tty = ::isatty(STDERR_FILENO);
  std::string last_line;
  auto last_print = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  for (;;) {
    auto text = read_text_file(path);
    if (!text) {
      if (tty) fmt::print(stderr, "\n");
      if (text.error().code == Errc::NotFound) {
        fmt::print("job {} completed\n", id);
        return kExitOk;
      }
      return failure(text.error().message);
    }
    JobState job;
    try {
      YAML::Node node = YAML::Load(*text);
      job.state = node["state"] ? node["state"].as<std::string>() : "";
      job.error = node["error"] && !node["error"].IsNull() ? node["error"].as<std::string>() : "";
      job.progress = node["progress"] ? node["progress"].as<uint64_t>() : 0;
      job.total = node["total"] ? node["total"].as<uint64_t>() : 0;
      job.rate = node["rate"] && !node["rate"].IsNull() ? node["rate"].as<std::string>() : "";
    } catch (const YAML::Exception& e) {
      return failure(fmt::format("{} does not parse: {}", path, e.what()));
    }
    unsigned percent = job.total ? static_cast<unsigned>(job.progress * 100 / job.total) : 0;
    std::string line = fmt::format("{} {} {:3}% {}/{} {}/s", id, job.state, percent,
                                   fusefs::human_size(job.progress), fusefs::human_size(job.total),
                                   job.rate.empty() ? "0" : job.rate);
    auto now = std::chrono::steady_clock::now();
    if (tty) {
      std::string bar(30, ' ');
      for (unsigned i = 0; i < percent * 30 / 100; ++i) bar[i] = '#';
      fmt::print(stderr, "\r[{}] {}   ", bar, line);
    } else if (line != last_line && now - last_print >= std::chrono::seconds(1)) {
      fmt::print("{}\n", line);
      last_print = now;
    }
    last_line = line;
    if (job.state == "concluded") {
      if (tty) fmt::print(stderr, "\n");
      if (!job.error.empty() && job.error != "~") return failure(fmt::format("job {} failed: {}", id, job.error));
      fmt::print("job {} completed\n", id);
      return kExitOk;
    }
    if (job.state == "ready") {
      if (tty) fmt::print(stderr, "\n");
      fmt::print("job {} is ready: finish it with 'chainfs job {} complete {}'\n", id, mountpoint, id);
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int block_job_command(const char* verb, const std::vector<std::string>& words) {
  static const std::vector<OptionSpec> specs = {
      {"base", 0, true}, {"speed", 0, true}, {"id", 0, true}, {"wait", 0, false}};
  auto args = parse_args(words, specs);
  if (!args) return usage_error(verb, args.error().message);
  if (has_flag(*args, "help")) {
    fmt::print("{}", help_text(verb));
    return kExitOk;
  }
  std::vector<std::string> pos = positionals(*args);
  if (pos.size() != 2)
    return usage_error(verb, pos.size() < 2 ? "expected MOUNTPOINT and NODE"
                                            : fmt::format("unexpected argument '{}'", pos[2]));
  std::string line = pos[1];
  if (auto r = check_word("NODE", pos[1]); !r) return usage_error(verb, r.error().message);
  if (auto base = last_value(*args, "base")) {
    if (auto r = check_word("--base", *base); !r) return usage_error(verb, r.error().message);
    line += " base=" + *base;
  }
  if (auto speed = last_value(*args, "speed")) {
    auto rate = parse_size(*speed);
    if (!rate) return usage_error(verb, fmt::format("--speed '{}': {}", *speed, rate.error().message));
    line += fmt::format(" speed={}", *rate);
  }
  if (auto id = last_value(*args, "id")) {
    if (auto r = check_word("--id", *id); !r) return usage_error(verb, r.error().message);
    line += " id=" + *id;
  }
  auto started = run_control_command(pos[0], verb, line + "\n");
  if (!started) return failure(started.error().message);
  fmt::print("started job {}\n", *started);
  if (has_flag(*args, "wait") && !started->empty()) return wait_for_job(pos[0], *started);
  return kExitOk;
}

}  // namespace

int stream_command(const std::vector<std::string>& words) {
  return block_job_command("stream", words);
}

int commit_command(const std::vector<std::string>& words) {
  return block_job_command("commit", words);
}

int snapshot_command(const std::vector<std::string>& words) {
  static const std::vector<OptionSpec> specs = {{"name", 0, true}};
  auto args = parse_args(words, specs);
  if (!args) return usage_error("snapshot", args.error().message);
  if (has_flag(*args, "help")) {
    fmt::print("{}", help_text("snapshot"));
    return kExitOk;
  }
  // MOUNTPOINT, then pairs NODE OVERLAY_PATH, each optionally followed by --name.
  std::string mountpoint;
  std::vector<std::string> lines;
  std::vector<std::string> pending;  // the words of the pair being read
  for (const Arg& arg : *args) {
    if (!arg.is_option) {
      if (mountpoint.empty()) {
        mountpoint = arg.value;
        continue;
      }
      pending.push_back(arg.value);
      if (pending.size() == 2) {
        for (const char* what : {"NODE", "OVERLAY_PATH"})
          if (auto r = check_word(what, pending[what[0] == 'N' ? 0 : 1]); !r)
            return usage_error("snapshot", r.error().message);
        lines.push_back(fmt::format("{} {}", pending[0], absolute_path(pending[1])));
        pending.clear();
      }
    } else if (arg.name == "name") {
      if (lines.empty() || !pending.empty())
        return usage_error("snapshot", "--name must follow a NODE OVERLAY_PATH pair");
      if (auto r = check_word("--name", arg.value); !r) return usage_error("snapshot", r.error().message);
      lines.back() += " name=" + arg.value;
    }
  }
  if (mountpoint.empty() || lines.empty() || !pending.empty())
    return usage_error("snapshot", "expected MOUNTPOINT and NODE OVERLAY_PATH pairs");
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  auto done = run_control_command(mountpoint, "snapshot", text);
  if (!done) return failure(done.error().message);
  fmt::print("snapshot taken ({} overlay{})\n", lines.size(), lines.size() == 1 ? "" : "s");
  return kExitOk;
}

int job_command(const std::vector<std::string>& words) {
  auto args = parse_args(words, {});
  if (!args) return usage_error("job", args.error().message);
  if (has_flag(*args, "help")) {
    fmt::print("{}", help_text("job"));
    return kExitOk;
  }
  std::vector<std::string> pos = positionals(*args);
  if (pos.size() != 3) return usage_error("job", "expected MOUNTPOINT VERB ID");
  static const char* kVerbs[] = {"pause", "resume", "cancel", "complete", "dismiss", "finalize"};
  if (std::find(std::begin(kVerbs), std::end(kVerbs), pos[1]) == std::end(kVerbs))
    return usage_error("job", fmt::format("unknown verb '{}' (expected pause, resume, cancel, "
                                          "complete, dismiss or finalize)", pos[1]));
  if (auto r = check_word("ID", pos[2]); !r) return usage_error("job", r.error().message);
  auto done = run_control_command(pos[0], "job", fmt::format("{} {}\n", pos[1], pos[2]));
  if (!done) return failure(done.error().message);
  return kExitOk;
}

}  // namespace chainfs::cli
