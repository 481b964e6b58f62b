// Graph core: the node registry, chains and user holds, queries and iteration. Opening images is
// in graph_open.cpp, edge changes and relinks in graph_edges.cpp, claims and permissions in
// graph_claims.cpp, BlockHandle in block_handle.cpp.
#include "blockcore/graph/graph.h"

#include <sys/stat.h>

#include <spdlog/sinks/null_sink.h>

#include <algorithm>

#include "blockcore/graph/graph_change.h"

namespace chainfs {

Graph::Graph(GraphOptions options) : options_(std::move(options)) {
  logger_ = options_.logger;
  if (!logger_)
    logger_ = std::make_shared<spdlog::logger>("chainfs",
                                               std::make_shared<spdlog::sinks::null_sink_mt>());
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
  if (!active_drains_.empty())
    logger_->error("graph destroyed with {} drained section(s) still active",
                   active_drains_.size());
}

// ---- registry ---------------------------------------------------------------------------------

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

bool Graph::name_taken_locked(const std::string& name) const {
  for (const auto& [id, node] : registry_)
    if (node->name() == name) return true;
  return false;
}

Result<NodeRef> Graph::create_node(std::string name, std::string host_filename,
                                   std::unique_ptr<Driver> driver) {
  if (name.empty()) return make_error(Errc::Invalid, "a node needs a name");
  if (!driver) return make_error(Errc::Invalid, "node '{}': no driver", name);
  std::lock_guard lock(topology_mutex_);
  if (name_taken_locked(name))
    return make_error(Errc::Exists, "node name '{}' is already taken", name);
  Node* node = new Node(*this, std::move(name), std::move(host_filename), std::move(driver));
  node->id_ = next_id_++;
  registry_.emplace(node->id_, node);
  bump_generation_locked();
  return NodeRef::adopt(node);
}

Result<NodeRef> Graph::add_node(std::string name, std::unique_ptr<Driver> driver,
                                const OpenParams& params) {
  OpenParams p = params;
  p.read_only = p.read_only || options_.read_only;
  CHAINFS_ASSIGN_OR_RETURN(NodeRef node,
                           create_node(std::move(name), p.filename, std::move(driver)));
  node->set_read_only(p.read_only);
  CHAINFS_TRY(node->driver().open(*node, p));
  node->opened_ = true;
  if (std::string why = node->driver().forced_read_only_reason(); !why.empty()) {
    if (!p.read_only) logger_->warn("node '{}' opened read-only: {}", node->name(), why);
    if (!p.read_only) node->set_read_only(ReadOnlyCause::Image);
  }
  notify({GraphEvent::Kind::NodeAdded, node->name(), node->id()});
  return node;
}

void Graph::bump_generation_locked() {
  ++generation_;
}

uint64_t Graph::generation() const {
  std::lock_guard lock(topology_mutex_);
  return generation_;
}

// ---- observers --------------------------------------------------------------------------------

void Graph::set_observer(Observer observer) {
  auto shared = observer ? std::make_shared<const Observer>(std::move(observer)) : nullptr;
  std::lock_guard lock(observer_mutex_);
  observer_ = std::move(shared);
}

void Graph::notify(const GraphEvent& event) const {
  std::shared_ptr<const Observer> observer;
  {
    std::lock_guard lock(observer_mutex_);
    observer = observer_;
  }
  // Called without any graph mutex: an observer may query the graph, or drop the last reference
  // of a node (whose destructor notifies again).
  if (observer) (*observer)(event);
}

// ---- chains and holds -------------------------------------------------------------------------

Result<void> Graph::add_chain(const std::string& name, NodeRef root) {
  if (!root) return make_error(Errc::Invalid, "chain '{}' needs a root node", name);
  {
    std::lock_guard change(change_mutex_);
    std::lock_guard lock(topology_mutex_);
    if (chains_.count(name)) return make_error(Errc::Exists, "chain '{}' already exists", name);
    chains_.emplace(name, std::move(root));
    bump_generation_locked();
  }
  notify({GraphEvent::Kind::ChainChanged, name, 0});
  return {};
}

Result<void> Graph::set_chain_root(const std::string& name, NodeRef root) {
  if (!root) return make_error(Errc::Invalid, "chain '{}' needs a root node", name);
  ChangeLog log;
  Result<void> outcome;
  {
    std::lock_guard change(change_mutex_);
    outcome = change_chain_root(name, std::move(root), log);
  }
  flush(log);
  return outcome;
}

Result<void> Graph::remove_chain(const std::string& name) {
  NodeRef old;
  {
    std::lock_guard change(change_mutex_);
    std::lock_guard lock(topology_mutex_);
    auto it = chains_.find(name);
    if (it == chains_.end()) return make_error(Errc::NotFound, "no chain '{}'", name);
    old = std::move(it->second);
    chains_.erase(it);
    bump_generation_locked();
  }
  old.reset();  // may close the whole chain: outside the locks
  notify({GraphEvent::Kind::ChainChanged, name, 0});
  return {};
}

std::optional<ChainView> Graph::chain(const std::string& name) const {
  ChainView view;
  std::lock_guard lock(topology_mutex_);
  auto it = chains_.find(name);
  if (it == chains_.end()) return std::nullopt;
  view.name = name;
  view.root = it->second;
  for (Node* n = view.root.get(); n; n = n->backing() ? n->backing() : n->filtered())
    if (n->driver_name() != "fault") view.layers.push_back(n->ref());
  return view;  // every reference in `view` has another holder (an edge, the chain): not the last
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
  if (!node) return;
  NodeRef replaced;
  {
    std::lock_guard lock(topology_mutex_);
    NodeRef& slot = user_held_[node->name()];
    replaced = std::exchange(slot, std::move(node));
    bump_generation_locked();
  }
}

Result<void> Graph::remove_node(const std::string& name) {
  NodeRef node;
  {
    std::lock_guard lock(topology_mutex_);
    auto it = user_held_.find(name);
    if (it == user_held_.end()) {
      if (name_taken_locked(name))
        return make_error(Errc::Busy,
                          "node '{}' is not held by the user: it is referenced by the graph", name);
      return make_error(Errc::NotFound, "no node '{}'", name);
    }
    Node* n = it->second.get();
    if (!n->parent_edges_.empty())
      return make_error(Errc::Busy, "node '{}' is referenced by '{}'", name,
                        n->parent_edges_.front()->parent->name());
    for (const auto& [chain, root] : chains_)
      if (root.get() == n)
        return make_error(Errc::Busy, "node '{}' is the active layer of chain '{}'", name, chain);
    if (!n->claims_.empty())
      return make_error(Errc::Busy, "node '{}' is in use by {} ({})", name,
                        n->claims_.front().claimant, claim_kind_name(n->claims_.front().kind));
    node = std::move(it->second);
    user_held_.erase(it);
    bump_generation_locked();
  }
  node.reset();  // closes it unless an open handle still holds it (outside the lock)
  return {};
}

// ---- queries ----------------------------------------------------------------------------------

namespace {
// Under topology_mutex_: a registered node cannot be freed meanwhile, but its count may already
// have reached zero, in which case it is closing and must not be revived.
NodeRef try_ref(Node* node) {
  return detail::node_try_acquire(node) ? NodeRef::adopt(node) : NodeRef();
}
}  // namespace

bool Graph::is_listed_locked(const Node& node) const {
  if (!node.parent_edges_.empty() || !node.claims_.empty()) return true;
  for (const auto& [name, root] : chains_)
    if (root.get() == &node) return true;
  for (const auto& [name, held] : user_held_)
    if (held.get() == &node) return true;
  return false;
}

NodeRef Graph::node_with_file(const std::string& path) const {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  const std::pair<uint64_t, uint64_t> id{st.st_dev, st.st_ino};
  std::lock_guard lock(topology_mutex_);
  for (const auto& [node_id, node] : registry_) {
    if (node->file_id_ != id) continue;
    for (const Child* edge : node->parent_edges_)
      if (edge->role == ChildRole::File)
        if (NodeRef format = try_ref(edge->parent)) return format;
    if (NodeRef protocol = try_ref(node)) return protocol;
  }
  return {};
}

bool Graph::is_listed(const Node& node) const {
  std::lock_guard lock(topology_mutex_);
  return is_listed_locked(node);
}

Result<NodeRef> Graph::find(const std::string& name) const {
  NodeRef found;
  {
    std::lock_guard lock(topology_mutex_);
    for (const auto& [id, node] : registry_)
      if (node->name() == name && is_listed_locked(*node) && (found = try_ref(node))) break;
  }
  // A listed node is held by an edge, chain, claim or the user: `found` is never the last here.
  if (!found) return make_error(Errc::NotFound, "no node '{}'", name);
  return found;
}

std::vector<NodeRef> Graph::listed_nodes() const {
  std::vector<NodeRef> out;
  {
    std::lock_guard lock(topology_mutex_);
    for (const auto& [id, node] : registry_)
      if (is_listed_locked(*node))
        if (NodeRef r = try_ref(node)) out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const NodeRef& a, const NodeRef& b) { return a->name() < b->name(); });
  return out;
}

std::string Graph::unique_name(const std::string& stem) const {
  std::lock_guard lock(topology_mutex_);
  // A format node named N owns a protocol node named N.file: both names must be free.
  auto taken = [&](const std::string& c) {
    return name_taken_locked(c) || name_taken_locked(c + ".file");
  };
  if (!taken(stem)) return stem;
  for (int n = 2;; ++n)
    if (std::string c = fmt::format("{}-{}", stem, n); !taken(c)) return c;
}

// ---- iteration --------------------------------------------------------------------------------

Graph::Iterator Graph::begin_all() const {
  return Iterator(*this);
}

Graph::Iterator::Iterator(const Graph& graph) : graph_(&graph) {
  seek(0);
}

void Graph::Iterator::next() {
  if (!current_) return;
  seek(current_->id());  // ids are never reused: the id is all we need to find the next node
}

void Graph::Iterator::seek(uint64_t after_id) {
  NodeRef next;
  {
    std::lock_guard lock(graph_->topology_mutex_);
    for (auto it = graph_->registry_.upper_bound(after_id); it != graph_->registry_.end(); ++it)
      if ((next = try_ref(it->second))) break;
  }
  if (next) CHAINFS_SYNC_POINT_TAG(graph_->sync_points(), "Graph::Iterator:pinned", next->name());
  // The pin on the previous node is dropped only now, after the next one is pinned, and outside
  // the lock (it may be the last reference).
  current_ = std::move(next);
}

}  // namespace chainfs
