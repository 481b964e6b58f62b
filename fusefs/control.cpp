#include "fusefs/control.h"

#include <filesystem>

#include <fmt/format.h>

namespace chainfs::fusefs {

std::string format_outcome(const Result<std::string>& outcome) {
  if (outcome.ok()) {
    std::string text = outcome.value().empty() ? std::string("ok") : outcome.value();
    return text + "\n";
  }
  // Read back and logged one per line.
  std::string message = outcome.error().message;
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  return fmt::format("error {}: {}\n", errno_name(outcome.error().code), message);
}

std::string process_cwd(pid_t pid) {
  if (pid <= 0) return {};
  std::error_code ec;
  std::filesystem::path cwd = std::filesystem::read_symlink(fmt::format("/proc/{}/cwd", pid), ec);
  if (ec || !cwd.is_absolute()) return {};
  return cwd.string();
}

}  // namespace chainfs::fusefs
