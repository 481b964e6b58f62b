// Control files (INTERFACE.md "Control files"): parsing the lines written to control/<file> and
// the one interface through which each file's commands run.
//
// A write to a control file is split into lines, each line into whitespace-separated words;
// `key=value` words are options. The file's ControlHandler runs the lines of one write (in order,
// or as one transaction for snapshot) and returns one ControlOutcome: the FUSE layer fails the
// write with the outcome's errno, logs the refusal, and keeps the outcome's text for reads of the
// same open file. The job engine plugs in by providing handlers for stream, commit, snapshot and
// job (ControlHandlers); until then those files refuse every line (jobs_not_implemented_handler).
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blockcore/graph/graph.h"
#include "blockcore/result.h"

namespace chainfs::fusefs {

struct ControlLine {
  std::string text;                           // the line as written, trimmed (for messages)
  std::vector<std::string> words;             // the words that are not options, in order
  std::map<std::string, std::string> options; // key=value words
};

// An option word is `key=value` where key is a letter followed by letters, digits or '-' (so a
// path that contains '=' after a '/' stays a plain word).
bool is_option_word(std::string_view word);

// Parses one line (without its newline). Errors (Errc::Invalid): an option given twice, an option
// with an empty value.
Result<ControlLine> parse_control_line(std::string_view line);

// Splits the bytes of one write into lines and parses each. Blank lines and lines whose first
// word starts with '#' are skipped; a last line without '\n' counts. Errors: no command at all,
// a NUL byte, or the first line that does not parse (Errc::Invalid).
Result<std::vector<ControlLine>> parse_control_text(std::string_view text);

// Who wrote the command (for resolving relative paths and for messages).
struct ControlContext {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The result of one write: ok (with the job the last command started, if any), or the refusal of
// the command that failed (later lines of the write were not run).
struct ControlOutcome {
  std::optional<Error> error;
  std::string job_id;   // ok only
  std::string command;  // the command the error belongs to

  static ControlOutcome success(std::string job_id = {});
  static ControlOutcome failure(Error error, std::string command);
  bool ok() const { return !error.has_value(); }
};

// The text read back from the file after a write: "ok\n", "ok ID\n" or "error ENAME: message\n"
// (the message on one line).
std::string format_outcome(const ControlOutcome& outcome);

class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  // Runs the commands of one write (never empty). Called concurrently from several FUSE threads
  // for different writes; implementations synchronize what they share.
  virtual ControlOutcome execute(const std::vector<ControlLine>& lines,
                                 const ControlContext& context) = 0;
};

// A handler whose lines run one after the other, stopping at the first refusal.
class LineByLineHandler : public ControlHandler {
 public:
  ControlOutcome execute(const std::vector<ControlLine>& lines,
                         const ControlContext& context) override;

 protected:
  // The job id the command started (empty if none), or why it was refused.
  virtual Result<std::string> run_line(const ControlLine& line, const ControlContext& context) = 0;
};

// control/node: `open PATH [chain=NAME] [name=NODE] [read-only]`, `close CHAIN`, `remove NODE`.
// A relative PATH is taken relative to the writing process's working directory.
class NodeControlHandler : public LineByLineHandler {
 public:
  explicit NodeControlHandler(Graph& graph) : graph_(graph) {}

 protected:
  Result<std::string> run_line(const ControlLine& line, const ControlContext& context) override;

 private:
  Result<std::string> open_image(const ControlLine& line, const ControlContext& context);
  Graph& graph_;
};

// Refuses every command with EOPNOTSUPP "jobs are not implemented yet" (stream, commit, snapshot
// and job until the job engine provides their handlers).
std::shared_ptr<ControlHandler> jobs_not_implemented_handler();

// The handler of each control file, by file name ("stream", "commit", "snapshot", "job", "node").
using ControlHandlers = std::map<std::string, std::shared_ptr<ControlHandler>>;

// node -> NodeControlHandler; the others -> jobs_not_implemented_handler(). Entries already in
// `given` are kept, so a caller fills in only what it provides.
ControlHandlers complete_control_handlers(Graph& graph, ControlHandlers given);

// Resolves a path written by process `pid`: absolute paths are kept; relative ones are joined to
// that process's working directory (/proc/PID/cwd). Errors: the working directory is unknown.
Result<std::string> resolve_client_path(const std::string& path, pid_t pid);

}  // namespace chainfs::fusefs
