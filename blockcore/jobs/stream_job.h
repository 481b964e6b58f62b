// StreamJob: `control/stream NODE [base=NODE]` (INTERFACE.md).
//
// Copies into NODE (the job's top) what it reads from the layers between it and base, where NODE
// holds nothing itself; then NODE's backing becomes base (none without a base) and the layers
// between are dropped. Guest writes into NODE go on during the copy and win over copied data
// (CopyOnReadLock, write_tracking.h).
//
// Per window, inside one external request on the top node (so edges hold still and a drain waits
// for the window instead of deadlocking with it) and holding the window against guest writes:
//   top's own status   Data/Zero: the node's own bytes, skipped
//                      Unallocated: the status of the between layers (span_status):
//     Data   read through top (what a guest sees now) and write it into top; all-zero data is
//            written as zeros (no data cluster) with a base, and skipped without one
//     Zero   zeros in a between layer (or past a shorter one's end): written as zeros with a base
//            (base's data must not show through afterwards), skipped without one
//     Below  base's data (or nothing): stays where it is, skipped
//
// The final change (prepare, on the job's thread): flush top, then one Graph::relink —
// backing_to_backing_of(top, lowest layer cut out) with a base, backing_to(top, none) without —
// which drains the subtree, re-reads the graph and persists top's new backing in its header. So a
// commit that finished first below the stream (seed 002) is taken into account: top ends up on
// whatever sits below the stream's lowest cut-out layer *now*.
//
// Claims: top as JobTop (guest writes go on; the stream may write data that leaves what top
// reads unchanged), the layers it cuts out as JobIntermediate. Base is held (a strong
// reference) but not claimed: a commit may cut it out meanwhile (seed 002).
#pragma once

#include "blockcore/jobs/copy_job.h"
#include "blockcore/jobs/write_tracking.h"

namespace chainfs {

class StreamJob final : public CopyJob {
 public:
  // `span` from resolve_span(..., BaseDefault::None).
  StreamJob(Graph& graph, LayerSpan span);

  // The layers the stream drops (between, without filters right above base).
  const std::vector<NodeRef>& cut_out() const { return cut_; }

 protected:
  Result<void> on_start(const std::string& id) override;
  Result<void> run(JobContext& ctx) override;
  Result<void> prepare() override;
  void clean() override;

 private:
  Result<uint64_t> copy_window(uint64_t offset, uint64_t length, std::span<std::byte> buffer);
  // Copies [offset, offset + length), which top does not hold, from the between layers.
  Result<uint64_t> copy_from_below(Node& top, uint64_t offset, uint64_t length,
                                   std::span<std::byte> window_buffer, uint64_t window_offset);

  std::vector<NodeRef> cut_;
  CopyOnReadLock* cor_ = nullptr;  // owned by CopyJob (the top's observer) while the job runs
};

}  // namespace chainfs
