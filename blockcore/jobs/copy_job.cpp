#include "blockcore/jobs/copy_job.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "blockcore/graph/drain.h"
#include "blockcore/graph/request_gate.h"
#include "blockcore/io/io_hint.h"

namespace chainfs {

bool all_zero(std::span<const std::byte> data) {
  if (data.empty()) return true;
  if (data[0] != std::byte{0}) return false;
  // Overlapping compare: every byte equals its successor, and the first is zero.
  return std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0;
}

Result<void> flush_node(Node& node) {
  RequestGuard request(node.gate(), RequestGuard::Entry::External);
  return node.flush();
}

namespace {
JobDescription describe(std::string type, const LayerSpan& span) {
  return {std::move(type), span.top->name(), span.base ? span.base->name() : std::string()};
}
}  // namespace

CopyJob::CopyJob(Graph& graph, std::string type, LayerSpan span)
    : Job(describe(std::move(type), span)), graph_(graph), span_(std::move(span)) {}

CopyJob::~CopyJob() { remove_observer(); }

Result<void> CopyJob::claim_nodes(const std::string& id, std::vector<ClaimTarget> targets) {
  CHAINFS_ASSIGN_OR_RETURN(Claim claim, graph_.claim("job " + id, std::move(targets)));
  // The chain was read before the claim held it still: make sure it did not change meanwhile.
  if (!span_unchanged(span_))
    return make_error(Errc::Busy,
                      "the chain below '{}' changed while job {} was starting; try again",
                      span_.top->name(), id);
  claim_ = std::move(claim);
  return ok_result();
}

Result<void> CopyJob::with_policy(JobContext& ctx, std::optional<Result<uint64_t>> first,
                                  const std::function<Result<uint64_t>()>& attempt,
                                  const std::function<void(uint64_t moved)>& on_done,
                                  const std::function<void()>& on_skip) {
  for (;;) {
    Result<uint64_t> moved = make_error(Errc::Invalid, "not attempted");
    if (first) {
      moved = std::move(*first);
      first.reset();
    } else {
      CHAINFS_TRY(ctx.pause_point());
      moved = attempt();
    }
    if (moved.ok()) {
      on_done(*moved);
      return ok_result();
    }
    switch (ctx.handle_io_error(moved.error())) {
      case IoErrorAction::Retry:
        continue;
      case IoErrorAction::Fail:
        return moved.take_error();
      case IoErrorAction::Skip:
        on_skip();
        return ok_result();
    }
  }
}

Result<void> CopyJob::for_each_window(JobContext& ctx, uint64_t size, const WindowFn& window) {
  bool guests_busy = false;  // during the previous window (and its pause)
  for (uint64_t offset = 0; offset < size; offset += kWindow) {
    const uint64_t length = std::min(kWindow, size - offset);
    const uint64_t guests_before = graph_.guest_requests();
    const auto started = std::chrono::steady_clock::now();
    // While guests are busy, the window's writes stay in the host page cache, where the guests
    // read them next; otherwise its large writes go to the disk directly, which on the project's
    // machine is 1.5-4x faster than the page cache followed by the final flush, and steady
    // (docs/performance.md "Jobs writing around the page cache").
    const ScopedBackgroundIo page_cache(guests_busy);
    // Tests look at the window's mode here, and play a guest request arriving during it.
    CHAINFS_SYNC_POINT(graph_.sync_points(), "CopyJob::for_each_window:window");
    CHAINFS_TRY(with_policy(
        ctx, std::nullopt, [&] { return window(offset, length, buffer(length)); },
        [&](uint64_t moved) {
          moved = std::min(moved, length);
          ctx.account(moved);
          ctx.advance(length - moved);
          note_written(moved);
        },
        [&] { ctx.advance(length); }));
    // Guests were busy while this window copied: give them as long again before the next one.
    // On a machine with few cores an unlimited job would otherwise take the CPU the FUSE
    // threads need (docs/jobs.md "Sharing the machine with guests"); an idle chain copies at
    // full speed.
    guests_busy = graph_.guest_requests() != guests_before;
    if (guests_busy) {
      const auto spent =
          std::chrono::ceil<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      CHAINFS_TRY(ctx.idle(std::min(spent, kMaxGuestYield)));
    }
  }
  return ok_result();
}

void CopyJob::note_written(uint64_t bytes) {
  if (!write_target_) return;
  unwritten_ += bytes;
  if (unwritten_ < kWritebackEvery) return;
  if (writeback_.valid() &&
      writeback_.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
    return;  // still starting the previous batch: it will take these bytes too
  unwritten_ = 0;
  // A hint, as an internal request (it never waits for a drain, so nothing has to wait for it
  // before one): a failure (the disk) shows again, and fails the job, at the final flush.
  auto start = [node = write_target_] { node->start_writeback().ignore_error(); };
  try {
    writeback_ = std::async(std::launch::async, start);
  } catch (const std::system_error&) {
    start();  // no thread to be had: start it here
  }
}

Result<void> CopyJob::flush_target() {
  return write_target_ ? flush_node(*write_target_) : ok_result();
}

Result<void> CopyJob::hold_read_write(const NodeRef& node, std::string_view what) {
  auto hold = graph_.hold_read_write(node);
  if (!hold.ok()) return make_error(hold.error().code, "{}: {}", what, hold.error().message);
  if (hold->reopened()) read_write_.push_back(std::move(*hold));
  return ok_result();
}

void CopyJob::install_observer(std::unique_ptr<WriteObserver> observer) {
  DrainedSection drain(*span_.top);
  observer_ = std::move(observer);
  span_.top->set_write_observer(observer_.get());
}

void CopyJob::remove_observer(bool already_drained) {
  if (!observer_) return;
  if (already_drained) {
    span_.top->set_write_observer(nullptr);
  } else {
    DrainedSection drain(*span_.top);
    span_.top->set_write_observer(nullptr);
  }
  observer_.reset();
}

std::span<std::byte> CopyJob::buffer(uint64_t length) {
  return buffer_.get(kWindow).first(std::min(length, kWindow));
}

}  // namespace chainfs
