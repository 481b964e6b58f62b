// IoEngine: host I/O for protocol drivers. Batches of reads/writes on one fd are submitted together
// through io_uring (one submission for all the host I/Os of one guest request) and the call returns
// when all completed. Rings are pooled so that concurrent callers (FUSE threads, jobs) each use
// their own ring without a lock around the I/O. If io_uring cannot be set up, a pread/pwrite
// fallback does the same work and the engine says so once in the log.
//
// One engine per Graph (no global state); it outlives every node of the graph.
#pragma once

#include <memory>
#include <span>

#include <spdlog/logger.h>

#include "blockcore/driver.h"
#include "blockcore/result.h"

namespace chainfs {

struct IoEngineOptions {
  unsigned ring_entries = 64;   // submission queue size of each ring
  bool force_fallback = false;  // tests: use pread/pwrite even where io_uring works
  // Rings are created on demand, one per concurrent caller, up to this many; further callers wait
  // for a ring to come back (they hold one only for the duration of a run()).
  unsigned max_rings = 64;
  // A batch of one op is done with a plain pread/pwrite: measured ~2x cheaper than a ring round
  // trip for a 4 KiB page-cache read, and never slower for large ones (docs/io.md). Tests turn
  // this off to drive single ops through the ring too.
  bool direct_single_op = true;
};

class IoEngine {
 public:
  static std::unique_ptr<IoEngine> create(std::shared_ptr<spdlog::logger> logger,
                                          IoEngineOptions options = {});
  virtual ~IoEngine() = default;

  // Runs every op against fd; short reads past EOF are zero-filled, short writes are retried.
  // Neighbouring ops that continue each other in the file and in memory are done as one.
  // Fails with the first op's host error (errno mapped to Errc) after all ops finished.
  // Thread-safe: concurrent callers each use their own ring.
  virtual Result<void> run(int fd, std::span<IoOp> ops) = 0;
  // fdatasync (data_only; falls back to fsync where the host refuses it) or fsync.
  virtual Result<void> fsync(int fd, bool data_only) = 0;
  virtual bool uses_io_uring() const = 0;
};

}  // namespace chainfs
