// The client verbs: stream, commit, snapshot and job only write a line to the mount's control
// file and read the outcome back (INTERFACE.md); --wait then follows jobs/<id> (job_progress.cpp).
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "blockcore/jobs/control_parse.h"
#include "src/cli.h"

namespace chainfs::cli {

namespace {

namespace fs = std::filesystem;

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

// Words go into a control line separated by spaces: they may not hold whitespace, and must not
// read as an option (key=value) or start a comment.
Result<void> check_word(std::string_view what, const std::string& word) {
  if (word.empty()) return make_error(Errc::Invalid, "{} is empty", what);
  if (is_option_word(word) || word.front() == '#')
    return make_error(Errc::Invalid, "{} '{}' would not read as a name in a control line", what,
                      word);
  for (char c : word)
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
      return make_error(Errc::Invalid, "{} '{}' contains whitespace", what, word);
  return {};
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
    auto rate = parse_rate(*speed);
    if (!rate)
      return usage_error(verb, fmt::format("--speed '{}': {}", *speed, rate.error().message));
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
        // Relative overlay paths are the client's: the daemon's working folder is not ours.
        std::string overlay = pending[1].empty() ? pending[1] : absolute_path(pending[1]);
        if (auto r = check_word("NODE", pending[0]); !r)
          return usage_error("snapshot", r.error().message);
        if (auto r = check_word("OVERLAY_PATH", overlay); !r)
          return usage_error("snapshot", r.error().message);
        lines.push_back(fmt::format("{} {}", pending[0], overlay));
        pending.clear();
      }
    } else if (arg.name == "name") {
      if (lines.empty() || !pending.empty())
        return usage_error("snapshot", "--name must follow a NODE OVERLAY_PATH pair");
      if (auto r = check_word("--name", arg.value); !r)
        return usage_error("snapshot", r.error().message);
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
  if (pos.size() < 3) return usage_error("job", "expected MOUNTPOINT VERB ID");
  static const char* kVerbs[] = {"pause",   "resume",   "cancel", "complete",
                                 "dismiss", "finalize", "speed"};
  const std::string& verb = pos[1];
  if (std::find(std::begin(kVerbs), std::end(kVerbs), verb) == std::end(kVerbs))
    return usage_error("job", fmt::format("unknown verb '{}' (expected pause, resume, cancel, "
                                          "complete, dismiss, finalize or speed)",
                                          verb));
  if (auto r = check_word("ID", pos[2]); !r) return usage_error("job", r.error().message);
  std::string line = fmt::format("{} {}", verb, pos[2]);
  if (verb == "speed") {
    if (pos.size() != 4) return usage_error("job", "expected MOUNTPOINT speed ID RATE");
    auto rate = parse_rate(pos[3]);
    if (!rate)
      return usage_error("job", fmt::format("RATE '{}': {}", pos[3], rate.error().message));
    line += fmt::format(" {}", *rate);
  } else if (pos.size() != 3) {
    return usage_error("job", fmt::format("unexpected argument '{}'", pos[3]));
  }
  auto done = run_control_command(pos[0], "job", line + "\n");
  if (!done) return failure(done.error().message);
  fmt::print("job {}: {} done\n", pos[2], verb);
  return kExitOk;
}

}  // namespace chainfs::cli
