#include "blockcore/graph/node.h"

#include "blockcore/graph/graph.h"

namespace chainfs {

const char* child_role_name(ChildRole role) {
  switch (role) {
    case ChildRole::File:
      return "file";
    case ChildRole::Backing:
      return "backing";
    case ChildRole::Filtered:
      return "filtered";
  }
  return "?";
}

const char* read_only_cause_name(ReadOnlyCause cause) {
  switch (cause) {
    case ReadOnlyCause::None:
      return "writable";
    case ReadOnlyCause::User:
      return "read-only as asked";
    case ReadOnlyCause::Image:
      return "read-only because of its image";
    case ReadOnlyCause::Backing:
      return "read-only as a backing layer";
  }
  return "?";
}

namespace detail {
// The usual reference-count orderings: taking a reference from one already held needs no
// ordering; the release that reaches zero must see every other holder's last use (acq_rel).
void node_acquire(Node* node) {
  node->refs_.fetch_add(1, std::memory_order_relaxed);
}
bool node_try_acquire(Node* node) {
  uint64_t refs = node->refs_.load(std::memory_order_relaxed);
  while (refs != 0)
    if (node->refs_.compare_exchange_weak(refs, refs + 1, std::memory_order_acq_rel)) return true;
  return false;
}
void node_release(Node* node) {
  if (node->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete node;
}
}  // namespace detail

NodeRef Node::create(Graph& graph, std::string name, std::unique_ptr<Driver> driver) {
  Node* node = new Node(graph, std::move(name), {}, std::move(driver));
  graph.register_node(node);
  return NodeRef::adopt(node);
}

NodeRef Node::ref() {
  detail::node_acquire(this);
  return NodeRef::adopt(this);
}

Node::Node(Graph& graph, std::string name, std::string host_filename,
           std::unique_ptr<Driver> driver)
    : graph_(&graph),
      host_filename_(std::move(host_filename)),
      name_(std::move(name)),
      driver_(std::move(driver)),
      gate_(&graph.sync_points(), name_) {}

Node::~Node() {
  // Nobody holds a reference any more: no parent edge, no claim, no drained section, no request.
  // Leave the registry first so that iterators and lookups stop finding us, then close (exactly
  // once: this destructor runs once), then drop our edges (which may close the children).
  graph_->unregister_node(this);
  if (opened_) driver_->close();
  std::vector<std::unique_ptr<Child>> children;
  {
    std::lock_guard lock(graph_->topology_mutex_);
    children.swap(children_);
    for (auto& edge : children) std::erase(edge->node->parent_edges_, edge.get());
  }
  children.clear();  // outside the lock: may close children, which takes it again
}

std::string Node::filename() const {
  std::lock_guard lock(graph_->topology_mutex_);
  return filename_locked();
}

std::string Node::filename_locked() const {
  if (!host_filename_.empty()) return host_filename_;
  if (Node* f = file()) return f->filename_locked();
  if (Node* f = filtered()) return f->filename_locked();
  return {};
}

Node* Node::child(ChildRole role) const {
  for (const auto& edge : children_)
    if (edge->role == role) return edge->node.get();
  return nullptr;
}
Node* Node::file() const {
  return child(ChildRole::File);
}
Node* Node::backing() const {
  return child(ChildRole::Backing);
}
Node* Node::filtered() const {
  return child(ChildRole::Filtered);
}

NodeRef Node::backing_ref() const {
  std::lock_guard lock(graph_->topology_mutex_);
  Node* b = backing();
  return b ? b->ref() : NodeRef();
}

std::vector<Child> Node::children() const {
  std::lock_guard lock(graph_->topology_mutex_);
  std::vector<Child> out;
  for (const auto& edge : children_) out.push_back(*edge);
  return out;
}

std::vector<NodeRef> Node::parents() const {
  std::lock_guard lock(graph_->topology_mutex_);
  std::vector<NodeRef> out;
  for (Child* edge : parent_edges_)
    // A parent whose last reference is gone is closing and still detaching its edges: skip it.
    if (detail::node_try_acquire(edge->parent)) out.push_back(NodeRef::adopt(edge->parent));
  return out;
}

size_t Node::parent_count() const {
  std::lock_guard lock(graph_->topology_mutex_);
  return parent_edges_.size();
}

std::vector<ClaimInfo> Node::claims() const {
  std::lock_guard lock(graph_->topology_mutex_);
  return claims_;
}

namespace {
Result<void> check_range(const Node& node, uint64_t offset, uint64_t length, const char* op) {
  uint64_t size = node.size();
  if (offset > size || length > size - offset)
    return make_error(Errc::Invalid, "{} on node '{}': range {}+{} is past its end ({})", op,
                      node.name(), offset, length, size);
  return {};
}

// One write-like request as the node's write observer sees it (node.h: WriteObserver).
class ObservedWrite {
 public:
  ObservedWrite(WriteObserver* observer, uint64_t offset, uint64_t length)
      : observer_(observer), offset_(offset), length_(length) {
    if (observer_) observer_->begin_write(offset_, length_);
  }
  ~ObservedWrite() {
    if (observer_) observer_->end_write(offset_, length_);
  }
  ObservedWrite(const ObservedWrite&) = delete;
  ObservedWrite& operator=(const ObservedWrite&) = delete;

 private:
  WriteObserver* observer_;
  uint64_t offset_, length_;
};
}  // namespace

Result<void> Node::do_truncate(uint64_t new_size) {
  const uint64_t old_size = size();
  ObservedWrite observed(write_observer(), std::min(old_size, new_size),
                         old_size > new_size ? old_size - new_size : new_size - old_size);
  return driver_->truncate(new_size);
}

Result<void> Node::do_read(uint64_t offset, std::span<std::byte> buf) {
  CHAINFS_TRY(check_range(*this, offset, buf.size(), "read"));
  return driver_->read(offset, buf);
}

Result<void> Node::do_write(uint64_t offset, std::span<const std::byte> buf) {
  CHAINFS_TRY(check_range(*this, offset, buf.size(), "write"));
  ObservedWrite observed(write_observer(), offset, buf.size());
  return driver_->write(offset, buf);
}

Result<void> Node::do_discard(uint64_t offset, uint64_t length) {
  CHAINFS_TRY(check_range(*this, offset, length, "discard"));
  ObservedWrite observed(write_observer(), offset, length);
  return driver_->discard(offset, length);
}

Result<void> Node::do_write_zeroes(uint64_t offset, uint64_t length) {
  CHAINFS_TRY(check_range(*this, offset, length, "write-zeroes"));
  ObservedWrite observed(write_observer(), offset, length);
  return driver_->write_zeroes(offset, length);
}

Result<BlockStatus> Node::do_block_status(uint64_t offset, uint64_t length) {
  CHAINFS_TRY(check_range(*this, offset, length, "block-status"));
  if (length == 0) return BlockStatus{Alloc::Unallocated, 0};
  return driver_->block_status(offset, length);
}

// The internal entry: counted in flight, never waits (see request_gate.h).
#define CHAINFS_INTERNAL(call)                              \
  RequestGuard guard(gate_, RequestGuard::Entry::Internal); \
  return call

Result<void> Node::read(uint64_t offset, std::span<std::byte> buf) {
  CHAINFS_INTERNAL(do_read(offset, buf));
}
Result<void> Node::write(uint64_t offset, std::span<const std::byte> buf) {
  CHAINFS_INTERNAL(do_write(offset, buf));
}
Result<void> Node::flush() {
  CHAINFS_INTERNAL(do_flush());
}
Result<void> Node::start_writeback() {
  CHAINFS_INTERNAL(driver_->start_writeback());
}
Result<void> Node::discard(uint64_t offset, uint64_t length) {
  CHAINFS_INTERNAL(do_discard(offset, length));
}
Result<void> Node::write_zeroes(uint64_t offset, uint64_t length) {
  CHAINFS_INTERNAL(do_write_zeroes(offset, length));
}
Result<void> Node::truncate(uint64_t new_size) {
  CHAINFS_INTERNAL(do_truncate(new_size));
}
Result<BlockStatus> Node::block_status(uint64_t offset, uint64_t length) {
  CHAINFS_INTERNAL(do_block_status(offset, length));
}
Result<uint64_t> Node::allocated_bytes() {
  CHAINFS_INTERNAL(driver_->allocated_bytes());
}
Result<void> Node::submit(std::span<IoOp> ops) {
  CHAINFS_INTERNAL(driver_->submit(ops));
}
#undef CHAINFS_INTERNAL

}  // namespace chainfs
