// chainfs: one binary, subcommands (INTERFACE.md "Command line").
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "src/cli.h"

namespace {

using Command = int (*)(const std::vector<std::string>&);

Command find_command(const std::string& name) {
  using namespace chainfs::cli;
  if (name == "mount") return mount_command;
  if (name == "create") return create_command;
  if (name == "status") return status_command;
  if (name == "stream") return stream_command;
  if (name == "commit") return commit_command;
  if (name == "snapshot") return snapshot_command;
  if (name == "job") return job_command;
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace chainfs::cli;
  std::vector<std::string> words(argv + 1, argv + argc);
  if (words.empty()) {
    fmt::print(stderr, "{}", help_text(""));
    return kExitUsage;
  }
  const std::string& first = words[0];
  if (first == "--help" || first == "-h" || first == "help") {
    std::string topic = words.size() > 1 ? words[1] : "";
    std::string text = help_text(topic);
    if (text.empty()) return usage_error("", fmt::format("unknown command '{}'", topic));
    fmt::print("{}", text);
    return kExitOk;
  }
  if (first == "--version") {
    fmt::print("chainfs 0.1.0\n");
    return kExitOk;
  }
  Command command = find_command(first);
  if (!command) return usage_error("", fmt::format("unknown command '{}'", first));
  std::vector<std::string> rest(words.begin() + 1, words.end());
  try {
    return command(rest);
  } catch (const std::exception& e) {
    return failure(fmt::format("internal error: {}", e.what()));
  }
}
