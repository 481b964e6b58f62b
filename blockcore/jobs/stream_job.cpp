#include "blockcore/jobs/stream_job.h"

#include <algorithm>

#include "blockcore/graph/request_gate.h"
#include "blockcore/util/sync_point.h"

namespace chainfs {

StreamJob::StreamJob(Graph& graph, LayerSpan span) : CopyJob(graph, "stream", std::move(span)) {
  // Cut out: the between layers down to the lowest one with a backing edge. Filters right above
  // base stay: they are part of base's edge (`top -> flaky -> base` keeps flaky). Without a base
  // everything below top goes.
  size_t keep = span_.between.size();
  if (span_.base)
    while (keep > 0 && is_filter(*span_.between[keep - 1])) --keep;
  cut_.assign(span_.between.begin(), span_.between.begin() + keep);
  watch_nodes({span_.top});
  set_write_target(span_.top);
}

Result<void> StreamJob::on_start(const std::string& id) {
  std::vector<ClaimTarget> targets{{span_.top, ClaimKind::JobTop}};
  for (const NodeRef& n : cut_) targets.push_back({n, ClaimKind::JobIntermediate});
  CHAINFS_TRY(claim_nodes(id, std::move(targets)));
  const std::string into = fmt::format("stream into '{}'", span_.top->name());
  // A middle layer found through a header is reopened read-write for the job (its data and its
  // header change), and read-only again at the end.
  CHAINFS_TRY(hold_read_write(span_.top, into));
  // The copy writes into top data that leaves what it reads unchanged.
  if (auto ok = graph_.check_writable(*span_.top, claim_, PermWriteUnchanged); !ok.ok())
    return make_error(ok.error().code, "stream into '{}': {}", span_.top->name(),
                      ok.error().message);
  return ok_result();
}

Result<void> StreamJob::run(JobContext& ctx) {
  auto lock = std::make_unique<CopyOnReadLock>();
  cor_ = lock.get();
  install_observer(std::move(lock));
  const uint64_t size = span_.top->size();
  ctx.set_total(size);
  return for_each_window(ctx, size,
                         [&](uint64_t offset, uint64_t length, std::span<std::byte> buffer) {
                           return copy_window(offset, length, buffer);
                         });
}

Result<uint64_t> StreamJob::copy_window(uint64_t offset, uint64_t length,
                                        std::span<std::byte> window_buffer) {
  Node& top = *span_.top;
  // First the request (may wait for a drain: we hold nothing yet), then the window.
  RequestGuard request(top.gate(), RequestGuard::Entry::External);
  CopyOnReadLock::WindowGuard window(*cor_, offset, length);
  const uint64_t end = std::min(offset + length, top.size());
  uint64_t moved = 0;
  uint64_t pos = offset;
  while (pos < end) {
    // Checked under the window: a guest write that landed before it is seen as allocated here.
    CHAINFS_ASSIGN_OR_RETURN(BlockStatus own, top.block_status(pos, end - pos));
    const uint64_t run = std::max<uint64_t>(1, own.length);
    if (own.kind == Alloc::Unallocated) {
      CHAINFS_ASSIGN_OR_RETURN(uint64_t n, copy_from_below(top, pos, run, window_buffer, offset));
      moved += n;
    }
    pos += run;
  }
  return moved;
}

Result<uint64_t> StreamJob::copy_from_below(Node& top, uint64_t offset, uint64_t length,
                                            std::span<std::byte> window_buffer,
                                            uint64_t window_offset) {
  Node* below = top.backing();
  const uint64_t end = offset + length;
  // Past the end of a base shorter than top, top reads zeros whatever its backing is.
  const uint64_t base_size = span_.base ? span_.base->size() : 0;
  uint64_t moved = 0;
  uint64_t pos = offset;
  while (pos < end) {
    CHAINFS_ASSIGN_OR_RETURN(SpanExtent ext, span_status(below, span_.between, pos, end - pos));
    if (ext.kind == SpanData::Data) {
      // Extend over the data extents that follow, to copy them with one read and one write.
      uint64_t data_end = pos + ext.length;
      while (data_end < end) {
        CHAINFS_ASSIGN_OR_RETURN(SpanExtent next,
                                 span_status(below, span_.between, data_end, end - data_end));
        if (next.kind != SpanData::Data) break;
        data_end += next.length;
      }
      const uint64_t n = data_end - pos;
      std::span<std::byte> data = window_buffer.subspan(pos - window_offset, n);
      CHAINFS_TRY(top.read(pos, data));
      // Tests hold the job here, between its read and its write, to race a guest write with it.
      CHAINFS_SYNC_POINT_TAG(graph_.sync_points(), "StreamJob::copy:read", top.name());
      if (!all_zero(data)) {
        CHAINFS_TRY(top.write(pos, data));
        moved += n;
      } else if (span_.base && pos < base_size) {
        CHAINFS_TRY(top.write_zeroes(pos, n));
      }
      pos = data_end;
      continue;
    }
    if (ext.kind == SpanData::Zero && span_.base && pos < base_size)
      CHAINFS_TRY(top.write_zeroes(pos, std::min(ext.length, base_size - pos)));
    pos += ext.length;
  }
  return moved;
}

Result<void> StreamJob::prepare() {
  // The copied data is on disk before top's header stops naming the layers it came from.
  CHAINFS_TRY(flush_target());
  std::vector<Relink> change;
  if (!span_.base || cut_.empty())
    change.push_back(span_.base ? Relink::backing_to_backing_of(span_.top, span_.top)
                                : Relink::backing_to(span_.top, nullptr));
  else
    change.push_back(Relink::backing_to_backing_of(span_.top, cut_.back()));
  return graph_.relink(std::move(change));
}

void StreamJob::clean() {
  remove_observer();
  cor_ = nullptr;
  release_read_write();  // a middle layer goes back to read-only
}

}  // namespace chainfs
