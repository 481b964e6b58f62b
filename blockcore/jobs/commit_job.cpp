#include "blockcore/jobs/commit_job.h"

#include <algorithm>

#include "blockcore/graph/drain.h"
#include "blockcore/graph/request_gate.h"

namespace chainfs {

CommitJob::CommitJob(Graph& graph, LayerSpan span, bool active)
    : CopyJob(graph, active ? "active-commit" : "commit", std::move(span)), active_(active) {
  members_.push_back(span_.top);
  members_.insert(members_.end(), span_.between.begin(), span_.between.end());
  watch_nodes({span_.top, span_.base});
  set_write_target(span_.base);
}

Result<void> CommitJob::on_start(const std::string& id) {
  std::vector<ClaimTarget> targets{{span_.top, ClaimKind::JobTop}};
  for (const NodeRef& n : span_.between) targets.push_back({n, ClaimKind::JobIntermediate});
  targets.push_back({span_.base, ClaimKind::JobBase});
  CHAINFS_TRY(claim_nodes(id, std::move(targets)));
  // base takes the copy: a backing layer found through a header is reopened read-write for the
  // job (and read-only again at its end, unless it became the chain's active layer).
  const std::string into = fmt::format("commit into '{}'", span_.base->name());
  CHAINFS_TRY(hold_read_write(span_.base, into));
  auto handle = graph_.open_handle(span_.base, claim_, PermWrite);
  if (!handle.ok()) return make_error(handle.error().code, "{}: {}", into, handle.error().message);
  // At the end every image that names top as its backing file is rewritten to name base: those
  // must be writable too (refused now rather than after the copy).
  for (const NodeRef& parent : span_.top->parents()) {
    if (!parent->capabilities().persists_backing) continue;
    CHAINFS_TRY(hold_read_write(
        parent, fmt::format("commit of '{}': the image of node '{}' above it must name '{}' as "
                            "its backing file at the end",
                            span_.top->name(), parent->name(), span_.base->name())));
    if (!parent->capabilities().writable)
      return make_error(Errc::ReadOnly,
                        "commit of '{}': node '{}' above it is read-only, so its image could not "
                        "be changed to name '{}' as its backing file",
                        span_.top->name(), parent->name(), span_.base->name());
  }
  base_handle_.emplace(std::move(*handle));
  return ok_result();
}

Result<void> CommitJob::run(JobContext& ctx) {
  if (active_) {
    auto tracker = std::make_unique<DirtyTracker>([this] { wake(); });
    tracker_ = tracker.get();
    install_observer(std::move(tracker));
  }
  CHAINFS_TRY(grow_base(false));
  const uint64_t size = span_.top->size();
  ctx.set_total(size);
  CHAINFS_TRY(for_each_window(ctx, size,
                              [&](uint64_t offset, uint64_t length, std::span<std::byte> buffer) {
                                return copy_window(offset, length, buffer);
                              }));
  if (!active_) return ok_result();
  return mirror(ctx);
}

Result<void> CommitJob::mirror(JobContext& ctx) {
  for (;;) {
    if (reached_ready_ && ctx.should_complete()) return ok_result();
    // Converged: what is left to copy at the switch is small (busy guests may keep a little
    // dirty all the time; the drain at `complete` copies it with the guest held).
    if (!reached_ready_ && tracker_->dirty_bytes() <= kReadyDirtyBytes) {
      CHAINFS_TRY(ctx.ready());
      reached_ready_ = true;
    }
    std::optional<ByteRange> range = tracker_->take(kWindow);
    if (!range) {
      CHAINFS_TRY(ctx.idle(kIdleWait));
      continue;
    }
    ctx.add_total(range->length);
    Result<void> copied = with_policy(
        ctx, std::nullopt, [&] { return copy_range(*range, false); },
        [&](uint64_t moved) {
          ctx.account(std::min(moved, range->length));
          ctx.advance(range->length - std::min(moved, range->length));
          note_written(moved);
        },
        [&] { ctx.advance(range->length); });
    if (!copied.ok()) {
      // Still dirty: a cancelled job brings base up to date in abort().
      tracker_->mark(range->offset, range->length);
      return copied;
    }
  }
}

Result<void> CommitJob::grow_base(bool drained) {
  const uint64_t top_size = span_.top->size();
  if (span_.base->size() >= top_size) return ok_result();
  Result<void> grown = drained ? span_.base->truncate(top_size) : base_handle_->truncate(top_size);
  if (!grown.ok())
    return make_error(grown.error().code, "growing base '{}' to {} bytes: {}", span_.base->name(),
                      top_size, grown.error().message);
  return ok_result();
}

Result<void> CommitJob::write_base(uint64_t offset, std::span<const std::byte> data, bool drained) {
  Node& base = *span_.base;
  if (all_zero(data))
    return drained ? base.write_zeroes(offset, data.size())
                   : base_handle_->write_zeroes(offset, data.size());
  return drained ? base.write(offset, data) : base_handle_->write(offset, data);
}

Result<uint64_t> CommitJob::copy_window(uint64_t offset, uint64_t length,
                                        std::span<std::byte> window_buffer) {
  Node& top = *span_.top;
  const uint64_t end = std::min(offset + length, top.size());
  uint64_t moved = 0;
  uint64_t pos = offset;
  while (pos < end) {
    SpanExtent ext;
    std::span<std::byte> data;
    {
      // The walk reads edges and the read goes through them: both inside one request on top.
      RequestGuard request(top.gate(), RequestGuard::Entry::External);
      CHAINFS_ASSIGN_OR_RETURN(ext, span_status(&top, members_, pos, end - pos));
      if (ext.kind == SpanData::Data) {
        uint64_t data_end = pos + ext.length;
        while (data_end < end) {
          CHAINFS_ASSIGN_OR_RETURN(SpanExtent next,
                                   span_status(&top, members_, data_end, end - data_end));
          if (next.kind != SpanData::Data) break;
          data_end += next.length;
        }
        ext.length = data_end - pos;
        data = window_buffer.subspan(pos - offset, ext.length);
        // Writes that complete from here on mark the range dirty again and are copied again.
        if (tracker_) tracker_->forget(pos, ext.length);
        CHAINFS_TRY(top.read(pos, data));
      }
    }
    if (ext.kind == SpanData::Data) {
      CHAINFS_TRY(write_base(pos, data, false));
      moved += ext.length;
    } else if (ext.kind == SpanData::Zero) {
      CHAINFS_TRY(base_handle_->write_zeroes(pos, ext.length));
    }
    pos += ext.length;
  }
  return moved;
}

Result<uint64_t> CommitJob::copy_range(ByteRange range, bool drained) {
  CHAINFS_TRY(grow_base(drained));
  Node& top = *span_.top;
  const uint64_t end = std::min(range.end(), top.size());
  uint64_t moved = 0;
  for (uint64_t pos = range.offset; pos < end;) {
    const uint64_t n = std::min(end - pos, kWindow);
    std::span<std::byte> data = buffer(n);
    if (drained) {
      CHAINFS_TRY(top.read(pos, data));
    } else {
      RequestGuard request(top.gate(), RequestGuard::Entry::External);
      CHAINFS_TRY(top.read(pos, data));
    }
    CHAINFS_TRY(write_base(pos, data, drained));
    moved += n;
    pos += n;
  }
  return moved;
}

Result<void> CommitJob::copy_all_dirty_drained() {
  if (!tracker_) return ok_result();
  CHAINFS_TRY(grow_base(true));
  while (std::optional<ByteRange> range = tracker_->take(kWindow)) {
    if (auto copied = copy_range(*range, true); !copied.ok()) {
      tracker_->mark(range->offset, range->length);
      return copied.take_error();
    }
  }
  return ok_result();
}

Result<void> CommitJob::prepare() {
  if (!active_) {
    CHAINFS_TRY(flush_target());
    return graph_.relink({Relink::replace(span_.top, span_.base)});
  }
  // Most of the data goes to the disk before the drain, while guests still run.
  CHAINFS_TRY(flush_target());
  // No guest write in flight on top from here on; new ones wait until the chain points at base.
  DrainedSection drain({span_.top}, DrainScope::Subtree);
  Result<void> outcome = copy_all_dirty_drained();
  if (outcome.ok()) outcome = span_.base->flush();
  // The guests' writable handles on top move to base in the same drained section: a write that
  // waited at top's gate goes to base, none lands in the detached top.
  if (outcome.ok())
    outcome = graph_.relink({Relink::replace(span_.top, span_.base, MoveWriters::Yes)});
  tracker_ = nullptr;
  remove_observer(/*already_drained=*/true);
  return outcome;
}

void CommitJob::abort() {
  if (!active_ || !reached_ready_ || !tracker_) return;
  // Cancelled (or failed) after it was ready: the chain stays on top, and base gets what is
  // still dirty so that it holds a consistent copy of top as of this moment.
  DrainedSection drain({span_.top}, DrainScope::Subtree);
  Result<void> synced = copy_all_dirty_drained();
  if (synced.ok()) synced = span_.base->flush();
  if (!synced.ok())
    graph_.log().warn("job on '{}': bringing base '{}' up to date after cancel failed: {}",
                      span_.top->name(), span_.base->name(), synced.error().message);
  tracker_ = nullptr;
  remove_observer(/*already_drained=*/true);
}

void CommitJob::clean() {
  tracker_ = nullptr;
  remove_observer();
  base_handle_.reset();
  // Last: base and the images above top go back to read-only (base stays read-write if an
  // active commit made it the chain's active layer).
  release_read_write();
}

}  // namespace chainfs
