// DrainedSection: RAII drained section over a set of nodes (ARCHITECTURE rule 3).
//
// Begin: every drained node *and every ancestor of it* is quiesced (new external requests wait at
// their entry: they are held, they do not fail), then the section waits until none of them has a
// request in flight. Quiescing the ancestors is what stops requests that would reach a drained
// node from above; internal requests (a driver calling its child, the drain owner's own header
// writes) pass. With DrainScope::Subtree every descendant is drained as well.
//
// Sections nest: each quiesce is counted, and the end undoes exactly what the begin did plus what
// the section inherited meanwhile. Inheriting: an edge added while a child is drained (a new
// parent, e.g. a snapshot overlay put above a drained node) quiesces the new parent and its
// ancestors on behalf of every section that drains the child, so external requests cannot reach
// the drained child through the new edge; the section that drains the child undoes them at its end.
// (Edge changes drain the parent themselves, so the new ancestors are idle when they join.)
//
// Collecting the nodes, quiescing them and registering the section happen under the graph's
// topology lock, atomically with respect to edge changes; waiting for idleness does not hold it.
//
// Rules for callers: never begin a section from inside a request on a node it drains (it would wait
// for itself), never while holding the topology lock. Inside the section, issue I/O to drained
// nodes with Node's calls (internal entry), not through a BlockHandle (that would wait for the end
// of the section).
#pragma once

#include <memory>
#include <vector>

#include "blockcore/graph/node_ref.h"

namespace chainfs {

class Graph;
class Node;

enum class DrainScope {
  Node,     // the nodes given (and their ancestors, quiesced)
  Subtree,  // the nodes given and all their descendants (and all their ancestors, quiesced)
};

namespace detail {
// The registered set of nodes one section keeps quiesced; grows when it inherits new parents.
struct DrainState {
  Graph* graph = nullptr;
  std::vector<NodeRef> quiesced;  // guarded by the graph's topology mutex
  bool contains(const Node* node) const;
};
}  // namespace detail

class DrainedSection {
 public:
  DrainedSection() = default;  // an ended section
  explicit DrainedSection(Node& node, DrainScope scope = DrainScope::Node);
  explicit DrainedSection(const std::vector<NodeRef>& nodes, DrainScope scope = DrainScope::Node);
  DrainedSection(const DrainedSection&) = delete;
  DrainedSection& operator=(const DrainedSection&) = delete;
  DrainedSection(DrainedSection&& other) noexcept;
  DrainedSection& operator=(DrainedSection&& other) noexcept;
  ~DrainedSection();

  // Ends the section early (idempotent).
  void end();
  bool active() const { return state_ != nullptr; }
  // The nodes this section keeps quiesced now (a copy: inheriting may add to it meanwhile).
  std::vector<NodeRef> quiesced() const;

 private:
  void begin(const std::vector<NodeRef>& roots, DrainScope scope);
  std::unique_ptr<detail::DrainState> state_;  // strong refs: a drained node cannot vanish
};

// Pause points of jobs (ARCHITECTURE: jobs stop at pause points while their nodes are drained):
// returns once none of `nodes` is quiesced. A job's I/O through a BlockHandle waits anyway; this
// lets a job stop *between* requests without holding anything.
void wait_until_undrained(const std::vector<NodeRef>& nodes);

}  // namespace chainfs
