// raw: the format driver that maps its node 1:1 onto its file child. Every call is forwarded to
// the child *node* (not its driver), so the child counts the request in flight and checks ranges.
#include <atomic>

#include "blockcore/drivers/drivers.h"
#include "blockcore/graph/node.h"

namespace chainfs {

namespace {

class RawDriver final : public Driver {
 public:
  std::string_view driver_name() const override { return "raw"; }

  Result<void> open(Node& self, const OpenParams& params) override {
    if (!self.file())
      return make_error(Errc::Invalid, "raw node '{}' has no file child", self.name());
    self_ = &self;
    read_only_.store(params.read_only, std::memory_order_release);
    return {};
  }

  // Follows its file child's state (Driver::reopen_following_child).
  Result<void> reopen(bool read_only) override {
    if (!self_) return make_error(Errc::Invalid, "raw node is not open");
    return reopen_following_child(read_only_, read_only, file().capabilities().writable, "raw",
                                  self_->name(), file().name());
  }

  Capabilities capabilities() const override {
    if (!self_) return {};  // not open yet
    Capabilities caps = file().capabilities();
    if (read_only_) {
      caps.writable = caps.discard = caps.write_zeroes = false;
      caps.truncate_grow = caps.truncate_shrink = false;
    }
    caps.has_backing = false;
    caps.persists_backing = false;
    return caps;
  }
  uint64_t size() const override { return self_ ? file().size() : 0; }

  Result<void> read(uint64_t offset, std::span<std::byte> buf) override {
    return file().read(offset, buf);
  }
  Result<void> write(uint64_t offset, std::span<const std::byte> buf) override {
    CHAINFS_TRY(refuse_if_read_only("write"));
    return file().write(offset, buf);
  }
  Result<void> flush() override { return file().flush(); }
  Result<void> start_writeback() override { return file().start_writeback(); }
  Result<void> discard(uint64_t offset, uint64_t length) override {
    CHAINFS_TRY(refuse_if_read_only("discard"));
    return file().discard(offset, length);
  }
  Result<void> write_zeroes(uint64_t offset, uint64_t length) override {
    CHAINFS_TRY(refuse_if_read_only("write-zeroes"));
    return file().write_zeroes(offset, length);
  }
  Result<void> truncate(uint64_t new_size) override {
    CHAINFS_TRY(refuse_if_read_only("truncate"));
    return file().truncate(new_size);
  }
  Result<BlockStatus> block_status(uint64_t offset, uint64_t length) override {
    return file().block_status(offset, length);
  }
  Result<uint64_t> allocated_bytes() override { return file().allocated_bytes(); }
  Result<void> submit(std::span<IoOp> ops) override {
    for (const IoOp& op : ops)
      if (op.kind == IoOp::Kind::Write) {
        CHAINFS_TRY(refuse_if_read_only("write"));
        break;
      }
    return file().submit(ops);
  }

 private:
  // Stable while a request is in flight: edges change only in drained sections.
  Node& file() const { return *self_->file(); }
  Result<void> refuse_if_read_only(const char* op) const {
    if (read_only_)
      return make_error(Errc::ReadOnly, "raw node '{}' is read-only: no {}", self_->name(), op);
    return {};
  }

  Node* self_ = nullptr;
  std::atomic<bool> read_only_{false};  // atomic: capabilities() may race with reopen()
};

}  // namespace

std::unique_ptr<Driver> make_raw_driver() {
  return std::make_unique<RawDriver>();
}

}  // namespace chainfs
