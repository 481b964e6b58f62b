#include "blockcore/jobs/layers.h"

#include <algorithm>

#include <fmt/format.h>

namespace chainfs {

bool is_filter(const Node& node) {
  for (const Child& edge : node.children())
    if (edge.role == ChildRole::Filtered) return true;
  return false;
}

NodeRef layer_below(const Node& node) {
  NodeRef filtered;
  for (Child& edge : node.children()) {
    if (edge.role == ChildRole::Backing) return std::move(edge.node);
    if (edge.role == ChildRole::Filtered) filtered = std::move(edge.node);
  }
  return filtered;
}

std::vector<NodeRef> layers_below(const Node& top) {
  std::vector<NodeRef> out;
  for (NodeRef n = layer_below(top); n; n = layer_below(*n)) {
    // Edges never form a loop (the graph refuses one); the bound only guards this loop.
    if (out.size() > 4096) break;
    out.push_back(n);
  }
  return out;
}

std::string describe_nodes(const std::vector<NodeRef>& nodes) {
  if (nodes.empty()) return "none";
  std::string out;
  for (const NodeRef& n : nodes) {
    if (!out.empty()) out += ", ";
    out += fmt::format("'{}'", n->name());
  }
  return out;
}

Result<LayerSpan> resolve_span(Graph& graph, const std::string& top_name,
                               const std::string& base_name, BaseDefault base_default) {
  LayerSpan span;
  CHAINFS_ASSIGN_OR_RETURN(span.top, graph.find(top_name));
  if (!span.top->capabilities().has_backing)
    return make_error(Errc::Invalid, "node '{}' ({}) is not a layer that can have a backing node",
                      top_name, span.top->driver_name());
  std::vector<NodeRef> below = layers_below(*span.top);
  if (!base_name.empty()) {
    CHAINFS_ASSIGN_OR_RETURN(span.base, graph.find(base_name));
    if (span.base == span.top)
      return make_error(Errc::Invalid, "base '{}' is the node itself; name a layer below it",
                        base_name);
    auto it = std::find(below.begin(), below.end(), span.base);
    if (it == below.end())
      return make_error(Errc::Invalid, "base '{}' is not below '{}' in its chain (below it: {})",
                        base_name, top_name, describe_nodes(below));
    span.between.assign(below.begin(), it);
    return span;
  }
  if (base_default == BaseDefault::Bottom) {
    if (below.empty())
      return make_error(Errc::Invalid, "node '{}' has no backing layer to commit into", top_name);
    span.base = below.back();
    below.pop_back();
  }
  span.between = std::move(below);
  return span;
}

bool span_unchanged(const LayerSpan& span) {
  std::vector<NodeRef> below = layers_below(*span.top);
  std::vector<NodeRef> expected = span.between;
  if (span.base) {
    expected.push_back(span.base);
    if (below.size() < expected.size()) return false;
    below.resize(expected.size());
  }
  return below == expected;
}

Result<SpanExtent> span_status(Node* first, const std::vector<NodeRef>& members, uint64_t offset,
                               uint64_t length) {
  auto is_member = [&](const Node* n) {
    return std::any_of(members.begin(), members.end(),
                       [&](const NodeRef& m) { return m.get() == n; });
  };
  uint64_t len = length;
  Node* node = first;
  while (node && len > 0 && is_member(node)) {
    if (Node* child = node->filtered()) {
      node = child;
      continue;
    }
    // The layer above reads zeros past the end of a shorter layer.
    if (offset >= node->size()) return SpanExtent{SpanData::Zero, len};
    len = std::min(len, node->size() - offset);
    CHAINFS_ASSIGN_OR_RETURN(BlockStatus st, node->block_status(offset, len));
    len = std::max<uint64_t>(1, std::min(len, st.length));
    if (st.kind == Alloc::Data) return SpanExtent{SpanData::Data, len};
    if (st.kind == Alloc::Zero) return SpanExtent{SpanData::Zero, len};
    node = node->backing();
  }
  return SpanExtent{SpanData::Below, len};
}

}  // namespace chainfs
