// Config -> Graph: open the declared nodes in dependency order, then the chains and the images.
//
// Order: a node is opened after its backing and its fault child (Graph::open_named_node looks
// them up by name). Among the nodes that are ready, those that will not look into an image header
// go first: a qcow2 node whose backing is left to the header opens the header's chain under names
// made from file stems, and opening the explicitly named nodes before that keeps their names free.
//
// Failure: everything this call added (chains, then named nodes, in reverse order so that parents
// go before the nodes they reference) is removed again, so the caller's graph is as it was.
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <optional>

#include "config/config.h"

namespace chainfs {

namespace {

bool follows_header(const NodeSpec& spec) {
  return spec.driver == "qcow2" && !spec.backing;
}

std::vector<std::string> dependencies(const NodeSpec& spec) {
  std::vector<std::string> deps;
  if (spec.backing && !spec.backing->empty()) deps.push_back(*spec.backing);
  if (!spec.child.empty()) deps.push_back(spec.child);
  return deps;
}

// Indices of config.nodes in the order to open them, or the node that cannot be ordered.
Result<std::vector<size_t>> open_order(const Config& config) {
  const auto& nodes = config.nodes;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < nodes.size(); ++i) index.emplace(nodes[i].spec.name, i);
  std::vector<bool> opened(nodes.size(), false);
  auto ready = [&](size_t i) {
    for (const std::string& dep : dependencies(nodes[i].spec)) {
      auto it = index.find(dep);
      // A name not in the config is left to the graph, which reports it when opening.
      if (it != index.end() && !opened[it->second]) return false;  // itself included
    }
    return true;
  };
  std::vector<size_t> order;
  while (order.size() < nodes.size()) {
    std::optional<size_t> pick;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (opened[i] || !ready(i)) continue;
      if (!pick || (follows_header(nodes[*pick].spec) && !follows_header(nodes[i].spec))) pick = i;
      if (!follows_header(nodes[*pick].spec)) break;
    }
    if (!pick) {
      for (size_t i = 0; i < nodes.size(); ++i)
        if (!opened[i])
          return make_error(Errc::Invalid, "{}:{}: node '{}': backing cycle through its {}",
                            config.path, nodes[i].line, nodes[i].spec.name,
                            nodes[i].spec.child.empty() ? "backing" : "child");
    }
    opened[*pick] = true;
    order.push_back(*pick);
  }
  return order;
}

// What build_graph added, undone in reverse on failure.
class Undo {
 public:
  explicit Undo(Graph& graph) : graph_(graph) {}
  ~Undo() {
    if (committed_) return;
    for (auto it = chains_.rbegin(); it != chains_.rend(); ++it)
      graph_.remove_chain(*it).ignore_error();
    for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it)
      graph_.remove_node(*it).ignore_error();
  }
  Undo(const Undo&) = delete;
  Undo& operator=(const Undo&) = delete;

  void added_chain(std::string name) { chains_.push_back(std::move(name)); }
  void added_node(std::string name) { nodes_.push_back(std::move(name)); }
  void commit() { committed_ = true; }

 private:
  Graph& graph_;
  std::vector<std::string> chains_;
  std::vector<std::string> nodes_;
  bool committed_ = false;
};

Error at_line(const Config& config, int line, std::string_view what, const Error& error) {
  return Error{error.code, fmt::format("{}:{}: {}: {}", config.path, line, what, error.message)};
}

}  // namespace

Result<void> build_graph(Graph& graph, const Config& config) {
  CHAINFS_ASSIGN_OR_RETURN(std::vector<size_t> order, open_order(config));
  Undo undo(graph);
  for (size_t i : order) {
    const ConfigNode& node = config.nodes[i];
    Result<NodeRef> opened = graph.open_named_node(node.spec);
    if (!opened)
      return at_line(config, node.line, fmt::format("node '{}'", node.spec.name), opened.error());
    undo.added_node(node.spec.name);
  }
  for (const ConfigChain& chain : config.chains) {
    std::string what = fmt::format("chain '{}'", chain.name);
    Result<NodeRef> root = graph.find(chain.node);
    if (!root) return at_line(config, chain.line, what, root.error());
    Result<void> added = graph.add_chain(chain.name, std::move(*root));
    if (!added) return at_line(config, chain.line, what, added.error());
    undo.added_chain(chain.name);
  }
  for (const ConfigImage& image : config.images) {
    std::string chain_name = image.spec.chain.empty()
                                 ? std::filesystem::path(image.spec.path).stem().string()
                                 : image.spec.chain;
    Result<NodeRef> top = graph.open_image(image.spec);
    if (!top)
      return at_line(config, image.line, fmt::format("image '{}'", image.spec.path), top.error());
    undo.added_chain(chain_name);
  }
  undo.commit();
  return {};
}

}  // namespace chainfs
