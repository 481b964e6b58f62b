// ControlPlane: the control files of one mount (INTERFACE.md "Control files") over one Graph and
// the JobManager it owns. The FUSE layer hands it the text of each write to control/<file> and
// turns the result into the write's outcome (errno from the Errc, "ok [job-id]" read back).
//
//   stream    NODE [base=NODE] [speed=RATE] [id=ID] [on-error=POLICY] [auto-finalize=off]
//             [auto-dismiss=on]
//   commit    the same; an active commit when NODE is a chain's active layer
//   snapshot  NODE OVERLAY_PATH [name=NODE] [mode=create|existing]   (all lines: one transaction)
//   job       pause|resume|cancel|complete|finalize|dismiss ID  |  speed ID RATE
//   node      open PATH [chain=NAME] [name=NODE] [read-only]  |  close CHAIN  |  remove NODE
//
// Lines of one write run in order and stop at the first refusal (earlier lines stay done), except
// snapshot, where all lines of the write are one transaction. Every command's outcome is logged
// through graph.log(): info when done, warn when refused, with the reason.
//
// Threads: execute() and the direct calls may run concurrently from any thread (FUSE workers);
// everything they share is the Graph's and the JobManager's, which lock themselves. Destroy the
// ControlPlane before the Graph: its destructor cancels and joins every job (shutdown()).
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "blockcore/graph/graph.h"
#include "blockcore/jobs/control_parse.h"
#include "blockcore/jobs/job_manager.h"
#include "blockcore/jobs/snapshot.h"
#include "blockcore/result.h"

namespace chainfs {

// Who wrote the command, for what only the writer knows.
struct ControlRequest {
  // The writer's working directory, against which relative paths (snapshot overlays, node open)
  // are resolved; empty: relative paths are refused.
  std::string cwd;
};

// A stream or commit as a control line asks for it.
struct JobStart {
  std::string node;
  std::string base;  // empty: none (stream) or the chain's bottom layer (commit)
  JobOptions options;
};

class ControlPlane {
 public:
  explicit ControlPlane(Graph& graph);
  ~ControlPlane();  // shutdown()
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // Runs the text of one write to control/<file> (file: stream, commit, snapshot, job, node).
  // Returns the outcome line without its newline: "ok" or "ok <job-id>" (the job the last line
  // started), or the refusal of the first line that failed: Invalid (syntax, bad argument),
  // NotFound (unknown node, job, file, or folder), Exists (name, id or file taken), Busy (node or
  // job in use, verb not accepted in the job's state), Access/ReadOnly, NoSpace/Io (host).
  Result<std::string> execute(std::string_view file, std::string_view text,
                              const ControlRequest& request = {});

  // ---- what the lines do (also for tests and tools); each logs its outcome ----------------------
  Result<std::string> stream(const JobStart& start);  // the job's id
  Result<std::string> commit(const JobStart& start);
  // One transaction; returns the overlay node names.
  Result<std::vector<std::string>> snapshot(const std::vector<SnapshotRequest>& requests);
  Result<void> job_verb(const std::string& id, JobVerb verb);
  Result<void> job_speed(const std::string& id, uint64_t bytes_per_second);
  // Closing a chain cancels the jobs working on its layers first and waits for them to end, so
  // the chain's nodes close with nothing in flight; then the chain is dropped.
  Result<void> close_chain(const std::string& chain);

  // ---- for the FUSE layer -----------------------------------------------------------------------
  JobManager& jobs() { return jobs_; }
  const JobManager& jobs() const { return jobs_; }
  // Job events (jobs/<id> appearing, changing, going away). The ControlPlane logs them and then
  // forwards each to this observer (replacing any previous one). Called with no lock held.
  void set_job_observer(JobManager::Observer observer);
  // For unmount: refuses new jobs, cancels every running job (an active commit goes back to its
  // top; every job leaves the graph as it was) and waits for all of them. Idempotent.
  void shutdown();

 private:
  Result<std::string> run_job_line(bool is_stream, const CommandLine& line);
  Result<std::string> run_verb_line(const CommandLine& line);
  Result<std::string> run_node_line(const CommandLine& line, const ControlRequest& request);
  Result<std::vector<SnapshotRequest>> parse_snapshot_lines(const std::vector<CommandLine>& lines,
                                                            const ControlRequest& request);
  Result<std::string> start_job(bool is_stream, const JobStart& start);
  void on_job_event(const JobEvent& event);

  Graph& graph_;
  JobManager jobs_;
  std::mutex observer_mutex_;  // leaf: guards observer_ only
  JobManager::Observer observer_;
};

// A path written by a user, resolved against `cwd` when relative (Invalid without one).
Result<std::string> resolve_user_path(const std::string& path, const std::string& cwd);

}  // namespace chainfs
