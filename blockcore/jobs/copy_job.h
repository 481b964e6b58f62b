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
// size), so a window never splits a cluster. Before each window: a pause point (paused,
// throttled, drained, cancelled); after it: progress (bytes moved are charged to the rate limit,
// bytes skipped as unallocated or zero are not). A window that fails goes through the on-error
// policy: retried after a stop, skipped with `ignore`, or the job fails.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "blockcore/graph/claim.h"
#include "blockcore/graph/graph.h"
#include "blockcore/jobs/job.h"
#include "blockcore/jobs/layers.h"

namespace chainfs {

class CopyJob : public Job {
 public:
  static constexpr uint64_t kWindow = 4ull << 20;

  const LayerSpan& span() const { return span_; }

 protected:
  // The description (jobs/<id>'s type, node and base) comes from `span`.
  CopyJob(Graph& graph, std::string type, LayerSpan span);
  ~CopyJob() override;

  // Claims `targets` as "job <id>" and checks that the chain is still what the job resolved.
  Result<void> claim_nodes(const std::string& id, std::vector<ClaimTarget> targets);

  // Runs `window(offset, length)` over [0, size) window by window. The callback returns the
  // bytes it moved; the rest of the window counts as skipped.
  using WindowFn = std::function<Result<uint64_t>(uint64_t offset, uint64_t length)>;
  Result<void> for_each_window(JobContext& ctx, uint64_t size, const WindowFn& window);
  // One attempt loop around an operation, under the on-error policy: Ok, or the error to fail
  // with. `on_skip` runs when the policy skips it.
  Result<void> with_policy(JobContext& ctx, const std::function<Result<uint64_t>()>& attempt,
                           const std::function<void(uint64_t moved)>& on_done,
                           const std::function<void()>& on_skip);

  // Puts `observer` on the top node (inside a short drained section of it, so that no write in
  // flight misses it) and keeps it until remove_observer() (idempotent; also run by the
  // destructor). remove_observer() can run inside a drained section the caller holds
  // (`already_drained`); otherwise it drains the top node for the moment it takes.
  void install_observer(std::unique_ptr<WriteObserver> observer);
  void remove_observer(bool already_drained = false);

  // A buffer of kWindow bytes for the window's data (allocated on first use).
  std::span<std::byte> buffer(uint64_t length);

  Graph& graph_;
  LayerSpan span_;
  Claim claim_;

 private:
  std::unique_ptr<WriteObserver> observer_;  // on span_.top while set
  std::vector<std::byte> buffer_;
};

// Flushes `node` as an external request (it waits while the node is drained).
Result<void> flush_node(Node& node);

// Whether every byte is zero.
bool all_zero(std::span<const std::byte> data);

}  // namespace chainfs
