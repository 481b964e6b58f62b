// Graph: the named nodes and chains of one mount. No global state: two graphs can live in one
// process (tests do that).
//
// Who holds a node (rule 1): parent edges (Child), chains (a named root), the user (nodes declared
// by name in the config), jobs, open handles and iterators. A node is *listed* (visible in nodes/)
// while a parent edge, a chain, a job or the user holds it; open handles and iterators keep it
// alive but unlisted.
//
// Busy is not lifetime (rule 2): claims (claim.h) and edge permissions decide whether a node may
// be used for an operation; references only keep it alive.
//
// Locks (docs/concurrency.md is the full story):
//   change_mutex_    serializes graph changes (edges, chains): held while a change drains, resolves
//                    and relinks, so that two changes never interleave (rule 4). Never taken on a
//                    request path, so waiting for a drain while holding it cannot deadlock.
//   topology_mutex_  guards the node registry, every node's edge lists and claims, the chains, the
//                    user holds and the active drained sections. Short: never held across I/O, a
//                    drain wait, an observer call, or while dropping a NodeRef that may be the
//                    last.
// Order: change_mutex_ -> topology_mutex_ -> RequestGate::mutex_ / SyncPoints::mutex_.
// Observers are called with no graph mutex held.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include "blockcore/driver.h"
#include "blockcore/graph/claim.h"
#include "blockcore/graph/drain.h"
#include "blockcore/graph/node.h"
#include "blockcore/graph/node_ref.h"
#include "blockcore/graph/relink.h"
#include "blockcore/io/io_engine.h"
#include "blockcore/result.h"
#include "blockcore/util/sync_point.h"

namespace chainfs {

struct GraphOptions {
  std::shared_ptr<spdlog::logger> logger;  // default: a private logger that discards
  bool read_only = false;                  // whole-mount read-only
  IoEngineOptions io;
  uint64_t cache_bytes = 0;  // per-format-node metadata cache (0 = driver default)
};

// How to open one named node (from the config's `nodes:` list).
struct NodeSpec {
  std::string name;
  std::string driver;  // qcow2 | raw | fault | file
  std::string file;    // qcow2/raw: image path; file: host path
  std::string child;   // fault: the node it filters
  bool read_only = false;
  // Backing: follow the image header (nullopt), none (""), or the named node.
  std::optional<std::string> backing;
  std::vector<FaultRule> rules;
};

// How to open an image and its whole backing chain from the headers (--image, images:, node open).
struct ImageSpec {
  std::string path;
  std::string chain;      // default: the image's file stem
  std::string node_name;  // default: the image's file stem
  bool read_only = false;
};

struct ChainView {
  std::string name;
  NodeRef root;                 // the active layer
  std::vector<NodeRef> layers;  // top (depth 0) to bottom, following backing edges
};

// What changed, for observers (the FUSE front-end invalidates its caches on these).
struct GraphEvent {
  enum class Kind { NodeAdded, NodeRemoved, EdgeChanged, ChainChanged, DataChanged, SizeChanged };
  Kind kind;
  std::string name;  // node or chain name
  uint64_t node_id = 0;
};

class BlockHandle;
class ReadWriteHold;
namespace detail {
struct HandleFollower;
}

class Graph {
 public:
  explicit Graph(GraphOptions options = {});
  ~Graph();  // drops chains and user holds; jobs must have been stopped by their owner
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  spdlog::logger& log() const { return *logger_; }
  IoEngine& io() const { return *io_; }
  const GraphOptions& options() const { return options_; }
  // This graph's sync points (tests force interleavings with them; see util/sync_point.h).
  SyncPoints& sync_points() const { return sync_points_; }

  // ---- building -----------------------------------------------------------------------------
  // Opens a node described by name (format nodes get a protocol node "<name>.file"); backing per
  // spec.backing. The node is held by the user until remove_node().
  Result<NodeRef> open_named_node(const NodeSpec& spec);
  // Opens an image and its backing chain from the headers and adds it as a chain.
  Result<NodeRef> open_image(const ImageSpec& spec);
  // Opens an image file as format node (probing qcow2/raw unless `format` is given) with its
  // protocol node, and its backing chain from the headers. Names are made unique.
  Result<NodeRef> open_image_chain(const std::string& path, const std::string& format,
                                   const std::string& name_hint, bool read_only);

  // Adds a node with a driver the caller made (tests' drivers: the registry's table is fixed).
  // Refuses a taken name (Exists), opens the driver with `params` (read_only is forced on a
  // read-only mount) and returns the only reference: the node is held by nobody else yet.
  Result<NodeRef> add_node(std::string name, std::unique_ptr<Driver> driver,
                           const OpenParams& params = {});

  // Attach `child` under `parent`. Drains the parent (rule 3). Does not write the image.
  Result<void> attach_child(Node& parent, NodeRef child, ChildRole role);
  // Replace (or with nullptr remove) the parent's backing edge. Drains the parent (rule 3) and
  // records the new reference in the image where the format supports it, before the drain ends;
  // if recording fails, the graph is unchanged. Refuses an edge that would make a loop.
  Result<void> set_backing(Node& parent, NodeRef new_backing);
  // A job's final graph change (rule 4, relink.h): under the graph-change lock, drains the subtree
  // of every node the intents name, resolves the intents against the graph as it is now, then
  // changes (and persists) the edges and chain roots, all or nothing.
  Result<void> relink(std::vector<Relink> changes);

  // ---- reopening (QEMU's bdrv_reopen; graph_reopen.cpp) ------------------------------------
  // Reopens `node` read-only or read-write, together with the children whose access follows it
  // (its protocol child, a filter's child, and theirs): for read-write the children first, for
  // read-only the node first (after a flush) and its children after. Inside a drained section of
  // those nodes (requests in flight finish first, new ones wait), under the graph-change lock;
  // all or nothing: if one driver refuses, those already reopened are reopened back. A no-op for
  // a node already in that state. Refused with ReadOnly when the mount is read-only or, for
  // read-write, when the node or a child is read-only because the user asked
  // (ReadOnlyCause::User) or its image forces it (ReadOnlyCause::Image); for read-only, with
  // Busy while the node has open writers or a job holds it read-write. Reopening read-write does
  // not make a backing layer writable for new writers: check_writable() still refuses them
  // through its parent edges.
  Result<void> reopen(Node& node, bool read_only);
  // A job's read-write access to a node that may be read-only as a backing layer: reopens it
  // read-write unless it is already (then the hold is empty), counts holders, and when the last
  // hold goes reopens it read-only again — unless the node is by then a chain's root or has no
  // parent (an active commit's base that became the active layer stays writable). Refused as
  // reopen() is.
  Result<ReadWriteHold> hold_read_write(NodeRef node);

  // ---- chains and user holds ----------------------------------------------------------------
  Result<void> add_chain(const std::string& name, NodeRef root);
  Result<void> set_chain_root(const std::string& name, NodeRef root);
  Result<void> remove_chain(const std::string& name);
  std::vector<ChainView> chains() const;
  std::optional<ChainView> chain(const std::string& name) const;
  void hold_for_user(NodeRef node);
  // `control/node remove`: refuses (Busy) while a parent edge, a chain or a claim holds the node;
  // open handles do not prevent it (the node stays alive for them, unlisted, like an unlinked
  // file).
  Result<void> remove_node(const std::string& name);

  // ---- claims and permissions (rule 2) ------------------------------------------------------
  // Claims every target for `claimant` ("job stream0"), all or none. Refused with Busy, naming
  // the holder, if a target is claimed by another claimant in an incompatible kind, or if a kind
  // that blocks new writers meets a node with open writers.
  Result<Claim> claim(std::string claimant, std::vector<ClaimTarget> targets);

  // ---- queries ------------------------------------------------------------------------------
  // A listed node by name (NotFound otherwise).
  Result<NodeRef> find(const std::string& name) const;
  // All listed nodes, pinned, sorted by name.
  std::vector<NodeRef> listed_nodes() const;
  bool is_listed(const Node& node) const;
  // The node that already has the host file at `path` open (same st_dev/st_ino, however the path
  // is spelled): the format node over it, or the protocol node itself when it has no format
  // parent. Null when no live node has it open.
  NodeRef node_with_file(const std::string& path) const;
  // A name not used by any live node: `stem`, else `stem-2`, `stem-3`, ...
  std::string unique_name(const std::string& stem) const;
  // Whether a new writer may open the node: not read-only (node, mount), the driver writes, no
  // claim blocks new writers (Busy), and every parent edge shares PermWrite (Access: a backing
  // layer or a protocol node under a format does not).
  Result<void> check_writable(const Node& node) const;
  // Whether `claim`'s holder may take `perm` (PermWrite, PermWriteUnchanged) on the node: as
  // above, except that the claim's own kinds do not block it, and an edge that does not share
  // `perm` is passed when the claim covers its parent and grants `perm` on this node.
  Result<void> check_writable(const Node& node, const Claim& claim, uint32_t perm) const;
  // check_writable() (when writable) and a BlockHandle, atomically with respect to claims.
  Result<BlockHandle> open_handle(NodeRef node, bool writable) const;
  Result<BlockHandle> open_handle(NodeRef node, const Claim& claim, uint32_t perm) const;
  // Bumped on every topology change; the FUSE front-end compares it to refresh listings.
  uint64_t generation() const;
  // Requests from outside the graph's own users (the FUSE node files: guests) are counted, so
  // that a job can see guests are busy and leave them the CPU (CopyJob's duty cycle). A hint,
  // not a synchronisation: relaxed.
  void note_guest_request() { guest_requests_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t guest_requests() const { return guest_requests_.load(std::memory_order_relaxed); }

  // ---- observers ----------------------------------------------------------------------------
  using Observer = std::function<void(const GraphEvent&)>;
  void set_observer(Observer observer);
  void notify(const GraphEvent& event) const;

  // Iteration over all live nodes that keeps a strong reference to the current node (seed 000).
  class Iterator;
  Iterator begin_all() const;

 private:
  friend class Node;
  friend class Claim;
  friend class BlockHandle;
  friend class ReadWriteHold;
  friend class DrainedSection;
  struct EdgeChange;
  struct ChainChange;
  struct WriterMove;
  struct ChangeLog;

  void register_node(Node* node);
  void unregister_node(Node* node);
  // Creates and registers a node if `name` is free (Exists otherwise), atomically.
  Result<NodeRef> create_node(std::string name, std::string host_filename,
                              std::unique_ptr<Driver> driver);
  // A read-only mount makes every node read-only as the user asked.
  ReadOnlyCause effective_cause(ReadOnlyCause asked) const;
  Result<NodeRef> open_protocol(const std::string& name, const std::string& path,
                                ReadOnlyCause cause);
  Result<NodeRef> open_format(const std::string& name, const std::string& driver, NodeRef file,
                              ReadOnlyCause cause);
  Result<NodeRef> open_image_chain(const std::string& path, const std::string& format,
                                   const std::string& name_hint, ReadOnlyCause top_cause,
                                   ReadOnlyCause backing_cause);

  // Reopening (graph_reopen.cpp). Callers hold change_mutex_.
  Result<void> reopen_locked(Node& node, bool read_only);
  void release_read_write(Node& node);
  void bump_generation_locked();
  bool name_taken_locked(const std::string& name) const;
  bool is_listed_locked(const Node& node) const;

  // Edges (graph_edges.cpp). Callers hold change_mutex_.
  Result<void> change_backing_edge(Node& parent, NodeRef new_backing, ChangeLog& log);
  Result<void> change_chain_root(const std::string& chain, NodeRef root, ChangeLog& log);
  void link_edge_locked(Node& parent, NodeRef child, ChildRole role);
  std::unique_ptr<Child> unlink_edge_locked(Node& parent, ChildRole role);
  bool reaches_locked(const Node& from, const Node& to) const;
  void inherit_drains_locked(Node& parent, const Node& child);
  Result<void> resolve_relinks(const std::vector<Relink>& changes, std::vector<EdgeChange>& edges,
                               std::vector<ChainChange>& chains,
                               std::vector<WriterMove>& writer_moves) const;
  // The checks of check_writable() that need no lock (mount, node and driver read-only).
  Result<void> check_writable_nolock(const Node& node) const;
  // Whether the following writers of `from` may move to `to` (topology lock held): `to` takes
  // writers once the change is made (`unlocked_verdict`: check_writable_nolock(to)), that is,
  // every parent edge of `to` shares PermWrite except edges from nodes the change cuts out (`from`
  // and what is below it), and no backing edge that moves from `from` to `to` forbids writers.
  // Claims on `to` are the mover's own (a commit's base) and are not checked.
  Result<void> check_writers_may_move_locked(const Node& from, const Node& to,
                                             const Result<void>& unlocked_verdict) const;
  // Moves every following writable handle of `from` to `to` (topology lock held, both drained);
  // old references that no request looks at go to `log`.
  size_t move_writers_locked(Node& from, Node& to, ChangeLog& log);  // returns how many
  void flush(ChangeLog& log);

  // Drains (drain.cpp): `roots`, their subtrees with Subtree, and every ancestor, referenced;
  // nodes whose last reference is already gone (closing) are left out.
  std::vector<NodeRef> drain_closure_locked(const std::vector<Node*>& roots,
                                            DrainScope scope) const;

  // Claims (graph_claims.cpp).
  void release_claim(Claim& claim);
  Result<void> check_writable_locked(const Node& node, const Claim* claim, uint32_t perm) const;

  GraphOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  mutable SyncPoints sync_points_;  // before the nodes: every node's gate points at it
  std::unique_ptr<IoEngine> io_;    // declared before the nodes' holders: destroyed after them

  // Lock order: change_mutex_ -> topology_mutex_ -> (RequestGate::mutex_, SyncPoints::mutex_).
  std::mutex change_mutex_;  // serializes graph changes; never taken on a request path
  mutable std::mutex topology_mutex_;
  std::map<uint64_t, Node*> registry_;  // every live node, by id (weak)
  uint64_t next_id_ = 1;
  uint64_t next_claim_id_ = 1;
  uint64_t generation_ = 1;
  std::atomic<uint64_t> guest_requests_{0};
  std::map<std::string, NodeRef> chains_;
  std::map<std::string, NodeRef> user_held_;
  std::vector<detail::DrainState*> active_drains_;

  // Leaf lock: guards only the pointer; the observer is called after it is released.
  mutable std::mutex observer_mutex_;
  std::shared_ptr<const Observer> observer_;
};

// Pins the current node; advancing takes the next live node by id and then drops the previous
// pin, so a node that stays alive throughout is never skipped. Destruction releases the pin.
class Graph::Iterator {
 public:
  explicit Iterator(const Graph& graph);
  const NodeRef& current() const { return current_; }
  bool done() const { return !current_; }
  void next();

 private:
  void seek(uint64_t after_id);
  const Graph* graph_;
  NodeRef current_;
};

// A job's read-write access to a node (Graph::hold_read_write). Movable; dropping it (or
// release()) ends the access: the last holder of a node the graph reopened read-write reopens it
// read-only. An empty hold (the node was writable anyway) does nothing.
class ReadWriteHold {
 public:
  ReadWriteHold() = default;
  ReadWriteHold(ReadWriteHold&& other) noexcept
      : graph_(std::exchange(other.graph_, nullptr)), node_(std::move(other.node_)) {}
  ReadWriteHold& operator=(ReadWriteHold&& other) noexcept {
    if (this != &other) {
      release();
      graph_ = std::exchange(other.graph_, nullptr);
      node_ = std::move(other.node_);
    }
    return *this;
  }
  ReadWriteHold(const ReadWriteHold&) = delete;
  ReadWriteHold& operator=(const ReadWriteHold&) = delete;
  ~ReadWriteHold() { release(); }

  // Whether this hold reopened (or shares a reopening of) its node.
  bool reopened() const { return graph_ != nullptr; }
  const NodeRef& node() const { return node_; }
  void release();

 private:
  friend class Graph;
  ReadWriteHold(Graph* graph, NodeRef node) : graph_(graph), node_(std::move(node)) {}
  Graph* graph_ = nullptr;
  NodeRef node_;
};

// An outside user's handle on a node (FUSE open file, job I/O): every request enters through the
// node's gate as an external request, so it waits while the node is drained (it is held, it does
// not fail). A writable handle counts as an open writer of the node (Node::writers()), which
// claims that block new writers respect. Prefer Graph::open_handle(), which checks permissions;
// the constructor trusts its caller.
//
// Following handles (a guest's handle: QEMU's BlockBackend is a parent and moves with the others):
// a writable handle from Graph::open_handle(node, true) is registered on its node and moves with
// the graph change of a Relink::replace(from, to, MoveWriters::Yes) (active commit `complete`,
// snapshot), inside its drained section; its writer count moves with it. A request that picked
// up the old node and waited on the drain re-checks after entering and goes to the new node
// (handle_follower.h has the design note). Read-only handles, a job's handles (opened with a
// claim) and handles made with the constructor never move.
class BlockHandle {
 public:
  BlockHandle(NodeRef node, bool writable);
  BlockHandle(const BlockHandle& other);  // a copy is one more writer (and follows if `other` does)
  BlockHandle(BlockHandle&& other) noexcept;
  BlockHandle& operator=(BlockHandle other) noexcept;
  ~BlockHandle();

  // The node requests go to now. For a following handle the answer may be stale as soon as it is
  // returned: node() is only safe while a Pin (or the caller's knowledge that no graph change runs)
  // keeps it alive; ref() keeps it alive by itself; node_id() is just the number.
  Node& node() const;
  NodeRef ref() const;
  uint64_t node_id() const;
  bool writable() const { return writable_; }
  bool follows() const { return follower_ != nullptr; }
  // Times a graph change moved this handle (0 for handles that do not follow).
  uint32_t moves() const;

  // Keeps the node the handle targets alive for its scope, even if the handle moves meanwhile. A
  // request given the pin (the `via` argument below) goes where the handle points when it enters,
  // and the pin's node() is then the node the request went to.
  class Pin {
   public:
    explicit Pin(const BlockHandle& handle);
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;
    ~Pin();
    Node& node() const { return *node_; }

   private:
    friend class BlockHandle;
    template <class Op>
    auto run(Op&& op);
    detail::HandleFollower* follower_;  // null: the handle does not follow
    Node* node_;
  };

  Result<void> read(uint64_t offset, std::span<std::byte> buf, Pin* via = nullptr);
  Result<void> write(uint64_t offset, std::span<const std::byte> buf, Pin* via = nullptr);
  Result<void> flush(Pin* via = nullptr);
  Result<void> discard(uint64_t offset, uint64_t length, Pin* via = nullptr);
  Result<void> write_zeroes(uint64_t offset, uint64_t length, Pin* via = nullptr);
  Result<void> truncate(uint64_t new_size, Pin* via = nullptr);
  Result<BlockStatus> block_status(uint64_t offset, uint64_t length, Pin* via = nullptr);
  // chain_block_status() below, as one request on this handle's node.
  Result<BlockStatus> chain_block_status(uint64_t offset, uint64_t length, Pin* via = nullptr);

 private:
  friend class Graph;
  struct FollowTag {};
  // A following writable handle; the caller holds the graph's topology lock.
  BlockHandle(NodeRef node, FollowTag);
  template <class Op>
  auto run(Pin* via, Op&& op);

  NodeRef node_;  // a handle that does not follow; null for a following one
  std::unique_ptr<detail::HandleFollower> follower_;  // a following handle's target
  bool writable_ = false;
};

// Status of a range through the whole chain below `node`: Data if any layer from `node` down
// holds data there before a layer says Zero; Zero otherwise (the SEEK_DATA/SEEK_HOLE view).
// The caller must be in a request on `node` (a driver) or use BlockHandle::chain_block_status():
// the walk reads the backing edges, which only a request (or a drain) keeps still.
Result<BlockStatus> chain_block_status(Node& node, uint64_t offset, uint64_t length);

}  // namespace chainfs
