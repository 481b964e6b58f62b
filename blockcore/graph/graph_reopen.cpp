// Reopening nodes read-only or read-write (QEMU's bdrv_reopen), and the read-write holds of jobs.
//
// Why a node is read-only decides whether it may be reopened (ReadOnlyCause, node.h): the graph
// reopens only what it made read-only itself (backing layers found through image headers), never
// what the user asked for or what the image forces. Reopening changes the drivers' access (file
// descriptors, the qcow2 image's writability), not the graph's permissions: a backing layer
// reopened read-write still refuses new writers through its parent edge (check_writable), so only
// a job holding the right claim writes into it.
//
// A node's access follows from its own driver and from the children under it that it writes
// through: its protocol (file) child, a filter's child, and theirs — the "reopen set", top first.
// Read-write: the children first (a format node needs a writable file below it); read-only: the
// node first, after a flush, then its children. Either way inside one drained section of the
// whole set (requests in flight finish, new ones wait at the gates), under change_mutex_, so two
// reopens or a reopen and an edge change never interleave.
#include <algorithm>

#include "blockcore/graph/graph.h"

namespace chainfs {

namespace {

// The node and what its access follows, top first. Outside a request: children() locks.
std::vector<NodeRef> reopen_set(Node& node) {
  std::vector<NodeRef> set{node.ref()};
  for (size_t i = 0; i < set.size(); ++i)
    for (const Child& edge : set[i]->children())
      if (edge.role == ChildRole::File || edge.role == ChildRole::Filtered)
        set.push_back(edge.node);
  return set;
}

const char* access_name(bool read_only) {
  return read_only ? "read-only" : "read-write";
}

}  // namespace

Result<void> Graph::reopen_locked(Node& node, bool read_only) {
  const std::vector<NodeRef> set = reopen_set(node);
  if (options_.read_only && !read_only)
    return make_error(Errc::ReadOnly, "cannot reopen node '{}' read-write: the mount is read-only",
                      node.name());
  bool nothing_to_do = true;
  for (const NodeRef& n : set) {
    if (n->read_only() != read_only) nothing_to_do = false;
    if (read_only) continue;
    switch (n->read_only_cause()) {
      case ReadOnlyCause::User:
        return make_error(Errc::ReadOnly,
                          "node '{}' is read-only as the user asked (a read-only option), so it "
                          "is not reopened read-write",
                          n->name());
      case ReadOnlyCause::Image:
        return make_error(Errc::ReadOnly, "node '{}' is read-only because of its image: {}",
                          n->name(), n->driver().forced_read_only_reason());
      case ReadOnlyCause::None:
      case ReadOnlyCause::Backing:
        break;
    }
  }
  if (nothing_to_do) return {};
  if (read_only) {
    if (int writers = node.writers(); writers > 0)
      return make_error(Errc::Busy, "cannot reopen node '{}' read-only: it has {} open writer(s)",
                        node.name(), writers);
    if (node.read_write_holds_ > 0)
      return make_error(Errc::Busy,
                        "cannot reopen node '{}' read-only: a job holds it open read-write",
                        node.name());
  }

  DrainedSection drain(set, DrainScope::Node);
  CHAINFS_SYNC_POINT_TAG(sync_points_, "Graph::reopen:drained", node.name());
  // The order in which the drivers switch, and what to undo if one refuses.
  std::vector<Node*> order;
  for (const NodeRef& n : set) order.push_back(n.get());
  if (!read_only) std::reverse(order.begin(), order.end());
  std::vector<std::pair<Node*, ReadOnlyCause>> done;
  auto undo = [&](const Error& why) {
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      auto back = it->first->driver().reopen(!read_only);
      if (back.ok()) {
        it->first->set_read_only(it->second);
      } else {
        // The driver is left in the new state: record it truthfully.
        it->first->set_read_only(read_only ? ReadOnlyCause::Backing : ReadOnlyCause::None);
        logger_->error("reopening node '{}' {} again after '{}' failed also failed: {}",
                       it->first->name(), access_name(!read_only), why.message,
                       back.error().message);
      }
    }
  };
  if (read_only) {
    // Everything the node cached reaches its children (and the disk) while they still write.
    if (auto flushed = node.flush(); !flushed.ok())
      return make_error(flushed.error().code, "cannot reopen node '{}' read-only: flush: {}",
                        node.name(), flushed.error().message);
  }
  for (Node* n : order) {
    if (n->read_only() == read_only) continue;
    const ReadOnlyCause before = n->read_only_cause();
    if (auto switched = n->driver().reopen(read_only); !switched.ok()) {
      Error e = make_error(switched.error().code, "cannot reopen node '{}' {}: {}", n->name(),
                           access_name(read_only), switched.error().message);
      undo(e);
      return e;
    }
    n->set_read_only(read_only ? ReadOnlyCause::Backing : ReadOnlyCause::None);
    done.emplace_back(n, before);
  }
  {
    // What the parents of the set take on their file and filter edges follows their access.
    std::lock_guard lock(topology_mutex_);
    for (const NodeRef& n : set)
      for (const auto& edge : n->children_)
        if (edge->role == ChildRole::File || edge->role == ChildRole::Filtered)
          edge->perms_taken = PermConsistentRead | (read_only ? 0 : PermWrite | PermResize);
    bump_generation_locked();
  }
  logger_->info("node '{}' reopened {}", node.name(), access_name(read_only));
  return {};
}

Result<void> Graph::reopen(Node& node, bool read_only) {
  if (&node.graph() != this)
    return make_error(Errc::Invalid, "node '{}' is not in this graph", node.name());
  std::lock_guard change(change_mutex_);
  return reopen_locked(node, read_only);
}

Result<ReadWriteHold> Graph::hold_read_write(NodeRef node) {
  if (!node) return make_error(Errc::Invalid, "hold_read_write: no node");
  if (&node->graph() != this)
    return make_error(Errc::Invalid, "node '{}' is not in this graph", node->name());
  std::lock_guard change(change_mutex_);
  if (node->read_write_holds_ == 0) {
    bool writable = true;
    for (const NodeRef& n : reopen_set(*node))
      if (n->read_only()) writable = false;
    if (writable) return ReadWriteHold();  // writable on its own: nothing to undo later
    CHAINFS_TRY(reopen_locked(*node, false));
  }
  ++node->read_write_holds_;
  return ReadWriteHold(this, std::move(node));
}

void Graph::release_read_write(Node& node) {
  std::lock_guard change(change_mutex_);
  if (--node.read_write_holds_ > 0) return;
  // A node that nothing reads as a backing layer any more (an active commit's base, now the
  // chain's active layer) keeps the access a top layer has.
  bool top_level = node.parent_count() == 0;
  {
    std::lock_guard lock(topology_mutex_);
    for (const auto& [name, root] : chains_)
      if (root.get() == &node) top_level = true;
  }
  if (top_level) {
    logger_->info("node '{}' stays read-write: it is now a top layer", node.name());
    return;
  }
  if (auto back = reopen_locked(node, true); !back.ok())
    logger_->warn("node '{}' stays read-write: {}", node.name(), back.error().message);
}

void ReadWriteHold::release() {
  if (!graph_) return;
  std::exchange(graph_, nullptr)->release_read_write(*node_);
  node_.reset();
}

}  // namespace chainfs
