// DrainedSection: RAII drained section over a set of nodes (ARCHITECTURE rule 3).
//
// Begin: every drained node *and every ancestor of it* is quiesced (new external requests wait at
// their entry), then the section waits until none of them has a request in flight. Quiescing the
// ancestors is what stops requests that would reach the drained node from above; internal requests
// (a driver calling its child, the drain owner's own header writes) pass. Sections nest: each
// quiesce is counted, and the end undoes exactly what the begin did.
#pragma once

#include <vector>

#include "blockcore/graph/node_ref.h"

namespace chainfs {

class Node;

class DrainedSection {
 public:
  explicit DrainedSection(Node& node);
  explicit DrainedSection(const std::vector<NodeRef>& nodes);
  DrainedSection(const DrainedSection&) = delete;
  DrainedSection& operator=(const DrainedSection&) = delete;
  DrainedSection(DrainedSection&& other) noexcept = default;
  ~DrainedSection();

  // Ends the section early (idempotent).
  void end();
  const std::vector<NodeRef>& quiesced() const { return quiesced_; }

 private:
  void begin(const std::vector<NodeRef>& roots);
  std::vector<NodeRef> quiesced_;  // strong refs: a drained node cannot vanish mid-section
};

}  // namespace chainfs
