// The tree of the mount: inode attributes, lookups, listings, links, and the dispatch of open,
// read, write and the other file calls to node files (node_ops.cpp) or to the control and
// generated files (special_ops.cpp).
#include "fusefs/filesystem.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <ctime>
#include <deque>
#include <set>

#include "blockcore/graph/request_gate.h"

namespace chainfs::fusefs {

namespace {

struct timespec now() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

}  // namespace

Filesystem::Filesystem(Graph& graph, MountOptions options)
    : graph_(graph),
      options_(std::move(options)),
      owner_uid_(getuid()),
      owner_gid_(getgid()),
      mount_time_(now()) {
  control_plane_ = std::make_unique<ControlPlane>(graph_);
  invalidator_ = std::make_unique<Invalidator>(
      [this](const Invalidator::Item& item) { send_invalidation(item); });
  graph_.set_observer([this](const GraphEvent& event) { on_graph_event(event); });
  control_plane_->set_job_observer([this](const JobEvent& event) { on_job_event(event); });
}

Filesystem::~Filesystem() {
  // Jobs first (run() normally did this already): each is cancelled and leaves the graph as it
  // was, while every node it uses is still there. Their last events need nobody.
  control_plane_->set_job_observer({});
  stop_jobs();
  // Nodes may still close after this (when the caller drops the graph): stop listening first.
  graph_.set_observer({});
  invalidator_->stop();
  unmount();
  control_plane_.reset();
  std::unordered_map<FileHandle*, std::unique_ptr<FileHandle>> left;
  {
    std::lock_guard lock(handles_mutex_);
    left.swap(handles_);
    node_opens_.clear();
  }
  if (!left.empty())
    graph_.log().debug("dropping {} handle(s) the kernel did not release", left.size());
  for (auto& [ptr, handle] : left)
    if (handle->kind == FileHandle::Kind::NodeFile) {
      auto& node_handle = static_cast<NodeFileHandle&>(*handle);
      if (node_handle.dirty.load())
        node_handle.block.flush().ignore_error();  // closing flushes too
    }
  left.clear();
}

void Filesystem::reply_error(fuse_req_t req, const Error& error, const char* op, Ino ino) const {
  graph_.log().debug("{} (inode {:#x}): {}: {}", op, ino, errno_name(error.code), error.message);
  fuse_reply_err(req, to_errno(error.code));
}

// ---- nodes by id ----------------------------------------------------------------------------

NodeRef Filesystem::find_node_by_id(uint64_t id) const {
  // Ids are increasing in the registry, so the walk stops at the first id past the one asked.
  for (Graph::Iterator it = graph_.begin_all(); !it.done(); it.next()) {
    if (it.current()->id() == id) return it.current();
    if (it.current()->id() > id) break;
  }
  return nullptr;
}

NodeRef Filesystem::visible_node(Ino ino) const {
  if (ino_kind(ino) != InodeKind::Node) return nullptr;
  NodeRef node = find_node_by_id(ino_value(ino));
  if (!node) return nullptr;
  if (graph_.is_listed(*node) || open_count(node->id()) > 0) return node;
  return nullptr;
}

int Filesystem::open_count(uint64_t node_id) const {
  std::lock_guard lock(handles_mutex_);
  auto it = node_opens_.find(node_id);
  return it == node_opens_.end() ? 0 : it->second;
}

// ---- attributes ---------------------------------------------------------------------------

struct stat Filesystem::base_attributes(Ino ino, mode_t mode) const {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = mode;
  st.st_nlink = S_ISDIR(mode) ? 2 : 1;
  st.st_uid = owner_uid_;
  st.st_gid = owner_gid_;
  st.st_blksize = 65536;
  st.st_atim = st.st_mtim = st.st_ctim = mount_time_;
  return st;
}

struct stat Filesystem::node_attributes(Node& node) const {
  bool writable = graph_.check_writable(node).ok();
  struct stat st =
      base_attributes(make_ino(InodeKind::Node, node.id()), S_IFREG | (writable ? 0644 : 0444));
  st.st_size = static_cast<off_t>(node.size());
  uint64_t allocated = 0;
  {
    // Counted as a request on the node, so it waits while a graph change drains the node.
    RequestGuard guard(node.gate(), RequestGuard::Entry::External);
    if (auto bytes = node.allocated_bytes(); bytes.ok()) allocated = *bytes;
  }
  st.st_blocks = static_cast<blkcnt_t>((allocated + 511) / 512);
  return st;
}

Result<struct stat> Filesystem::attributes(Ino ino) const {
  switch (ino_kind(ino)) {
    case InodeKind::Fixed: {
      auto entry = fixed_entry(ino);
      if (!entry) break;
      if (entry->directory) return base_attributes(ino, S_IFDIR | 0555);
      if (control_file_name(ino)) return base_attributes(ino, S_IFREG | 0200);
      return base_attributes(ino, S_IFREG | 0444);
    }
    case InodeKind::Node:
      if (NodeRef node = visible_node(ino)) return node_attributes(*node);
      break;
    case InodeKind::ChainDir: {
      auto entry = inodes_.lookup(ino);
      if (entry && graph_.chain(entry->chain)) return base_attributes(ino, S_IFDIR | 0555);
      break;
    }
    case InodeKind::ChainLink: {
      auto entry = inodes_.lookup(ino);
      if (!entry) break;
      auto link = parse_chain_link_name(entry->name);
      auto chain = graph_.chain(entry->chain);
      if (!link || !chain || link->depth >= chain->layers.size() ||
          chain->layers[link->depth]->name() != link->node)
        break;
      struct stat st = base_attributes(ino, S_IFLNK | 0777);
      st.st_size = static_cast<off_t>(chain_link_target(link->node).size());
      return st;
    }
    case InodeKind::Job: {
      auto entry = inodes_.lookup(ino);
      if (entry && control_plane_->jobs().info(entry->name).ok())
        return base_attributes(ino, S_IFREG | 0444);
      break;
    }
  }
  return make_error(Errc::NotFound, "no such entry (it may have left the graph)");
}

double Filesystem::attr_timeout(Ino ino) const {
  switch (ino_kind(ino)) {
    case InodeKind::Fixed:
      return kFixedTimeout;
    case InodeKind::Node:
      return kNodeAttrTimeout;
    default:
      return kDynamicEntryTimeout;
  }
}

void Filesystem::reply_entry(fuse_req_t req, Ino ino) {
  auto st = attributes(ino);
  if (!st) return reply_error(req, st.error(), "lookup", ino);
  fuse_entry_param e{};
  e.ino = ino;
  e.generation = 0;  // inode numbers are never reused within a mount
  e.attr = *st;
  e.attr_timeout = attr_timeout(ino);
  e.entry_timeout = ino_kind(ino) == InodeKind::Fixed ? kFixedTimeout : kDynamicEntryTimeout;
  fuse_reply_entry(req, &e);
}

// ---- tree requests ------------------------------------------------------------------------

void Filesystem::lookup(fuse_req_t req, Ino parent, const char* name) {
  std::string_view n(name);
  if (ino_kind(parent) == InodeKind::Fixed) {
    if (auto child = fixed_child(parent, n)) return reply_entry(req, *child);
    if (parent == kNodesDir) {
      if (auto node = graph_.find(std::string(n)); node.ok())
        return reply_entry(req, make_ino(InodeKind::Node, (*node)->id()));
    } else if (parent == kChainsDir) {
      if (graph_.chain(std::string(n))) return reply_entry(req, inodes_.chain_dir(std::string(n)));
    } else if (parent == kJobsDir) {
      if (control_plane_->jobs().info(std::string(n)).ok())
        return reply_entry(req, inodes_.job(std::string(n)));
    }
  } else if (ino_kind(parent) == InodeKind::ChainDir) {
    // Only names of layers that exist get an inode (the table never shrinks).
    auto entry = inodes_.lookup(parent);
    auto link = parse_chain_link_name(n);
    auto chain = entry && link ? graph_.chain(entry->chain) : std::nullopt;
    if (chain && link->depth < chain->layers.size() &&
        chain->layers[link->depth]->name() == link->node)
      return reply_entry(req, inodes_.chain_link(entry->chain, std::string(n)));
  }
  fuse_reply_err(req, ENOENT);
}

void Filesystem::getattr(fuse_req_t req, Ino ino, fuse_file_info* fi) {
  // An open node file answers through its handle even when the node is no longer listed.
  if (fi && fi->fh) {
    auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
    if (handle->kind == FileHandle::Kind::NodeFile) {
      auto& node_handle = *static_cast<NodeFileHandle*>(handle);
      BlockHandle::Pin pin(node_handle.block);
      struct stat st = node_attributes(pin.node());
      // A handle moved by a graph change answers for the node it writes now, under the inode the
      // kernel knows it by.
      st.st_ino = make_ino(InodeKind::Node, node_handle.inode_node);
      fuse_reply_attr(req, &st, kNodeAttrTimeout);
      return;
    }
  }
  auto st = attributes(ino);
  if (!st) return reply_error(req, st.error(), "getattr", ino);
  fuse_reply_attr(req, &*st, attr_timeout(ino));
}

void Filesystem::setattr(fuse_req_t req, Ino ino, struct stat* attr, int to_set,
                         fuse_file_info* fi) {
  // Modes and owners follow from the graph; they cannot be set.
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
    return (void)fuse_reply_err(req, EPERM);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (ino_kind(ino) == InodeKind::Node)
      return truncate_node(req, ino, static_cast<uint64_t>(attr->st_size), fi);
    // Shells truncate a control file before writing a command into it: nothing to do.
    if (!control_file_name(ino)) {
      auto st = attributes(ino);
      if (!st) return reply_error(req, st.error(), "setattr", ino);
      return (void)fuse_reply_err(req, S_ISDIR(st->st_mode) ? EISDIR : EACCES);
    }
  }
  // Times are the mount's; setting them is accepted and has no effect (so `touch` works).
  auto st = attributes(ino);
  if (!st) return reply_error(req, st.error(), "setattr", ino);
  fuse_reply_attr(req, &*st, attr_timeout(ino));
}

void Filesystem::readlink(fuse_req_t req, Ino ino) {
  if (ino_kind(ino) == InodeKind::ChainLink)
    if (auto entry = inodes_.lookup(ino))
      if (auto link = parse_chain_link_name(entry->name); link && attributes(ino).ok())
        return (void)fuse_reply_readlink(req, chain_link_target(link->node).c_str());
  fuse_reply_err(req, ino_kind(ino) == InodeKind::ChainLink ? ENOENT : EINVAL);
}

Result<std::vector<DirEntry>> Filesystem::list_directory(Ino ino) {
  std::vector<DirEntry> out;
  if (ino_kind(ino) == InodeKind::Fixed) {
    auto entry = fixed_entry(ino);
    if (!entry || !entry->directory) return make_error(Errc::Invalid, "not a folder");
    out.push_back({".", ino, S_IFDIR});
    out.push_back({"..", entry->parent, S_IFDIR});
    for (Ino child = kRoot + 1; child <= kFixedLast; ++child) {
      auto e = fixed_entry(child);
      if (e && e->parent == ino)
        out.push_back({e->name, child, static_cast<mode_t>(e->directory ? S_IFDIR : S_IFREG)});
    }
    if (ino == kNodesDir) {
      for (const NodeRef& node : graph_.listed_nodes())
        out.push_back({node->name(), make_ino(InodeKind::Node, node->id()), S_IFREG});
    } else if (ino == kChainsDir) {
      for (const ChainView& chain : graph_.chains())
        out.push_back({chain.name, inodes_.chain_dir(chain.name), S_IFDIR});
    } else if (ino == kJobsDir) {
      for (const JobInfo& job : control_plane_->jobs().list())
        out.push_back({job.id, inodes_.job(job.id), S_IFREG});
    }
    return out;
  }
  if (ino_kind(ino) == InodeKind::ChainDir) {
    auto entry = inodes_.lookup(ino);
    auto chain = entry ? graph_.chain(entry->chain) : std::nullopt;
    if (!chain) return make_error(Errc::NotFound, "the chain is gone");
    out.push_back({".", ino, S_IFDIR});
    out.push_back({"..", kChainsDir, S_IFDIR});
    for (size_t depth = 0; depth < chain->layers.size(); ++depth) {
      std::string name = chain_link_name(depth, chain->layers[depth]->name());
      out.push_back({name, inodes_.chain_link(chain->name, name), S_IFLNK});
    }
    return out;
  }
  return make_error(Errc::Invalid, "not a folder");
}

void Filesystem::opendir(fuse_req_t req, Ino ino, fuse_file_info* fi) {
  auto entries = list_directory(ino);
  if (!entries) return reply_error(req, entries.error(), "opendir", ino);
  register_handle(fi, std::make_unique<DirHandle>(std::move(*entries)));
  fuse_reply_open(req, fi);
}

void Filesystem::readdir(fuse_req_t req, Ino ino, size_t size, off_t off, fuse_file_info* fi) {
  auto* dir = reinterpret_cast<FileHandle*>(fi->fh);
  if (!dir || dir->kind != FileHandle::Kind::Directory) return (void)fuse_reply_err(req, EBADF);
  const auto& entries = static_cast<DirHandle*>(dir)->entries;
  std::string buf(size, '\0');
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < entries.size(); ++i) {
    struct stat st {};
    st.st_ino = entries[i].ino;
    st.st_mode = entries[i].type;
    size_t need = fuse_add_direntry(req, buf.data() + used, size - used, entries[i].name.c_str(),
                                    &st, static_cast<off_t>(i + 1));
    if (need > size - used) break;
    used += need;
  }
  (void)ino;
  fuse_reply_buf(req, buf.data(), used);
}

void Filesystem::releasedir(fuse_req_t req, Ino, fuse_file_info* fi) {
  unregister_handle(fi);
  fuse_reply_err(req, 0);
}

void Filesystem::statfs(fuse_req_t req, Ino) {
  struct statvfs st {};
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_namemax = 255;
  uint64_t total = 0;
  for (const NodeRef& node : graph_.listed_nodes()) total += node->size();
  st.f_blocks = total / 4096;
  st.f_files = st.f_ffree = 0;
  fuse_reply_statfs(req, &st);
}

// ---- handles --------------------------------------------------------------------------------

void Filesystem::register_handle(fuse_file_info* fi, std::unique_ptr<FileHandle> handle) {
  FileHandle* raw = handle.get();
  std::lock_guard lock(handles_mutex_);
  if (raw->kind == FileHandle::Kind::NodeFile)
    ++node_opens_[static_cast<NodeFileHandle*>(raw)->inode_node];
  handles_.emplace(raw, std::move(handle));
  fi->fh = reinterpret_cast<uint64_t>(raw);
}

std::unique_ptr<FileHandle> Filesystem::unregister_handle(fuse_file_info* fi) {
  auto* raw = reinterpret_cast<FileHandle*>(fi->fh);
  std::unique_ptr<FileHandle> out;
  std::lock_guard lock(handles_mutex_);
  auto it = handles_.find(raw);
  if (it == handles_.end()) return out;
  out = std::move(it->second);
  handles_.erase(it);
  if (out->kind == FileHandle::Kind::NodeFile) {
    uint64_t id = static_cast<NodeFileHandle*>(out.get())->inode_node;
    if (--node_opens_[id] <= 0) node_opens_.erase(id);
  }
  return out;  // destroyed by the caller outside the lock (may close the node)
}

// ---- file requests: dispatch by kind of file -----------------------------------------------

void Filesystem::open(fuse_req_t req, Ino ino, fuse_file_info* fi) {
  if (ino_kind(ino) == InodeKind::Node) return open_node(req, ino, fi);
  auto st = attributes(ino);
  if (!st) return reply_error(req, st.error(), "open", ino);
  if (S_ISDIR(st->st_mode)) return (void)fuse_reply_err(req, EISDIR);
  open_special(req, ino, fi);
}

void Filesystem::read(fuse_req_t req, Ino ino, size_t size, off_t off, fuse_file_info* fi) {
  auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
  switch (handle->kind) {
    case FileHandle::Kind::NodeFile:
      return read_node(req, *static_cast<NodeFileHandle*>(handle), size, off);
    case FileHandle::Kind::Control:
      return read_control(req, *static_cast<ControlFileHandle*>(handle), size);
    case FileHandle::Kind::Snapshot: {
      const std::string& text = static_cast<SnapshotFileHandle*>(handle)->content;
      size_t start = std::min(static_cast<size_t>(std::max<off_t>(off, 0)), text.size());
      // Reply from a copy: once the kernel has the reply it may send RELEASE, and another worker
      // may free the handle while this one is still returning from writev (ASan checks the iovec
      // after the call and reports that as a use-after-free).
      std::string chunk = text.substr(start, std::min(size, text.size() - start));
      fuse_reply_buf(req, chunk.data(), chunk.size());
      return;
    }
    case FileHandle::Kind::Directory:
      break;
  }
  (void)ino;
  fuse_reply_err(req, EISDIR);
}

void Filesystem::write(fuse_req_t req, Ino ino, const char* buf, size_t size, off_t off,
                       fuse_file_info* fi) {
  auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
  switch (handle->kind) {
    case FileHandle::Kind::NodeFile:
      return write_node(req, *static_cast<NodeFileHandle*>(handle), buf, size, off);
    case FileHandle::Kind::Control:
      return write_control(req, *static_cast<ControlFileHandle*>(handle), buf, size);
    default:
      break;
  }
  (void)ino;
  fuse_reply_err(req, EBADF);
}

void Filesystem::flush(fuse_req_t req, Ino ino, fuse_file_info* fi) {
  // close() of a node file that was written flushes it, so data written and closed is on the
  // host files; a file only read has nothing to flush.
  auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
  if (handle->kind == FileHandle::Kind::NodeFile) {
    auto& node_handle = *static_cast<NodeFileHandle*>(handle);
    if (node_handle.dirty.exchange(false)) {
      if (auto r = node_handle.block.flush(); !r) {
        node_handle.dirty.store(true);
        return reply_error(req, r.error(), "flush", ino);
      }
    }
  }
  fuse_reply_err(req, 0);
}

void Filesystem::fsync(fuse_req_t req, Ino ino, int datasync, fuse_file_info* fi) {
  (void)datasync;  // the drivers' flush covers data and metadata alike
  auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
  if (handle->kind == FileHandle::Kind::NodeFile) {
    auto& node_handle = *static_cast<NodeFileHandle*>(handle);
    node_handle.dirty.store(false);
    if (auto r = node_handle.block.flush(); !r) {
      node_handle.dirty.store(true);
      return reply_error(req, r.error(), "fsync", ino);
    }
  }
  fuse_reply_err(req, 0);
}

void Filesystem::release(fuse_req_t req, Ino, fuse_file_info* fi) {
  std::unique_ptr<FileHandle> handle = unregister_handle(fi);
  handle.reset();  // may drop the last reference of an unlisted node: it closes now
  fuse_reply_err(req, 0);
}

}  // namespace chainfs::fusefs
