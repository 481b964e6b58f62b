#include "fusefs/render.h"

#include <set>

#include <fmt/format.h>

#include "blockcore/jobs/rate.h"
#include "blockcore/util/quote.h"

namespace chainfs::fusefs {

std::string json_quote(std::string_view text) {
  return double_quoted(text);
}

std::string human_size(uint64_t bytes) {
  static constexpr const char* kSuffixes[] = {"K", "M", "G", "T", "P", "E"};
  if (bytes < 1024) return fmt::format("{}", bytes);
  double value = static_cast<double>(bytes);
  int index = -1;
  while (value >= 1024.0 && index < 5) {
    value /= 1024.0;
    ++index;
  }
  std::string number = fmt::format("{:.1f}", value);
  if (number.size() > 2 && number.compare(number.size() - 2, 2, ".0") == 0)
    number.resize(number.size() - 2);
  return number + kSuffixes[index];
}

namespace {

// A job's graph.json object: the keys of jobs/<id>, in the same order (docs/graph-json.md).
std::string job_json(const JobInfo& job) {
  auto null_or = [](const std::string& text) {
    return text.empty() ? std::string("null") : json_quote(text);
  };
  return fmt::format(
      "{{\"id\": {}, \"type\": {}, \"state\": {}, \"node\": {}, \"base\": {}, "
      "\"progress\": {}, \"total\": {}, \"speed\": {}, \"rate\": {}, \"io-status\": {}, "
      "\"error\": {}}}",
      json_quote(job.id), json_quote(job.type), json_quote(job_state_name(job.state)),
      json_quote(job.node), null_or(job.base), job.progress, job.total, job.speed,
      json_quote(format_rate(job.rate)), json_quote(io_status_name(job.io_status)),
      job.error ? json_quote(*job.error) : std::string("null"));
}

// Quotes a Graphviz ID.
std::string dot_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

std::string render_graph_json(const Graph& graph, const std::vector<JobInfo>& jobs) {
  std::string out = "{\n";
  out += fmt::format("  \"version\": 1,\n  \"read-only\": {},\n", graph.options().read_only);
  out += "  \"nodes\": [";
  std::vector<NodeRef> nodes = graph.listed_nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& node = *nodes[i];
    bool writable = graph.check_writable(node).ok();
    out += i ? ",\n" : "\n";
    out += fmt::format(
        "    {{\"name\": {}, \"id\": {}, \"driver\": {}, \"filename\": {}, \"size\": {}, "
        "\"read-only\": {}, \"writable\": {}, \"children\": [",
        json_quote(node.name()), node.id(), json_quote(node.driver_name()),
        json_quote(node.filename()), node.size(), node.read_only() || graph.options().read_only,
        writable);
    std::vector<Child> children = node.children();
    for (size_t c = 0; c < children.size(); ++c)
      out += fmt::format("{}{{\"role\": {}, \"node\": {}}}", c ? ", " : "",
                         json_quote(child_role_name(children[c].role)),
                         json_quote(children[c].node->name()));
    out += "]}";
  }
  out += nodes.empty() ? "],\n" : "\n  ],\n";
  out += "  \"chains\": [";
  std::vector<ChainView> chains = graph.chains();
  for (size_t i = 0; i < chains.size(); ++i) {
    out += i ? ",\n" : "\n";
    out += fmt::format("    {{\"name\": {}, \"root\": {}, \"layers\": [",
                       json_quote(chains[i].name), json_quote(chains[i].root->name()));
    for (size_t l = 0; l < chains[i].layers.size(); ++l)
      out += fmt::format("{}{}", l ? ", " : "", json_quote(chains[i].layers[l]->name()));
    out += "]}";
  }
  out += chains.empty() ? "],\n" : "\n  ],\n";
  out += "  \"jobs\": [";
  for (size_t i = 0; i < jobs.size(); ++i) out += (i ? ",\n    " : "\n    ") + job_json(jobs[i]);
  out += jobs.empty() ? "]\n" : "\n  ]\n";
  out += "}\n";
  return out;
}

std::string render_graph_dot(const Graph& graph, const std::vector<JobInfo>& jobs) {
  std::string out =
      "digraph chainfs {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n";
  std::vector<NodeRef> nodes = graph.listed_nodes();
  for (const NodeRef& node : nodes) {
    bool writable = graph.check_writable(*node).ok();
    std::string label = fmt::format("{}\n{} {}{}", node->name(), node->driver_name(),
                                    human_size(node->size()), writable ? "" : " ro");
    out += fmt::format("  {} [label={}{}];\n", dot_quote(node->name()), dot_quote(label),
                       writable ? ", style=bold" : "");
  }
  for (const NodeRef& node : nodes)
    for (const Child& child : node->children())
      out += fmt::format("  {} -> {} [label={}{}];\n", dot_quote(node->name()),
                         dot_quote(child.node->name()), dot_quote(child_role_name(child.role)),
                         child.role == ChildRole::File ? ", style=dashed" : "");
  for (const ChainView& chain : graph.chains()) {
    std::string id = "chain:" + chain.name;
    out += fmt::format("  {} [shape=ellipse, label={}];\n", dot_quote(id),
                       dot_quote("chain " + chain.name));
    out += fmt::format("  {} -> {};\n", dot_quote(id), dot_quote(chain.root->name()));
  }
  // Jobs point at the nodes they work on, where those are still listed (a concluded job's node
  // may have left the graph).
  std::set<std::string> listed;
  for (const NodeRef& node : nodes) listed.insert(node->name());
  for (const JobInfo& job : jobs) {
    std::string id = "job:" + job.id;
    std::string label = fmt::format("{}\n{} {}", job.id, job.type, job_state_name(job.state));
    if (job.total) label += fmt::format(" {}%", job.progress * 100 / job.total);
    out += fmt::format("  {} [shape=diamond, label={}];\n", dot_quote(id), dot_quote(label));
    if (listed.count(job.node))
      out += fmt::format("  {} -> {} [label=\"node\", style=dotted];\n", dot_quote(id),
                         dot_quote(job.node));
    if (!job.base.empty() && listed.count(job.base))
      out += fmt::format("  {} -> {} [label=\"base\", style=dotted];\n", dot_quote(id),
                         dot_quote(job.base));
  }
  out += "}\n";
  return out;
}

}  // namespace chainfs::fusefs
