#include "blockcore/jobs/control_plane.h"

#include <filesystem>
#include <set>

#include "blockcore/jobs/commit_job.h"
#include "blockcore/jobs/layers.h"
#include "blockcore/jobs/stream_job.h"

namespace chainfs {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kJobOptions =
    "base=, speed=, id=, on-error=, auto-finalize= or auto-dismiss=";

// A chain's active layer, or a node of its own that takes writers: guest writes may reach it, so
// a commit of it has to mirror them (an active commit).
bool takes_guest_writes(const Graph& graph, const NodeRef& node) {
  for (const ChainView& chain : graph.chains())
    if (chain.root == node) return true;
  return node->parent_count() == 0 && !node->read_only() && !graph.options().read_only &&
         node->capabilities().writable;
}

std::string describe_start(bool is_stream, const JobStart& start) {
  if (is_stream)
    return start.base.empty() ? fmt::format("stream of '{}' (whole chain)", start.node)
                              : fmt::format("stream of '{}' down to '{}'", start.node, start.base);
  return start.base.empty() ? fmt::format("commit of '{}' (into the bottom layer)", start.node)
                            : fmt::format("commit of '{}' into '{}'", start.node, start.base);
}

Result<void> expect_words(const CommandLine& line, size_t count, std::string_view usage) {
  if (line.words.size() != count) return make_error(Errc::Invalid, "usage: {}", usage);
  return ok_result();
}

Result<void> expect_no_options(const CommandLine& line, std::string_view what) {
  if (!line.options.empty())
    return make_error(Errc::Invalid, "{} takes no options (got '{}=')", what,
                      line.options.begin()->first);
  return ok_result();
}

}  // namespace

Result<std::string> resolve_user_path(const std::string& path, const std::string& cwd) {
  if (path.empty()) return make_error(Errc::Invalid, "empty path");
  if (path.front() == '/') return fs::path(path).lexically_normal().string();
  if (cwd.empty())
    return make_error(Errc::Invalid,
                      "relative path '{}': the writer's working directory is "
                      "unknown; give an absolute path",
                      path);
  return (fs::path(cwd) / path).lexically_normal().string();
}

ControlPlane::ControlPlane(Graph& graph) : graph_(graph) {
  jobs_.set_observer([this](const JobEvent& event) { on_job_event(event); });
}

ControlPlane::~ControlPlane() {
  shutdown();
}

void ControlPlane::shutdown() {
  jobs_.cancel_all_and_wait();
}

void ControlPlane::set_job_observer(JobManager::Observer observer) {
  std::lock_guard lock(observer_mutex_);
  observer_ = std::move(observer);
}

void ControlPlane::on_job_event(const JobEvent& event) {
  if (event.kind == JobEvent::Kind::StateChanged) {
    switch (event.to) {
      case JobState::Ready:
        graph_.log().info("job {}: ready (base in sync; 'job complete {}' switches the chain)",
                          event.id, event.id);
        break;
      case JobState::Paused:
      case JobState::Standby:
        if (event.io_status != IoStatus::Ok)
          graph_.log().warn("job {}: stopped by its on-error policy ({}): {}", event.id,
                            io_status_name(event.io_status), event.message);
        break;
      case JobState::Pending:
        if (!event.auto_finalize)
          graph_.log().info("job {}: done; 'job finalize {}' makes its graph change", event.id,
                            event.id);
        break;
      case JobState::Concluded:
        if (event.message.empty())
          graph_.log().info("job {}: completed", event.id);
        else
          graph_.log().warn("job {}: ended without changing the graph: {}", event.id,
                            event.message);
        break;
      default:
        break;
    }
  }
  JobManager::Observer observer;
  {
    std::lock_guard lock(observer_mutex_);
    observer = observer_;
  }
  if (observer) observer(event);
}

// ---- execute ----------------------------------------------------------------------------------

Result<std::string> ControlPlane::execute(std::string_view file, std::string_view text,
                                          const ControlRequest& request) {
  Result<std::vector<CommandLine>> parsed = parse_command_lines(text);
  if (!parsed.ok()) {
    graph_.log().warn("control/{}: refused ({}): {}", file, errno_name(parsed.error().code),
                      parsed.error().message);
    return parsed.take_error();
  }
  const std::vector<CommandLine>& lines = *parsed;

  if (file == "snapshot") {
    Result<std::vector<SnapshotRequest>> requests = parse_snapshot_lines(lines, request);
    if (!requests.ok()) {
      graph_.log().warn("control/snapshot: refused ({}): {}", errno_name(requests.error().code),
                        requests.error().message);
      return requests.take_error();
    }
    CHAINFS_TRY(snapshot(*requests));
    return std::string("ok");
  }

  std::string job_id;
  for (const CommandLine& line : lines) {
    Result<std::string> outcome = make_error(Errc::NotFound, "no control file '{}'", file);
    if (file == "stream" || file == "commit")
      outcome = run_job_line(file == "stream", line);
    else if (file == "job")
      outcome = run_verb_line(line);
    else if (file == "node")
      outcome = run_node_line(line, request);
    if (!outcome.ok()) return outcome.take_error();
    job_id = std::move(*outcome);
  }
  return job_id.empty() ? std::string("ok") : "ok " + job_id;
}

Result<std::string> ControlPlane::run_job_line(bool is_stream, const CommandLine& line) {
  const char* file = is_stream ? "stream" : "commit";
  auto parse = [&]() -> Result<JobStart> {
    if (line.words.size() != 1)
      return make_error(Errc::Invalid,
                        "usage: NODE [base=NODE] [speed=RATE] [id=ID] [on-error=POLICY] "
                        "[auto-finalize=off] [auto-dismiss=on]");
    JobStart start;
    start.node = line.words[0];
    for (const auto& [key, value] : line.options) {
      if (key == "base") {
        start.base = value;
      } else if (key == "speed") {
        auto rate = parse_rate(value);
        if (!rate.ok()) return make_error(Errc::Invalid, "speed={}", rate.error().message);
        start.options.speed = *rate;
      } else if (key == "id") {
        start.options.id = value;
      } else if (key == "on-error") {
        auto policy = parse_on_error_policy(value);
        if (!policy)
          return make_error(Errc::Invalid, "on-error={}: expected report, stop, enospc or ignore",
                            value);
        start.options.on_error = *policy;
      } else if (key == "auto-finalize") {
        CHAINFS_ASSIGN_OR_RETURN(start.options.auto_finalize, parse_switch(key, value));
      } else if (key == "auto-dismiss") {
        CHAINFS_ASSIGN_OR_RETURN(start.options.auto_dismiss, parse_switch(key, value));
      } else {
        return make_error(Errc::Invalid, "unknown option '{}=' (expected {})", key, kJobOptions);
      }
    }
    return start;
  };
  Result<JobStart> start = parse();
  if (!start.ok()) {
    graph_.log().warn("control/{} '{}': refused ({}): {}", file, line.text,
                      errno_name(start.error().code), start.error().message);
    return start.take_error();
  }
  return is_stream ? stream(*start) : commit(*start);
}

Result<std::string> ControlPlane::run_verb_line(const CommandLine& line) {
  auto run = [&]() -> Result<void> {
    constexpr std::string_view kUsage =
        "pause|resume|cancel|complete|finalize|dismiss ID, or speed ID RATE";
    CHAINFS_TRY(expect_no_options(line, "control/job"));
    if (line.words.empty()) return make_error(Errc::Invalid, "usage: {}", kUsage);
    std::optional<JobVerb> verb = parse_job_verb(line.words[0]);
    if (!verb)
      return make_error(Errc::Invalid, "unknown verb '{}' (usage: {})", line.words[0], kUsage);
    if (*verb == JobVerb::Speed) {
      CHAINFS_TRY(expect_words(line, 3, "speed ID RATE"));
      auto rate = parse_rate(line.words[2]);
      if (!rate.ok()) return make_error(Errc::Invalid, "speed: {}", rate.error().message);
      return job_speed(line.words[1], *rate);
    }
    CHAINFS_TRY(expect_words(line, 2, fmt::format("{} ID", line.words[0])));
    return job_verb(line.words[1], *verb);
  };
  Result<void> outcome = run();
  if (!outcome.ok()) {
    // job_verb/job_speed log their own refusals; these are the syntax errors before them.
    if (outcome.error().code == Errc::Invalid)
      graph_.log().warn("control/job '{}': refused ({}): {}", line.text,
                        errno_name(outcome.error().code), outcome.error().message);
    return outcome.take_error();
  }
  return std::string();
}

Result<std::string> ControlPlane::run_node_line(const CommandLine& line,
                                                const ControlRequest& request) {
  auto run = [&]() -> Result<std::string> {
    if (line.words.empty())
      return make_error(Errc::Invalid, "missing command (open, close or remove)");
    const std::string& verb = line.words[0];
    if (verb == "close") {
      CHAINFS_TRY(expect_no_options(line, "close"));
      CHAINFS_TRY(expect_words(line, 2, "close CHAIN"));
      CHAINFS_TRY(close_chain(line.words[1]));
      return fmt::format("chain '{}' closed", line.words[1]);
    }
    if (verb == "remove") {
      CHAINFS_TRY(expect_no_options(line, "remove"));
      CHAINFS_TRY(expect_words(line, 2, "remove NODE"));
      CHAINFS_TRY(graph_.remove_node(line.words[1]));
      return fmt::format("node '{}' removed", line.words[1]);
    }
    if (verb != "open")
      return make_error(Errc::Invalid, "unknown command '{}' (expected open, close or remove)",
                        verb);
    ImageSpec spec;
    bool have_path = false;
    for (size_t i = 1; i < line.words.size(); ++i) {
      if (line.words[i] == "read-only") {
        spec.read_only = true;
      } else if (!have_path) {
        CHAINFS_ASSIGN_OR_RETURN(spec.path, resolve_user_path(line.words[i], request.cwd));
        have_path = true;
      } else {
        return make_error(Errc::Invalid, "unexpected word '{}' after the path", line.words[i]);
      }
    }
    if (!have_path)
      return make_error(Errc::Invalid, "usage: open PATH [chain=NAME] [name=NODE] [read-only]");
    for (const auto& [key, value] : line.options) {
      if (key == "chain")
        spec.chain = value;
      else if (key == "name")
        spec.node_name = value;
      else
        return make_error(Errc::Invalid, "unknown option '{}=' (expected chain= or name=)", key);
    }
    CHAINFS_ASSIGN_OR_RETURN(NodeRef top, graph_.open_image(spec));
    return fmt::format("opened '{}' as node '{}'{}", spec.path, top->name(),
                       spec.read_only ? " (read-only)" : "");
  };
  Result<std::string> outcome = run();
  if (!outcome.ok()) {
    graph_.log().warn("control/node '{}': refused ({}): {}", line.text,
                      errno_name(outcome.error().code), outcome.error().message);
    return outcome.take_error();
  }
  graph_.log().info("control/node '{}': {}", line.text, *outcome);
  return std::string();
}

Result<std::vector<SnapshotRequest>> ControlPlane::parse_snapshot_lines(
    const std::vector<CommandLine>& lines, const ControlRequest& request) {
  std::vector<SnapshotRequest> requests;
  for (const CommandLine& line : lines) {
    auto parse = [&]() -> Result<SnapshotRequest> {
      CHAINFS_TRY(expect_words(line, 2, "NODE OVERLAY_PATH [name=NODE] [mode=create|existing]"));
      SnapshotRequest r;
      r.node = line.words[0];
      CHAINFS_ASSIGN_OR_RETURN(r.overlay_path, resolve_user_path(line.words[1], request.cwd));
      for (const auto& [key, value] : line.options) {
        if (key == "name") {
          r.overlay_name = value;
        } else if (key == "mode") {
          if (value == "create")
            r.mode = OverlayMode::Create;
          else if (value == "existing")
            r.mode = OverlayMode::Existing;
          else
            return make_error(Errc::Invalid, "mode={}: expected create or existing", value);
        } else {
          return make_error(Errc::Invalid, "unknown option '{}=' (expected name= or mode=)", key);
        }
      }
      return r;
    };
    Result<SnapshotRequest> r = parse();
    if (!r.ok()) return make_error(r.error().code, "'{}': {}", line.text, r.error().message);
    requests.push_back(std::move(*r));
  }
  return requests;
}

// ---- the commands -----------------------------------------------------------------------------

Result<std::string> ControlPlane::start_job(bool is_stream, const JobStart& start) {
  CHAINFS_ASSIGN_OR_RETURN(LayerSpan span,
                           resolve_span(graph_, start.node, start.base,
                                        is_stream ? BaseDefault::None : BaseDefault::Bottom));
  std::unique_ptr<Job> job;
  if (is_stream) {
    job = std::make_unique<StreamJob>(graph_, std::move(span));
  } else {
    const bool active = takes_guest_writes(graph_, span.top);
    job = std::make_unique<CommitJob>(graph_, std::move(span), active);
  }
  return jobs_.start(std::move(job), start.options);
}

Result<std::string> ControlPlane::stream(const JobStart& start) {
  Result<std::string> id = start_job(true, start);
  if (id.ok())
    graph_.log().info("control/stream: {}: started job {}", describe_start(true, start), *id);
  else
    graph_.log().warn("control/stream: {}: refused ({}): {}", describe_start(true, start),
                      errno_name(id.error().code), id.error().message);
  return id;
}

Result<std::string> ControlPlane::commit(const JobStart& start) {
  Result<std::string> id = start_job(false, start);
  if (id.ok())
    graph_.log().info("control/commit: {}: started job {}", describe_start(false, start), *id);
  else
    graph_.log().warn("control/commit: {}: refused ({}): {}", describe_start(false, start),
                      errno_name(id.error().code), id.error().message);
  return id;
}

Result<std::vector<std::string>> ControlPlane::snapshot(
    const std::vector<SnapshotRequest>& requests) {
  Result<std::vector<std::string>> names = run_snapshots(graph_, requests);
  std::string what;
  for (const SnapshotRequest& r : requests)
    what += fmt::format("{}'{}' onto {}", what.empty() ? "" : ", ", r.node, r.overlay_path);
  if (names.ok()) {
    std::string made;
    for (const std::string& n : *names) made += fmt::format("{}'{}'", made.empty() ? "" : ", ", n);
    graph_.log().info("control/snapshot: {}: done (new overlay node(s) {})", what, made);
  } else {
    graph_.log().warn("control/snapshot: {}: refused ({}), nothing applied: {}", what,
                      errno_name(names.error().code), names.error().message);
  }
  return names;
}

Result<void> ControlPlane::job_verb(const std::string& id, JobVerb verb) {
  Result<void> outcome = jobs_.verb(id, verb);
  if (outcome.ok())
    graph_.log().info("control/job: {} {}: done", job_verb_name(verb), id);
  else
    graph_.log().warn("control/job: {} {}: refused ({}): {}", job_verb_name(verb), id,
                      errno_name(outcome.error().code), outcome.error().message);
  return outcome;
}

Result<void> ControlPlane::job_speed(const std::string& id, uint64_t bytes_per_second) {
  Result<void> outcome = jobs_.set_speed(id, bytes_per_second);
  if (outcome.ok())
    graph_.log().info("control/job: speed {} {}: done", id, bytes_per_second);
  else
    graph_.log().warn("control/job: speed {} {}: refused ({}): {}", id, bytes_per_second,
                      errno_name(outcome.error().code), outcome.error().message);
  return outcome;
}

Result<void> ControlPlane::close_chain(const std::string& name) {
  std::optional<ChainView> chain = graph_.chain(name);
  if (!chain) return make_error(Errc::NotFound, "no chain '{}'", name);
  // The jobs working on the chain's layers, as their claims name them ("job <id>").
  std::vector<NodeRef> nodes = layers_below(*chain->root);
  nodes.insert(nodes.begin(), chain->root);
  std::set<std::string> ids;
  for (const NodeRef& n : nodes)
    for (const ClaimInfo& c : n->claims())
      if (c.claimant.rfind("job ", 0) == 0) ids.insert(c.claimant.substr(4));
  chain.reset();
  nodes.clear();
  for (const std::string& id : ids) {
    graph_.log().info("closing chain '{}': cancelling job {}", name, id);
    jobs_.verb(id, JobVerb::Cancel).ignore_error();  // refused only once it is ending anyway
  }
  for (const std::string& id : ids) (void)jobs_.wait_concluded(id, std::chrono::minutes(10));
  return graph_.remove_chain(name);
}

}  // namespace chainfs
