// file: the protocol driver, a node over a host file (or block device). Reads and writes go
// through the graph's IoEngine; everything else is a direct syscall on the node's fd.
//
// State beyond the fd:
// - size_: the host file's length, cached. Writes past the end and write_zeroes past the end
//   raise it with an atomic max (concurrent appenders never lower it); truncate sets it.
// - dirty_: something changed since the last flush, so flush() can skip the sync of a file
//   nothing was written to (a clean fdatasync still costs a device cache flush on many hosts).
// - zero_range_refused_ / punch_hole_refused_: the host said EOPNOTSUPP once for that fallocate
//   mode; later calls go straight to the next method instead of asking again.
// - direct_fd_: a second descriptor of the same regular file with O_DIRECT (writable nodes
//   only). Large aligned writes (kDirectMin and up, offset and length multiples of
//   kDirectAlign: a stream of guest data, a job's window) go through it, bypassing the host page
//   cache: copying them into fresh page-cache pages was what bounded sequential writes
//   (docs/io.md, "Performance notes"). Buffers that are not aligned are bounced through a
//   per-thread aligned buffer. Everything else, and every read, stays buffered. Both descriptors
//   are the same inode: the kernel keeps the page cache coherent with direct writes (it writes
//   back and drops cached pages of the range), and one fdatasync covers both.
//   direct_refused_: the host refused a direct write once (EINVAL); the rest go buffered.
//   It is opened with the node (writable nodes only) and kept across reopen(): writes are
//   refused while the node is read-only, so it is unused then; a node opened read-only and
//   reopened read-write writes buffered only.
// - read_only_: atomic because capabilities() may be asked outside a request while reopen()
//   switches it. reopen() opens a second fd on the same path in the other access mode (same
//   status flags, e.g. O_DIRECT), checks with fstat that it is the same file (device and inode),
//   and puts it in place of the old one with dup3(), which swaps the fd number's file atomically
//   and closes the old one: a query that runs during the reopen (fstat for st_blocks, lseek for
//   block status) sees one file or the other, never a closed or reused fd.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "blockcore/drivers/drivers.h"
#include "blockcore/graph/graph.h"
#include "blockcore/graph/node.h"
#include "blockcore/io/io_engine.h"
#include "blockcore/io/io_hint.h"
#include "blockcore/util/aligned_buffer.h"

namespace chainfs {

namespace {

// Zero buffers written when the host cannot zero a range itself, in ops of this size.
constexpr size_t kZeroChunk = size_t{1} << 20;

// Writes that bypass the host page cache (see the header): at least this long, and offset,
// length (and buffer, else it is bounced) multiples of the alignment, which suits every logical
// block size up to 4 KiB.
constexpr uint64_t kDirectMin = uint64_t{256} << 10;
constexpr uint64_t kDirectAlign = 4096;
constexpr size_t kBounceBytes = size_t{1} << 20;

// A job's copies stay buffered (io_hint.h): measured, the direct path cost guests' reads during
// a stream (23 % of their idle IOPS instead of 67 %) and made commits slower (docs/performance.md).
bool direct_candidate(const IoOp& op) {
  return op.kind == IoOp::Kind::Write && op.length >= kDirectMin && op.offset % kDirectAlign == 0 &&
         op.length % kDirectAlign == 0 && !background_io();
}

// A page-aligned buffer per thread for direct writes whose source is not aligned (a FUSE write's
// data sits after the request header). Per-thread scratch, not shared state.
static_assert(AlignedBuffer::kAlign % kDirectAlign == 0);
thread_local AlignedBuffer t_bounce;

Error open_error(const std::string& path, bool read_only, int err) {
  const char* mode = read_only ? "reading" : "writing";
  switch (err) {
    case ENOENT:
      return make_error(Errc::NotFound, "cannot open '{}': no such file", path);
    case ENOTDIR:
      return make_error(Errc::NotFound, "cannot open '{}': a component of the path is not a folder",
                        path);
    case EACCES:
    case EPERM:
      return make_error(Errc::Access, "cannot open '{}' for {}: permission denied", path, mode);
    case EROFS:
      return make_error(Errc::ReadOnly, "cannot open '{}' for writing: read-only file system",
                        path);
    case EISDIR:
      return make_error(Errc::Invalid, "cannot open '{}': it is a directory", path);
    case ELOOP:
    case ENAMETOOLONG:
      return make_error(Errc::Invalid, "cannot open '{}': {}", path, std::strerror(err));
    case ETXTBSY:
      return make_error(Errc::Busy, "cannot open '{}' for writing: {}", path, std::strerror(err));
    default:
      return make_error(errc_from_errno(err), "cannot open '{}' for {}: {}", path, mode,
                        std::strerror(err));
  }
}

// Retries EINTR; returns 0 or the errno.
int fallocate_range(int fd, int mode, uint64_t offset, uint64_t length) {
  for (;;) {
    if (::fallocate(fd, mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
      return 0;
    if (errno != EINTR) return errno;
  }
}

bool is_refusal(int err) {
  return err == EOPNOTSUPP || err == ENOSYS;
}

class FileDriver final : public Driver {
 public:
  ~FileDriver() override { close_fd(); }

  std::string_view driver_name() const override { return "file"; }

  Result<void> open(Node& self, const OpenParams& params) override;
  void close() override;

  Capabilities capabilities() const override {
    Capabilities caps;
    const bool writable = !read_only_.load(std::memory_order_acquire);
    caps.writable = writable;
    caps.discard = writable;
    caps.write_zeroes = writable;
    caps.truncate_grow = writable && is_regular_;
    caps.truncate_shrink = writable && is_regular_;
    return caps;
  }
  uint64_t size() const override { return size_.load(std::memory_order_acquire); }

  Result<void> read(uint64_t offset, std::span<std::byte> buf) override;
  Result<void> write(uint64_t offset, std::span<const std::byte> buf) override;
  Result<void> flush() override;
  Result<void> start_writeback() override;
  Result<void> discard(uint64_t offset, uint64_t length) override;
  Result<void> write_zeroes(uint64_t offset, uint64_t length) override;
  Result<void> truncate(uint64_t new_size) override;
  Result<BlockStatus> block_status(uint64_t offset, uint64_t length) override;
  Result<uint64_t> allocated_bytes() override;
  Result<void> submit(std::span<IoOp> ops) override;
  Result<void> reopen(bool read_only) override;

 private:
  // Names the file in an error from below ("'/images/a.qcow2': read of ... failed: ...").
  Error in_file(Error error) const {
    error.message = fmt::format("'{}': {}", path_, error.message);
    return error;
  }
  Error host_error(const char* what, int err) const {
    return make_error(errc_from_errno(err), "'{}': {} failed: {}", path_, what, std::strerror(err));
  }
  Result<void> refuse_if_read_only(const char* op) const {
    if (read_only_) return make_error(Errc::ReadOnly, "'{}' is open read-only: no {}", path_, op);
    return {};
  }
  void grew_to(uint64_t end) {
    uint64_t current = size_.load(std::memory_order_relaxed);
    while (end > current && !size_.compare_exchange_weak(current, end, std::memory_order_acq_rel)) {
    }
  }
  void mark_dirty() {
    if (!dirty_.load(std::memory_order_relaxed)) dirty_.store(true, std::memory_order_release);
  }
  // After a failed write the host length is unknown: take it from the host (never lowering).
  void resync_size() {
    off_t end = ::lseek(fd_, 0, SEEK_END);
    if (end >= 0) grew_to(static_cast<uint64_t>(end));
  }
  Result<void> write_zero_buffers(uint64_t offset, uint64_t length);
  // Runs `ops` (a batch), sending the large aligned writes through direct_fd_.
  Result<void> run(std::span<IoOp> ops);
  Result<void> write_direct(const IoOp& op);
  void open_direct(const struct stat& st);
  void close_fd() {
    if (direct_fd_ >= 0) ::close(direct_fd_);
    direct_fd_ = -1;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  Node* self_ = nullptr;
  IoEngine* io_ = nullptr;
  std::string path_;
  int fd_ = -1;
  int direct_fd_ = -1;  // O_DIRECT twin of fd_ for large aligned writes, or -1
  std::atomic<bool> read_only_{true};
  bool is_regular_ = true;  // false for a block device: no resize
  std::atomic<uint64_t> size_{0};
  std::atomic<bool> dirty_{false};
  std::atomic<bool> zero_range_refused_{false};
  std::atomic<bool> punch_hole_refused_{false};
  std::atomic<bool> direct_refused_{false};
};

void FileDriver::open_direct(const struct stat& st) {
  if (read_only_.load(std::memory_order_acquire) || !is_regular_) return;
  int fd = ::open(path_.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    self_->graph().log().debug("file '{}': no O_DIRECT descriptor ({}); all writes buffered", path_,
                               std::strerror(errno));
    return;
  }
  struct stat again {};
  if (::fstat(fd, &again) != 0 || again.st_dev != st.st_dev || again.st_ino != st.st_ino) {
    ::close(fd);  // the path now names another file: stay with the one we opened
    return;
  }
  direct_fd_ = fd;
}

Result<void> FileDriver::write_direct(const IoOp& op) {
  const bool aligned = reinterpret_cast<uintptr_t>(op.buf) % kDirectAlign == 0;
  for (uint64_t done = 0; done < op.length;) {
    const uint64_t n = aligned ? op.length : std::min<uint64_t>(op.length - done, kBounceBytes);
    IoOp piece{IoOp::Kind::Write, op.offset + done, op.buf + done, n};
    if (!aligned) {
      piece.buf = t_bounce.get(kBounceBytes).data();
      std::memcpy(piece.buf, op.buf + done, n);
    }
    CHAINFS_TRY(io_->run(direct_fd_, {&piece, 1}));
    done += n;
  }
  return {};
}

Result<void> FileDriver::run(std::span<IoOp> ops) {
  if (direct_fd_ < 0 || direct_refused_.load(std::memory_order_relaxed)) return io_->run(fd_, ops);
  size_t direct = 0;
  for (const IoOp& op : ops) direct += direct_candidate(op);
  if (direct == 0) return io_->run(fd_, ops);
  // The rest of the batch first (one submission), then the direct writes one by one. The ops of
  // a batch never overlap, so their order does not matter.
  std::vector<IoOp> rest;
  rest.reserve(ops.size() - direct);
  for (const IoOp& op : ops)
    if (!direct_candidate(op)) rest.push_back(op);
  Result<void> result = rest.empty() ? Result<void>{} : io_->run(fd_, rest);
  for (const IoOp& op : ops) {
    if (!direct_candidate(op)) continue;
    Result<void> written = direct_refused_.load(std::memory_order_relaxed)
                               ? make_error(Errc::Invalid, "direct writes refused")
                               : write_direct(op);
    if (!written.ok() && written.error().code == Errc::Invalid) {
      // EINVAL: this host (file system, block size) does not take our direct writes. Say so
      // once, and write buffered from now on.
      if (!direct_refused_.exchange(true))
        self_->graph().log().debug("file '{}': direct write refused ({}); writing buffered", path_,
                                   written.error().message);
      IoOp copy = op;
      written = io_->run(fd_, {&copy, 1});
    }
    if (!written.ok() && result.ok()) result = std::move(written);
  }
  return result;
}

Result<void> FileDriver::open(Node& self, const OpenParams& params) {
  self_ = &self;
  io_ = &self.graph().io();
  path_ = params.filename;
  const bool read_only = params.read_only;
  read_only_.store(read_only, std::memory_order_release);
  if (path_.empty()) return make_error(Errc::Invalid, "file node '{}': no filename", self.name());

  // Check the type before open(): opening a FIFO would block, and a directory opens fine
  // read-only. (The fstat after open() catches a path swapped in between.)
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return open_error(path_, read_only, errno);
  auto check_type = [&](const struct stat& s) -> Result<void> {
    if (S_ISDIR(s.st_mode)) return open_error(path_, read_only, EISDIR);
    if (!S_ISREG(s.st_mode) && !S_ISBLK(s.st_mode))
      return make_error(Errc::Invalid, "cannot open '{}': not a regular file or block device",
                        path_);
    return {};
  };
  CHAINFS_TRY(check_type(st));

  int fd = ::open(path_.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return open_error(path_, read_only, errno);
  fd_ = fd;
  if (::fstat(fd_, &st) != 0) {
    int err = errno;
    close_fd();
    return host_error("fstat", err);
  }
  if (auto typed = check_type(st); !typed.ok()) {
    close_fd();
    return typed.take_error();
  }
  is_regular_ = S_ISREG(st.st_mode);
  off_t end = ::lseek(fd_, 0, SEEK_END);  // also the size of a block device
  if (end < 0) {
    int err = errno;
    close_fd();
    return host_error("lseek(SEEK_END)", err);
  }
  size_.store(static_cast<uint64_t>(end), std::memory_order_release);
  open_direct(st);
  return {};
}

void FileDriver::close() {
  if (fd_ < 0) return;
  if (dirty_.load(std::memory_order_acquire)) {
    // Driver contract: close flushes. Nobody is left to hand an error to, so it is logged.
    if (auto synced = io_->fsync(fd_, true); !synced.ok())
      self_->graph().log().error("file '{}': flush on close failed: {}", path_,
                                 synced.error().message);
  }
  close_fd();
}

Result<void> FileDriver::reopen(bool read_only) {
  if (read_only == read_only_.load(std::memory_order_acquire)) return {};
  if (fd_ < 0) return make_error(Errc::Invalid, "'{}' is not open", path_);
  // Read-only: what was written reaches the disk under the old, writable fd.
  if (read_only) CHAINFS_TRY(flush());
  const int status = ::fcntl(fd_, F_GETFL);
  if (status < 0) return host_error("fcntl(F_GETFL)", errno);
  // Keep the status flags the file was opened with (O_DIRECT, O_NOATIME, ...), change the access
  // mode; O_CREAT and friends are not status flags, so nothing is created or truncated.
  const int flags = (status & ~(O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)) |
                    (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  const int fresh = ::open(path_.c_str(), flags);
  if (fresh < 0) {
    Error e = open_error(path_, read_only, errno);
    e.message = fmt::format("reopen {}: {}", read_only ? "read-only" : "read-write", e.message);
    return e;
  }
  struct stat before {
  }, after{};
  if (::fstat(fd_, &before) != 0 || ::fstat(fresh, &after) != 0) {
    const int err = errno;
    ::close(fresh);
    return host_error("fstat", err);
  }
  if (before.st_dev != after.st_dev || before.st_ino != after.st_ino) {
    ::close(fresh);
    return make_error(Errc::Busy,
                      "cannot reopen '{}' {}: the path now names another file than the one open "
                      "(replaced or renamed since it was opened)",
                      path_, read_only ? "read-only" : "read-write");
  }
  // Going read-only: refuse writes before the fd stops taking them.
  if (read_only) read_only_.store(true, std::memory_order_release);
  int swapped;
  do {
    swapped = ::dup3(fresh, fd_, O_CLOEXEC);
  } while (swapped < 0 && errno == EINTR);
  const int err = errno;
  ::close(fresh);
  if (swapped < 0) {
    read_only_.store(!read_only, std::memory_order_release);
    return host_error("dup3", err);
  }
  if (!read_only) read_only_.store(false, std::memory_order_release);
  return {};
}

Result<void> FileDriver::read(uint64_t offset, std::span<std::byte> buf) {
  IoOp op{IoOp::Kind::Read, offset, buf.data(), buf.size()};
  if (auto done = io_->run(fd_, {&op, 1}); !done.ok()) return in_file(done.take_error());
  return {};
}

Result<void> FileDriver::write(uint64_t offset, std::span<const std::byte> buf) {
  CHAINFS_TRY(refuse_if_read_only("write"));
  // The engine only reads from a write op's buffer.
  IoOp op{IoOp::Kind::Write, offset, const_cast<std::byte*>(buf.data()), buf.size()};
  mark_dirty();
  if (auto done = run({&op, 1}); !done.ok()) {
    resync_size();
    return in_file(done.take_error());
  }
  grew_to(offset + buf.size());
  return {};
}

Result<void> FileDriver::submit(std::span<IoOp> ops) {
  uint64_t write_end = 0;
  bool writes = false;
  for (const IoOp& op : ops)
    if (op.kind == IoOp::Kind::Write) {
      writes = true;
      write_end = std::max(write_end, op.offset + op.length);
    }
  if (writes) {
    CHAINFS_TRY(refuse_if_read_only("write"));
    mark_dirty();
  }
  if (auto done = writes ? run(ops) : io_->run(fd_, ops); !done.ok()) {
    if (writes) resync_size();
    return in_file(done.take_error());
  }
  if (writes) grew_to(write_end);
  return {};
}

Result<void> FileDriver::flush() {
  if (read_only_.load(std::memory_order_acquire)) return {};
  // Clear before syncing: a write that lands during the sync sets it again for the next flush.
  if (!dirty_.exchange(false, std::memory_order_acq_rel)) return {};
  if (auto synced = io_->fsync(fd_, true); !synced.ok()) {
    mark_dirty();
    return in_file(synced.take_error());
  }
  return {};
}

Result<void> FileDriver::start_writeback() {
  if (read_only_.load(std::memory_order_acquire) || !dirty_.load(std::memory_order_acquire))
    return {};
  // Queues the dirty pages for writeback and returns: no wait, no device cache flush, and the
  // file stays dirty for flush().
  if (::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE) != 0)
    return host_error("sync_file_range (starting writeback)", errno);
  return {};
}

Result<void> FileDriver::discard(uint64_t offset, uint64_t length) {
  CHAINFS_TRY(refuse_if_read_only("discard"));
  // Discard is advisory: where the host cannot punch holes, the data simply stays allocated.
  if (length == 0 || punch_hole_refused_.load(std::memory_order_relaxed)) return {};
  mark_dirty();
  int err = fallocate_range(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
  if (err == 0) return {};
  if (is_refusal(err) || err == EINVAL) {
    if (is_refusal(err) && !punch_hole_refused_.exchange(true))
      self_->graph().log().debug("file '{}': host cannot punch holes ({}); discard is a no-op",
                                 path_, std::strerror(err));
    return {};
  }
  return host_error("discard (fallocate PUNCH_HOLE)", err);
}

Result<void> FileDriver::write_zeroes(uint64_t offset, uint64_t length) {
  CHAINFS_TRY(refuse_if_read_only("write-zeroes"));
  if (length == 0) return {};
  mark_dirty();
  const uint64_t end = offset + length;

  // 1. ZERO_RANGE: zeroes in place, keeps the allocation, grows the file if the range passes EOF.
  if (!zero_range_refused_.load(std::memory_order_relaxed)) {
    int err = fallocate_range(fd_, FALLOC_FL_ZERO_RANGE, offset, length);
    if (err == 0) {
      grew_to(end);
      return {};
    }
    if (is_refusal(err))
      zero_range_refused_.store(true, std::memory_order_relaxed);
    else if (err != EINVAL)  // EINVAL: this range (e.g. unaligned on a block device) only
      return host_error("write-zeroes (fallocate ZERO_RANGE)", err);
  }

  // 2. PUNCH_HOLE|KEEP_SIZE reads back as zeros too. It never grows the file, so a range past
  //    EOF first gets its last byte written (a zero, as asked): that grows without ever
  //    shrinking, unlike ftruncate, which could cut off a concurrent append.
  if (!punch_hole_refused_.load(std::memory_order_relaxed)) {
    if (end > size()) {
      std::byte zero{0};
      IoOp last{IoOp::Kind::Write, end - 1, &zero, 1};
      if (auto done = io_->run(fd_, {&last, 1}); !done.ok()) return in_file(done.take_error());
      grew_to(end);
    }
    int err = fallocate_range(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
    if (err == 0) return {};
    if (is_refusal(err))
      punch_hole_refused_.store(true, std::memory_order_relaxed);
    else if (err != EINVAL)
      return host_error("write-zeroes (fallocate PUNCH_HOLE)", err);
  }

  // 3. Write zero buffers.
  return write_zero_buffers(offset, length);
}

Result<void> FileDriver::write_zero_buffers(uint64_t offset, uint64_t length) {
  std::vector<std::byte> zeros(std::min<uint64_t>(length, kZeroChunk));
  std::vector<IoOp> ops;
  constexpr size_t kOpsPerBatch = 32;
  for (uint64_t done = 0; done < length;) {
    ops.clear();
    while (done < length && ops.size() < kOpsPerBatch) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(length - done, zeros.size()));
      ops.push_back(IoOp{IoOp::Kind::Write, offset + done, zeros.data(), n});
      done += n;
    }
    if (auto written = io_->run(fd_, ops); !written.ok()) {
      resync_size();
      return in_file(written.take_error());
    }
  }
  grew_to(offset + length);
  return {};
}

Result<void> FileDriver::truncate(uint64_t new_size) {
  CHAINFS_TRY(refuse_if_read_only("truncate"));
  if (!is_regular_)
    return make_error(Errc::Unsupported, "'{}' is a block device: it cannot be resized", path_);
  mark_dirty();
  for (;;) {
    if (::ftruncate(fd_, static_cast<off_t>(new_size)) == 0) break;
    if (errno != EINTR) return host_error("truncate", errno);
  }
  size_.store(new_size, std::memory_order_release);
  return {};
}

Result<BlockStatus> FileDriver::block_status(uint64_t offset, uint64_t length) {
  if (length == 0) return BlockStatus{Alloc::Data, 0};
  const off_t data = ::lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) {
    // ENXIO: no data at or after offset (a hole up to EOF, or past EOF): zeros.
    if (errno == ENXIO) return BlockStatus{Alloc::Zero, length};
    // The host cannot tell (SEEK_DATA unsupported): call it data, which is never wrong.
    return BlockStatus{Alloc::Data, length};
  }
  const uint64_t data_at = static_cast<uint64_t>(data);
  if (data_at > offset) return BlockStatus{Alloc::Zero, std::min(data_at - offset, length)};
  const off_t hole = ::lseek(fd_, static_cast<off_t>(offset), SEEK_HOLE);
  if (hole < 0 || static_cast<uint64_t>(hole) <= offset)  // changed under us: call it data
    return BlockStatus{Alloc::Data, length};
  return BlockStatus{Alloc::Data, std::min(static_cast<uint64_t>(hole) - offset, length)};
}

Result<uint64_t> FileDriver::allocated_bytes() {
  if (!is_regular_) return size();  // a block device has no st_blocks: all of it is there
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return host_error("fstat", errno);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

}  // namespace

std::unique_ptr<Driver> make_file_driver() {
  return std::make_unique<FileDriver>();
}

}  // namespace chainfs
