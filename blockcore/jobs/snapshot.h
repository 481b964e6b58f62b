// Snapshots: `control/snapshot NODE OVERLAY_PATH [name=NODE] [mode=create|existing]`
// (INTERFACE.md). The lines of one write are one Transaction (graph/transaction.h), one
// SnapshotAction per line: all applied, or none and no file left behind.
//
// prepare (in line order; the first failure stops, and every prepared action is aborted, newest
// first, then cleaned):
//   1. find NODE; check the overlay's name (name= or the file's stem: EEXIST when taken) and path
//      (a missing folder: ENOENT; mode=create onto an existing file: EEXIST; mode=existing without
//      the file: ENOENT; a file already open in the graph: EBUSY)
//   2. claim NODE for the transaction (EBUSY while a job or another snapshot uses it); open
//      writers of NODE are welcome (a live snapshot of a running guest): see step 7
//   3. drain NODE until clean (the writers' requests wait at its gate)
//   4. mode=create: qcow2_create at OVERLAY_PATH with NODE's size
//   5. open the overlay as a node (not held by the user: like a layer found through image
//      headers, it is held by its parents and chains); mode=existing: a qcow2 image at least as
//      large as NODE
//   6. set its backing to NODE: Graph::set_backing records NODE's image (relative to the
//      overlay's folder where it can be) and format in the overlay's header
//   7. Graph::relink replace(NODE, overlay, MoveWriters::Yes): every parent of NODE (chains
//      included) now uses the overlay, their headers are rewritten, and every writable handle
//      that follows graph changes (a guest's open file) moves to the overlay; its requests that
//      waited at the drain go to the overlay once the drain ends, so NODE keeps the content it
//      had at step 3
// commit: nothing left to do (each step above is complete and undone by abort), except that an
//   overlay nothing points at (NODE had no parent and no chain) is held for the user, like NODE.
// abort: put the parents, chains and writers back on NODE (relink replace(overlay, NODE,
//   MoveWriters::Yes)); mode=existing:
//   restore the overlay's original backing reference.
// clean: end the drain, release the claim, drop the overlay (it closes unless the graph now holds
//   it), and for an aborted mode=create remove the file created in step 4.
#pragma once

#include <string>
#include <vector>

#include "blockcore/graph/graph.h"
#include "blockcore/result.h"

namespace chainfs {

enum class OverlayMode : uint8_t { Create, Existing };

struct SnapshotRequest {
  std::string node;          // NODE
  std::string overlay_path;  // absolute
  std::string overlay_name;  // empty: the overlay file's stem
  OverlayMode mode = OverlayMode::Create;
};

// Runs the requests as one transaction. Returns the overlay node names, in request order. An
// error names the line's action ("snapshot of 'top' onto /x/s1.qcow2: ...").
Result<std::vector<std::string>> run_snapshots(Graph& graph,
                                               const std::vector<SnapshotRequest>& requests);

}  // namespace chainfs
