#include "blockcore/graph/drain.h"

#include <algorithm>
#include <utility>

#include "blockcore/graph/graph.h"
#include "blockcore/graph/node.h"
#include "blockcore/util/sync_point.h"

namespace chainfs {

bool detail::DrainState::contains(const Node* node) const {
  return std::any_of(quiesced.begin(), quiesced.end(),
                     [&](const NodeRef& n) { return n.get() == node; });
}

DrainedSection::DrainedSection(Node& node, DrainScope scope) {
  begin({node.ref()}, scope);
}

DrainedSection::DrainedSection(const std::vector<NodeRef>& nodes, DrainScope scope) {
  begin(nodes, scope);
}

DrainedSection::DrainedSection(DrainedSection&& other) noexcept = default;

DrainedSection& DrainedSection::operator=(DrainedSection&& other) noexcept {
  if (this != &other) {
    end();
    state_ = std::move(other.state_);
  }
  return *this;
}

DrainedSection::~DrainedSection() {
  end();
}

void DrainedSection::begin(const std::vector<NodeRef>& roots, DrainScope scope) {
  std::vector<Node*> root_nodes;
  for (const NodeRef& r : roots)
    if (r) root_nodes.push_back(r.get());
  if (root_nodes.empty()) return;
  Graph& graph = root_nodes.front()->graph();
  auto state = std::make_unique<detail::DrainState>();
  state->graph = &graph;
  std::vector<Node*> members;
  {
    // Collect, quiesce and register atomically with respect to edge changes (which take this lock
    // too): an edge added after this block sees the section and makes the new parent inherit it.
    std::lock_guard lock(graph.topology_mutex_);
    state->quiesced = graph.drain_closure_locked(root_nodes, scope);
    for (NodeRef& n : state->quiesced) {
      n->gate().quiesce();
      members.push_back(n.get());
    }
    graph.active_drains_.push_back(state.get());
  }
  CHAINFS_SYNC_POINT(graph.sync_points(), "DrainedSection::begin:quiesced");
  // One pass suffices: a request that enters a member internally after its wait returned is
  // nested in a request on a member ancestor, which that ancestor's wait covers.
  for (Node* n : members) n->gate().wait_idle();
  CHAINFS_SYNC_POINT(graph.sync_points(), "DrainedSection::begin:drained");
  state_ = std::move(state);
}

void DrainedSection::end() {
  if (!state_) return;
  Graph& graph = *state_->graph;
  std::vector<NodeRef> refs;
  {
    std::lock_guard lock(graph.topology_mutex_);
    std::erase(graph.active_drains_, state_.get());
    for (NodeRef& n : state_->quiesced) n->gate().unquiesce();
    refs.swap(state_->quiesced);
  }
  state_.reset();
  refs.clear();  // may close nodes: outside the lock
}

std::vector<NodeRef> DrainedSection::quiesced() const {
  if (!state_) return {};
  std::lock_guard lock(state_->graph->topology_mutex_);
  return state_->quiesced;
}

void wait_until_undrained(const std::vector<NodeRef>& nodes) {
  for (;;) {
    bool all_open = true;
    for (const NodeRef& n : nodes) {
      if (n && n->gate().quiesce_count() > 0) {
        all_open = false;
        n->gate().wait_unquiesced();
      }
    }
    if (all_open) return;
  }
}

}  // namespace chainfs

namespace chainfs {

std::vector<NodeRef> Graph::drain_closure_locked(const std::vector<Node*>& roots,
                                                 DrainScope scope) const {
  std::vector<NodeRef> out;
  std::vector<Node*> seen;
  auto add = [&](Node* n, bool held) {
    if (std::find(seen.begin(), seen.end(), n) != seen.end()) return;
    if (held) {
      out.push_back(n->ref());
    } else if (detail::node_try_acquire(n)) {
      out.push_back(NodeRef::adopt(n));
    } else {
      return;  // closing: no request can reach it any more
    }
    seen.push_back(n);
  };
  for (Node* r : roots) add(r, /*held=*/true);  // the caller holds the roots
  if (scope == DrainScope::Subtree)
    for (size_t i = 0; i < out.size(); ++i)
      for (const auto& edge : out[i]->children_) add(edge->node.get(), /*held=*/true);  // by edge
  for (size_t i = 0; i < out.size(); ++i)
    for (const Child* edge : out[i]->parent_edges_) add(edge->parent, /*held=*/false);
  return out;
}

}  // namespace chainfs
