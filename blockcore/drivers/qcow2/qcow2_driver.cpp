// The qcow2 format driver: adapts a Node (its file child, its backing edge) to qcow2::Image, which
// holds all of the format's logic and can be tested without a Graph.
#include <cstring>

#include "blockcore/drivers/drivers.h"
#include "blockcore/drivers/qcow2/image.h"
#include "blockcore/graph/node.h"

namespace chainfs {

namespace {

// The node's protocol child as the image's host file.
class NodeHostFile final : public qcow2::HostFile {
 public:
  explicit NodeHostFile(Node& self) : self_(self) {}
  Result<void> submit(std::span<IoOp> ops) override { return self_.file()->submit(ops); }
  Result<void> sync() override { return self_.file()->flush(); }
  uint64_t length() const override { return self_.file()->size(); }
  bool writable() const { return self_.file()->capabilities().writable; }

 private:
  Node& self_;
};

// The node's backing edge, read at request time (edges change only inside drained sections).
class NodeBacking final : public qcow2::BackingReader {
 public:
  explicit NodeBacking(Node& self) : self_(self) {}
  bool present() const override { return self_.backing() != nullptr; }
  uint64_t size() const override {
    Node* b = self_.backing();
    return b ? b->size() : 0;
  }
  Result<void> read(uint64_t offset, std::span<std::byte> buf) override {
    Node* b = self_.backing();
    const uint64_t backing_size = b ? b->size() : 0;
    uint64_t have = 0;
    if (offset < backing_size) have = std::min<uint64_t>(buf.size(), backing_size - offset);
    if (have) CHAINFS_TRY(b->read(offset, buf.first(have)));
    if (have < buf.size()) std::memset(buf.data() + have, 0, buf.size() - have);
    return {};
  }

 private:
  Node& self_;
};

class Qcow2Driver final : public Driver {
 public:
  std::string_view driver_name() const override { return "qcow2"; }

  Result<void> open(Node& self, const OpenParams& params) override {
    if (!self.file())
      return make_error(Errc::Invalid, "qcow2 node '{}' has no file child", self.name());
    self_ = &self;
    host_ = std::make_unique<NodeHostFile>(self);
    backing_ = std::make_unique<NodeBacking>(self);
    qcow2::ImageOptions options;
    options.read_only = params.read_only;
    options.cache_bytes = params.cache_bytes;
    auto image = qcow2::Image::open(*host_, *backing_, options);
    if (!image.ok()) {
      Error err = image.take_error();
      err.message = fmt::format("{}: {}", self.filename(), err.message);
      return err;
    }
    image_ = std::move(image).value();
    return {};
  }

  void close() override {
    if (image_) image_->close().ignore_error();  // best effort: the caller cannot act on it
    image_.reset();
  }

  Capabilities capabilities() const override {
    Capabilities caps;
    const bool writable = image_ && !image_->read_only();
    caps.writable = writable;
    caps.discard = writable;
    caps.write_zeroes = writable;
    caps.truncate_grow = writable;
    caps.truncate_shrink = false;
    caps.has_backing = true;
    caps.persists_backing = true;
    return caps;
  }

  uint64_t size() const override { return image_ ? image_->size() : 0; }
  Result<void> read(uint64_t offset, std::span<std::byte> buf) override {
    return image_->read(offset, buf);
  }
  Result<void> write(uint64_t offset, std::span<const std::byte> buf) override {
    return image_->write(offset, buf);
  }
  Result<void> flush() override { return image_->flush(); }
  // The data clusters live in the file child; metadata is written back by flush() only.
  Result<void> start_writeback() override { return self_->file()->start_writeback(); }
  Result<void> discard(uint64_t offset, uint64_t length) override {
    return image_->discard(offset, length);
  }
  Result<void> write_zeroes(uint64_t offset, uint64_t length) override {
    return image_->write_zeroes(offset, length);
  }
  Result<void> truncate(uint64_t new_size) override { return image_->truncate(new_size); }
  Result<BlockStatus> block_status(uint64_t offset, uint64_t length) override {
    return image_->block_status(offset, length);
  }
  Result<uint64_t> allocated_bytes() override { return image_->allocated_bytes(); }

  std::optional<BackingReference> backing_reference() const override {
    return image_ ? image_->backing_reference() : std::nullopt;
  }
  Result<void> set_backing_reference(const std::optional<BackingReference>& ref) override {
    return image_->set_backing_reference(ref);
  }
  Result<void> reopen(bool read_only) override {
    if (!image_) return make_error(Errc::Invalid, "qcow2 node is not open");
    if (!read_only && !host_->writable())
      return make_error(Errc::ReadOnly,
                        "cannot reopen the qcow2 image read-write: its file node does not take "
                        "writes");
    return image_->reopen(read_only);
  }
  std::string forced_read_only_reason() const override {
    return image_ ? image_->forced_read_only_reason() : std::string();
  }

 private:
  Node* self_ = nullptr;  // set by open()
  // Destroyed in reverse order: the image before the adapters it refers to.
  std::unique_ptr<NodeHostFile> host_;
  std::unique_ptr<NodeBacking> backing_;
  std::unique_ptr<qcow2::Image> image_;
};

}  // namespace

std::unique_ptr<Driver> make_qcow2_driver() {
  return std::make_unique<Qcow2Driver>();
}

}  // namespace chainfs
