#include "blockcore/graph/drain.h"

#include <set>

#include "blockcore/graph/node.h"

namespace chainfs {

DrainedSection::DrainedSection(Node& node) {
  begin({node.ref()});
}

DrainedSection::DrainedSection(const std::vector<NodeRef>& nodes) { begin(nodes); }

DrainedSection::~DrainedSection() { end(); }

void DrainedSection::begin(const std::vector<NodeRef>& roots) {
  // Collect the nodes and all their ancestors, each once.
  std::set<Node*> seen;
  std::vector<NodeRef> todo(roots.begin(), roots.end());
  while (!todo.empty()) {
    NodeRef n = std::move(todo.back());
    todo.pop_back();
    if (!n || !seen.insert(n.get()).second) continue;
    for (NodeRef& parent : n->parents()) todo.push_back(std::move(parent));
    quiesced_.push_back(std::move(n));
  }
  for (NodeRef& n : quiesced_) n->gate().quiesce();
  for (NodeRef& n : quiesced_) n->gate().wait_idle();
}

void DrainedSection::end() {
  for (NodeRef& n : quiesced_) n->gate().unquiesce();
  quiesced_.clear();
}

}  // namespace chainfs
