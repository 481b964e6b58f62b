#include "blockcore/graph/claim.h"

#include <utility>

#include "blockcore/graph/graph.h"
#include "blockcore/graph/node.h"

namespace chainfs {

const char* claim_kind_name(ClaimKind kind) {
  switch (kind) {
    case ClaimKind::JobTop:
      return "top";
    case ClaimKind::JobIntermediate:
      return "intermediate layer";
    case ClaimKind::JobBase:
      return "base";
    case ClaimKind::Transaction:
      return "transaction node";
  }
  return "?";
}

ClaimRules claim_rules(ClaimKind kind) {
  switch (kind) {
    case ClaimKind::JobTop:
      return {.blocks_new_writers = false, .grants = PermWriteUnchanged};
    case ClaimKind::JobIntermediate:
      return {.blocks_new_writers = true, .grants = 0};
    case ClaimKind::JobBase:
      return {.blocks_new_writers = true, .grants = PermWrite};
    case ClaimKind::Transaction:
      return {.blocks_new_writers = false, .grants = 0};
  }
  return {};
}

bool claims_compatible(ClaimKind, ClaimKind) {
  // Every kind is exclusive today: two claimants never share a node. (Stream and commit on
  // overlapping chains still run together: a stream does not claim its base, see graph-model.md.)
  return false;
}

Claim::Claim(Claim&& other) noexcept
    : graph_(std::exchange(other.graph_, nullptr)),
      id_(std::exchange(other.id_, 0)),
      claimant_(std::move(other.claimant_)),
      targets_(std::move(other.targets_)) {}

Claim& Claim::operator=(Claim&& other) noexcept {
  if (this != &other) {
    release();
    graph_ = std::exchange(other.graph_, nullptr);
    id_ = std::exchange(other.id_, 0);
    claimant_ = std::move(other.claimant_);
    targets_ = std::move(other.targets_);
  }
  return *this;
}

void Claim::release() {
  if (Graph* graph = std::exchange(graph_, nullptr)) graph->release_claim(*this);
  targets_.clear();  // the references go last, outside every graph lock
}

bool Claim::covers(const Node& node) const {
  return kind_of(node).has_value();
}

std::optional<ClaimKind> Claim::kind_of(const Node& node) const {
  for (const ClaimTarget& t : targets_)
    if (t.node.get() == &node) return t.kind;
  return std::nullopt;
}

}  // namespace chainfs
