// Checks between the items of a parsed config, and the load_config entry points.
//
// Names: a qcow2 or raw node `x` also takes the name `x.file` (its protocol node), so `x.file` is
// as taken as `x`. References (`backing`, `child`, a chain's `node`) must name an item of `nodes:`.
// Cycles are looked for along backing and child references only: those are the edges build_graph
// opens in dependency order, and a cycle there has no order.
#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include "config/parsed_config.h"

namespace chainfs::config_detail {

namespace fs = std::filesystem;

namespace {

bool is_format(const NodeSpec& spec) {
  return spec.driver == "qcow2" || spec.driver == "raw";
}

struct NameClaim {
  std::string owner;  // "node 'base'", "the protocol node of node 'base'", "image '/x.qcow2'"
  int line;
};

// Node names, protocol names and named image top nodes share one namespace (nodes/).
void check_node_names(const ParsedConfig& parsed, Problems& problems) {
  std::map<std::string, NameClaim> taken;
  auto claim = [&](const std::string& name, NameClaim who, std::string_view context, int line,
                   std::string_view what) {
    auto [it, fresh] = taken.emplace(name, who);
    if (!fresh)
      problems.add(line, context,
                   fmt::format("{} '{}' is already taken by {} (line {})", what, name,
                               it->second.owner, it->second.line));
    return fresh;
  };
  const auto& nodes = parsed.config.nodes;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeSpec& spec = nodes[i].spec;
    const NodeSource& src = parsed.nodes[i];
    if (spec.name.empty()) continue;
    // A node whose own name is taken is reported once, not again for its protocol name.
    if (claim(spec.name, {src.context, src.name_line}, src.context, src.name_line, "name") &&
        is_format(spec))
      claim(spec.name + ".file", {"the protocol node of " + src.context, src.name_line},
            src.context, src.name_line, "its protocol node name");
  }
  const auto& images = parsed.config.images;
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageSource& src = parsed.images[i];
    if (images[i].spec.node_name.empty()) continue;
    claim(images[i].spec.node_name, {src.context, src.name_line}, src.context, src.name_line,
          "node name");
  }
}

void check_chain_names(const ParsedConfig& parsed, Problems& problems) {
  std::map<std::string, NameClaim> taken;
  auto claim = [&](const std::string& name, const std::string& context, int line,
                   std::string_view how) {
    auto [it, fresh] = taken.emplace(name, NameClaim{context, line});
    if (!fresh)
      problems.add(line, context,
                   fmt::format("chain name '{}'{} is already taken by {} (line {})", name, how,
                               it->second.owner, it->second.line));
  };
  const auto& chains = parsed.config.chains;
  for (size_t i = 0; i < chains.size(); ++i)
    if (!chains[i].name.empty())
      claim(chains[i].name, parsed.chains[i].context, parsed.chains[i].name_line, "");
  const auto& images = parsed.config.images;
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageSpec& spec = images[i].spec;
    const ImageSource& src = parsed.images[i];
    if (!spec.chain.empty())
      claim(spec.chain, src.context, src.chain_line, "");
    else if (!spec.path.empty())
      claim(image_stem(spec.path), src.context, src.path_line,
            " (the image's file stem; set 'chain' to choose another)");
  }
}

// Index of the node named `name` in `nodes:`, or -1.
std::map<std::string, size_t> node_index(const ParsedConfig& parsed) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < parsed.config.nodes.size(); ++i)
    if (!parsed.config.nodes[i].spec.name.empty())
      index.emplace(parsed.config.nodes[i].spec.name, i);  // the first wins, as in build_graph
  return index;
}

std::vector<std::string_view> node_names(const ParsedConfig& parsed) {
  std::vector<std::string_view> names;
  for (const ConfigNode& n : parsed.config.nodes)
    if (!n.spec.name.empty()) names.push_back(n.spec.name);
  return names;
}

void check_references(const ParsedConfig& parsed, Problems& problems) {
  std::map<std::string, size_t> index = node_index(parsed);
  std::vector<std::string_view> names = node_names(parsed);
  auto check = [&](const std::string& ref, std::string_view key, const std::string& context,
                   int line) {
    if (ref.empty() || index.count(ref)) return;
    std::string hint =
        ref.size() > 5 && ref.ends_with(".file") && index.count(ref.substr(0, ref.size() - 5))
            ? " (protocol nodes cannot be referenced in the config)"
            : did_you_mean(ref, names);
    problems.add(line, context,
                 fmt::format("{} '{}' is not a node declared in 'nodes:'{}", key, ref, hint));
  };
  const auto& nodes = parsed.config.nodes;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeSpec& spec = nodes[i].spec;
    const NodeSource& src = parsed.nodes[i];
    if (spec.backing) check(*spec.backing, "backing", src.context, src.backing_line);
    check(spec.child, "child", src.context, src.child_line);
  }
  const auto& chains = parsed.config.chains;
  for (size_t i = 0; i < chains.size(); ++i)
    check(chains[i].node, "node", parsed.chains[i].context, parsed.chains[i].node_line);
}

// The nodes a node needs opened before it: its backing and its fault child.
std::vector<std::string> dependencies(const NodeSpec& spec) {
  std::vector<std::string> deps;
  if (spec.backing && !spec.backing->empty()) deps.push_back(*spec.backing);
  if (!spec.child.empty()) deps.push_back(spec.child);
  return deps;
}

// Depth-first search over backing/child references; each cycle is reported once, at the node of
// the cycle declared first, e.g. "backing cycle: a -> b -> a".
void check_cycles(const ParsedConfig& parsed, Problems& problems) {
  const auto& nodes = parsed.config.nodes;
  std::map<std::string, size_t> index = node_index(parsed);
  enum class Mark { New, OnPath, Done };
  std::vector<Mark> marks(nodes.size(), Mark::New);
  std::vector<size_t> path;

  auto report = [&](size_t repeated) {
    auto start = std::find(path.begin(), path.end(), repeated);
    std::vector<size_t> cycle(start, path.end());
    size_t first = *std::min_element(cycle.begin(), cycle.end());  // declared first
    std::rotate(cycle.begin(), std::find(cycle.begin(), cycle.end(), first), cycle.end());
    std::string text;
    for (size_t i : cycle) text += nodes[i].spec.name + " -> ";
    text += nodes[first].spec.name;
    problems.add(nodes[first].line, parsed.nodes[first].context,
                 fmt::format("backing cycle: {}", text));
  };
  auto visit = [&](auto&& self, size_t i) -> void {
    marks[i] = Mark::OnPath;
    path.push_back(i);
    for (const std::string& dep : dependencies(nodes[i].spec)) {
      auto it = index.find(dep);
      if (it == index.end()) continue;  // dangling: reported by check_references
      if (marks[it->second] == Mark::OnPath)
        report(it->second);
      else if (marks[it->second] == Mark::New)
        self(self, it->second);
    }
    path.pop_back();
    marks[i] = Mark::Done;
  };
  for (size_t i = 0; i < nodes.size(); ++i)
    if (marks[i] == Mark::New && !nodes[i].spec.name.empty()) visit(visit, i);
}

// A problem with the host file at `resolved`, or "".
std::string file_problem(const std::string& what, const std::string& as_written,
                         const std::string& resolved) {
  std::error_code ec;
  fs::file_status status = fs::status(resolved, ec);
  std::string looked = as_written == resolved ? "" : fmt::format(" (looked for {})", resolved);
  if (ec || !fs::exists(status)) {
    std::string why = ec && ec != std::errc::no_such_file_or_directory ? ec.message() : "";
    return why.empty() ? fmt::format("{} '{}' does not exist{}", what, as_written, looked)
                       : fmt::format("{} '{}': {}{}", what, as_written, why, looked);
  }
  if (fs::is_directory(status))
    return fmt::format("{} '{}' is a directory, not an image{}", what, as_written, looked);
  return "";
}

void check_files(const ParsedConfig& parsed, Problems& problems) {
  const auto& nodes = parsed.config.nodes;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeSource& src = parsed.nodes[i];
    if (nodes[i].spec.file.empty() || !is_format(nodes[i].spec)) continue;
    std::string problem = file_problem("file", src.file_as_written, nodes[i].spec.file);
    if (!problem.empty()) problems.add(src.file_line, src.context, problem, Errc::NotFound);
  }
  const auto& images = parsed.config.images;
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageSource& src = parsed.images[i];
    if (images[i].spec.path.empty()) continue;
    std::string problem = file_problem("path", src.path_as_written, images[i].spec.path);
    if (!problem.empty()) problems.add(src.path_line, src.context, problem, Errc::NotFound);
  }
}

}  // namespace

void check_config_items(const ParsedConfig& parsed, Problems& problems) {
  check_node_names(parsed, problems);
  check_chain_names(parsed, problems);
  check_references(parsed, problems);
  check_cycles(parsed, problems);
  check_files(parsed, problems);
}

}  // namespace chainfs::config_detail

namespace chainfs {

namespace fs = std::filesystem;

Result<Config> load_config_string(std::string_view text, const std::string& name) {
  config_detail::ParsedConfig parsed;
  parsed.config.path = name;
  std::error_code ec;
  fs::path absolute = fs::absolute(fs::path(name), ec);
  parsed.base_dir = ec ? fs::path(name).parent_path() : absolute.parent_path();
  config_detail::Problems problems(name);
  config_detail::parse_config_text(text, parsed, problems);
  config_detail::check_config_items(parsed, problems);
  if (!problems.empty()) return problems.to_error();
  return std::move(parsed.config);
}

Result<Config> load_config(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    return make_error(Errc::Invalid, "{}: is a directory, not a config file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    return make_error(errc_from_errno(err), "{}: cannot open the config file: {}", path,
                      std::generic_category().message(err));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return make_error(Errc::Io, "{}: cannot read the config file", path);
  return load_config_string(text.str(), path);
}

}  // namespace chainfs
