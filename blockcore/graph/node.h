// Node: one block node of the graph (a protocol, format or filter node), owning its driver.
//
// Lifetime is the reference count of NodeRef (rule 1); nothing else deletes a node. Edges to
// children are Child objects owned by the parent; each holds a NodeRef to the child. Parents are
// kept as plain back-pointers (a child does not keep its parents alive). Claims (claim.h) are
// recorded on the node but are not lifetime: the Claim object holds its own NodeRefs (rule 2).
//
// Edges change only inside a drained section of the parent (rule 3), so a request in flight may
// read file()/backing() without a lock. Everything else about edges, parents and claims is guarded
// by the graph's topology mutex; code outside a request uses the locked accessors (children(),
// parents(), backing_ref(), filename()).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "blockcore/driver.h"
#include "blockcore/graph/claim.h"
#include "blockcore/graph/node_ref.h"
#include "blockcore/graph/request_gate.h"
#include "blockcore/result.h"

namespace chainfs {

class Graph;
class BlockHandle;
namespace detail {
struct HandleFollower;
}

// Why a node is read-only. The graph may reopen a node read-write (Graph::reopen) only when it
// made it read-only itself; what the user asked for or the image forces stays.
enum class ReadOnlyCause : uint8_t {
  None,     // writable
  User,     // the user asked (config `read-only: true`, `--image ...,read-only`, `node open ...
            // read-only`, a read-only mount, add_node with read_only) — never reopened
  Image,    // the driver refused to write the image (Driver::forced_read_only_reason())
  Backing,  // the graph opened it read-only as a backing layer found through an image header, or
            // reopened it read-only: a job may reopen it read-write
};
const char* read_only_cause_name(ReadOnlyCause cause);

enum class ChildRole : uint8_t {
  File,      // a format node's protocol node
  Backing,   // a format node's backing node
  Filtered,  // a filter's child (fault)
};
const char* child_role_name(ChildRole role);

// Permission bits taken or shared on an edge (rule 2: busy is not lifetime).
enum Perm : uint32_t {
  PermConsistentRead = 1u << 0,  // the parent needs what it reads to stay the same
  PermWrite = 1u << 1,           // the parent writes through the edge
  PermResize = 1u << 2,
  PermWriteUnchanged = 1u << 3,  // writes that leave what the node reads unchanged (stream's copy)
  PermAll = PermConsistentRead | PermWrite | PermResize | PermWriteUnchanged,
};

// Sees every write-like request that reaches a node (write, write-zeroes, discard, truncate),
// whoever issued it: the hook through which a job follows guest writes (an active commit's dirty
// ranges, a stream's copy-on-read lock). begin_write() runs before the driver call and may block;
// end_write() runs after it, success or not. A truncate reports the range between the old and the
// new size. At most one observer per node; set it only inside a drained section of the node, so
// that no request in flight sees it change.
class WriteObserver {
 public:
  virtual ~WriteObserver() = default;
  virtual void begin_write(uint64_t offset, uint64_t length) = 0;
  virtual void end_write(uint64_t offset, uint64_t length) = 0;
};

struct Child {
  Node* parent = nullptr;
  NodeRef node;
  ChildRole role = ChildRole::Backing;
  uint32_t perms_taken = 0;   // what the parent uses on the child
  uint32_t perms_shared = 0;  // what the parent lets others (siblings, users) do to the child
};

class Node {
 public:
  // Creates a node with one reference, owned by the returned NodeRef. Not yet opened. (Graph code
  // uses Graph::add_node, which also checks the name and opens the driver.)
  static NodeRef create(Graph& graph, std::string name, std::unique_ptr<Driver> driver);

  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // A new strong reference to a node the caller already knows to be alive.
  NodeRef ref();
  // Strong references right now (diagnostics and tests: racy by nature).
  uint64_t use_count() const { return refs_.load(std::memory_order_acquire); }

  Graph& graph() const { return *graph_; }
  uint64_t id() const { return id_; }  // unique within the graph, never reused
  const std::string& name() const { return name_; }
  Driver& driver() const { return *driver_; }
  std::string_view driver_name() const { return driver_->driver_name(); }
  bool is_protocol() const { return driver_name() == "file"; }

  // Host path of the image this node reads: its own file for a protocol node, else its file (or
  // filtered) child's. Takes the topology lock.
  std::string filename() const;
  // Read-only for new writers and the driver (any cause but None).
  bool read_only() const { return read_only_cause() != ReadOnlyCause::None; }
  ReadOnlyCause read_only_cause() const {
    return static_cast<ReadOnlyCause>(read_only_.load(std::memory_order_acquire));
  }
  // Records why the node is read-only (None: writable). The graph sets it when it opens or
  // reopens the node; tests may too. `true` is ReadOnlyCause::User.
  void set_read_only(ReadOnlyCause cause) {
    read_only_.store(static_cast<uint8_t>(cause), std::memory_order_release);
  }
  void set_read_only(bool ro) { set_read_only(ro ? ReadOnlyCause::User : ReadOnlyCause::None); }
  // Jobs holding the node reopened read-write (Graph::hold_read_write); guarded by the graph's
  // change_mutex_.
  int read_write_holds() const { return read_write_holds_; }

  // Children, without a lock: valid inside a request on this node, inside a drained section of
  // this node, or under the topology lock (graph internals). Elsewhere use
  // backing_ref()/children().
  Node* file() const;
  Node* backing() const;
  Node* filtered() const;
  Node* child(ChildRole role) const;
  // Strong reference to the backing child now (under the topology lock); null without one.
  NodeRef backing_ref() const;
  // Copies under the topology lock, for code that runs outside a request.
  std::vector<Child> children() const;
  std::vector<NodeRef> parents() const;
  // Parent edges pointing at this node, read under the topology lock.
  size_t parent_count() const;
  // The claims on this node now (claimant, kind), read under the topology lock.
  std::vector<ClaimInfo> claims() const;
  // Open writable BlockHandles on this node (following ones included: they count on the node they
  // target now).
  int writers() const { return writers_.load(std::memory_order_acquire); }

  // Data path. Each call counts as in flight on this node via the internal entry (it does not
  // wait for drains: callers from outside the graph enter through BlockHandle, which does).
  uint64_t size() const { return driver_->size(); }
  Capabilities capabilities() const { return driver_->capabilities(); }
  Result<void> read(uint64_t offset, std::span<std::byte> buf);
  Result<void> write(uint64_t offset, std::span<const std::byte> buf);
  Result<void> flush();
  Result<void> start_writeback();  // Driver::start_writeback
  Result<void> discard(uint64_t offset, uint64_t length);
  Result<void> write_zeroes(uint64_t offset, uint64_t length);
  Result<void> truncate(uint64_t new_size);
  Result<BlockStatus> block_status(uint64_t offset, uint64_t length);
  Result<uint64_t> allocated_bytes();
  Result<void> submit(std::span<IoOp> ops);

  RequestGate& gate() { return gate_; }

  // The node's write observer (nullptr: none). Call inside a drained section of this node.
  void set_write_observer(WriteObserver* observer) {
    write_observer_.store(observer, std::memory_order_release);
  }
  WriteObserver* write_observer() const { return write_observer_.load(std::memory_order_acquire); }

 private:
  friend class Graph;
  friend class BlockHandle;
  friend class DrainedSection;
  friend void detail::node_acquire(Node*);
  friend void detail::node_release(Node*);
  friend bool detail::node_try_acquire(Node*);

  Node(Graph& graph, std::string name, std::string host_filename, std::unique_ptr<Driver> driver);
  ~Node();

  // The data path proper, for callers that already counted the request in flight.
  Result<void> do_read(uint64_t offset, std::span<std::byte> buf);
  Result<void> do_write(uint64_t offset, std::span<const std::byte> buf);
  Result<void> do_discard(uint64_t offset, uint64_t length);
  Result<void> do_write_zeroes(uint64_t offset, uint64_t length);
  Result<void> do_flush() { return driver_->flush(); }
  Result<void> do_truncate(uint64_t new_size);
  Result<BlockStatus> do_block_status(uint64_t offset, uint64_t length);

  std::string filename_locked() const;

  Graph* graph_;
  uint64_t id_ = 0;            // set once by Graph::register_node, before anyone else sees the node
  std::string host_filename_;  // protocol nodes (and test nodes): set before registration
  // The host file's identity (st_dev, st_ino) once a protocol node has opened it, so the graph
  // never opens one file twice. Guarded by graph_->topology_mutex_.
  std::optional<std::pair<uint64_t, uint64_t>> file_id_;
  std::string name_;
  std::unique_ptr<Driver> driver_;
  std::atomic<uint8_t> read_only_{0};  // a ReadOnlyCause
  int read_write_holds_ = 0;           // guarded by graph_->change_mutex_
  std::atomic<uint64_t> refs_{1};
  std::atomic<int> writers_{0};                          // open writable BlockHandles
  std::atomic<WriteObserver*> write_observer_{nullptr};  // changed only inside drained sections
  bool opened_ = false;  // driver_->open() succeeded, so close() is owed

  // Guarded by graph_->topology_mutex_ for writers; readers in a request rely on drains.
  std::vector<std::unique_ptr<Child>> children_;
  // Guarded by graph_->topology_mutex_.
  std::vector<Child*> parent_edges_;
  std::vector<ClaimInfo> claims_;
  // The following writable handles targeting this node (graph.h, BlockHandle); guarded by
  // graph_->topology_mutex_.
  std::vector<detail::HandleFollower*> followers_;

  RequestGate gate_;  // after name_: the gate's sync-point tag views it
};

}  // namespace chainfs
