// BlockHandle: the external entry into the graph (FUSE requests, job I/O). One request costs one
// gate entry and one leave on the handle's node (two atomic RMWs and two loads on the fast path);
// a following handle adds one RMW on entry and one on leave of its own `users` count and two
// loads of its target (handle_follower.h); everything below it is internal.
#include "blockcore/graph/handle_follower.h"

#include "blockcore/graph/graph.h"

namespace chainfs {

uint64_t detail::HandleFollower::ref_id() const {
  return ref->id();
}

namespace {
// Drops the retired targets of a follower once no request looks at them (handle_follower.h).
void drop_retired_if_idle(detail::HandleFollower& f) {
  std::vector<NodeRef> drop;
  {
    std::lock_guard lock(f.mutex);
    if (f.users.load(std::memory_order_seq_cst) != 0) return;
    drop.swap(f.retired);
    f.has_retired.store(false, std::memory_order_seq_cst);
  }
  // `drop` goes here, with no lock held: it may close a node.
}
}  // namespace

BlockHandle::BlockHandle(NodeRef node, bool writable)
    : node_(std::move(node)), writable_(writable && node_) {
  if (writable_) node_->writers_.fetch_add(1, std::memory_order_acq_rel);
}

BlockHandle::BlockHandle(NodeRef node, FollowTag) : writable_(true) {
  Node& n = *node;
  follower_ = std::make_unique<detail::HandleFollower>(std::move(node));
  n.followers_.push_back(follower_.get());  // the caller holds the topology lock
  n.writers_.fetch_add(1, std::memory_order_acq_rel);
}

BlockHandle::BlockHandle(const BlockHandle& other)
    : node_(other.node_), writable_(other.writable_) {
  if (other.follower_) {
    NodeRef target = other.ref();
    NodeRef stale;  // dropped after the lock: it may be the last reference
    Graph& graph = target->graph();
    std::lock_guard lock(graph.topology_mutex_);
    // The copy starts where the original points now (the topology lock keeps that still).
    if (Node* now = other.follower_->node.load(std::memory_order_acquire); now != target.get()) {
      stale = std::move(target);
      target = now->ref();  // alive: `other` holds it
    }
    Node& n = *target;
    follower_ = std::make_unique<detail::HandleFollower>(std::move(target));
    n.followers_.push_back(follower_.get());
    n.writers_.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  if (writable_) node_->writers_.fetch_add(1, std::memory_order_acq_rel);
}

BlockHandle::BlockHandle(BlockHandle&& other) noexcept
    : node_(std::move(other.node_)),
      follower_(std::move(other.follower_)),
      writable_(std::exchange(other.writable_, false)) {}

BlockHandle& BlockHandle::operator=(BlockHandle other) noexcept {
  std::swap(node_, other.node_);
  std::swap(follower_, other.follower_);
  std::swap(writable_, other.writable_);
  return *this;
}

BlockHandle::~BlockHandle() {
  if (follower_) {
    detail::HandleFollower& f = *follower_;
    NodeRef ref;
    std::vector<NodeRef> retired;
    {
      // Unregistered under the topology lock, so that no graph change moves it meanwhile.
      Graph& graph = f.node.load(std::memory_order_acquire)->graph();
      std::lock_guard lock(graph.topology_mutex_);
      Node* n = f.node.load(std::memory_order_acquire);
      std::erase(n->followers_, &f);
      n->writers_.fetch_sub(1, std::memory_order_acq_rel);
      std::lock_guard follower_lock(f.mutex);
      ref = std::move(f.ref);
      retired.swap(f.retired);
    }
    return;  // `ref` and `retired` are dropped here, with no lock held
  }
  if (writable_ && node_) node_->writers_.fetch_sub(1, std::memory_order_acq_rel);
}

Node& BlockHandle::node() const {
  return follower_ ? *follower_->node.load(std::memory_order_acquire) : *node_;
}

NodeRef BlockHandle::ref() const {
  if (!follower_) return node_;
  std::lock_guard lock(follower_->mutex);
  return follower_->ref;
}

uint64_t BlockHandle::node_id() const {
  if (follower_) return follower_->node_id.load(std::memory_order_acquire);
  return node_ ? node_->id() : 0;
}

uint32_t BlockHandle::moves() const {
  return follower_ ? follower_->moves.load(std::memory_order_acquire) : 0;
}

// ---- pins and the request path ----------------------------------------------------------------

BlockHandle::Pin::Pin(const BlockHandle& handle) : follower_(handle.follower_.get()) {
  if (!follower_) {
    node_ = handle.node_.get();
    return;
  }
  // seq_cst: the Dekker pair with Graph::move_writers_locked (handle_follower.h).
  follower_->users.fetch_add(1, std::memory_order_seq_cst);
  node_ = follower_->node.load(std::memory_order_seq_cst);
}

BlockHandle::Pin::~Pin() {
  if (!follower_) return;
  if (follower_->users.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
      follower_->has_retired.load(std::memory_order_seq_cst))
    drop_retired_if_idle(*follower_);
}

template <class Op>
auto BlockHandle::Pin::run(Op&& op) {
  for (;;) {
    [[maybe_unused]] Node* left = nullptr;  // read by the sync point only (compiled out in Release)
    {
      RequestGuard guard(node_->gate(), RequestGuard::Entry::External);
      // In the gate: the handle cannot be switched away from this node now. Still the node we
      // came for? If the handle moved while we waited on the drain, go where it points now.
      Node* now = follower_ ? follower_->node.load(std::memory_order_seq_cst) : node_;
      if (now == node_) return op(*node_);
      left = std::exchange(node_, now);  // both alive: our `users` count keeps retired targets
    }
    CHAINFS_SYNC_POINT_TAG(left->graph().sync_points(), "BlockHandle::request:moved", left->name());
  }
}

template <class Op>
auto BlockHandle::run(Pin* via, Op&& op) {
  if (!follower_) {
    RequestGuard guard(node_->gate(), RequestGuard::Entry::External);
    return op(*node_);
  }
  if (via) return via->run(std::forward<Op>(op));
  Pin pin(*this);
  return pin.run(std::forward<Op>(op));
}

#define CHAINFS_READ_ONLY_CHECK() \
  if (!writable_) return make_error(Errc::ReadOnly, "handle on '{}' is read-only", node().name())

Result<void> BlockHandle::read(uint64_t offset, std::span<std::byte> buf, Pin* via) {
  return run(via, [&](Node& n) { return n.do_read(offset, buf); });
}
Result<void> BlockHandle::write(uint64_t offset, std::span<const std::byte> buf, Pin* via) {
  CHAINFS_READ_ONLY_CHECK();
  return run(via, [&](Node& n) { return n.do_write(offset, buf); });
}
Result<void> BlockHandle::flush(Pin* via) {
  return run(via, [&](Node& n) { return n.do_flush(); });
}
Result<void> BlockHandle::discard(uint64_t offset, uint64_t length, Pin* via) {
  CHAINFS_READ_ONLY_CHECK();
  return run(via, [&](Node& n) { return n.do_discard(offset, length); });
}
Result<void> BlockHandle::write_zeroes(uint64_t offset, uint64_t length, Pin* via) {
  CHAINFS_READ_ONLY_CHECK();
  return run(via, [&](Node& n) { return n.do_write_zeroes(offset, length); });
}
Result<void> BlockHandle::truncate(uint64_t new_size, Pin* via) {
  CHAINFS_READ_ONLY_CHECK();
  return run(via, [&](Node& n) { return n.do_truncate(new_size); });
}
Result<BlockStatus> BlockHandle::block_status(uint64_t offset, uint64_t length, Pin* via) {
  return run(via, [&](Node& n) { return n.do_block_status(offset, length); });
}
Result<BlockStatus> BlockHandle::chain_block_status(uint64_t offset, uint64_t length, Pin* via) {
  return run(via, [&](Node& n) { return chainfs::chain_block_status(n, offset, length); });
}
#undef CHAINFS_READ_ONLY_CHECK

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
