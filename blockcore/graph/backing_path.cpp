#include "blockcore/graph/backing_path.h"

#include <filesystem>

#include "blockcore/graph/node.h"

namespace chainfs {

namespace fs = std::filesystem;

std::string backing_filename_for(const std::string& overlay_path, const std::string& backing_path) {
  std::error_code ec;
  fs::path backing = fs::absolute(backing_path, ec).lexically_normal();
  if (ec) return backing_path;
  fs::path overlay_dir = fs::absolute(overlay_path, ec).lexically_normal().parent_path();
  if (ec) return backing.string();
  fs::path relative = backing.lexically_relative(overlay_dir);
  if (relative.empty() || relative == "." || *relative.begin() == "..") return backing.string();
  return relative.string();
}

Result<std::optional<BackingReference>> backing_reference_for(const Node& overlay,
                                                              const Node* backing) {
  if (!backing) return std::optional<BackingReference>();
  std::string filename = backing->filename();
  if (filename.empty())
    return make_error(Errc::Unsupported, "node '{}' has no file that '{}' could name as backing",
                      backing->name(), overlay.name());
  // The format is what the overlay's driver must open the file as: look through filters.
  std::string format = "raw";  // a bare protocol node (or a test node): its bytes are the image
  NodeRef hold;
  const Node* n = backing;
  for (int depth = 0; n && depth < 64; ++depth) {
    std::string_view driver = n->driver_name();
    if (driver == "qcow2" || driver == "raw") {
      format = std::string(driver);
      break;
    }
    NodeRef next;
    for (const Child& c : n->children())
      if (c.role == ChildRole::Filtered) next = c.node;
    hold = std::move(next);
    n = hold.get();
  }
  return std::optional<BackingReference>(
      BackingReference{backing_filename_for(overlay.filename(), filename), format});
}

}  // namespace chainfs
