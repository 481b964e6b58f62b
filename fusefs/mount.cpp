// The FUSE session: mount options, the negotiation at INIT, the multi-threaded loop, unmount,
// and the table that routes libfuse's low-level callbacks to Filesystem.
//
// Request sizes: libfuse 3.14 sizes each thread's receive buffer for FUSE_MAX_MAX_PAGES (256)
// pages plus a header, and when the kernel offers FUSE_MAX_PAGES it answers INIT with
// max_pages = max_write / page size. So max_write = 1 MiB gives 1 MiB WRITE requests, and the
// max_read=1M mount option (which must match conn->max_read) gives 1 MiB READ requests.
//
// Threads: fuse_session_loop_mt with clone_fd (each worker reads its own /dev/fuse clone, so
// requests are picked up in parallel) and max_threads / max_idle_threads = --threads.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <new>
#include <thread>

#include "fusefs/filesystem.h"
#include "fusefs/mount.h"

namespace chainfs::fusefs {

namespace {

Filesystem& fs_of(fuse_req_t req) {
  return *static_cast<Filesystem*>(fuse_req_userdata(req));
}

// No exception crosses into libfuse: what escapes a handler (allocation failure) fails the
// request. Handlers reply last, so a throw means no reply was sent yet.
template <typename Fn>
void guarded(fuse_req_t req, Fn&& fn) {
  try {
    fn(fs_of(req));
  } catch (const std::bad_alloc&) {
    fuse_reply_err(req, ENOMEM);
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = [](void* userdata, fuse_conn_info* conn) {
    static_cast<Filesystem*>(userdata)->init(conn);
  };
  ops.lookup = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
    guarded(req, [&](Filesystem& fs) { fs.lookup(req, parent, name); });
  };
  ops.getattr = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.getattr(req, ino, fi); });
  };
  ops.setattr = [](fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                   fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.setattr(req, ino, attr, to_set, fi); });
  };
  ops.readlink = [](fuse_req_t req, fuse_ino_t ino) {
    guarded(req, [&](Filesystem& fs) { fs.readlink(req, ino); });
  };
  ops.open = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.open(req, ino, fi); });
  };
  ops.read = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.read(req, ino, size, off, fi); });
  };
  ops.write = [](fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                 fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.write(req, ino, buf, size, off, fi); });
  };
  ops.flush = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.flush(req, ino, fi); });
  };
  ops.release = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.release(req, ino, fi); });
  };
  ops.fsync = [](fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.fsync(req, ino, datasync, fi); });
  };
  ops.opendir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.opendir(req, ino, fi); });
  };
  ops.readdir = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.readdir(req, ino, size, off, fi); });
  };
  ops.releasedir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.releasedir(req, ino, fi); });
  };
  ops.statfs = [](fuse_req_t req, fuse_ino_t ino) {
    guarded(req, [&](Filesystem& fs) { fs.statfs(req, ino); });
  };
  ops.fallocate = [](fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                     fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.fallocate(req, ino, mode, offset, length, fi); });
  };
  ops.lseek = [](fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi) {
    guarded(req, [&](Filesystem& fs) { fs.lseek(req, ino, off, whence, fi); });
  };
  // Everything else (create, mkdir, unlink, rename, xattrs, locks, ...) is left unset: libfuse
  // answers ENOSYS.
  return ops;
}

const fuse_lowlevel_ops kOps = make_ops();

// Whether /proc/self/mounts lists a chainfs mount at `path` (mounting over it would hide it).
bool already_chainfs_mount(const std::string& path) {
  std::ifstream mounts("/proc/self/mounts");
  std::string device, dir, type;
  std::string rest;
  while (mounts >> device >> dir >> type) {
    std::getline(mounts, rest);
    // Spaces, tabs and backslashes in mount paths are written as octal escapes.
    std::string unescaped;
    for (size_t i = 0; i < dir.size(); ++i) {
      auto octal = [&](size_t at) { return at < dir.size() && dir[at] >= '0' && dir[at] <= '7'; };
      if (dir[i] == '\\' && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
        unescaped += static_cast<char>((dir[i + 1] - '0') * 64 + (dir[i + 2] - '0') * 8 +
                                       (dir[i + 3] - '0'));
        i += 3;
      } else {
        unescaped += dir[i];
      }
    }
    if (unescaped == path && type == "fuse.chainfs") return true;
  }
  return false;
}

}  // namespace

void Filesystem::init(fuse_conn_info* conn) {
  conn->max_write = kMaxRequestBytes;
  conn->max_read = kMaxRequestBytes;       // must equal the max_read mount option
  conn->max_readahead = kMaxRequestBytes;  // the kernel caps it at what it offered
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  // Page cache invalidations are explicit (graph events, writes through a node to the nodes
  // below it), so the kernel need not compare attributes before every read.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;
  // O_TRUNC arrives in open() (where node files ignore it) instead of as a truncate to 0.
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  graph_.log().debug("FUSE session: max_write {} max_read {} max_readahead {}", conn->max_write,
                     conn->max_read, conn->max_readahead);
}

Result<void> Filesystem::mount() {
  struct stat st {};
  if (::stat(options_.mountpoint.c_str(), &st) != 0)
    return make_error(errc_from_errno(errno), "mountpoint '{}': {}", options_.mountpoint,
                      strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return make_error(Errc::Invalid, "mountpoint '{}' is not a folder", options_.mountpoint);
  if (already_chainfs_mount(options_.mountpoint))
    return make_error(Errc::Busy, "'{}' is already a chainfs mount", options_.mountpoint);

  std::string mount_opts = fmt::format(
      "fsname=chainfs,subtype=chainfs,default_permissions,"
      "max_read={}",
      kMaxRequestBytes);
  if (options_.allow_other) mount_opts += ",allow_other";
  std::vector<std::string> args = {"chainfs", "-o", mount_opts};
  if (options_.fuse_debug) args.push_back("-d");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  session_ = fuse_session_new(&fargs, &kOps, sizeof(kOps), this);
  fuse_opt_free_args(&fargs);
  if (!session_) return make_error(Errc::Io, "could not create the FUSE session");
  if (fuse_session_mount(session_, options_.mountpoint.c_str()) != 0) {
    fuse_session_destroy(session_);
    session_ = nullptr;
    return make_error(Errc::Io,
                      "could not mount on '{}' (is /dev/fuse there, and the folder not "
                      "already a mount?)",
                      options_.mountpoint);
  }
  mounted_ = true;
  notify_ready_.store(true, std::memory_order_release);
  graph_.log().info("mounted on {}", options_.mountpoint);
  return {};
}

Result<void> Filesystem::run() {
  if (!session_) return make_error(Errc::Invalid, "not mounted");
  unsigned threads = options_.threads;
  if (threads == 0) threads = std::max(2u, std::thread::hardware_concurrency());
  if (options_.handle_signals) {
    // libfuse leaves an ignored signal ignored, and a shell starts background jobs with SIGINT
    // ignored; SIGINT and SIGTERM must unmount cleanly however we were started.
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    if (fuse_set_signal_handlers(session_) != 0)
      return make_error(Errc::Io, "could not install signal handlers");
  }
  // The kernel caps readahead at the bdi's default (128 KiB) whatever INIT asked; raise it once
  // the session answers, so buffered sequential reads arrive as 1 MiB requests.
  std::thread readahead([this] { raise_readahead(); });
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(config, 1);
  fuse_loop_cfg_set_max_threads(config, threads);
  fuse_loop_cfg_set_idle_threads(config, threads);
  int rc = fuse_session_loop_mt(session_, config);
  fuse_loop_cfg_destroy(config);
  if (options_.handle_signals) fuse_remove_signal_handlers(session_);
  readahead.join();
  if (rc > 0) graph_.log().info("signal {} received: unmounting", rc);
  unmount();
  stop_jobs();
  if (rc < 0) return make_error(Errc::Io, "FUSE session failed: {}", strerror(-rc));
  return {};
}

void Filesystem::raise_readahead() {
  // stat() waits until the session has answered INIT, so the bdi has its final settings.
  struct stat st {};
  if (::stat(options_.mountpoint.c_str(), &st) != 0) return;
  std::string path =
      fmt::format("/sys/class/bdi/{}:{}/read_ahead_kb", major(st.st_dev), minor(st.st_dev));
  FILE* f = std::fopen(path.c_str(), "w");
  bool ok = f && std::fprintf(f, "%zu\n", kMaxRequestBytes / 1024) > 0;
  if (f) ok = (std::fclose(f) == 0) && ok;
  if (!ok) graph_.log().debug("could not raise the readahead through {}", path);
}

void Filesystem::unmount() {
  if (!session_) return;
  invalidator_->stop();  // nothing may notify through a session being torn down
  notify_ready_.store(false, std::memory_order_release);
  if (mounted_) {
    fuse_session_unmount(session_);
    mounted_ = false;
    graph_.log().info("unmounted {}", options_.mountpoint);
  }
  fuse_session_destroy(session_);
  session_ = nullptr;
}

void Filesystem::stop_jobs() {
  // Before the graph goes away: every job that is not concluded is cancelled and leaves the graph
  // as it was (an active commit goes back to its top, which holds every acknowledged write).
  size_t running = 0;
  for (const JobInfo& job : control_plane_->jobs().list())
    if (job.state != JobState::Concluded) ++running;
  if (running) graph_.log().info("cancelling {} job(s) that are still running", running);
  control_plane_->shutdown();
}

// ---- FuseMount ------------------------------------------------------------------------------

FuseMount::FuseMount(std::unique_ptr<Filesystem> fs) : fs_(std::move(fs)) {}
FuseMount::~FuseMount() = default;

Result<std::unique_ptr<FuseMount>> FuseMount::mount(Graph& graph, MountOptions options) {
  auto fs = std::make_unique<Filesystem>(graph, std::move(options));
  CHAINFS_TRY(fs->mount());
  return std::unique_ptr<FuseMount>(new FuseMount(std::move(fs)));
}

Result<void> FuseMount::run() {
  return fs_->run();
}

const std::string& FuseMount::mountpoint() const {
  return fs_->mountpoint();
}

ControlPlane& FuseMount::control_plane() {
  return fs_->control_plane();
}

}  // namespace chainfs::fusefs
