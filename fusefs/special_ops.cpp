// control/<file>, graph.json, graph.dot, log and jobs/<id>.
//
// These files bypass the page cache (direct_io): a control write reaches the ControlPlane as the
// bytes written, and a generated file is read from the text rendered when it was opened (their
// st_size is 0, like files in /proc; read them to the end).
#include <fcntl.h>

#include "fusefs/filesystem.h"

namespace chainfs::fusefs {

Result<std::string> Filesystem::render_snapshot(Ino ino) const {
  switch (ino) {
    case kGraphJson:
      return render_graph_json(graph_, control_plane_->jobs().list());
    case kGraphDot:
      return render_graph_dot(graph_, control_plane_->jobs().list());
    case kLog: {
      std::string text;
      if (options_.log_ring)
        for (const std::string& line : options_.log_ring->last_formatted()) {
          text += line;
          if (!line.empty() && line.back() != '\n') text += '\n';
        }
      return text;
    }
    default:
      break;
  }
  if (ino_kind(ino) == InodeKind::Job)
    if (auto entry = inodes_.lookup(ino)) return control_plane_->jobs().status_yaml(entry->name);
  return make_error(Errc::NotFound, "no such file");
}

void Filesystem::open_special(fuse_req_t req, Ino ino, fuse_file_info* fi) {
  const bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
  fi->direct_io = 1;
  fi->keep_cache = 0;
  if (const char* name = control_file_name(ino)) {
    register_handle(fi, std::make_unique<ControlFileHandle>(name));
  } else {
    if (writing) return (void)fuse_reply_err(req, EACCES);
    auto text = render_snapshot(ino);
    if (!text) return reply_error(req, text.error(), "open", ino);
    register_handle(fi, std::make_unique<SnapshotFileHandle>(std::move(*text)));
  }
  if (fuse_reply_open(req, fi) == -ENOENT) unregister_handle(fi).reset();
}

void Filesystem::write_control(fuse_req_t req, ControlFileHandle& h, const char* buf, size_t size) {
  // The whole write is one call: its lines run in order, a snapshot's as one transaction. The
  // plane logs every outcome (info when done, warn with the reason when refused).
  const fuse_ctx* ctx = fuse_req_ctx(req);
  ControlRequest request;
  request.cwd = process_cwd(ctx ? ctx->pid : 0);
  Result<std::string> outcome =
      control_plane_->execute(h.name, std::string_view(buf, size), request);
  std::string text = format_outcome(outcome);
  {
    std::lock_guard lock(h.mutex);
    h.outcome = text;
    h.read_pos = 0;
  }
  if (!outcome.ok()) return (void)fuse_reply_err(req, to_errno(outcome.error().code));
  fuse_reply_write(req, size);
}

void Filesystem::read_control(fuse_req_t req, ControlFileHandle& h, size_t size) {
  std::string chunk;
  {
    std::lock_guard lock(h.mutex);
    size_t n = std::min(size, h.outcome.size() - h.read_pos);
    chunk = h.outcome.substr(h.read_pos, n);
    h.read_pos += n;
  }
  fuse_reply_buf(req, chunk.data(), chunk.size());
}

}  // namespace chainfs::fusefs
