// Relink: a job's final graph change, stated as intent and resolved inside the drain
// (ARCHITECTURE rule 4, seed 002).
//
// A job decides *what* it wants when it starts, but the graph may change before it finishes (a
// commit below a stream finishes first and cuts out the stream's base). So the job does not pass
// concrete edges; it passes intents, and Graph::relink() resolves them under the graph-change lock
// and inside a drained section of everything involved, then applies and persists the edges:
//
//   Relink::backing_to_backing_of(top, above_base)
//       "make TOP's backing be whatever BASE's position resolves to now", where the position is
//       named by the lowest layer being cut out (`above_base`, which the job claims, so it stays in
//       place): TOP's backing becomes above_base's backing as it is at that moment. A stream uses
//       it; with above_base == top nothing changes.
//   Relink::backing_to(top, node)
//       TOP's backing becomes exactly `node` (nullptr: no backing). A stream without base.
//   Relink::replace(from, to)
//       every backing edge onto FROM (but TO's own), and every chain rooted at FROM, moves to TO,
//       whoever the parents are at that moment. A commit uses it (FROM = its top, TO = its base);
//       so does a snapshot (FROM = the old node, TO = the overlay already backed by it).
//       With MoveWriters::Yes the writable handles that follow graph changes (a guest's open file:
//       BlockHandle in graph.h) move from FROM to TO as well, inside the same drained section, and
//       the change is refused if TO could not take them (graph.h, check_writers_may_move_locked);
//       an active commit's completion and a snapshot do that, an intermediate commit does not
//       (nothing writes into a node that is not a chain's active layer while it is committed).
//
// Every Relink holds strong references to the nodes it names, so nothing it will link can vanish
// before it runs (the job keeps them; seed 002's use-after-free).
#pragma once

#include <string>

#include "blockcore/graph/node_ref.h"

namespace chainfs {

enum class MoveWriters : bool { No, Yes };

class Relink {
 public:
  enum class Kind { BackingToBackingOf, BackingTo, Replace };

  static Relink backing_to_backing_of(NodeRef top, NodeRef above_base);
  static Relink backing_to(NodeRef top, NodeRef backing);
  static Relink replace(NodeRef from, NodeRef to, MoveWriters writers = MoveWriters::No);

  Kind kind() const { return kind_; }
  const NodeRef& subject() const { return subject_; }  // top (backing_*) or from (replace)
  const NodeRef& target() const { return target_; }    // above_base, backing or to
  bool moves_writers() const { return move_writers_ == MoveWriters::Yes; }
  std::string describe() const;

 private:
  Relink(Kind kind, NodeRef subject, NodeRef target, MoveWriters writers = MoveWriters::No)
      : kind_(kind),
        subject_(std::move(subject)),
        target_(std::move(target)),
        move_writers_(writers) {}
  Kind kind_;
  NodeRef subject_;
  NodeRef target_;
  MoveWriters move_writers_;
};

}  // namespace chainfs
