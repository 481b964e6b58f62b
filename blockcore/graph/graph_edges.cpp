// Edge changes (rules 3, 4 and the persistence of backing references).
//
// Every change of an edge or a chain root runs under change_mutex_, so changes never interleave:
// what a change reads inside its drained section is still true when it links (rule 4). The
// function that changes a backing edge drains the parent itself (rule 3, seed 003), records the new
// reference in the image first (so a failure leaves the graph unchanged), and links the edge under
// topology_mutex_, where the new parent also inherits the drained sections of its new child.
// References that may be the last, and observer calls, wait in a ChangeLog until flush().
#include <algorithm>

#include "blockcore/graph/backing_path.h"
#include "blockcore/graph/drain.h"
#include "blockcore/graph/graph.h"
#include "blockcore/graph/graph_change.h"
#include "blockcore/graph/handle_follower.h"

namespace chainfs {

namespace {
// What a parent takes and shares on an edge of each role (rule 2).
void edge_perms(ChildRole role, bool parent_read_only, Child& edge) {
  switch (role) {
    case ChildRole::File:
    case ChildRole::Filtered:
      // The format (or filter) node is the only writer of what is below it.
      edge.perms_taken = PermConsistentRead | (parent_read_only ? 0 : PermWrite | PermResize);
      edge.perms_shared = PermConsistentRead;
      break;
    case ChildRole::Backing:
      // A backing edge forbids writers that would change what the parent reads; copying the
      // chain's own data into the node (a stream into a middle layer) does not change it.
      edge.perms_taken = PermConsistentRead;
      edge.perms_shared = PermConsistentRead | PermWriteUnchanged;
      break;
  }
}
}  // namespace

void Graph::flush(ChangeLog& log) {
  log.dead_edges.clear();  // may close the old children
  log.garbage.clear();
  for (const GraphEvent& event : log.events) notify(event);
  log.events.clear();
}

bool Graph::reaches_locked(const Node& from, const Node& to) const {
  std::vector<const Node*> todo{&from};
  while (!todo.empty()) {
    const Node* n = todo.back();
    todo.pop_back();
    if (n == &to) return true;
    for (const auto& edge : n->children_) todo.push_back(edge->node.get());
  }
  return false;
}

void Graph::link_edge_locked(Node& parent, NodeRef child, ChildRole role) {
  auto edge = std::make_unique<Child>();
  edge->parent = &parent;
  edge->role = role;
  edge_perms(role, parent.read_only(), *edge);
  edge->node = std::move(child);
  Node& child_node = *edge->node;
  child_node.parent_edges_.push_back(edge.get());
  parent.children_.push_back(std::move(edge));
  inherit_drains_locked(parent, child_node);
  bump_generation_locked();
}

std::unique_ptr<Child> Graph::unlink_edge_locked(Node& parent, ChildRole role) {
  auto it = std::find_if(parent.children_.begin(), parent.children_.end(),
                         [&](const auto& e) { return e->role == role; });
  if (it == parent.children_.end()) return nullptr;
  std::unique_ptr<Child> edge = std::move(*it);
  parent.children_.erase(it);
  std::erase(edge->node->parent_edges_, edge.get());
  bump_generation_locked();
  return edge;  // still holds the child: the caller drops it outside the lock
}

void Graph::inherit_drains_locked(Node& parent, const Node& child) {
  for (detail::DrainState* section : active_drains_) {
    if (!section->contains(&child)) continue;
    // The new parent and its ancestors join the section: external requests must not reach the
    // drained child through the new edge. They are idle now, because the edge change drained the
    // parent; the section unquiesces them at its end.
    for (NodeRef& n : drain_closure_locked({&parent}, DrainScope::Node)) {
      if (section->contains(n.get())) continue;  // `n` is then not the last reference
      n->gate().quiesce();
      section->quiesced.push_back(std::move(n));
    }
  }
}

// ---- public edge changes ----------------------------------------------------------------------

Result<void> Graph::attach_child(Node& parent, NodeRef child, ChildRole role) {
  if (!child) return make_error(Errc::Invalid, "attach to '{}': no child", parent.name());
  if (&child->graph() != this || &parent.graph() != this)
    return make_error(Errc::Invalid, "attach '{}' to '{}': not in this graph", child->name(),
                      parent.name());
  ChangeLog log;
  {
    std::lock_guard change(change_mutex_);
    DrainedSection drain(parent);  // rule 3
    std::lock_guard lock(topology_mutex_);
    if (parent.child(role))
      return make_error(Errc::Exists, "node '{}' already has a {} child", parent.name(),
                        child_role_name(role));
    if (reaches_locked(*child, parent))
      return make_error(Errc::Invalid, "attaching '{}' under '{}' would make a loop", child->name(),
                        parent.name());
    link_edge_locked(parent, std::move(child), role);
    log.events.push_back({GraphEvent::Kind::EdgeChanged, parent.name(), parent.id()});
  }
  flush(log);
  return {};
}

Result<void> Graph::set_backing(Node& parent, NodeRef new_backing) {
  ChangeLog log;
  Result<void> outcome;
  {
    std::lock_guard change(change_mutex_);
    outcome = change_backing_edge(parent, std::move(new_backing), log);
  }
  flush(log);
  return outcome;
}

Result<void> Graph::change_backing_edge(Node& parent, NodeRef new_backing, ChangeLog& log) {
  if (&parent.graph() != this || (new_backing && &new_backing->graph() != this))
    return make_error(Errc::Invalid, "set backing of '{}': not in this graph", parent.name());
  const Capabilities caps = parent.capabilities();
  if (new_backing && !caps.has_backing)
    return make_error(Errc::Unsupported, "node '{}' ({}) cannot have a backing node", parent.name(),
                      parent.driver_name());
  // Rule 3, seed 003: the function that changes the edge drains the node whose edge changes.
  DrainedSection drain(parent);
  CHAINFS_SYNC_POINT_TAG(sync_points_, "Graph::change_backing_edge:drained", parent.name());
  {
    std::lock_guard lock(topology_mutex_);
    if (new_backing && reaches_locked(*new_backing, parent))
      return make_error(Errc::Invalid, "'{}' as backing of '{}' would make a loop",
                        new_backing->name(), parent.name());
    if (parent.backing() == new_backing.get()) return {};  // nothing to change
  }
  // Persist first: if the image cannot record the new backing, the graph stays as it was. The
  // edges cannot change meanwhile: every edge change holds change_mutex_.
  if (caps.persists_backing) {
    CHAINFS_ASSIGN_OR_RETURN(auto reference, backing_reference_for(parent, new_backing.get()));
    if (auto r = parent.driver().set_backing_reference(reference); !r.ok())
      return make_error(r.error().code, "node '{}': recording backing '{}' in the image failed: {}",
                        parent.name(), reference ? reference->filename : "none", r.error().message);
  }
  {
    std::lock_guard lock(topology_mutex_);
    if (auto old = unlink_edge_locked(parent, ChildRole::Backing))
      log.dead_edges.push_back(std::move(old));
    if (new_backing) link_edge_locked(parent, std::move(new_backing), ChildRole::Backing);
  }
  log.events.push_back({GraphEvent::Kind::EdgeChanged, parent.name(), parent.id()});
  log.events.push_back({GraphEvent::Kind::DataChanged, parent.name(), parent.id()});
  return {};
}

Result<void> Graph::change_chain_root(const std::string& name, NodeRef root, ChangeLog& log) {
  {
    std::lock_guard lock(topology_mutex_);
    auto it = chains_.find(name);
    if (it == chains_.end()) return make_error(Errc::NotFound, "no chain '{}'", name);
    log.garbage.push_back(std::exchange(it->second, std::move(root)));
    bump_generation_locked();
  }
  log.events.push_back({GraphEvent::Kind::ChainChanged, name, 0});
  return {};
}

// ---- relink (rule 4) --------------------------------------------------------------------------

Relink Relink::backing_to_backing_of(NodeRef top, NodeRef above_base) {
  return Relink(Kind::BackingToBackingOf, std::move(top), std::move(above_base));
}
Relink Relink::backing_to(NodeRef top, NodeRef backing) {
  return Relink(Kind::BackingTo, std::move(top), std::move(backing));
}
Relink Relink::replace(NodeRef from, NodeRef to, MoveWriters writers) {
  return Relink(Kind::Replace, std::move(from), std::move(to), writers);
}

std::string Relink::describe() const {
  auto name = [](const NodeRef& n) {
    return n ? fmt::format("'{}'", n->name()) : std::string("none");
  };
  switch (kind_) {
    case Kind::BackingToBackingOf:
      return fmt::format("backing of {} := backing of {}", name(subject_), name(target_));
    case Kind::BackingTo:
      return fmt::format("backing of {} := {}", name(subject_), name(target_));
    case Kind::Replace:
      return fmt::format("parents{} of {} := {}", moves_writers() ? " and writers" : "",
                         name(subject_), name(target_));
  }
  return "?";
}

Result<void> Graph::resolve_relinks(const std::vector<Relink>& changes,
                                    std::vector<EdgeChange>& edges,
                                    std::vector<ChainChange>& chains,
                                    std::vector<WriterMove>& writer_moves) const {
  // The driver checks of the writers' new nodes, before the lock (drivers are not called under it).
  std::vector<Result<void>> verdicts;
  for (const Relink& change : changes)
    verdicts.push_back(change.moves_writers() && change.target()
                           ? check_writable_nolock(*change.target())
                           : ok_result());
  std::lock_guard lock(topology_mutex_);
  size_t index = 0;
  auto ref_of = [](Node* n) { return n ? n->ref() : NodeRef(); };  // held by an edge: alive
  for (const Relink& change : changes) {
    const Result<void>& verdict = verdicts[index++];
    Node* subject = change.subject().get();
    Node* target = change.target().get();
    if (!subject) return make_error(Errc::Invalid, "relink: {}: no node", change.describe());
    switch (change.kind()) {
      case Relink::Kind::BackingToBackingOf: {
        if (!target) return make_error(Errc::Invalid, "relink: {}: no node", change.describe());
        if (target == subject) break;  // nothing between top and base: nothing to cut out
        if (!reaches_locked(*subject, *target))
          return make_error(Errc::Invalid, "relink: '{}' is no longer below '{}'", target->name(),
                            subject->name());
        edges.push_back({change.subject(), ref_of(subject->backing()), ref_of(target->backing())});
        break;
      }
      case Relink::Kind::BackingTo:
        edges.push_back({change.subject(), ref_of(subject->backing()), change.target()});
        break;
      case Relink::Kind::Replace: {
        if (!target) return make_error(Errc::Invalid, "relink: {}: no node", change.describe());
        for (Child* edge : subject->parent_edges_) {
          if (edge->role != ChildRole::Backing) continue;
          // TO's own edge onto FROM stays: a snapshot puts TO above FROM and then moves FROM's
          // other parents to TO.
          if (edge->parent == target) continue;
          if (!detail::node_try_acquire(edge->parent)) continue;  // closing: leaves by itself
          edges.push_back({NodeRef::adopt(edge->parent), change.subject(), change.target()});
        }
        for (const auto& [name, root] : chains_)
          if (root.get() == subject) chains.push_back({name, change.subject(), change.target()});
        if (change.moves_writers() && !subject->followers_.empty()) {
          CHAINFS_TRY(check_writers_may_move_locked(*subject, *target, verdict));
          writer_moves.push_back({change.subject(), change.target()});
        }
        break;
      }
    }
  }
  // Every reference made above has another holder (an edge, a chain, the Relink): none is the
  // last when the caller drops them.
  return {};
}

Result<void> Graph::relink(std::vector<Relink> changes) {
  ChangeLog log;
  Result<void> outcome;
  std::vector<EdgeChange> edges;
  std::vector<ChainChange> chains;
  std::vector<WriterMove> writer_moves;
  CHAINFS_SYNC_POINT(sync_points_, "Graph::relink:begin");
  {
    std::lock_guard change(change_mutex_);
    CHAINFS_SYNC_POINT(sync_points_, "Graph::relink:locked");
    std::vector<NodeRef> involved;
    for (const Relink& c : changes) {
      if (c.subject()) involved.push_back(c.subject());
      if (c.target()) involved.push_back(c.target());
    }
    DrainedSection drain(involved, DrainScope::Subtree);
    CHAINFS_SYNC_POINT(sync_points_, "Graph::relink:drained");
    // Re-read the graph inside the drain: the intents resolve against the graph as it is now.
    outcome = resolve_relinks(changes, edges, chains, writer_moves);
    size_t applied = 0;  // edges changed so far
    for (; outcome.ok() && applied < edges.size(); ++applied) {
      EdgeChange& e = edges[applied];
      if (auto r = change_backing_edge(*e.parent, e.new_backing, log); !r.ok()) {
        outcome = std::move(r);
        break;
      }
    }
    if (!outcome.ok()) {
      // All or nothing: put back the edges already changed, newest first.
      for (size_t i = applied; i-- > 0;) {
        EdgeChange& e = edges[i];
        if (auto r = change_backing_edge(*e.parent, e.old_backing, log); !r.ok())
          logger_->error("relink: restoring the backing of '{}' failed: {}", e.parent->name(),
                         r.error().message);
      }
    } else {
      for (ChainChange& c : chains)
        if (auto r = change_chain_root(c.chain, c.new_root, log); !r.ok()) outcome = std::move(r);
      // Last, when nothing can fail any more: the guests' handles follow (checked in resolve).
      if (outcome.ok() && !writer_moves.empty()) {
        {
          std::lock_guard lock(topology_mutex_);
          for (WriterMove& m : writer_moves) m.moved = move_writers_locked(*m.from, *m.to, log);
        }
        for (const WriterMove& m : writer_moves)
          logger_->info("{} open writer(s) of '{}' moved to '{}'", m.moved, m.from->name(),
                        m.to->name());
      }
      CHAINFS_SYNC_POINT(sync_points_, "Graph::relink:applied");
    }
  }
  edges.clear();
  chains.clear();
  writer_moves.clear();
  flush(log);
  return outcome;
}

// ---- writers that follow (BlockHandle, handle_follower.h) ------------------------------------

size_t Graph::move_writers_locked(Node& from, Node& to, ChangeLog& log) {
  if (&from == &to) return 0;
  for (detail::HandleFollower* f : from.followers_) {
    NodeRef old;
    {
      std::lock_guard lock(f->mutex);
      old = std::exchange(f->ref, to.ref());  // `to` is alive: the relink holds it
    }
    // seq_cst store, then seq_cst read of `users`: the Dekker pair with a request's pin.
    f->node.store(&to, std::memory_order_seq_cst);
    f->node_id.store(to.id(), std::memory_order_release);
    f->moves.fetch_add(1, std::memory_order_acq_rel);
    from.writers_.fetch_sub(1, std::memory_order_acq_rel);
    to.writers_.fetch_add(1, std::memory_order_acq_rel);
    to.followers_.push_back(f);
    if (f->users.load(std::memory_order_seq_cst) == 0) {
      log.garbage.push_back(std::move(old));  // no request can still look at it
      continue;
    }
    // A request may hold the old node's pointer: it stays alive until the last one leaves.
    {
      std::lock_guard lock(f->mutex);
      f->retired.push_back(std::move(old));
      f->has_retired.store(true, std::memory_order_seq_cst);
    }
    if (f->users.load(std::memory_order_seq_cst) == 0) {
      std::lock_guard lock(f->mutex);
      for (NodeRef& r : f->retired) log.garbage.push_back(std::move(r));
      f->retired.clear();
      f->has_retired.store(false, std::memory_order_seq_cst);
    }
  }
  const size_t moved = from.followers_.size();
  from.followers_.clear();
  bump_generation_locked();
  return moved;
}

}  // namespace chainfs
