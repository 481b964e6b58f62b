// Claim: exclusive use of nodes by one claimant (a job, a transaction), separate from lifetime
// (ARCHITECTURE rule 2, seed 004). Being referenced says nothing about being busy: a node may be
// referenced by many and claimed by none, or claimed and otherwise unreferenced.
//
// A Claim is an RAII object returned by Graph::claim(): it holds a NodeRef to every node it
// claims (so a claimed node cannot close while the claim exists), records (claimant, kind) on each
// node, and releases both when destroyed. What each kind forbids to others and grants its claimant
// is one table, claim_rules() in claim.cpp:
//
//   kind             | other claims | new writers (check_writable) | grants the claimant
//   -----------------+--------------+------------------------------+-----------------------------
//   JobTop           | refused      | allowed (guest writes go on) | PermWriteUnchanged
//   JobIntermediate  | refused      | refused                      | -
//   JobBase          | refused      | refused                      | PermWrite
//   Transaction      | refused      | allowed                      | -
//
// "Grants" means: the claimant may take that permission on the node although a parent edge does
// not share it, provided that parent is covered by the same claim (a commit writes into its base
// although the layer above reads it: that layer is one the commit will cut out). Edges whose
// parent is not covered still forbid it (a second overlay sharing the base).
//
// A node claimed by a job is *listed* (INTERFACE.md: a running job holds it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "blockcore/graph/node_ref.h"

namespace chainfs {

class Graph;
class Node;

enum class ClaimKind : uint8_t {
  JobTop,           // the node a job works on from the top: stream copies into it, commit reads it
  JobIntermediate,  // a layer the job will cut out of the chain
  JobBase,          // the node a commit writes into
  Transaction,      // a node a transaction action (snapshot) changes
};
const char* claim_kind_name(ClaimKind kind);  // "top", "intermediate layer", "base", ...

struct ClaimRules {
  bool blocks_new_writers = false;
  uint32_t grants = 0;  // Perm bits (node.h)
};
ClaimRules claim_rules(ClaimKind kind);
// Whether a node claimed as `held` may also be claimed as `wanted` by another claimant.
bool claims_compatible(ClaimKind held, ClaimKind wanted);

struct ClaimTarget {
  NodeRef node;
  ClaimKind kind = ClaimKind::JobTop;
};

// One claim as recorded on a node (Node::claims()).
struct ClaimInfo {
  uint64_t claim_id = 0;
  std::string claimant;  // "job stream0", "snapshot transaction"
  ClaimKind kind = ClaimKind::JobTop;
};

class [[nodiscard]] Claim {
 public:
  Claim() = default;  // holds nothing
  Claim(Claim&& other) noexcept;
  Claim& operator=(Claim&& other) noexcept;
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;
  ~Claim() { release(); }

  // Drops the records and then the references (idempotent).
  void release();
  bool active() const { return graph_ != nullptr; }
  uint64_t id() const { return id_; }
  const std::string& claimant() const { return claimant_; }
  const std::vector<ClaimTarget>& targets() const { return targets_; }
  bool covers(const Node& node) const;
  std::optional<ClaimKind> kind_of(const Node& node) const;

 private:
  friend class Graph;
  Graph* graph_ = nullptr;
  uint64_t id_ = 0;
  std::string claimant_;
  std::vector<ClaimTarget> targets_;
};

}  // namespace chainfs
