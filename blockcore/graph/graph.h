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

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
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
  friend class DrainedSection;
  struct EdgeChange;
  struct ChainChange;
  struct ChangeLog;

  void register_node(Node* node);
  void unregister_node(Node* node);
  // Creates and registers a node if `name` is free (Exists otherwise), atomically.
  Result<NodeRef> create_node(std::string name, std::string host_filename,
                              std::unique_ptr<Driver> driver);
  Result<NodeRef> open_protocol(const std::string& name, const std::string& path, bool read_only);
  Result<NodeRef> open_format(const std::string& name, const std::string& driver, NodeRef file,
                              bool read_only);
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
                               std::vector<ChainChange>& chains) const;
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

// An outside user's handle on a node (FUSE open file, job I/O): every request enters through the
// node's gate as an external request, so it waits while the node is drained (it is held, it does
// not fail). A writable handle counts as an open writer of the node (Node::writers()), which
// claims that block new writers respect. Prefer Graph::open_handle(), which checks permissions;
// the constructor trusts its caller.
class BlockHandle {
 public:
  BlockHandle(NodeRef node, bool writable);
  BlockHandle(const BlockHandle& other);
  BlockHandle(BlockHandle&& other) noexcept;
  BlockHandle& operator=(BlockHandle other) noexcept;
  ~BlockHandle();

  Node& node() const { return *node_; }
  const NodeRef& ref() const { return node_; }
  bool writable() const { return writable_; }

  Result<void> read(uint64_t offset, std::span<std::byte> buf);
  Result<void> write(uint64_t offset, std::span<const std::byte> buf);
  Result<void> flush();
  Result<void> discard(uint64_t offset, uint64_t length);
  Result<void> write_zeroes(uint64_t offset, uint64_t length);
  Result<void> truncate(uint64_t new_size);
  Result<BlockStatus> block_status(uint64_t offset, uint64_t length);
  // chain_block_status() below, as one request on this handle's node.
  Result<BlockStatus> chain_block_status(uint64_t offset, uint64_t length);

 private:
  NodeRef node_;
  bool writable_ = false;
};

// Status of a range through the whole chain below `node`: Data if any layer from `node` down
// holds data there before a layer says Zero; Zero otherwise (the SEEK_DATA/SEEK_HOLE view).
// The caller must be in a request on `node` (a driver) or use BlockHandle::chain_block_status():
// the walk reads the backing edges, which only a request (or a drain) keeps still.
Result<BlockStatus> chain_block_status(Node& node, uint64_t offset, uint64_t length);

}  // namespace chainfs
