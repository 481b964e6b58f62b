// Private to blockcore/graph: the moving part of a writable BlockHandle that follows graph changes
// (QEMU's BlockBackend as a parent that moves with the others).
//
// Design note. A follower is registered on the node it targets (Node::followers_, under the
// topology lock) and is retargeted by Graph::relink (Relink::replace with MoveWriters::Yes) inside
// the drained section of both nodes. A request through the handle:
//   users += 1;  n = node;  loop { enter n's gate (external); if node == n break; leave; n = node }
//   ... request on n ...;  leave n's gate;  users -= 1
// The re-check after entering is what makes a request that picked up the old node and then waited
// on the drain go to the new node instead: a request that got *into* the old node's gate before the
// drain is waited for by the drain, so it finishes on the old node before the switch (an active
// commit's dirty tracker sees it and copies it); one that entered after the drain began waited at
// the gate until the drain ended, and the switch happened before that, so it sees the new node.
//
// Lifetime of the old node: a request may hold the old node's pointer between reading `node` and
// entering its gate. `users` is the hazard count that covers that window: the switch stores the new
// node and then reads `users` (both seq_cst; the request increments `users` and then reads `node`,
// both seq_cst: a Dekker pair). If no request was in flight, the old reference is dropped by the
// graph after the change; otherwise it goes to `retired` and the last request to leave drops it
// (the switch re-reads `users` after publishing `has_retired`, so one of the two always sees the
// other). So a moved handle does not keep its old node alive for long (its backing edge would
// otherwise keep forbidding writers on the new node).
//
// Lock order: Graph::topology_mutex_ -> mutex (a leaf). References are never dropped under either.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "blockcore/graph/node_ref.h"

namespace chainfs::detail {

struct HandleFollower {
  explicit HandleFollower(NodeRef target) : node(target.get()), ref(std::move(target)) {
    node_id.store(ref ? ref_id() : 0, std::memory_order_relaxed);
  }
  uint64_t ref_id() const;  // ref's node id (block_handle.cpp: Node is incomplete here)

  std::atomic<Node*> node;  // where requests go now; written under the topology lock, in a drain
  std::atomic<uint64_t> node_id{0};  // its id (for callers that only compare)
  std::atomic<int> users{0};         // requests and pins through this handle right now
  std::atomic<bool> has_retired{false};
  std::atomic<uint32_t> moves{0};  // times the handle was moved

  std::mutex mutex;              // leaf; guards ref and retired
  NodeRef ref;                   // keeps `node` alive
  std::vector<NodeRef> retired;  // former targets a request in flight may still look at
};

}  // namespace chainfs::detail
