// The FUSE front-end's public face: mount a Graph at a folder and serve the tree of INTERFACE.md
// (design: docs/fusefs.md) until it is unmounted.
//
// Lifecycle: FuseMount::mount() mounts (the folder shows the tree as soon as it returns; requests
// queue in the kernel until run() serves them) -> run() serves on several threads until
// `fusermount3 -u`/umount or, with handle_signals, SIGINT/SIGTERM/SIGHUP, then unmounts and
// cancels every job that is still running (ControlPlane::shutdown(): each leaves the graph as it
// was) -> destroying the FuseMount does the same if run() did not, and drops every handle the
// kernel left open, so that afterwards the caller can drop the Graph and every node flushes and
// closes. The Graph must outlive the FuseMount.
//
// Each mount owns one ControlPlane over its Graph (the jobs of the mount): control/ writes run
// through it, jobs/ and graph.json show its jobs.
#pragma once

#include <memory>
#include <string>

#include <spdlog/sinks/ringbuffer_sink.h>

#include "blockcore/graph/graph.h"
#include "blockcore/jobs/control_plane.h"
#include "blockcore/result.h"

namespace chainfs::fusefs {

// Requests up to this size (reads and writes) are passed whole by the kernel.
constexpr size_t kMaxRequestBytes = 1 << 20;

struct MountOptions {
  std::string mountpoint;
  unsigned threads = 0;        // FUSE worker threads; 0 = number of cores (at least 2)
  bool allow_other = false;    // let other users in (the kernel checks the files' modes)
  bool handle_signals = true;  // SIGINT/SIGTERM/SIGHUP end run(); one such mount per process
  bool fuse_debug = false;     // libfuse's own request trace on stderr
  // The recent log lines shown in `log` (the caller attaches it to the graph's logger); null
  // leaves `log` empty.
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> log_ring;
};

class Filesystem;

class FuseMount {
 public:
  // Mounts `graph` at options.mountpoint. Errors: the mountpoint is missing or not a folder
  // (NotFound/Invalid), the mount itself fails (Io, with libfuse's reason in the log).
  static Result<std::unique_ptr<FuseMount>> mount(Graph& graph, MountOptions options);
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  // Serves requests until the filesystem is unmounted or a handled signal arrives, then
  // unmounts. Errors: the session loop failed (Io).
  Result<void> run();

  const std::string& mountpoint() const;
  // The mount's control plane (its jobs): what control/ writes go through. For tools and tests.
  ControlPlane& control_plane();

 private:
  explicit FuseMount(std::unique_ptr<Filesystem> fs);
  std::unique_ptr<Filesystem> fs_;
};

}  // namespace chainfs::fusefs
