#include "blockcore/io/host_io.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace chainfs::io_detail {

Error op_error(const IoOp& op, int err) {
  return make_error(errc_from_errno(err), "{} of {} bytes at offset {} failed: {}",
                    op.kind == IoOp::Kind::Read ? "read" : "write", op.length, op.offset,
                    std::strerror(err));
}

int run_op_sync(int fd, const IoOp& op) {
  size_t done = 0;
  while (done < op.length) {
    const size_t chunk = std::min(op.length - done, kMaxTransfer);
    const off_t offset = static_cast<off_t>(op.offset + done);
    ssize_t n = op.kind == IoOp::Kind::Read ? ::pread(fd, op.buf + done, chunk, offset)
                                            : ::pwrite(fd, op.buf + done, chunk, offset);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno;
    }
    if (n == 0) {
      if (op.kind == IoOp::Kind::Write) return EIO;     // no progress and no error: do not spin
      std::memset(op.buf + done, 0, op.length - done);  // past EOF reads as zeros
      return 0;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

Result<void> run_ops_sync(int fd, std::span<IoOp> ops) {
  const IoOp* failed = nullptr;
  int failed_errno = 0;
  for (const IoOp& op : ops) {
    int err = run_op_sync(fd, op);
    if (err != 0 && !failed) {
      failed = &op;
      failed_errno = err;
    }
  }
  if (failed) return op_error(*failed, failed_errno);
  return {};
}

Result<void> sync_fd(int fd, bool data_only) {
  for (;;) {
    int rc = data_only ? ::fdatasync(fd) : ::fsync(fd);
    if (rc == 0) return {};
    if (errno == EINTR) continue;
    if (data_only && errno == EINVAL) {  // a filesystem without fdatasync: do the full sync
      data_only = false;
      continue;
    }
    return make_error(errc_from_errno(errno), "{} failed: {}", data_only ? "fdatasync" : "fsync",
                      std::strerror(errno));
  }
}

}  // namespace chainfs::io_detail
