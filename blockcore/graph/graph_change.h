// Private to blockcore/graph: the bookkeeping of one graph change. A change runs under
// Graph::change_mutex_ and inside drained sections; what it must not do there (drop references
// that may be the last, call observers) it records in a ChangeLog, and Graph::flush() does it
// after every lock is released and every drain has ended.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "blockcore/graph/graph.h"

namespace chainfs {

struct Graph::EdgeChange {
  NodeRef parent;
  NodeRef old_backing;  // null: none
  NodeRef new_backing;  // null: none
};

struct Graph::ChainChange {
  std::string chain;
  NodeRef old_root;
  NodeRef new_root;
};

struct Graph::WriterMove {
  NodeRef from;
  NodeRef to;
  size_t moved = 0;  // handles moved
};

struct Graph::ChangeLog {
  std::vector<GraphEvent> events;
  std::vector<std::unique_ptr<Child>> dead_edges;  // unlinked edges: hold the old children
  std::vector<NodeRef> garbage;                    // old chain roots and the like
};

}  // namespace chainfs
