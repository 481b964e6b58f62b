// Filesystem: the state of one mount and its request handlers (internal to fusefs/).
//
// Every handler replies to its request exactly once (fuse_reply_* or fuse_reply_err) and never
// lets an exception out (the ops table in mount.cpp catches what slips through). Errors from
// blockcore are mapped to errno here, at the edge, with chainfs::to_errno.
//
// State and locks:
// - open handles: `handles_mutex_` (a leaf lock) guards the set of handles the kernel holds (so
//   that the ones it never released are dropped at unmount) and the count of open handles per
//   node id (a node with an open handle stays reachable by inode, like an unlinked file).
// - each control file handle has its own mutex for its outcome text.
// - watched_jobs_mutex_ guards what the job observer remembers of each job (then, nested, the
//   Invalidator's own lock).
// - inodes_ (chain folders, chain links, job files) locks itself; node inodes need no table.
// Nothing here holds a lock while calling into the graph, and no handler waits for the kernel:
// cache invalidations go through the Invalidator's thread.
#pragma once

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 314
#endif
#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "blockcore/graph/graph.h"
#include "blockcore/jobs/control_plane.h"
#include "fusefs/control.h"
#include "fusefs/inodes.h"
#include "fusefs/invalidator.h"
#include "fusefs/mount.h"
#include "fusefs/render.h"

namespace chainfs::fusefs {

// How long the kernel may trust what it was told. Entries that come and go with the graph (node
// files, chain folders and links, job files) are never cached, so every path walk sees the graph
// as it is now; node attributes are cached briefly (st_blocks may lag, size changes are pushed
// with invalidations); the fixed entries never change.
constexpr double kDynamicEntryTimeout = 0.0;
constexpr double kNodeAttrTimeout = 1.0;
constexpr double kFixedTimeout = 3600.0;

struct FileHandle {
  enum class Kind { NodeFile, Snapshot, Control, Directory };
  explicit FileHandle(Kind k) : kind(k) {}
  virtual ~FileHandle() = default;
  const Kind kind;
};

// An open nodes/<node>: the node stays alive (but not listed) while it is open. A writable one
// follows graph changes (active commit `complete`, snapshot): `block` may then target another node
// than the one whose inode the kernel opened (`inode_node`); see docs/fusefs.md "Moved handles".
struct NodeFileHandle : FileHandle {
  explicit NodeFileHandle(BlockHandle h)
      : FileHandle(Kind::NodeFile), block(std::move(h)), inode_node(block.node_id()) {}
  BlockHandle block;
  const uint64_t inode_node;       // id of the node whose file was opened (the kernel's inode)
  std::atomic<bool> dirty{false};  // written since the last flush
};

// graph.json, graph.dot, log, jobs/<id>: rendered once at open, so a reader sees one state.
struct SnapshotFileHandle : FileHandle {
  explicit SnapshotFileHandle(std::string text)
      : FileHandle(Kind::Snapshot), content(std::move(text)) {}
  const std::string content;
};

// An open control file: the outcome of the last write is read back through it.
struct ControlFileHandle : FileHandle {
  explicit ControlFileHandle(std::string file_name)
      : FileHandle(Kind::Control), name(std::move(file_name)) {}
  const std::string name;  // "stream", "commit", "snapshot", "job", "node"
  std::mutex mutex;        // guards outcome and read_pos; lock order: after nothing, before nothing
  std::string outcome;     // "ok ...\n" / "error ...\n" of the last write
  size_t read_pos = 0;  // reads ignore the offset: each write's outcome is read once from its start
};

struct DirEntry {
  std::string name;
  Ino ino;
  mode_t type;  // S_IFDIR, S_IFREG, S_IFLNK
};

// A folder listing, taken at opendir so that offsets stay valid across readdir calls.
struct DirHandle : FileHandle {
  explicit DirHandle(std::vector<DirEntry> e)
      : FileHandle(Kind::Directory), entries(std::move(e)) {}
  const std::vector<DirEntry> entries;
};

class Filesystem {
 public:
  Filesystem(Graph& graph, MountOptions options);
  ~Filesystem();
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  // ---- session (mount.cpp) ------------------------------------------------------------------
  Result<void> mount();
  Result<void> run();
  void unmount();
  // Cancels the jobs that still run and waits for them (ControlPlane::shutdown()). Idempotent.
  void stop_jobs();
  const std::string& mountpoint() const { return options_.mountpoint; }
  ControlPlane& control_plane() { return *control_plane_; }
  // Raises the mount's readahead to kMaxRequestBytes (best effort; needs root and sysfs).
  void raise_readahead();

  // ---- request handlers ---------------------------------------------------------------------
  void init(fuse_conn_info* conn);
  void lookup(fuse_req_t req, Ino parent, const char* name);
  void getattr(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void setattr(fuse_req_t req, Ino ino, struct stat* attr, int to_set, fuse_file_info* fi);
  void readlink(fuse_req_t req, Ino ino);
  void open(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void read(fuse_req_t req, Ino ino, size_t size, off_t off, fuse_file_info* fi);
  void write(fuse_req_t req, Ino ino, const char* buf, size_t size, off_t off, fuse_file_info* fi);
  void flush(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void release(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void fsync(fuse_req_t req, Ino ino, int datasync, fuse_file_info* fi);
  void opendir(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void readdir(fuse_req_t req, Ino ino, size_t size, off_t off, fuse_file_info* fi);
  void releasedir(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void statfs(fuse_req_t req, Ino ino);
  void fallocate(fuse_req_t req, Ino ino, int mode, off_t offset, off_t length, fuse_file_info* fi);
  void lseek(fuse_req_t req, Ino ino, off_t off, int whence, fuse_file_info* fi);

 private:
  // ---- tree (filesystem.cpp) ----------------------------------------------------------------
  // A live node by id, listed or not (nullptr if gone).
  NodeRef find_node_by_id(uint64_t id) const;
  // A node file the kernel may use: listed, or kept open by a handle.
  NodeRef visible_node(Ino ino) const;
  Result<struct stat> attributes(Ino ino) const;
  struct stat node_attributes(Node& node) const;
  struct stat base_attributes(Ino ino, mode_t mode) const;
  Result<std::vector<DirEntry>> list_directory(Ino ino);
  Result<std::string> render_snapshot(Ino ino) const;
  double attr_timeout(Ino ino) const;
  void reply_entry(fuse_req_t req, Ino ino);

  // ---- handles ------------------------------------------------------------------------------
  void register_handle(fuse_file_info* fi, std::unique_ptr<FileHandle> handle);
  std::unique_ptr<FileHandle> unregister_handle(fuse_file_info* fi);
  int open_count(uint64_t node_id) const;

  // ---- node files (node_ops.cpp) ------------------------------------------------------------
  void open_node(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void read_node(fuse_req_t req, NodeFileHandle& h, size_t size, off_t off);
  void write_node(fuse_req_t req, NodeFileHandle& h, const char* buf, size_t size, off_t off);
  void truncate_node(fuse_req_t req, Ino ino, uint64_t size, fuse_file_info* fi);
  // After a write through `node`: the nodes below it (file and filter children) changed too; the
  // ones open right now get their cached pages dropped. Returns false when no other node file than
  // one is open (nothing else can be stale).
  bool invalidate_below(Node& node);
  // After a request through `h` that went to `target` (the pin's node) touched [offset, +length)
  // (length 0: all): the page caches that may now hold data of another node than their own, or
  // miss a change, are dropped there. `wrote`: a write-like request; else a read.
  // (docs/fusefs.md "Moved handles").
  void invalidate_moved(const NodeFileHandle& h, const Node& target, uint64_t offset,
                        uint64_t length, bool wrote);

  // ---- control and snapshot files (special_ops.cpp) -----------------------------------------
  void open_special(fuse_req_t req, Ino ino, fuse_file_info* fi);
  void write_control(fuse_req_t req, ControlFileHandle& h, const char* buf, size_t size);
  void read_control(fuse_req_t req, ControlFileHandle& h, size_t size);

  // ---- invalidation (invalidation.cpp) -------------------------------------------------------
  void on_graph_event(const GraphEvent& event);
  void on_job_event(const JobEvent& event);
  void send_invalidation(const Invalidator::Item& item);
  // Node file inode of a listed node, or 0 (names a job reports).
  Ino listed_node_ino(const std::string& name) const;

  void reply_error(fuse_req_t req, const Error& error, const char* op, Ino ino) const;

  Graph& graph_;
  MountOptions options_;
  DynamicInodes inodes_;
  const uid_t owner_uid_;
  const gid_t owner_gid_;
  const struct timespec mount_time_;

  fuse_session* session_ = nullptr;  // set by mount(), cleared by unmount() (main thread)
  bool mounted_ = false;
  // The Invalidator may use session_ while this is set: set after mounting, cleared (after the
  // Invalidator stopped) before unmounting.
  std::atomic<bool> notify_ready_{false};

  mutable std::mutex handles_mutex_;  // leaf lock
  std::unordered_map<FileHandle*, std::unique_ptr<FileHandle>> handles_;
  std::map<uint64_t, int> node_opens_;  // node id -> open handles

  // What the job observer remembers of a job from its Added event to its Removed event: the
  // node file of the node whose data it changes behind the kernel's back (a commit's base; a
  // stream copies into its top only what the top reads already), held in the Invalidator as a
  // repeating invalidation until the job concludes.
  struct WatchedJob {
    Ino base = 0;       // 0: none (a stream, or a base that is not listed)
    bool held = false;  // base is held in the Invalidator
  };
  // Guards watched_jobs_; lock order: before Invalidator::mutex_ (release() under it), after
  // nothing else.
  std::mutex watched_jobs_mutex_;
  std::map<std::string, WatchedJob> watched_jobs_;

  // The jobs of this mount. Its job observer uses the Invalidator: ~Filesystem clears the observer
  // and shuts the plane down before anything else goes.
  std::unique_ptr<ControlPlane> control_plane_;

  // Last: started after everything it uses, stopped first.
  std::unique_ptr<Invalidator> invalidator_;
};

}  // namespace chainfs::fusefs
