// Opening nodes and images (--image, images:, nodes:, node open). Layers are opened top to bottom
// from the images' headers and linked bottom-up with attach_child (which drains, rule 3).
#include <array>
#include <cstring>
#include <filesystem>
#include <set>

#include <sys/stat.h>

#include "blockcore/graph/graph.h"

namespace chainfs {

namespace fs = std::filesystem;

ReadOnlyCause Graph::effective_cause(ReadOnlyCause asked) const {
  return options_.read_only ? ReadOnlyCause::User : asked;
}

Result<NodeRef> Graph::open_protocol(const std::string& name, const std::string& path,
                                     ReadOnlyCause cause) {
  // The callers have checked that no node has `path` open (open_image_chain shares such a
  // backing layer, open_named_node refuses it): one stat and one scan per layer.
  auto driver = make_driver("file");
  if (!driver) return make_error(Errc::Unsupported, "no file driver");
  CHAINFS_ASSIGN_OR_RETURN(NodeRef node, create_node(name, path, std::move(driver)));
  cause = effective_cause(cause);
  OpenParams params;
  params.filename = path;
  params.read_only = cause != ReadOnlyCause::None;
  CHAINFS_TRY(node->driver().open(*node, params));
  node->opened_ = true;
  node->set_read_only(cause);
  if (struct stat st{}; ::stat(path.c_str(), &st) == 0) {
    std::lock_guard lock(topology_mutex_);
    node->file_id_.emplace(st.st_dev, st.st_ino);
  }
  return node;
}

Result<NodeRef> Graph::open_format(const std::string& name, const std::string& driver_name,
                                   NodeRef file, ReadOnlyCause cause) {
  auto driver = make_driver(driver_name);
  if (!driver) return make_error(Errc::Invalid, "unknown driver '{}'", driver_name);
  CHAINFS_ASSIGN_OR_RETURN(NodeRef node, create_node(name, {}, std::move(driver)));
  cause = effective_cause(cause);
  node->set_read_only(cause);
  CHAINFS_TRY(attach_child(*node, std::move(file), ChildRole::File));
  OpenParams params;
  params.read_only = cause != ReadOnlyCause::None;
  params.cache_bytes = options_.cache_bytes;
  CHAINFS_TRY(node->driver().open(*node, params));
  node->opened_ = true;
  if (std::string why = node->driver().forced_read_only_reason(); !why.empty()) {
    if (!params.read_only) logger_->warn("node '{}' opened read-only: {}", name, why);
    if (cause != ReadOnlyCause::User) node->set_read_only(ReadOnlyCause::Image);
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

std::string file_stem(const std::string& path) {
  return fs::path(path).stem().string();
}
}  // namespace

Result<NodeRef> Graph::open_image_chain(const std::string& path, const std::string& format,
                                        const std::string& name_hint, bool read_only) {
  // Backing layers take no writers; a job may reopen them read-write (Graph::reopen) unless the
  // user asked for the whole chain read-only.
  return read_only
             ? open_image_chain(path, format, name_hint, ReadOnlyCause::User, ReadOnlyCause::User)
             : open_image_chain(path, format, name_hint, ReadOnlyCause::None,
                                ReadOnlyCause::Backing);
}

Result<NodeRef> Graph::open_image_chain(const std::string& path, const std::string& format,
                                        const std::string& name_hint, ReadOnlyCause top_cause,
                                        ReadOnlyCause backing_cause) {
  // Open top to bottom, following header backing references; then link bottom-up.
  std::vector<NodeRef> layers;
  std::set<std::string> seen;  // canonical paths, to refuse loops
  std::string current = path;
  std::string current_format = format;
  std::string name = name_hint.empty() ? file_stem(path) : name_hint;
  ReadOnlyCause layer_cause = top_cause;
  bool shares_bottom = false;  // the last layer is a node the graph already had
  for (;;) {
    std::error_code ec;
    fs::path canonical = fs::canonical(current, ec);
    if (ec)
      return make_error(
          Errc::NotFound, "image '{}'{}: {}", current,
          layers.empty() ? "" : fmt::format(" (backing of '{}')", layers.back()->name()),
          ec.message());
    if (!seen.insert(canonical.string()).second)
      return make_error(Errc::Invalid, "backing loop: '{}' appears twice in the chain of '{}'",
                        current, path);
    if (NodeRef open = node_with_file(canonical.string())) {
      // A backing image some other chain already reads (two overlays on one base): share its
      // node, so that the graph sees both users of it, as QEMU's node graph would.
      if (layers.empty())
        return make_error(Errc::Busy, "image '{}' is already open as node '{}'", current,
                          open->name());
      if (!open->read_only() || open->is_protocol() ||
          (!current_format.empty() && open->driver_name() != current_format))
        return make_error(Errc::Busy, "'{}' (backing of '{}') is already open as node '{}'{}",
                          current, layers.back()->name(), open->name(),
                          open->read_only() ? "" : ", writable");
      layers.push_back(std::move(open));
      shares_bottom = true;
      break;
    }
    std::string node_name = unique_name(name);
    CHAINFS_ASSIGN_OR_RETURN(NodeRef file,
                             open_protocol(node_name + ".file", current, layer_cause));
    if (current_format.empty()) {
      CHAINFS_ASSIGN_OR_RETURN(current_format, probe_format(*file));
    }
    CHAINFS_ASSIGN_OR_RETURN(NodeRef node,
                             open_format(node_name, current_format, std::move(file), layer_cause));
    auto ref = node->driver().backing_reference();
    layers.push_back(std::move(node));
    if (!ref || ref->filename.empty()) break;
    fs::path next(ref->filename);
    if (next.is_relative()) next = fs::path(current).parent_path() / next;
    current = next.string();
    current_format = ref->format;
    name = file_stem(current);
    layer_cause = backing_cause;
  }
  for (size_t i = layers.size() - 1; i > 0; --i)
    CHAINFS_TRY(attach_child(*layers[i - 1], layers[i], ChildRole::Backing));
  for (size_t i = 0; i < layers.size() - (shares_bottom ? 1 : 0); ++i)
    notify({GraphEvent::Kind::NodeAdded, layers[i]->name(), layers[i]->id()});
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
  CHAINFS_ASSIGN_OR_RETURN(NodeRef top,
                           open_image_chain(spec.path, "", spec.node_name, spec.read_only));
  CHAINFS_TRY(add_chain(chain_name, top));
  return top;
}

Result<NodeRef> Graph::open_named_node(const NodeSpec& spec) {
  if (spec.name.empty()) return make_error(Errc::Invalid, "a node needs a name");
  if (unique_name(spec.name) != spec.name)
    return make_error(Errc::Exists, "node name '{}' is already taken", spec.name);
  NodeRef node;
  const ReadOnlyCause cause =
      effective_cause(spec.read_only ? ReadOnlyCause::User : ReadOnlyCause::None);
  const bool ro = cause != ReadOnlyCause::None;
  // Two drivers over one image would each cache and allocate on their own: corruption once
  // either writes.
  if (spec.driver == "file" || spec.driver == "raw" || spec.driver == "qcow2")
    if (NodeRef other = node_with_file(spec.file))
      return make_error(Errc::Busy, "'{}' is already open as node '{}'", spec.file, other->name());
  if (spec.driver == "file") {
    CHAINFS_ASSIGN_OR_RETURN(node, open_protocol(spec.name, spec.file, cause));
  } else if (spec.driver == "raw" || spec.driver == "qcow2") {
    CHAINFS_ASSIGN_OR_RETURN(NodeRef file, open_protocol(spec.name + ".file", spec.file, cause));
    CHAINFS_ASSIGN_OR_RETURN(node, open_format(spec.name, spec.driver, std::move(file), cause));
    if (spec.backing && !spec.backing->empty()) {
      CHAINFS_ASSIGN_OR_RETURN(NodeRef backing, find(*spec.backing));
      CHAINFS_TRY(attach_child(*node, std::move(backing), ChildRole::Backing));
    } else if (!spec.backing) {
      if (auto ref = node->driver().backing_reference(); ref && !ref->filename.empty()) {
        fs::path next(ref->filename);
        if (next.is_relative()) next = fs::path(spec.file).parent_path() / next;
        CHAINFS_ASSIGN_OR_RETURN(
            NodeRef backing, open_image_chain(next.string(), ref->format, "",
                                              ro ? ReadOnlyCause::User : ReadOnlyCause::Backing,
                                              ro ? ReadOnlyCause::User : ReadOnlyCause::Backing));
        CHAINFS_TRY(attach_child(*node, std::move(backing), ChildRole::Backing));
      }
    }
  } else if (spec.driver == "fault") {
    CHAINFS_ASSIGN_OR_RETURN(NodeRef child, find(spec.child));
    auto driver = make_driver("fault");
    if (!driver) return make_error(Errc::Unsupported, "no fault driver");
    CHAINFS_ASSIGN_OR_RETURN(node, create_node(spec.name, {}, std::move(driver)));
    node->set_read_only(cause);
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

}  // namespace chainfs
