// nodes/<node>: open, read, write, truncate, fallocate and SEEK_DATA/SEEK_HOLE on node files.
//
// Decisions (docs/fusefs.md "Node files"):
// - A node file has the node's fixed length. A write that starts at or past the end fails with
//   ENOSPC, as on a block device; a write that crosses the end writes what fits and returns that
//   shorter count (the caller sees it; its next write fails with ENOSPC). Nothing is written
//   beyond what the reply reports.
// - O_TRUNC is ignored (the node keeps its length, as a block device does), so `cp img nodes/x`
//   and shell redirections overwrite in place.
// - truncate upward grows the node (if its driver can), downward fails with EINVAL unless the
//   driver shrinks safely.
// - Writability is decided by the graph (Graph::check_writable), for root too, because root
//   bypasses the mode bits the kernel checks.
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>

#include "blockcore/util/aligned_buffer.h"
#include "fusefs/filesystem.h"

namespace chainfs::fusefs {

namespace {

// A page-aligned buffer kept per FUSE thread, so a 1 MiB read does not map and unmap memory.
thread_local AlignedBuffer t_read_buffer;  // per-thread scratch, not shared state

bool wants_write(int flags) {
  return (flags & O_ACCMODE) != O_RDONLY;
}

}  // namespace

void Filesystem::open_node(fuse_req_t req, Ino ino, fuse_file_info* fi) {
  NodeRef node = visible_node(ino);
  if (!node) return (void)fuse_reply_err(req, ENOENT);
  bool writable = wants_write(fi->flags);
  // The graph decides (atomically with the claims of jobs), for root too.
  auto handle = graph_.open_handle(node, writable);
  if (!handle) {
    graph_.log().debug("open of node '{}' for {} refused: {}", node->name(),
                       writable ? "writing" : "reading", handle.error().message);
    return (void)fuse_reply_err(req, to_errno(handle.error().code));
  }
  // Page cache on, so buffered sequential reads get readahead; keep_cache off, so every open
  // starts from what the graph holds now. Writes go straight through (no writeback cache).
  fi->direct_io = 0;
  fi->keep_cache = 0;
  register_handle(fi, std::make_unique<NodeFileHandle>(std::move(*handle)));
  graph_.log().trace("open node '{}' {}", node->name(), writable ? "read-write" : "read-only");
  if (fuse_reply_open(req, fi) == -ENOENT) {
    // The opener was interrupted: the kernel will not release this handle.
    unregister_handle(fi).reset();
  }
}

// The node handlers below pin the handle's node (BlockHandle::Pin: it stays alive even if a graph
// change moves the handle) and end the pin *before* replying: once the kernel has the reply, the
// file may be closed and RELEASE may free the handle (and its pin's counter) on another worker.

void Filesystem::read_node(fuse_req_t req, NodeFileHandle& h, size_t size, off_t off) {
  graph_.note_guest_request();
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  const uint64_t offset = static_cast<uint64_t>(off);
  size_t count = 0;
  std::span<std::byte> buf;
  Result<void> read;
  {
    BlockHandle::Pin pin(h.block);
    const uint64_t length = pin.node().size();
    if (offset < length && size > 0) {
      count = static_cast<size_t>(std::min<uint64_t>(size, length - offset));
      buf = t_read_buffer.get(count);
      read = h.block.read(offset, buf, &pin);
      Node& node = pin.node();  // where the read went
      graph_.log().trace("read node '{}' offset {} length {}", node.name(), offset, count);
      if (read.ok() && node.id() != h.inode_node)
        invalidate_moved(h, node, offset, count, /*wrote=*/false);
    }
  }
  if (!read) return reply_error(req, read.error(), "read", make_ino(InodeKind::Node, h.inode_node));
  if (count == 0) return (void)fuse_reply_buf(req, nullptr, 0);
  fuse_reply_buf(req, reinterpret_cast<const char*>(buf.data()), count);
}

void Filesystem::write_node(fuse_req_t req, NodeFileHandle& h, const char* buf, size_t size,
                            off_t off) {
  if (!h.block.writable()) return (void)fuse_reply_err(req, EBADF);
  graph_.note_guest_request();
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  if (size == 0) return (void)fuse_reply_write(req, 0);
  const uint64_t offset = static_cast<uint64_t>(off);
  size_t count = 0;
  Result<void> written = make_error(Errc::NoSpace, "past the end");
  {
    BlockHandle::Pin pin(h.block);
    const uint64_t length = pin.node().size();
    if (offset >= length) {
      graph_.log().debug("write to node '{}' at {} refused: past its end ({})", pin.node().name(),
                         offset, length);
    } else {
      count = static_cast<size_t>(std::min<uint64_t>(size, length - offset));
      auto data = std::span(reinterpret_cast<const std::byte*>(buf), count);
      written = h.block.write(offset, data, &pin);
      Node& node = pin.node();  // where the write went
      graph_.log().trace("write node '{}' offset {} length {}", node.name(), offset, count);
      if (written.ok()) {
        h.dirty.store(true);
        if (invalidate_below(node) || node.id() != h.inode_node)
          invalidate_moved(h, node, offset, count, /*wrote=*/true);
      }
    }
  }
  if (count == 0) return (void)fuse_reply_err(req, ENOSPC);
  if (!written)
    return reply_error(req, written.error(), "write", make_ino(InodeKind::Node, h.inode_node));
  fuse_reply_write(req, count);
}

bool Filesystem::invalidate_below(Node& node) {
  {
    // The common case: nothing but this node is open, so no other page cache can be stale.
    std::lock_guard lock(handles_mutex_);
    if (node_opens_.size() <= 1) return false;
  }
  // Backing nodes are not written through, so only file and filter children are visited.
  NodeRef below;
  for (const Child& edge : node.children())
    if (edge.role == ChildRole::File || edge.role == ChildRole::Filtered) below = edge.node;
  while (below) {
    if (open_count(below->id()) > 0)
      invalidator_->post({make_ino(InodeKind::Node, below->id()), false});
    NodeRef next;
    for (const Child& edge : below->children())
      if (edge.role == ChildRole::File || edge.role == ChildRole::Filtered) next = edge.node;
    below = std::move(next);
  }
  return true;
}

void Filesystem::invalidate_moved(const NodeFileHandle& h, const Node& target, uint64_t offset,
                                  uint64_t length, bool wrote) {
  // Pages of a node file's inode are filled by reads and writes through every handle of that
  // inode, whichever node the handle targets now. Invalidations are queued before the reply, so
  // the kernel drops the pages after this request has filled them (it waits for their lock).
  const bool moved = target.id() != h.inode_node;
  std::vector<Invalidator::Item> items;
  {
    std::lock_guard lock(handles_mutex_);
    auto opens = [&](uint64_t id) {
      auto it = node_opens_.find(id);
      return it == node_opens_.end() ? 0 : it->second;
    };
    // 1. Our own inode now caches `target`'s bytes: foreign data for its other openers.
    if (moved && opens(h.inode_node) > 1)
      items.push_back({make_ino(InodeKind::Node, h.inode_node), false, offset, length});
    if (wrote && node_opens_.size() > 1) {
      // 2. `target` changed behind its own inode (and those of the nodes above it).
      if (moved) items.push_back({make_ino(InodeKind::Node, target.id()), true, offset, length});
      // 3. Other moved handles that target `target` cache it under their own inodes.
      for (const auto& [raw, handle] : handles_) {
        if (raw->kind != FileHandle::Kind::NodeFile || raw == &h) continue;
        const auto& other = static_cast<const NodeFileHandle&>(*raw);
        if (other.inode_node != target.id() && other.inode_node != h.inode_node &&
            other.block.node_id() == target.id())
          items.push_back({make_ino(InodeKind::Node, other.inode_node), false, offset, length});
      }
    }
  }
  for (const Invalidator::Item& item : items) invalidator_->post(item);
}

void Filesystem::truncate_node(fuse_req_t req, Ino ino, uint64_t new_size, fuse_file_info* fi) {
  NodeRef node;
  NodeFileHandle* open_handle = nullptr;
  if (fi && fi->fh) {
    auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
    if (handle->kind == FileHandle::Kind::NodeFile) {
      open_handle = static_cast<NodeFileHandle*>(handle);
      node = open_handle->block.ref();  // the node it writes now (a moved handle: its new node)
    }
  }
  if (!node) node = visible_node(ino);
  if (!node) return (void)fuse_reply_err(req, ENOENT);
  uint64_t old_size = node->size();
  if (new_size != old_size) {
    // truncate(path) has no handle; ftruncate's handle may be read-only: ask the graph first,
    // so a read-only node says EROFS/EACCES whatever its driver could do.
    auto writer = graph_.open_handle(node, true);
    if (!writer) return reply_error(req, writer.error(), "truncate", ino);
    if (new_size < old_size && !node->capabilities().truncate_shrink) {
      graph_.log().debug("truncate of node '{}' from {} down to {} refused", node->name(), old_size,
                         new_size);
      return (void)fuse_reply_err(req, EINVAL);
    }
    if (new_size > old_size && !node->capabilities().truncate_grow)
      return (void)fuse_reply_err(req, EOPNOTSUPP);
    if (auto r = writer->truncate(new_size); !r)
      return reply_error(req, r.error(), "truncate", ino);
    if (open_handle)
      open_handle->dirty.store(true);
    else if (auto r = writer->flush(); !r)
      return reply_error(req, r.error(), "truncate", ino);
    graph_.log().info("node '{}' resized from {} to {} bytes", node->name(), old_size, new_size);
    invalidate_below(*node);
    if (open_handle) invalidate_moved(*open_handle, *node, 0, 0, /*wrote=*/true);
  }
  struct stat st = node_attributes(*node);
  fuse_reply_attr(req, &st, kNodeAttrTimeout);
}

void Filesystem::fallocate(fuse_req_t req, Ino ino, int mode, off_t offset, off_t length,
                           fuse_file_info* fi) {
  auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
  if (handle->kind != FileHandle::Kind::NodeFile) return (void)fuse_reply_err(req, EOPNOTSUPP);
  auto& h = *static_cast<NodeFileHandle*>(handle);
  if (!h.block.writable()) return (void)fuse_reply_err(req, EBADF);
  if (offset < 0 || length <= 0) return (void)fuse_reply_err(req, EINVAL);
  const uint64_t start = static_cast<uint64_t>(offset);
  const uint64_t end = start + static_cast<uint64_t>(length);
  const bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
  const int op = mode & ~FALLOC_FL_KEEP_SIZE;

  int refused = 0;  // an errno without a graph error
  Result<void> result;
  {
    BlockHandle::Pin pin(h.block);  // ends before the reply (see read_node)
    uint64_t size = pin.node().size();
    if (op == FALLOC_FL_PUNCH_HOLE && keep_size) {
      if (start < size) result = h.block.discard(start, std::min(end, size) - start, &pin);
    } else if (op == FALLOC_FL_ZERO_RANGE) {
      if (end > size && !keep_size) {
        // Grows the node first; the whole range, old tail included, then reads as zeros.
        if (!pin.node().capabilities().truncate_grow) {
          refused = EOPNOTSUPP;
        } else {
          result = h.block.truncate(end, &pin);
          size = end;
        }
      }
      if (!refused && result.ok() && start < size)
        result = h.block.write_zeroes(start, std::min(end, size) - start, &pin);
    } else {
      refused = EOPNOTSUPP;
    }
    if (!refused && result.ok()) {
      h.dirty.store(true);
      if (invalidate_below(pin.node()) || pin.node().id() != h.inode_node)
        invalidate_moved(h, pin.node(), start, end - start, /*wrote=*/true);
    }
  }
  if (refused) return (void)fuse_reply_err(req, refused);
  if (!result) return reply_error(req, result.error(), "fallocate", ino);
  fuse_reply_err(req, 0);
}

void Filesystem::lseek(fuse_req_t req, Ino ino, off_t off, int whence, fuse_file_info* fi) {
  auto* handle = reinterpret_cast<FileHandle*>(fi->fh);
  if (handle->kind != FileHandle::Kind::NodeFile) return (void)fuse_reply_err(req, EINVAL);
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return (void)fuse_reply_err(req, EINVAL);
  BlockHandle& block = static_cast<NodeFileHandle*>(handle)->block;
  int refused = 0;
  std::optional<Error> failed;
  off_t answer = 0;
  {
    BlockHandle::Pin pin(block);  // ends before the reply (see read_node)
    const uint64_t size = pin.node().size();
    if (off < 0 || static_cast<uint64_t>(off) >= size) {
      refused = ENXIO;
    } else {
      uint64_t pos = static_cast<uint64_t>(off);
      bool found = false;
      while (pos < size) {
        // Each step is one request on the node, so a graph change between steps is waited for.
        auto status = block.chain_block_status(pos, size - pos, &pin);
        if (!status) {
          failed = status.error();
          break;
        }
        if ((status->kind == Alloc::Data) == (whence == SEEK_DATA)) {
          found = true;
          break;
        }
        pos += std::max<uint64_t>(status->length, 1);
      }
      // Past the last data there is no more data; the end of the file counts as a hole.
      if (found)
        answer = static_cast<off_t>(pos);
      else if (whence == SEEK_DATA)
        refused = ENXIO;
      else
        answer = static_cast<off_t>(size);
    }
  }
  if (failed) return reply_error(req, *failed, "lseek", ino);
  if (refused) return (void)fuse_reply_err(req, refused);
  fuse_reply_lseek(req, answer);
}

}  // namespace chainfs::fusefs
