// What the generated files of the mount show: graph.json (schema: docs/graph-json.md) and
// graph.dot. Pure functions of the graph and of the jobs the job engine lists, so they are
// unit-tested without a mount. (jobs/<id> is JobManager::status_yaml(), the job engine's own.)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "blockcore/graph/graph.h"
#include "blockcore/jobs/job_status.h"

namespace chainfs::fusefs {

// The whole graph as JSON: listed nodes, chains and jobs (docs/graph-json.md). `jobs` as
// JobManager::list() gives them (sorted by id).
std::string render_graph_json(const Graph& graph, const std::vector<JobInfo>& jobs);
// The same graph as a Graphviz digraph; each job is a diamond pointing at its node and base.
std::string render_graph_dot(const Graph& graph, const std::vector<JobInfo>& jobs);

// JSON string literal (with quotes) for any bytes: escapes quotes, backslashes and control bytes.
std::string json_quote(std::string_view text);
// Human-readable size with binary suffixes: "0", "512", "1.5K", "1G", "2.3T".
std::string human_size(uint64_t bytes);

}  // namespace chainfs::fusefs
