// CopyJob: what stream, commit and active commit share — the nodes they hold and claim, the
// window loop with its pause points, progress and on-error policy, and the write observer they
// put on their top node.
//
// A job holds a strong reference to every node it works on or will link (LayerSpan: top, the
// layers between, base — ARCHITECTURE rule 4), claims them when it starts (rule 2: a conflicting
// job is refused with EBUSY naming the holder) and releases the claim when it is destroyed, right
// after clean(), before anyone sees it concluded.
//
// The data moves in windows of kWindow bytes, aligned to kWindow (a multiple of every cluster
// size), so a window never splits a cluster; one window at a time, on the job's thread (two
// windows at once on two threads were measured slower: they contend in the image and on the
// host's page cache). Before each window: a pause point (paused, throttled, drained, cancelled),
// so no window is in progress while the job is parked; after it: progress (bytes moved are
// charged to the rate limit, bytes skipped as unallocated or zero are not). A window that failed
// goes through the on-error policy: retried after a stop, skipped with `ignore`, or the job fails.
#pragma once

#include <chrono>

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blockcore/graph/claim.h"
#include "blockcore/graph/graph.h"
#include "blockcore/jobs/job.h"
#include "blockcore/jobs/layers.h"
#include "blockcore/util/aligned_buffer.h"

namespace chainfs {

class CopyJob : public Job {
 public:
  static constexpr uint64_t kWindow = 4ull << 20;
  // The longest a window's pause for busy guests lasts (for_each_window).
  static constexpr std::chrono::milliseconds kMaxGuestYield{100};

  const LayerSpan& span() const { return span_; }

 protected:
  // The description (jobs/<id>'s type, node and base) comes from `span`.
  CopyJob(Graph& graph, std::string type, LayerSpan span);
  ~CopyJob() override;

  // Claims `targets` as "job <id>" and checks that the chain is still what the job resolved.
  Result<void> claim_nodes(const std::string& id, std::vector<ClaimTarget> targets);

  // Runs `window(offset, length, buffer)` over [0, size), window by window (`buffer`: at least
  // `length` bytes). It returns the bytes it moved; the rest of the window counts as skipped.
  // After a window during which guests made requests, the job pauses and the next window writes
  // through the host page cache; otherwise a window's large writes go O_DIRECT (io_hint.h).
  using WindowFn =
      std::function<Result<uint64_t>(uint64_t offset, uint64_t length, std::span<std::byte>)>;
  Result<void> for_each_window(JobContext& ctx, uint64_t size, const WindowFn& window);
  // An operation under the on-error policy, on the job's thread: `first` is the outcome of a
  // first attempt made already (or nullopt: none yet); failures go to ctx.handle_io_error(),
  // and `attempt` runs again after a pause point on Retry. Ok once it succeeded (`on_done`) or
  // was skipped (`on_skip`), else the error to fail with.
  Result<void> with_policy(JobContext& ctx, std::optional<Result<uint64_t>> first,
                           const std::function<Result<uint64_t>()>& attempt,
                           const std::function<void(uint64_t moved)>& on_done,
                           const std::function<void()>& on_skip);

  // Puts `observer` on the top node (inside a short drained section of it, so that no write in
  // flight misses it) and keeps it until remove_observer() (idempotent; also run by the
  // destructor). remove_observer() can run inside a drained section the caller holds
  // (`already_drained`); otherwise it drains the top node for the moment it takes.
  void install_observer(std::unique_ptr<WriteObserver> observer);
  void remove_observer(bool already_drained = false);

  // Read-write access for the job to a node that may be read-only as a backing layer (a commit's
  // base, the image above its top whose header it rewrites, a stream into a middle layer):
  // Graph::hold_read_write, kept until release_read_write() (clean(); the destructor too, for a
  // start that was refused). Refused (EROFS) when the user made the node read-only; `what` says
  // what the job needed it for.
  Result<void> hold_read_write(const NodeRef& node, std::string_view what);
  // Drops the holds: the nodes the job reopened read-write go back to read-only, unless a node
  // is now a chain's root (an active commit's base). Call once the job's own writes are done.
  void release_read_write() { read_write_.clear(); }

  // The job's buffer of kWindow bytes (allocated on first use), cut to `length`.
  std::span<std::byte> buffer(uint64_t length);

  // Writeback of the node the job writes into (stream: top, commit: base) as the copy goes. The
  // final flush before the relink (the data must be on disk before a header stops naming the
  // layers it came from) would otherwise write everything at the end; instead, every
  // kWritebackEvery bytes moved the job asks the host to start writing them out
  // (Node::start_writeback: no wait for the disk, no device cache flush), and the final flush has
  // little left. On a helper thread: starting writeback costs the kernel real CPU (it allocates
  // blocks and builds the I/O), which the copy's thread should not wait for.
  static constexpr uint64_t kWritebackEvery = 16ull << 20;
  void set_write_target(NodeRef node) { write_target_ = std::move(node); }
  void note_written(uint64_t bytes);
  // Flushes the target as an external request (it waits while the target is drained by others).
  Result<void> flush_target();

  Graph& graph_;
  LayerSpan span_;
  Claim claim_;

 private:
  std::unique_ptr<WriteObserver> observer_;  // on span_.top while set
  AlignedBuffer buffer_;
  NodeRef write_target_;
  std::vector<ReadWriteHold> read_write_;
  uint64_t unwritten_ = 0;  // bytes moved since the last start_writeback()
  // Declared last: destroyed first (std::async's future waits), before the nodes go.
  std::future<void> writeback_;
};

// Flushes `node` as an external request (it waits while the node is drained).
Result<void> flush_node(Node& node);

// Whether every byte is zero.
bool all_zero(std::span<const std::byte> data);

}  // namespace chainfs
