// Graph: the named nodes and chains of one mount. No global state: two graphs can live in one
// process (tests do that).
//
// Who holds a node (rule 1): parent edges (Child), chains (a named root), the user (nodes declared
// by name in the config), jobs, open handles and iterators. A node is *listed* (visible in nodes/)
// while a parent edge, a chain, a job or the user holds it; open handles and iterators keep it
// alive but unlisted.
//
// Locks (see docs/concurrency.md): topology_mutex_ guards the node registry, the edge lists of
// every node, the chains and the user holds. It is never held across I/O or while waiting for a
// drain. Graph *changes* additionally happen inside drained sections (rule 3).
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
#include "blockcore/graph/node.h"
#include "blockcore/graph/node_ref.h"
#include "blockcore/io/io_engine.h"
#include "blockcore/result.h"

namespace chainfs {

struct GraphOptions {
  std::shared_ptr<spdlog::logger> logger;  // default: a private logger that discards
  bool read_only = false;                  // whole-mount read-only
  IoEngineOptions io;
  uint64_t cache_bytes = 0;                // per-format-node metadata cache (0 = driver default)
};

// How to open one named node (from the config's `nodes:` list).
struct NodeSpec {
  std::string name;
  std::string driver;          // qcow2 | raw | fault | file
  std::string file;            // qcow2/raw: image path; file: host path
  std::string child;           // fault: the node it filters
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
  NodeRef root;                // the active layer
  std::vector<NodeRef> layers; // top (depth 0) to bottom, following backing edges
};

// What changed, for observers (the FUSE front-end invalidates its caches on these).
struct GraphEvent {
  enum class Kind { NodeAdded, NodeRemoved, EdgeChanged, ChainChanged, DataChanged, SizeChanged };
  Kind kind;
  std::string name;  // node or chain name
  uint64_t node_id = 0;
};

class Graph {
 public:
  explicit Graph(GraphOptions options = {});
  ~Graph();  // drops chains and user holds; jobs must have been stopped by their owner
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  spdlog::logger& log() const { return *logger_; }
  IoEngine& io() const { return *io_; }
  const GraphOptions& options() const { return options_; }

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

  // Attach `child` under `parent`. Drains the parent (rule 3).
  Result<void> attach_child(Node& parent, NodeRef child, ChildRole role);
  // Replace (or with nullptr remove) the parent's backing edge. Drains the parent (rule 3) and
  // records the new reference in the image where the format supports it, before the drain ends.
  Result<void> set_backing(Node& parent, NodeRef new_backing);

  // ---- chains and user holds ----------------------------------------------------------------
  Result<void> add_chain(const std::string& name, NodeRef root);
  Result<void> set_chain_root(const std::string& name, NodeRef root);
  Result<void> remove_chain(const std::string& name);
  std::vector<ChainView> chains() const;
  std::optional<ChainView> chain(const std::string& name) const;
  void hold_for_user(NodeRef node);
  // `control/node remove`: refuses (Busy) while anything but the user references or uses it.
  Result<void> remove_node(const std::string& name);

  // ---- queries ------------------------------------------------------------------------------
  // A listed node by name (NotFound otherwise).
  Result<NodeRef> find(const std::string& name) const;
  // All listed nodes, pinned, sorted by name.
  std::vector<NodeRef> listed_nodes() const;
  bool is_listed(const Node& node) const;
  // A name not used by any live node: `stem`, else `stem-2`, `stem-3`, ...
  std::string unique_name(const std::string& stem) const;
  // Whether a new writer may open the node: not read-only (node, mount), the driver writes, and
  // every parent edge shares PermWrite (a backing layer or a protocol node under a format does not).
  Result<void> check_writable(const Node& node) const;
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
  void register_node(Node* node);
  void unregister_node(Node* node);
  Result<NodeRef> open_protocol(const std::string& name, const std::string& path, bool read_only);
  Result<NodeRef> open_format(const std::string& name, const std::string& driver, NodeRef file,
                              bool read_only);
  void bump_generation_locked();

  GraphOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<IoEngine> io_;  // declared before the nodes' holders: destroyed after them

  mutable std::mutex topology_mutex_;  // lock order: topology_mutex_ before observer_mutex_
  std::map<uint64_t, Node*> registry_;  // every live node, by id (weak)
  uint64_t next_id_ = 1;
  uint64_t generation_ = 1;
  std::map<std::string, NodeRef> chains_;
  std::map<std::string, NodeRef> user_held_;

  mutable std::mutex observer_mutex_;
  Observer observer_;
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
// node's gate as an external request, so it waits while the node is drained.
class BlockHandle {
 public:
  BlockHandle(NodeRef node, bool writable) : node_(std::move(node)), writable_(writable) {}
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

 private:
  NodeRef node_;
  bool writable_;
};

// Status of a range through the whole chain below `node`: Data if any layer from `node` down
// holds data there before a layer says Zero; Zero otherwise (the SEEK_DATA/SEEK_HOLE view).
Result<BlockStatus> chain_block_status(Node& node, uint64_t offset, uint64_t length);

}  // namespace chainfs
