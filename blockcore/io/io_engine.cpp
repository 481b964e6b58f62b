// IoEngine implementation: dispatches each batch to a pooled io_uring ring, or to plain
// pread/pwrite for single ops (cheaper, see docs/io.md) and when io_uring is unavailable.
#include "blockcore/io/io_engine.h"

#include <vector>

#include "blockcore/io/host_io.h"
#include "blockcore/io/uring_ring.h"

namespace chainfs {

namespace {

// Neighbouring ops that continue each other both in the file and in memory (a guest request that
// a format driver split at cluster boundaries, over clusters the host laid out in order) become
// one transfer: one syscall or SQE instead of several, and a lone result takes the pread path.
bool continues(const IoOp& prev, const IoOp& next) {
  return prev.kind == next.kind && prev.offset + prev.length == next.offset &&
         prev.buf + prev.length == next.buf && prev.length + next.length <= io_detail::kMaxTransfer;
}

// Fills `merged` and returns it, or returns `ops` untouched when nothing continues anything.
std::span<IoOp> coalesce(std::span<IoOp> ops, std::vector<IoOp>& merged) {
  size_t i = 1;
  while (i < ops.size() && !continues(ops[i - 1], ops[i])) ++i;
  if (i >= ops.size()) return ops;
  merged.reserve(ops.size() - 1);
  merged.assign(ops.begin(), ops.begin() + static_cast<std::ptrdiff_t>(i));
  for (; i < ops.size(); ++i) {
    if (continues(merged.back(), ops[i]))
      merged.back().length += ops[i].length;
    else
      merged.push_back(ops[i]);
  }
  return merged;
}

class PooledIoEngine final : public IoEngine {
 public:
  // `pool` null: the pread/pwrite fallback for everything.
  PooledIoEngine(IoEngineOptions options, std::unique_ptr<io_detail::RingPool> pool)
      : options_(options), pool_(std::move(pool)) {}

  Result<void> run(int fd, std::span<IoOp> caller_ops) override {
    std::vector<IoOp> merged;
    std::span<IoOp> ops = caller_ops.size() > 1 ? coalesce(caller_ops, merged) : caller_ops;
    if (ops.empty()) return {};
    if (!pool_ || (ops.size() == 1 && options_.direct_single_op))
      return io_detail::run_ops_sync(fd, ops);
    io_detail::RingPool::Lease ring = pool_->acquire();
    if (!ring) return io_detail::run_ops_sync(fd, ops);
    return ring->run(fd, ops);
  }

  // A lone sync gains nothing from a ring round trip: it is one syscall either way.
  Result<void> fsync(int fd, bool data_only) override { return io_detail::sync_fd(fd, data_only); }

  bool uses_io_uring() const override { return pool_ != nullptr; }

 private:
  const IoEngineOptions options_;
  std::unique_ptr<io_detail::RingPool> pool_;
};

}  // namespace

std::unique_ptr<IoEngine> IoEngine::create(std::shared_ptr<spdlog::logger> logger,
                                           IoEngineOptions options) {
  if (options.ring_entries == 0) options.ring_entries = 64;
  if (options.force_fallback) {
    if (logger) logger->info("io: io_uring disabled by option; using pread/pwrite");
    return std::make_unique<PooledIoEngine>(options, nullptr);
  }
  // Set up the first ring now, so that an unusable io_uring (old kernel, seccomp, ulimits) is
  // found and announced once, here, rather than on some later request.
  auto first = io_detail::UringRing::create(options.ring_entries);
  if (!first.ok()) {
    if (logger)
      logger->warn("io: io_uring unavailable ({}); using pread/pwrite", first.error().message);
    return std::make_unique<PooledIoEngine>(options, nullptr);
  }
  if (logger)
    logger->debug("io: io_uring with rings of {} entries, up to {} rings", first.value()->entries(),
                  options.max_rings);
  auto pool = std::make_unique<io_detail::RingPool>(options.ring_entries, options.max_rings,
                                                    std::move(first).value());
  return std::make_unique<PooledIoEngine>(options, std::move(pool));
}

}  // namespace chainfs
