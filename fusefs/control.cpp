#include "fusefs/control.h"

#include <unistd.h>

#include <cctype>
#include <filesystem>

#include <fmt/format.h>

namespace chainfs::fusefs {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Messages are read back and logged one per line.
std::string one_line(std::string_view message) {
  std::string out(message);
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return out;
}

}  // namespace

bool is_option_word(std::string_view word) {
  size_t eq = word.find('=');
  if (eq == std::string_view::npos || eq == 0) return false;
  if (!std::isalpha(static_cast<unsigned char>(word[0]))) return false;
  for (size_t i = 1; i < eq; ++i) {
    unsigned char c = static_cast<unsigned char>(word[i]);
    if (!std::isalnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

Result<ControlLine> parse_control_line(std::string_view line) {
  ControlLine out;
  out.text = std::string(trim(line));
  std::string_view rest = out.text;
  while (!rest.empty()) {
    while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
    if (rest.empty()) break;
    size_t end = 0;
    while (end < rest.size() && !is_space(rest[end])) ++end;
    std::string_view word = rest.substr(0, end);
    rest.remove_prefix(end);
    if (is_option_word(word)) {
      size_t eq = word.find('=');
      std::string key(word.substr(0, eq));
      std::string value(word.substr(eq + 1));
      if (value.empty()) return make_error(Errc::Invalid, "option '{}' has no value", key);
      if (!out.options.emplace(key, std::move(value)).second)
        return make_error(Errc::Invalid, "option '{}' is given twice", key);
    } else {
      out.words.emplace_back(word);
    }
  }
  return out;
}

Result<std::vector<ControlLine>> parse_control_text(std::string_view text) {
  if (text.find('\0') != std::string_view::npos)
    return make_error(Errc::Invalid, "the command contains a NUL byte");
  std::vector<ControlLine> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    CHAINFS_ASSIGN_OR_RETURN(ControlLine parsed, parse_control_line(line));
    lines.push_back(std::move(parsed));
  }
  if (lines.empty()) return make_error(Errc::Invalid, "no command given");
  return lines;
}

ControlOutcome ControlOutcome::success(std::string job_id) {
  ControlOutcome out;
  out.job_id = std::move(job_id);
  return out;
}

ControlOutcome ControlOutcome::failure(Error error, std::string command) {
  ControlOutcome out;
  out.error = std::move(error);
  out.command = std::move(command);
  return out;
}

std::string format_outcome(const ControlOutcome& outcome) {
  if (outcome.ok()) return outcome.job_id.empty() ? "ok\n" : fmt::format("ok {}\n", outcome.job_id);
  return fmt::format("error {}: {}\n", errno_name(outcome.error->code),
                     one_line(outcome.error->message));
}

ControlOutcome LineByLineHandler::execute(const std::vector<ControlLine>& lines,
                                          const ControlContext& context) {
  std::string job_id;
  for (const ControlLine& line : lines) {
    Result<std::string> result = run_line(line, context);
    if (!result) return ControlOutcome::failure(result.take_error(), line.text);
    job_id = std::move(result.value());
  }
  return ControlOutcome::success(std::move(job_id));
}

// ---- control/node -----------------------------------------------------------------------------

namespace {

Result<void> expect_no_options(const ControlLine& line) {
  if (!line.options.empty())
    return make_error(Errc::Invalid, "'{}' takes no options (got '{}=')", line.words[0],
                      line.options.begin()->first);
  return {};
}

}  // namespace

Result<std::string> NodeControlHandler::run_line(const ControlLine& line,
                                                 const ControlContext& context) {
  if (line.words.empty())
    return make_error(Errc::Invalid, "missing command (open, close or remove)");
  const std::string& verb = line.words[0];
  if (verb == "open") return open_image(line, context);
  if (verb == "close" || verb == "remove") {
    CHAINFS_TRY(expect_no_options(line));
    if (line.words.size() != 2)
      return make_error(Errc::Invalid, "usage: {} {}", verb, verb == "close" ? "CHAIN" : "NODE");
    if (verb == "close") {
      CHAINFS_TRY(graph_.remove_chain(line.words[1]));
      graph_.log().info("chain '{}' closed", line.words[1]);
    } else {
      CHAINFS_TRY(graph_.remove_node(line.words[1]));
      graph_.log().info("node '{}' removed", line.words[1]);
    }
    return std::string();
  }
  return make_error(Errc::Invalid, "unknown command '{}' (expected open, close or remove)", verb);
}

Result<std::string> NodeControlHandler::open_image(const ControlLine& line,
                                                   const ControlContext& context) {
  ImageSpec spec;
  bool have_path = false;
  for (size_t i = 1; i < line.words.size(); ++i) {
    const std::string& word = line.words[i];
    if (word == "read-only") {
      spec.read_only = true;
    } else if (!have_path) {
      CHAINFS_ASSIGN_OR_RETURN(spec.path, resolve_client_path(word, context.pid));
      have_path = true;
    } else {
      return make_error(Errc::Invalid, "unexpected word '{}' after the path", word);
    }
  }
  if (!have_path)
    return make_error(Errc::Invalid, "usage: open PATH [chain=NAME] [name=NODE] [read-only]");
  for (const auto& [key, value] : line.options) {
    if (key == "chain") spec.chain = value;
    else if (key == "name") spec.node_name = value;
    else return make_error(Errc::Invalid, "unknown option '{}' (expected chain= or name=)", key);
  }
  CHAINFS_ASSIGN_OR_RETURN(NodeRef top, graph_.open_image(spec));
  graph_.log().info("opened '{}' as node '{}'{}", spec.path, top->name(),
                    spec.read_only ? " (read-only)" : "");
  return std::string();
}

Result<std::string> resolve_client_path(const std::string& path, pid_t pid) {
  if (path.empty()) return make_error(Errc::Invalid, "empty path");
  if (path.front() == '/') return path;
  std::error_code ec;
  std::filesystem::path cwd = std::filesystem::read_symlink(fmt::format("/proc/{}/cwd", pid), ec);
  if (ec || pid <= 0)
    return make_error(Errc::Invalid,
                      "relative path '{}': the writer's working directory is unknown; give an "
                      "absolute path", path);
  return (cwd / path).lexically_normal().string();
}

// ---- the job files until the job engine provides them -----------------------------------------

namespace {

class JobsNotImplemented : public ControlHandler {
 public:
  ControlOutcome execute(const std::vector<ControlLine>& lines, const ControlContext&) override {
    return ControlOutcome::failure(
        make_error(Errc::Unsupported, "jobs are not implemented yet"), lines.front().text);
  }
};

}  // namespace

std::shared_ptr<ControlHandler> jobs_not_implemented_handler() {
  return std::make_shared<JobsNotImplemented>();
}

ControlHandlers complete_control_handlers(Graph& graph, ControlHandlers given) {
  if (!given.count("node")) given["node"] = std::make_shared<NodeControlHandler>(graph);
  for (const char* name : {"stream", "commit", "snapshot", "job"})
    if (!given.count(name)) given[name] = jobs_not_implemented_handler();
  return given;
}

}  // namespace chainfs::fusefs
