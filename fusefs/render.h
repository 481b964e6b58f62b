// What the read-only files of the mount show: graph.json (schema: docs/graph-json.md), graph.dot,
// jobs/<id> (a YAML mapping, INTERFACE.md "Job status file") and the log lines. Pure functions of
// the graph (and of the jobs the job engine reports), so they are unit-tested without a mount.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "blockcore/graph/graph.h"

namespace chainfs::fusefs {

// One job as the job engine reports it: its fields in the order jobs/<id> lists them. A value is
// null (YAML `~`, JSON null), a number, or a string.
struct JobField {
  std::string key;
  std::variant<std::monostate, uint64_t, std::string> value;
};
struct JobView {
  std::string id;
  std::vector<JobField> fields;  // "id" first, as in INTERFACE.md
};

// The hook through which the job engine shows its jobs in jobs/ and graph.json.
class JobSource {
 public:
  virtual ~JobSource() = default;
  virtual std::vector<JobView> jobs() const = 0;  // sorted by id
  virtual std::optional<JobView> job(const std::string& id) const = 0;
};

// The whole graph as JSON: listed nodes, chains and jobs (docs/graph-json.md). `jobs` may be null.
std::string render_graph_json(const Graph& graph, const JobSource* jobs);
// The same graph as a Graphviz digraph.
std::string render_graph_dot(const Graph& graph);
// jobs/<id>: one "key: value" line per field.
std::string render_job_yaml(const JobView& job);

// JSON string literal (with quotes) for any bytes: escapes quotes, backslashes and control bytes.
std::string json_quote(std::string_view text);
// Human-readable size with binary suffixes: "0", "512", "1.5K", "1G", "2.3T".
std::string human_size(uint64_t bytes);

}  // namespace chainfs::fusefs
