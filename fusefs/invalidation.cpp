// Keeping the kernel's caches honest when node data changes behind it (docs/fusefs.md "Keeping
// the kernel's caches honest"): graph events and job events become invalidations, queued to the
// Invalidator's thread and sent from there.
//
// Who changes what a node file reads, other than writes through that file:
// - a backing edge change (stream, commit, snapshot landing; Graph::set_backing): the graph emits
//   DataChanged for the node whose edge changed; that node and every node above it read through
//   the new edge, so all of them are dropped (Item::with_ancestors, resolved on the Invalidator's
//   thread against the graph as it is then);
// - a chain's root moving (snapshot, active commit completing): ChainChanged; the layers' modes
//   change (the new root takes writers, the old one no longer does), so their attributes go;
// - a commit writing into its base: no event per write. While the job is listed and not
//   concluded the base's file is invalidated every Invalidator period; on each state change of
//   the job (ready, concluded, ...) the base and everything above it are dropped at once.
// - writes through a node file to the nodes below it (node_ops.cpp, invalidate_below()).
#include <cstring>
#include <deque>
#include <set>

#include "fusefs/filesystem.h"

namespace chainfs::fusefs {

Ino Filesystem::listed_node_ino(const std::string& name) const {
  if (name.empty()) return 0;
  Result<NodeRef> node = graph_.find(name);
  return node.ok() ? make_ino(InodeKind::Node, (*node)->id()) : 0;
}

void Filesystem::on_graph_event(const GraphEvent& event) {
  // Runs inside the graph's change (maybe inside a drained section): only queue. Queries that
  // take the topology lock for a moment are allowed (no graph mutex is held here).
  switch (event.kind) {
    case GraphEvent::Kind::DataChanged:
    case GraphEvent::Kind::SizeChanged:
      if (event.node_id != 0) invalidator_->post({make_ino(InodeKind::Node, event.node_id), true});
      break;
    case GraphEvent::Kind::ChainChanged:
      if (std::optional<ChainView> chain = graph_.chain(event.name))
        for (const NodeRef& layer : chain->layers)
          invalidator_->post({make_ino(InodeKind::Node, layer->id()), false});
      break;
    default:
      // Entries of nodes/, chains/ and jobs/ are never cached (entry timeout 0): nothing to drop.
      break;
  }
}

void Filesystem::on_job_event(const JobEvent& event) {
  // Called by whichever thread delivers job events, with no lock of the job engine held.
  switch (event.kind) {
    case JobEvent::Kind::Added: {
      Result<JobInfo> info = control_plane_->jobs().info(event.id);
      if (!info.ok()) return;  // already gone again
      WatchedJob watched;
      if (info->type != "stream") watched.base = listed_node_ino(info->base);
      if (watched.base != 0 && info->state != JobState::Concluded) {
        invalidator_->hold({watched.base, false});
        watched.held = true;
      }
      std::lock_guard lock(watched_jobs_mutex_);
      watched_jobs_[event.id] = watched;
      return;
    }
    case JobEvent::Kind::StateChanged: {
      Ino base = 0;
      {
        std::lock_guard lock(watched_jobs_mutex_);
        auto it = watched_jobs_.find(event.id);
        if (it == watched_jobs_.end()) return;
        base = it->second.base;
        if (event.to == JobState::Concluded && it->second.held) {
          invalidator_->release({base, false});
          it->second.held = false;
        }
      }
      if (base != 0) invalidator_->post({base, true});
      return;
    }
    case JobEvent::Kind::Removed: {
      std::lock_guard lock(watched_jobs_mutex_);
      auto it = watched_jobs_.find(event.id);
      if (it == watched_jobs_.end()) return;
      if (it->second.held) invalidator_->release({it->second.base, false});
      watched_jobs_.erase(it);
      return;
    }
  }
}

void Filesystem::send_invalidation(const Invalidator::Item& item) {
  if (!notify_ready_.load(std::memory_order_acquire)) return;
  std::vector<Ino> inos{item.ino};
  if (item.with_ancestors && ino_kind(item.ino) == InodeKind::Node) {
    // Everything that reads through the node sees the change too.
    std::set<Node*> seen;
    std::deque<NodeRef> todo;
    if (NodeRef node = find_node_by_id(ino_value(item.ino))) todo.push_back(std::move(node));
    while (!todo.empty()) {
      NodeRef node = std::move(todo.front());
      todo.pop_front();
      if (!seen.insert(node.get()).second) continue;
      if (make_ino(InodeKind::Node, node->id()) != item.ino)
        inos.push_back(make_ino(InodeKind::Node, node->id()));
      for (NodeRef& parent : node->parents()) todo.push_back(std::move(parent));
    }
  }
  for (Ino ino : inos) {
    int rc = fuse_lowlevel_notify_inval_inode(session_, ino, static_cast<off_t>(item.offset),
                                              static_cast<off_t>(item.length));
    if (rc != 0 && rc != -ENOENT)
      graph_.log().debug("invalidating inode {:#x}: {}", ino, strerror(-rc));
  }
}

}  // namespace chainfs::fusefs
