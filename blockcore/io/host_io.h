// Plain-syscall host I/O shared by the io_uring engine and its fallback: one op with pread/pwrite,
// retrying short transfers and EINTR/EAGAIN, zero-filling reads past EOF; and the error text every
// path uses so that a failure reads the same whichever way the op went.
#pragma once

#include <cstdint>
#include <span>

#include "blockcore/driver.h"
#include "blockcore/result.h"

namespace chainfs::io_detail {

// Largest transfer handed to the kernel at once; Linux caps a single read/write at 0x7ffff000
// bytes anyway, and the retry loops carry on with the rest.
inline constexpr size_t kMaxTransfer = size_t{1} << 30;

// "read of 4096 bytes at offset 8192 failed: Input/output error" with the errno mapped to Errc.
Error op_error(const IoOp& op, int err);

// Runs one op to completion. Returns 0 or the errno that stopped it.
int run_op_sync(int fd, const IoOp& op);

// Runs every op (all of them, even after a failure) and returns the first failing op's error.
Result<void> run_ops_sync(int fd, std::span<IoOp> ops);

// fdatasync (falling back to fsync where the filesystem refuses it) or fsync, retrying EINTR.
Result<void> sync_fd(int fd, bool data_only);

}  // namespace chainfs::io_detail
