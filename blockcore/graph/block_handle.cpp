// BlockHandle: the external entry into the graph (FUSE requests, job I/O). One request costs one
// gate entry and one leave on the handle's node (two atomic RMWs and two loads on the fast path);
// everything below it is internal.
#include "blockcore/graph/graph.h"

namespace chainfs {

BlockHandle::BlockHandle(NodeRef node, bool writable)
    : node_(std::move(node)), writable_(writable && node_) {
  if (writable_) node_->writers_.fetch_add(1, std::memory_order_acq_rel);
}

BlockHandle::BlockHandle(const BlockHandle& other)
    : node_(other.node_), writable_(other.writable_) {
  if (writable_) node_->writers_.fetch_add(1, std::memory_order_acq_rel);
}

BlockHandle::BlockHandle(BlockHandle&& other) noexcept
    : node_(std::move(other.node_)), writable_(std::exchange(other.writable_, false)) {}

BlockHandle& BlockHandle::operator=(BlockHandle other) noexcept {
  std::swap(node_, other.node_);
  std::swap(writable_, other.writable_);
  return *this;
}

BlockHandle::~BlockHandle() {
  if (writable_ && node_) node_->writers_.fetch_sub(1, std::memory_order_acq_rel);
}

#define CHAINFS_EXTERNAL(call)                                      \
  RequestGuard guard(node_->gate(), RequestGuard::Entry::External); \
  return node_->call

Result<void> BlockHandle::read(uint64_t offset, std::span<std::byte> buf) {
  CHAINFS_EXTERNAL(do_read(offset, buf));
}
Result<void> BlockHandle::write(uint64_t offset, std::span<const std::byte> buf) {
  if (!writable_) return make_error(Errc::ReadOnly, "handle on '{}' is read-only", node_->name());
  CHAINFS_EXTERNAL(do_write(offset, buf));
}
Result<void> BlockHandle::flush() {
  CHAINFS_EXTERNAL(do_flush());
}
Result<void> BlockHandle::discard(uint64_t offset, uint64_t length) {
  if (!writable_) return make_error(Errc::ReadOnly, "handle on '{}' is read-only", node_->name());
  CHAINFS_EXTERNAL(do_discard(offset, length));
}
Result<void> BlockHandle::write_zeroes(uint64_t offset, uint64_t length) {
  if (!writable_) return make_error(Errc::ReadOnly, "handle on '{}' is read-only", node_->name());
  CHAINFS_EXTERNAL(do_write_zeroes(offset, length));
}
Result<void> BlockHandle::truncate(uint64_t new_size) {
  if (!writable_) return make_error(Errc::ReadOnly, "handle on '{}' is read-only", node_->name());
  CHAINFS_EXTERNAL(do_truncate(new_size));
}
Result<BlockStatus> BlockHandle::block_status(uint64_t offset, uint64_t length) {
  CHAINFS_EXTERNAL(do_block_status(offset, length));
}
Result<BlockStatus> BlockHandle::chain_block_status(uint64_t offset, uint64_t length) {
  RequestGuard guard(node_->gate(), RequestGuard::Entry::External);
  return chainfs::chain_block_status(*node_, offset, length);
}
#undef CHAINFS_EXTERNAL

Result<BlockStatus> chain_block_status(Node& top, uint64_t offset, uint64_t length) {
  // Walk down while the range is unallocated; the answer's length is the shortest extent seen.
  // The edges are stable because the caller is in a request on `top` (see graph.h).
  Node* node = &top;
  uint64_t len = length;
  while (node) {
    if (offset >= node->size()) return BlockStatus{Alloc::Zero, len};  // zeros past a short backing
    len = std::min(len, node->size() - offset);
    CHAINFS_ASSIGN_OR_RETURN(BlockStatus st, node->block_status(offset, len));
    len = st.length;
    if (st.kind != Alloc::Unallocated) return BlockStatus{st.kind, len};
    node = node->backing() ? node->backing() : node->filtered();
  }
  return BlockStatus{Alloc::Zero, len};
}

}  // namespace chainfs
