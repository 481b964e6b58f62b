#include "blockcore/graph/graph.h"

#include <spdlog/sinks/null_sink.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "blockcore/graph/drain.h"

namespace chainfs {

namespace fs = std::filesystem;

Graph::Graph(GraphOptions options) : options_(std::move(options)) {
  logger_ = options_.logger;
  if (!logger_)
    logger_ = std::make_shared<spdlog::logger>("chainfs", std::make_shared<spdlog::sinks::null_sink_mt>());
  io_ = IoEngine::create(logger_, options_.io);
}

Graph::~Graph() {
  std::map<std::string, NodeRef> chains, held;
  {
    std::lock_guard lock(topology_mutex_);
    chains.swap(chains_);
    held.swap(user_held_);
  }
  chains.clear();
  held.clear();
  std::lock_guard lock(topology_mutex_);
  if (!registry_.empty())
    logger_->error("graph destroyed with {} node(s) still referenced", registry_.size());
}

void Graph::register_node(Node* node) {
  std::lock_guard lock(topology_mutex_);
  node->id_ = next_id_++;
  registry_.emplace(node->id_, node);
  bump_generation_locked();
}

void Graph::unregister_node(Node* node) {
  {
    std::lock_guard lock(topology_mutex_);
    registry_.erase(node->id_);
    bump_generation_locked();
  }
  notify({GraphEvent::Kind::NodeRemoved, node->name(), node->id()});
}

void Graph::bump_generation_locked() { ++generation_; }

uint64_t Graph::generation() const {
  std::lock_guard lock(topology_mutex_);
  return generation_;
}

void Graph::set_observer(Observer observer) {
  std::lock_guard lock(observer_mutex_);
  observer_ = std::move(observer);
}

void Graph::notify(const GraphEvent& event) const {
  std::lock_guard lock(observer_mutex_);
  if (observer_) observer_(event);
}

// ---- edges ------------------------------------------------------------------------------------

namespace {
// What a parent takes and shares on an edge of each role (rule 2).
void edge_perms(ChildRole role, bool parent_read_only, Child& edge) {
  switch (role) {
    case ChildRole::File:
    case ChildRole::Filtered:
      // The format (or filter) node is the only writer of what is below it.
      edge.perms_taken = PermConsistentRead | (parent_read_only ? 0 : PermWrite | PermResize);
      edge.perms_shared = PermConsistentRead;
      break;
    case ChildRole::Backing:
      // A backing edge forbids writers that would change what the parent reads.
      edge.perms_taken = PermConsistentRead;
      edge.perms_shared = PermConsistentRead;
      break;
  }
}
}  // namespace

Result<void> Graph::attach_child(Node& parent, NodeRef child, ChildRole role) {
  if (!child) return make_error(Errc::Invalid, "attach to '{}': no child", parent.name());
  DrainedSection drain(parent);
  {
    std::lock_guard lock(topology_mutex_);
    if (parent.child(role))
      return make_error(Errc::Exists, "node '{}' already has a {} child", parent.name(),
                        child_role_name(role));
    auto edge = std::make_unique<Child>();
    edge->parent = &parent;
    edge->role = role;
    edge_perms(role, parent.read_only(), *edge);
    edge->node = std::move(child);
    edge->node->parent_edges_.push_back(edge.get());
    parent.children_.push_back(std::move(edge));
    bump_generation_locked();
  }
  notify({GraphEvent::Kind::EdgeChanged, parent.name(), parent.id()});
  return {};
}

Result<void> Graph::set_backing(Node& parent, NodeRef new_backing) {
  if (new_backing && !parent.capabilities().has_backing)
    return make_error(Errc::Unsupported, "node '{}' ({}) cannot have a backing node",
                      parent.name(), parent.driver_name());
  DrainedSection drain(parent);  // rule 3: the function that changes the edge drains the node
  // Persist first: if the image cannot record the new backing, the graph stays as it was.
  if (parent.capabilities().persists_backing) {
    std::optional<BackingReference> ref;
    if (new_backing)
      ref = BackingReference{new_backing->filename(),
                             std::string(new_backing->driver_name() == "qcow2" ? "qcow2" : "raw")};
    CHAINFS_TRY(parent.driver().set_backing_reference(ref));
  }
  std::unique_ptr<Child> old_edge;
  {
    std::lock_guard lock(topology_mutex_);
    auto it = std::find_if(parent.children_.begin(), parent.children_.end(),
                           [](const auto& e) { return e->role == ChildRole::Backing; });
    if (it != parent.children_.end()) {
      old_edge = std::move(*it);
      parent.children_.erase(it);
      std::erase(old_edge->node->parent_edges_, old_edge.get());
    }
    if (new_backing) {
      auto edge = std::make_unique<Child>();
      edge->parent = &parent;
      edge->role = ChildRole::Backing;
      edge_perms(ChildRole::Backing, parent.read_only(), *edge);
      edge->node = std::move(new_backing);
      edge->node->parent_edges_.push_back(edge.get());
      parent.children_.push_back(std::move(edge));
    }
    bump_generation_locked();
  }
  old_edge.reset();  // may close the old backing; outside the topology lock
  notify({GraphEvent::Kind::EdgeChanged, parent.name(), parent.id()});
  notify({GraphEvent::Kind::DataChanged, parent.name(), parent.id()});
  return {};
}

// ---- opening ----------------------------------------------------------------------------------

Result<NodeRef> Graph::open_protocol(const std::string& name, const std::string& path,
                                     bool read_only) {
  auto driver = make_driver("file");
  if (!driver) return make_error(Errc::Unsupported, "no file driver");
  NodeRef node = Node::create(*this, name, std::move(driver));
  node->host_filename_ = path;
  OpenParams params;
  params.filename = path;
  params.read_only = read_only || options_.read_only;
  CHAINFS_TRY(node->driver().open(*node, params));
  node->opened_ = true;
  node->set_read_only(params.read_only);
  return node;
}

Result<NodeRef> Graph::open_format(const std::string& name, const std::string& driver_name,
                                   NodeRef file, bool read_only) {
  auto driver = make_driver(driver_name);
  if (!driver) return make_error(Errc::Invalid, "unknown driver '{}'", driver_name);
  NodeRef node = Node::create(*this, name, std::move(driver));
  read_only = read_only || options_.read_only;
  node->set_read_only(read_only);
  CHAINFS_TRY(attach_child(*node, std::move(file), ChildRole::File));
  OpenParams params;
  params.read_only = read_only;
  params.cache_bytes = options_.cache_bytes;
  CHAINFS_TRY(node->driver().open(*node, params));
  node->opened_ = true;
  if (std::string why = node->driver().forced_read_only_reason(); !why.empty()) {
    if (!read_only) logger_->warn("node '{}' opened read-only: {}", name, why);
    node->set_read_only(true);
  }
  return node;
}

namespace {
Result<std::string> probe_format(Node& file) {
  std::array<std::byte, 4> magic{};
  if (file.size() < magic.size()) return std::string("raw");
  CHAINFS_TRY(file.read(0, magic));
  const unsigned char qcow2_magic[4] = {'Q', 'F', 'I', 0xfb};
  return std::string(std::memcmp(magic.data(), qcow2_magic, 4) == 0 ? "qcow2" : "raw");
}

std::string file_stem(const std::string& path) { return fs::path(path).stem().string(); }
}  // namespace

std::string Graph::unique_name(const std::string& stem) const {
  std::lock_guard lock(topology_mutex_);
  auto taken = [&](const std::string& candidate) {
    for (const auto& [id, node] : registry_)
      if (node->name() == candidate || node->name() == candidate + ".file") return true;
    return chains_.count(candidate) > 0 && false;
  };
  if (!taken(stem)) return stem;
  for (int n = 2;; ++n)
    if (std::string c = fmt::format("{}-{}", stem, n); !taken(c)) return c;
}

Result<NodeRef> Graph::open_image_chain(const std::string& path, const std::string& format,
                                        const std::string& name_hint, bool read_only) {
  // Open top to bottom, following header backing references; then link bottom-up.
  std::vector<NodeRef> layers;
  std::set<std::string> seen;  // canonical paths, to refuse loops
  std::string current = path;
  std::string current_format = format;
  std::string name = name_hint.empty() ? file_stem(path) : name_hint;
  bool layer_read_only = read_only;
  for (;;) {
    std::error_code ec;
    fs::path canonical = fs::canonical(current, ec);
    if (ec)
      return make_error(Errc::NotFound, "image '{}'{}: {}", current,
                        layers.empty() ? "" : fmt::format(" (backing of '{}')", layers.back()->name()),
                        ec.message());
    if (!seen.insert(canonical.string()).second)
      return make_error(Errc::Invalid, "backing loop: '{}' appears twice in the chain of '{}'",
                        current, path);
    std::string node_name = unique_name(name);
    CHAINFS_ASSIGN_OR_RETURN(NodeRef file, open_protocol(node_name + ".file", current, layer_read_only));
    if (current_format.empty()) {
      CHAINFS_ASSIGN_OR_RETURN(current_format, probe_format(*file));
    }
    CHAINFS_ASSIGN_OR_RETURN(NodeRef node,
                             open_format(node_name, current_format, std::move(file), layer_read_only));
    auto ref = node->driver().backing_reference();
    layers.push_back(std::move(node));
    if (!ref || ref->filename.empty()) break;
    fs::path next(ref->filename);
    if (next.is_relative()) next = fs::path(current).parent_path() / next;
    current = next.string();
    current_format = ref->format;
    name = file_stem(current);
    layer_read_only = true;  // backing layers never take writers
  }
  for (size_t i = layers.size() - 1; i > 0; --i)
    CHAINFS_TRY(attach_child(*layers[i - 1], layers[i], ChildRole::Backing));
  for (const NodeRef& n : layers) notify({GraphEvent::Kind::NodeAdded, n->name(), n->id()});
  return layers.front();
}

Result<NodeRef> Graph::open_image(const ImageSpec& spec) {
  std::string chain_name = spec.chain.empty() ? file_stem(spec.path) : spec.chain;
  {
    std::lock_guard lock(topology_mutex_);
    if (chains_.count(chain_name))
      return make_error(Errc::Exists, "chain '{}' already exists", chain_name);
  }
  if (!spec.node_name.empty() && find(spec.node_name).ok())
    return make_error(Errc::Exists, "node name '{}' is already taken", spec.node_name);
  CHAINFS_ASSIGN_OR_RETURN(NodeRef top, open_image_chain(spec.path, "", spec.node_name, spec.read_only));
  CHAINFS_TRY(add_chain(chain_name, top));
  return top;
}

Result<NodeRef> Graph::open_named_node(const NodeSpec& spec) {
  if (spec.name.empty()) return make_error(Errc::Invalid, "a node needs a name");
  if (unique_name(spec.name) != spec.name)
    return make_error(Errc::Exists, "node name '{}' is already taken", spec.name);
  NodeRef node;
  bool ro = spec.read_only || options_.read_only;
  if (spec.driver == "file") {
    CHAINFS_ASSIGN_OR_RETURN(node, open_protocol(spec.name, spec.file, ro));
  } else if (spec.driver == "raw" || spec.driver == "qcow2") {
    CHAINFS_ASSIGN_OR_RETURN(NodeRef file, open_protocol(spec.name + ".file", spec.file, ro));
    CHAINFS_ASSIGN_OR_RETURN(node, open_format(spec.name, spec.driver, std::move(file), ro));
    if (spec.backing && !spec.backing->empty()) {
      CHAINFS_ASSIGN_OR_RETURN(NodeRef backing, find(*spec.backing));
      CHAINFS_TRY(attach_child(*node, std::move(backing), ChildRole::Backing));
    } else if (!spec.backing) {
      if (auto ref = node->driver().backing_reference(); ref && !ref->filename.empty()) {
        fs::path next(ref->filename);
        if (next.is_relative()) next = fs::path(spec.file).parent_path() / next;
        CHAINFS_ASSIGN_OR_RETURN(NodeRef backing,
                                 open_image_chain(next.string(), ref->format, "", true));
        CHAINFS_TRY(attach_child(*node, std::move(backing), ChildRole::Backing));
      }
    }
  } else if (spec.driver == "fault") {
    CHAINFS_ASSIGN_OR_RETURN(NodeRef child, find(spec.child));
    auto driver = make_driver("fault");
    if (!driver) return make_error(Errc::Unsupported, "no fault driver");
    node = Node::create(*this, spec.name, std::move(driver));
    node->set_read_only(ro);
    CHAINFS_TRY(attach_child(*node, std::move(child), ChildRole::Filtered));
    OpenParams params;
    params.read_only = ro;
    params.fault_rules = spec.rules;
    CHAINFS_TRY(node->driver().open(*node, params));
    node->opened_ = true;
  } else {
    return make_error(Errc::Invalid, "unknown driver '{}' for node '{}'", spec.driver, spec.name);
  }
  hold_for_user(node);
  notify({GraphEvent::Kind::NodeAdded, node->name(), node->id()});
  return node;
}

// ---- chains and holds -------------------------------------------------------------------------

Result<void> Graph::add_chain(const std::string& name, NodeRef root) {
  {
    std::lock_guard lock(topology_mutex_);
    if (!chains_.emplace(name, std::move(root)).second)
      return make_error(Errc::Exists, "chain '{}' already exists", name);
    bump_generation_locked();
  }
  notify({GraphEvent::Kind::ChainChanged, name, 0});
  return {};
}

Result<void> Graph::set_chain_root(const std::string& name, NodeRef root) {
  NodeRef old;
  {
    std::lock_guard lock(topology_mutex_);
    auto it = chains_.find(name);
    if (it == chains_.end()) return make_error(Errc::NotFound, "no chain '{}'", name);
    old = std::exchange(it->second, std::move(root));
    bump_generation_locked();
  }
  old.reset();
  notify({GraphEvent::Kind::ChainChanged, name, 0});
  return {};
}

Result<void> Graph::remove_chain(const std::string& name) {
  NodeRef old;
  {
    std::lock_guard lock(topology_mutex_);
    auto it = chains_.find(name);
    if (it == chains_.end()) return make_error(Errc::NotFound, "no chain '{}'", name);
    old = std::move(it->second);
    chains_.erase(it);
    bump_generation_locked();
  }
  old.reset();
  notify({GraphEvent::Kind::ChainChanged, name, 0});
  return {};
}

std::optional<ChainView> Graph::chain(const std::string& name) const {
  ChainView view;
  {
    std::lock_guard lock(topology_mutex_);
    auto it = chains_.find(name);
    if (it == chains_.end()) return std::nullopt;
    view.name = name;
    view.root = it->second;
    for (Node* n = view.root.get(); n; n = n->backing() ? n->backing() : n->filtered()) {
      if (n->driver_name() != "fault") view.layers.push_back(n->ref());
    }
  }
  return view;
}

std::vector<ChainView> Graph::chains() const {
  std::vector<std::string> names;
  {
    std::lock_guard lock(topology_mutex_);
    for (const auto& [name, root] : chains_) names.push_back(name);
  }
  std::vector<ChainView> out;
  for (const auto& name : names)
    if (auto v = chain(name)) out.push_back(std::move(*v));
  return out;
}

void Graph::hold_for_user(NodeRef node) {
  {
    std::lock_guard lock(topology_mutex_);
    user_held_[node->name()] = std::move(node);
    bump_generation_locked();
  }
}

Result<void> Graph::remove_node(const std::string& name) {
  NodeRef node;
  {
    std::lock_guard lock(topology_mutex_);
    auto it = user_held_.find(name);
    if (it == user_held_.end()) {
      for (const auto& [id, n] : registry_)
        if (n->name() == name)
          return make_error(Errc::Busy, "node '{}' is not held by the user: it is referenced by "
                                        "the graph", name);
      return make_error(Errc::NotFound, "no node '{}'", name);
    }
    Node* n = it->second.get();
    if (!n->parent_edges_.empty())
      return make_error(Errc::Busy, "node '{}' is referenced by '{}'", name,
                        n->parent_edges_.front()->parent->name());
    for (const auto& [chain, root] : chains_)
      if (root.get() == n)
        return make_error(Errc::Busy, "node '{}' is the active layer of chain '{}'", name, chain);
    node = std::move(it->second);
    user_held_.erase(it);
    bump_generation_locked();
  }
  node.reset();
  return {};
}

// ---- queries ----------------------------------------------------------------------------------

namespace {
// A strong reference if the node's count is not already zero (it may be closing).
NodeRef try_ref(Node* node);
}  // namespace

bool Graph::is_listed(const Node& node) const {
  std::lock_guard lock(topology_mutex_);
  if (!node.parent_edges_.empty()) return true;
  for (const auto& [name, root] : chains_)
    if (root.get() == &node) return true;
  for (const auto& [name, held] : user_held_)
    if (held.get() == &node) return true;
  return false;
}

Result<NodeRef> Graph::find(const std::string& name) const {
  NodeRef found;
  {
    std::lock_guard lock(topology_mutex_);
    for (const auto& [id, node] : registry_)
      if (node->name() == name) {
        found = try_ref(node);
        if (found) break;
      }
  }
  if (!found || !is_listed(*found)) return make_error(Errc::NotFound, "no node '{}'", name);
  return found;
}

std::vector<NodeRef> Graph::listed_nodes() const {
  std::vector<NodeRef> all;
  {
    std::lock_guard lock(topology_mutex_);
    for (const auto& [id, node] : registry_)
      if (NodeRef r = try_ref(node)) all.push_back(std::move(r));
  }
  std::vector<NodeRef> out;
  for (auto& n : all)
    if (is_listed(*n)) out.push_back(std::move(n));
  std::sort(out.begin(), out.end(), [](const NodeRef& a, const NodeRef& b) { return a->name() < b->name(); });
  return out;
}

Result<void> Graph::check_writable(const Node& node) const {
  if (options_.read_only) return make_error(Errc::ReadOnly, "the mount is read-only");
  if (node.read_only()) return make_error(Errc::ReadOnly, "node '{}' is read-only", node.name());
  if (!node.capabilities().writable)
    return make_error(Errc::ReadOnly, "node '{}' ({}) does not take writes", node.name(),
                      node.driver_name());
  std::lock_guard lock(topology_mutex_);
  for (const Child* edge : node.parent_edges_)
    if (!(edge->perms_shared & PermWrite))
      return make_error(Errc::Access, "node '{}' is the {} node of '{}' and may not take writers",
                        node.name(), child_role_name(edge->role), edge->parent->name());
  return {};
}

// ---- iteration --------------------------------------------------------------------------------

namespace {
NodeRef try_ref(Node* node) {
  // Called under topology_mutex_: the node cannot be unregistered (and freed) meanwhile, but its
  // count may already have reached zero, in which case it is closing and must not be revived.
  return detail::node_try_acquire(node) ? NodeRef::adopt(node) : NodeRef();
}
}  // namespace

Graph::Iterator Graph::begin_all() const { return Iterator(*this); }

Graph::Iterator::Iterator(const Graph& graph) : graph_(&graph) { seek(0); }

void Graph::Iterator::next() {
  if (!current_) return;
  // The pin on the current node is dropped only after the next one is pinned.
  uint64_t after = current_->id();
  seek(after);
}

void Graph::Iterator::seek(uint64_t after_id) {
  NodeRef next;
  {
    std::lock_guard lock(graph_->topology_mutex_);
    for (auto it = graph_->registry_.upper_bound(after_id); it != graph_->registry_.end(); ++it)
      if ((next = try_ref(it->second))) break;
  }
  current_ = std::move(next);  // releases the previous pin outside the lock
}

// ---- external handles and chain status -----------------------------------------------------------

#define CHAINFS_EXTERNAL(call)                                                 \
  RequestGuard guard(node_->gate(), RequestGuard::Entry::External);            \
  return node_->call

Result<void> BlockHandle::read(uint64_t offset, std::span<std::byte> buf) {
  CHAINFS_EXTERNAL(read(offset, buf));
}
Result<void> BlockHandle::write(uint64_t offset, std::span<const std::byte> buf) {
  if (!writable_) return make_error(Errc::ReadOnly, "handle on '{}' is read-only", node_->name());
  CHAINFS_EXTERNAL(write(offset, buf));
}
Result<void> BlockHandle::flush() { CHAINFS_EXTERNAL(flush()); }
Result<void> BlockHandle::discard(uint64_t offset, uint64_t length) {
  if (!writable_) return make_error(Errc::ReadOnly, "handle on '{}' is read-only", node_->name());
  CHAINFS_EXTERNAL(discard(offset, length));
}
Result<void> BlockHandle::write_zeroes(uint64_t offset, uint64_t length) {
  if (!writable_) return make_error(Errc::ReadOnly, "handle on '{}' is read-only", node_->name());
  CHAINFS_EXTERNAL(write_zeroes(offset, length));
}
Result<void> BlockHandle::truncate(uint64_t new_size) {
  if (!writable_) return make_error(Errc::ReadOnly, "handle on '{}' is read-only", node_->name());
  CHAINFS_EXTERNAL(truncate(new_size));
}
Result<BlockStatus> BlockHandle::block_status(uint64_t offset, uint64_t length) {
  CHAINFS_EXTERNAL(block_status(offset, length));
}
#undef CHAINFS_EXTERNAL

Result<BlockStatus> chain_block_status(Node& top, uint64_t offset, uint64_t length) {
  // Walk down while the range is unallocated; the answer's length is the shortest extent seen.
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
