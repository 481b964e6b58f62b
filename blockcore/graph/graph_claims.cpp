// Claims and permissions (rule 2): whether a node may be used for an operation, decided apart from
// whether it is alive. See claim.h for the table of kinds.
#include "blockcore/graph/graph.h"

namespace chainfs {

Result<Claim> Graph::claim(std::string claimant, std::vector<ClaimTarget> targets) {
  if (claimant.empty()) return make_error(Errc::Invalid, "a claim needs a claimant");
  if (targets.empty()) return make_error(Errc::Invalid, "{} claims no node", claimant);
  for (size_t i = 0; i < targets.size(); ++i) {
    const NodeRef& n = targets[i].node;
    if (!n) return make_error(Errc::Invalid, "{} claims a null node", claimant);
    if (&n->graph() != this)
      return make_error(Errc::Invalid, "{}: node '{}' is not in this graph", claimant, n->name());
    for (size_t j = 0; j < i; ++j)
      if (targets[j].node == n)
        return make_error(Errc::Invalid, "{} claims node '{}' twice", claimant, n->name());
  }
  uint64_t id = 0;
  {
    std::lock_guard lock(topology_mutex_);
    for (const ClaimTarget& t : targets) {
      for (const ClaimInfo& held : t.node->claims_)
        if (!claims_compatible(held.kind, t.kind))
          return make_error(Errc::Busy, "node '{}' is in use by {} (as its {})", t.node->name(),
                            held.claimant, claim_kind_name(held.kind));
      if (int writers = t.node->writers(); claim_rules(t.kind).blocks_new_writers && writers > 0)
        return make_error(Errc::Busy, "node '{}' has {} open writer(s); {} needs it as {}",
                          t.node->name(), writers, claimant, claim_kind_name(t.kind));
    }
    id = next_claim_id_++;
    for (const ClaimTarget& t : targets) t.node->claims_.push_back({id, claimant, t.kind});
    bump_generation_locked();
  }
  Claim claim;
  claim.graph_ = this;
  claim.id_ = id;
  claim.claimant_ = std::move(claimant);
  claim.targets_ = std::move(targets);
  return claim;
}

void Graph::release_claim(Claim& claim) {
  std::lock_guard lock(topology_mutex_);
  for (const ClaimTarget& t : claim.targets_)
    std::erase_if(t.node->claims_, [&](const ClaimInfo& c) { return c.claim_id == claim.id_; });
  bump_generation_locked();
}

Result<void> Graph::check_writable_locked(const Node& node, const Claim* claim,
                                          uint32_t perm) const {
  for (const ClaimInfo& held : node.claims_) {
    if (claim && held.claim_id == claim->id()) continue;
    if (claim_rules(held.kind).blocks_new_writers)
      return make_error(Errc::Busy,
                        "node '{}' is in use by {} (as its {}) and may not take writers",
                        node.name(), held.claimant, claim_kind_name(held.kind));
  }
  const uint32_t granted =
      claim && claim->covers(node) ? claim_rules(*claim->kind_of(node)).grants : 0;
  for (const Child* edge : node.parent_edges_) {
    if ((edge->perms_shared & perm) == perm) continue;
    // The claimant may break what a parent reads only if that parent is its own to cut out.
    if ((granted & perm) == perm && claim->covers(*edge->parent)) continue;
    return make_error(Errc::Access, "node '{}' is the {} node of '{}' and may not take writers",
                      node.name(), child_role_name(edge->role), edge->parent->name());
  }
  return {};
}

namespace {
// The checks that need no graph lock (and call the driver, which must not run under it).
Result<void> check_writable_unlocked(const Graph& graph, const Node& node) {
  if (graph.options().read_only) return make_error(Errc::ReadOnly, "the mount is read-only");
  if (node.read_only()) return make_error(Errc::ReadOnly, "node '{}' is read-only", node.name());
  if (!node.capabilities().writable)
    return make_error(Errc::ReadOnly, "node '{}' ({}) does not take writes", node.name(),
                      node.driver_name());
  return {};
}
}  // namespace

Result<void> Graph::check_writable_nolock(const Node& node) const {
  return chainfs::check_writable_unlocked(*this, node);
}

Result<void> Graph::check_writable(const Node& node) const {
  CHAINFS_TRY(check_writable_unlocked(*this, node));
  std::lock_guard lock(topology_mutex_);
  return check_writable_locked(node, nullptr, PermWrite);
}

Result<void> Graph::check_writable(const Node& node, const Claim& claim, uint32_t perm) const {
  CHAINFS_TRY(check_writable_unlocked(*this, node));
  std::lock_guard lock(topology_mutex_);
  return check_writable_locked(node, &claim, perm);
}

Result<BlockHandle> Graph::open_handle(NodeRef node, bool writable) const {
  if (!node) return make_error(Errc::Invalid, "open: no node");
  if (writable) CHAINFS_TRY(check_writable_unlocked(*this, *node));
  std::lock_guard lock(topology_mutex_);
  if (!writable) return BlockHandle(std::move(node), false);
  CHAINFS_TRY(check_writable_locked(*node, nullptr, PermWrite));
  // Counted as a writer (and registered to follow graph changes) under the lock, so that a claim
  // cannot slip in between check and count, nor a relink between check and registration.
  return BlockHandle(std::move(node), BlockHandle::FollowTag{});  // `node` moved: nothing dropped
}

Result<BlockHandle> Graph::open_handle(NodeRef node, const Claim& claim, uint32_t perm) const {
  if (!node) return make_error(Errc::Invalid, "open: no node");
  CHAINFS_TRY(check_writable_unlocked(*this, *node));
  std::lock_guard lock(topology_mutex_);
  CHAINFS_TRY(check_writable_locked(*node, &claim, perm));
  return BlockHandle(std::move(node), true);  // a job's handle: it does not follow
}

Result<void> Graph::check_writers_may_move_locked(const Node& from, const Node& to,
                                                  const Result<void>& unlocked_verdict) const {
  if (!unlocked_verdict.ok())
    return make_error(unlocked_verdict.error().code,
                      "the open writer(s) of '{}' cannot move to '{}': {}", from.name(), to.name(),
                      unlocked_verdict.error().message);
  auto refuse = [&](const Child& edge) {
    return make_error(Errc::Access,
                      "the open writer(s) of '{}' cannot move to '{}': '{}' would be the {} node "
                      "of '{}'",
                      from.name(), to.name(), to.name(), child_role_name(edge.role),
                      edge.parent->name());
  };
  for (const Child* edge : to.parent_edges_) {
    if (edge->perms_shared & PermWrite) continue;
    if (reaches_locked(from, *edge->parent)) continue;  // cut out by this change
    return refuse(*edge);
  }
  for (const Child* edge : from.parent_edges_) {
    if (edge->role != ChildRole::Backing || edge->parent == &to) continue;
    if (!(edge->perms_shared & PermWrite)) return refuse(*edge);  // it moves onto `to`
  }
  return {};
}

}  // namespace chainfs
