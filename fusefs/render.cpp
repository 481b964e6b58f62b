#include "fusefs/render.h"

#include <cctype>

#include <fmt/format.h>

namespace chainfs::fusefs {

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) out += fmt::format("\\u{:04x}", c);
        else out += ch;
    }
  }
  out += '"';
  return out;
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

std::string json_value(const JobField& field) {
  if (std::holds_alternative<std::monostate>(field.value)) return "null";
  if (const auto* n = std::get_if<uint64_t>(&field.value)) return fmt::format("{}", *n);
  return json_quote(std::get<std::string>(field.value));
}

// A YAML scalar that reads back as the same string: plain when that is unambiguous, else the
// JSON-style double-quoted form (which YAML accepts).
std::string yaml_string(const std::string& s) {
  bool plain = !s.empty() && s != "~" && s != "null" && s != "true" && s != "false";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/' || c == '+')) plain = false;
  }
  if (plain && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+')) {
    // Would read back as a number unless it has a letter after the digits (like "412.3M").
    bool has_alpha = false;
    for (char ch : s) has_alpha = has_alpha || std::isalpha(static_cast<unsigned char>(ch));
    plain = has_alpha && s[0] != '-' && s[0] != '+';
  }
  return plain ? s : json_quote(s);
}

// Quotes a Graphviz ID.
std::string dot_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

std::string render_graph_json(const Graph& graph, const JobSource* jobs) {
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
    out += fmt::format("    {{\"name\": {}, \"root\": {}, \"layers\": [", json_quote(chains[i].name),
                       json_quote(chains[i].root->name()));
    for (size_t l = 0; l < chains[i].layers.size(); ++l)
      out += fmt::format("{}{}", l ? ", " : "", json_quote(chains[i].layers[l]->name()));
    out += "]}";
  }
  out += chains.empty() ? "],\n" : "\n  ],\n";
  out += "  \"jobs\": [";
  std::vector<JobView> job_list = jobs ? jobs->jobs() : std::vector<JobView>{};
  for (size_t i = 0; i < job_list.size(); ++i) {
    out += i ? ",\n    {" : "\n    {";
    bool has_id = false;
    std::string fields;
    for (const JobField& f : job_list[i].fields) {
      has_id = has_id || f.key == "id";
      fields += fmt::format("{}{}: {}", fields.empty() ? "" : ", ", json_quote(f.key), json_value(f));
    }
    if (!has_id)
      fields = fmt::format("\"id\": {}{}{}", json_quote(job_list[i].id), fields.empty() ? "" : ", ",
                           fields);
    out += fields + "}";
  }
  out += job_list.empty() ? "]\n" : "\n  ]\n";
  out += "}\n";
  return out;
}

std::string render_graph_dot(const Graph& graph) {
  std::string out = "digraph chainfs {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n";
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
  out += "}\n";
  return out;
}

std::string render_job_yaml(const JobView& job) {
  std::string out;
  bool has_id = false;
  for (const JobField& f : job.fields) has_id = has_id || f.key == "id";
  if (!has_id) out += fmt::format("id: {}\n", yaml_string(job.id));
  for (const JobField& f : job.fields) {
    std::string value;
    if (std::holds_alternative<std::monostate>(f.value)) value = "~";
    else if (const auto* n = std::get_if<uint64_t>(&f.value)) value = fmt::format("{}", *n);
    else value = yaml_string(std::get<std::string>(f.value));
    out += fmt::format("{}: {}\n", f.key, value);
  }
  return out;
}

}  // namespace chainfs::fusefs
