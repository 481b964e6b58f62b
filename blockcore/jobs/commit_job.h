// CommitJob: `control/commit NODE [base=NODE]` (INTERFACE.md), intermediate and active.
//
// Intermediate commit (NODE is not a chain's active layer; nobody writes into it or the layers
// between, the claims see to that): per window, inside one external request on NODE (edges hold
// still), the status of NODE and the layers between (span_status):
//   Data   read through NODE (its view of the range) and write it into base (all-zero data as
//          zeros: no data cluster)
//   Zero   zeros in one of them (or past a shorter one's end): zeros into base
//   Below  nothing above base holds it: base has it already, skipped
// Base is grown first if NODE is larger. The final change: flush base, then one Graph::relink
// replace(NODE, base): every backing edge onto NODE (whoever the parents are *now*) and every
// chain rooted at it moves to base, headers rewritten; the layers between are dropped.
//
// Active commit (NODE is a chain's active layer and takes guest writes): the same first pass with
// a DirtyTracker on NODE (write_tracking.h) from the start; then it copies dirty ranges until at
// most kReadyDirtyBytes are left, becomes `ready`, and keeps mirroring new writes into base until
// `complete`. The
// final change drains NODE's subtree (no guest write in flight, new ones wait), copies what is
// still dirty with internal I/O, flushes base and relinks replace(NODE, base, MoveWriters::Yes) —
// the chain now points at base, the guests' open writable handles on NODE now write into base
// (a write that waited at the drain goes there), and no write acknowledged before the switch is
// missing. `cancel` (or a failure)
// leaves the chain on NODE; a job cancelled after it was ready first brings base up to date
// under the same kind of drain, so base holds a consistent copy of NODE.
//
// Claims: NODE as JobTop (guest writes go on), the layers between as JobIntermediate, base as
// JobBase (no other writer; the job may write it although the layer above reads it, since that
// layer is the job's to cut out).
#pragma once

#include <optional>

#include "blockcore/jobs/copy_job.h"
#include "blockcore/jobs/write_tracking.h"

namespace chainfs {

class CommitJob final : public CopyJob {
 public:
  // `span` from resolve_span(..., BaseDefault::Bottom). `active`: NODE is a chain's active layer.
  CommitJob(Graph& graph, LayerSpan span, bool active);

  bool active() const { return active_; }
  // How long a ready job sleeps when nothing is dirty before it looks again (wake() ends it
  // early; it is only a safety net).
  static constexpr std::chrono::milliseconds kIdleWait{500};
  // An active commit is ready once at most this much is dirty after its first pass.
  static constexpr uint64_t kReadyDirtyBytes = kWindow;

 protected:
  Result<void> on_start(const std::string& id) override;
  Result<void> run(JobContext& ctx) override;
  Result<void> prepare() override;
  void abort() override;
  void clean() override;

 private:
  Result<void> mirror(JobContext& ctx);
  Result<uint64_t> copy_window(uint64_t offset, uint64_t length, std::span<std::byte> buffer);
  // Copies a range as top reads it now into base. `drained`: inside the job's drained section
  // (internal I/O); otherwise as external requests.
  Result<uint64_t> copy_range(ByteRange range, bool drained);
  // Copies every dirty range; inside a drained section of top's subtree.
  Result<void> copy_all_dirty_drained();
  Result<void> write_base(uint64_t offset, std::span<const std::byte> data, bool drained);
  Result<void> grow_base(bool drained);

  const bool active_;
  std::vector<NodeRef> members_;  // top and the layers between: what the commit copies from
  std::optional<BlockHandle> base_handle_;
  DirtyTracker* tracker_ = nullptr;  // owned by CopyJob (top's observer) while set
  bool reached_ready_ = false;
};

}  // namespace chainfs
