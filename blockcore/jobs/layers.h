// The layers a stream or a commit works on, and the status of a range within some of them.
//
// A chain is read from its top down through backing edges and through filters (a `fault` node
// between two layers forwards to its filtered child). "Below NODE in its chain" means reachable
// that way. The layers strictly between a job's top and its base are its *between* layers:
//
//   top -> mid1 -> flaky(filter) -> mid2 -> base        between = {mid1, flaky, mid2}
//
// A stream cuts out the between layers down to the lowest one with a backing edge (filters right
// above base stay, as part of base's edge); a commit cuts out all of them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "blockcore/graph/graph.h"
#include "blockcore/graph/node_ref.h"
#include "blockcore/result.h"

namespace chainfs {

// A filter node: its data comes from a Filtered child (fault), it holds none of its own.
bool is_filter(const Node& node);
// The node right below `node` in its chain (backing, else filtered child), read under the graph's
// topology lock; null at the bottom.
NodeRef layer_below(const Node& node);
// Every node below `top` in its chain, top-most first (`top` itself excluded).
std::vector<NodeRef> layers_below(const Node& top);

struct LayerSpan {
  NodeRef top;
  NodeRef base;                  // null: none (a stream down to the bottom)
  std::vector<NodeRef> between;  // strictly between top and base (or all below), top-most first
};

enum class BaseDefault { None, Bottom };
// Resolves a job's NODE and base=NODE (empty `base_name`: none, or the chain's bottom layer with
// BaseDefault::Bottom). Refusals: an unknown node (NotFound); base == NODE, or base not below
// NODE in its chain (Invalid); a NODE that cannot have layers below it, or has none where a base
// is needed (Invalid).
Result<LayerSpan> resolve_span(Graph& graph, const std::string& top_name,
                               const std::string& base_name, BaseDefault base_default);
// Whether the layers below span.top are still span.between followed by span.base: a job re-checks
// this once its claims hold, in case the chain changed while it was resolving.
bool span_unchanged(const LayerSpan& span);
// Names for messages: "'mid', 'flaky'" (or "none").
std::string describe_nodes(const std::vector<NodeRef>& nodes);

// Status of a byte range within the member layers of a chain.
enum class SpanData : uint8_t {
  Data,   // the first member holding the range holds data there
  Zero,   // ... says it reads as zeros, or the range lies past a member's end
  Below,  // no member holds it: it reads from below the members (or zeros without anything)
};
struct SpanExtent {
  SpanData kind = SpanData::Below;
  uint64_t length = 0;  // bytes from the offset that share `kind` (>= 1 when asked for >= 1)
};

// Walks from `first` down while the nodes are `members` (filters are passed through without a
// query) and reports the status of [offset, offset + length). Must run inside a request on an
// ancestor of `first` (or `first` itself), or inside a drained section of them: the walk reads the
// edges without a lock.
Result<SpanExtent> span_status(Node* first, const std::vector<NodeRef>& members, uint64_t offset,
                               uint64_t length);

}  // namespace chainfs
