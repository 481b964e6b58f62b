#include "blockcore/jobs/snapshot.h"

#include <filesystem>
#include <memory>
#include <optional>

#include "blockcore/drivers/qcow2/create.h"
#include "blockcore/graph/drain.h"
#include "blockcore/graph/transaction.h"

namespace chainfs {

namespace fs = std::filesystem;

namespace {

class SnapshotAction final : public TransactionAction {
 public:
  SnapshotAction(Graph& graph, SnapshotRequest request)
      : graph_(graph), request_(std::move(request)) {
    name_ = request_.overlay_name.empty() ? fs::path(request_.overlay_path).stem().string()
                                          : request_.overlay_name;
  }

  const std::string& overlay_name() const { return name_; }

  std::string describe() const override {
    return fmt::format("snapshot of '{}' onto {}", request_.node, request_.overlay_path);
  }

  Result<void> prepare() override {
    CHAINFS_ASSIGN_OR_RETURN(node_, graph_.find(request_.node));
    CHAINFS_TRY(check_name());
    CHAINFS_TRY(check_path());
    if (graph_.options().read_only)
      return make_error(Errc::ReadOnly, "the mount is read-only: no overlay can be written");
    CHAINFS_ASSIGN_OR_RETURN(
        claim_, graph_.claim("snapshot transaction", {{node_, ClaimKind::Transaction}}));
    // Open writers of NODE (a running guest) are not refused: they wait at the drain and move to
    // the overlay with the relink below, so NODE keeps its point-in-time content.
    drain_ = DrainedSection(*node_);
    // Every image that names NODE as its backing file is rewritten to name the overlay: a
    // read-only backing layer above NODE (found through a header) is reopened read-write for
    // that, before any file is created, and read-only again in clean().
    for (const NodeRef& parent : node_->parents()) {
      if (!parent->capabilities().persists_backing) continue;
      auto hold = graph_.hold_read_write(parent);
      if (!hold.ok())
        return make_error(hold.error().code,
                          "the image of '{}' above '{}' must name the overlay as its backing "
                          "file: {}",
                          parent->name(), node_->name(), hold.error().message);
      read_write_.push_back(std::move(*hold));
    }

    if (request_.mode == OverlayMode::Create) {
      Qcow2CreateOptions create;
      create.path = request_.overlay_path;
      create.size = node_->size();
      CHAINFS_TRY(qcow2_create(create));
      created_ = true;
    }
    NodeSpec spec;
    spec.name = name_;
    spec.driver = "qcow2";
    spec.file = request_.overlay_path;
    spec.backing = std::string();  // none yet: set_backing below records NODE in the header
    CHAINFS_ASSIGN_OR_RETURN(overlay_, graph_.open_named_node(spec));
    // Held by its parents and chains once linked, like a layer found through image headers; our
    // reference keeps it alive until then.
    CHAINFS_TRY(graph_.remove_node(name_));
    if (request_.mode == OverlayMode::Existing) {
      if (overlay_->size() < node_->size())
        return make_error(Errc::Invalid, "overlay '{}' is smaller ({} bytes) than '{}' ({} bytes)",
                          request_.overlay_path, overlay_->size(), node_->name(), node_->size());
      original_reference_ = overlay_->driver().backing_reference();
    }
    CHAINFS_TRY(graph_.set_backing(*overlay_, node_));
    backing_set_ = true;
    CHAINFS_TRY(graph_.relink({Relink::replace(node_, overlay_, MoveWriters::Yes)}));
    relinked_ = true;
    return ok_result();
  }

  void commit() override {
    // A NODE that nothing pointed at (a node declared on its own, no chain): its overlay would be
    // held by nobody, so the user holds it, as they hold NODE.
    if (!graph_.is_listed(*overlay_)) graph_.hold_for_user(overlay_);
  }

  void abort() override {
    aborted_ = true;
    if (relinked_) {
      if (auto r = graph_.relink({Relink::replace(overlay_, node_, MoveWriters::Yes)}); !r.ok())
        graph_.log().error("{}: putting the parents of '{}' back failed: {}", describe(),
                           node_->name(), r.error().message);
    }
    if (backing_set_ && request_.mode == OverlayMode::Existing) {
      // The overlay is ours alone (unlisted, no request can reach it): restore its header.
      if (auto r = overlay_->driver().set_backing_reference(original_reference_); !r.ok())
        graph_.log().error("{}: restoring the backing file named in '{}' failed: {}", describe(),
                           request_.overlay_path, r.error().message);
    }
  }

  void clean() override {
    read_write_.clear();  // the layers above NODE go back to read-only
    drain_.end();
    claim_.release();
    overlay_.reset();  // closes the overlay unless the graph holds it now
    node_.reset();
    if (aborted_ && created_) {
      std::error_code ec;
      fs::remove(request_.overlay_path, ec);
      if (ec)
        graph_.log().error("{}: removing the new overlay failed: {}", describe(), ec.message());
    }
  }

 private:
  Result<void> check_name() const {
    if (name_.empty()) return make_error(Errc::Invalid, "no overlay node name: give name=NODE");
    if (graph_.unique_name(name_) != name_)
      return make_error(Errc::Exists, "node name '{}' is already taken", name_);
    return ok_result();
  }

  Result<void> check_path() const {
    const fs::path path(request_.overlay_path);
    if (!path.is_absolute())
      return make_error(Errc::Invalid, "overlay path '{}' is not absolute", request_.overlay_path);
    std::error_code ec;
    const fs::path folder = path.parent_path();
    if (!fs::is_directory(folder, ec))
      return make_error(Errc::NotFound, "folder '{}' of the overlay does not exist",
                        folder.string());
    const bool exists = fs::exists(path, ec);
    if (request_.mode == OverlayMode::Create && exists)
      return make_error(Errc::Exists,
                        "'{}' exists (use mode=existing to put an existing image "
                        "above the node)",
                        request_.overlay_path);
    if (request_.mode == OverlayMode::Existing) {
      if (!exists)
        return make_error(Errc::NotFound, "'{}' does not exist (mode=existing)",
                          request_.overlay_path);
      const fs::path canonical = fs::weakly_canonical(path, ec);
      for (const NodeRef& n : graph_.listed_nodes()) {
        std::error_code ec2;
        const std::string file = n->filename();
        if (!file.empty() && fs::weakly_canonical(file, ec2) == canonical)
          return make_error(Errc::Busy, "'{}' is already open as node '{}'", request_.overlay_path,
                            n->name());
      }
    }
    return ok_result();
  }

  Graph& graph_;
  const SnapshotRequest request_;
  std::string name_;
  NodeRef node_;
  NodeRef overlay_;
  Claim claim_;
  DrainedSection drain_;
  std::vector<ReadWriteHold> read_write_;  // parents of NODE reopened to rewrite their header
  std::optional<BackingReference> original_reference_;
  bool created_ = false;
  bool backing_set_ = false;
  bool relinked_ = false;
  bool aborted_ = false;
};

}  // namespace

Result<std::vector<std::string>> run_snapshots(Graph& graph,
                                               const std::vector<SnapshotRequest>& requests) {
  if (requests.empty()) return make_error(Errc::Invalid, "no snapshot given");
  Transaction transaction;
  std::vector<std::string> names;
  for (const SnapshotRequest& request : requests) {
    auto action = std::make_unique<SnapshotAction>(graph, request);
    names.push_back(action->overlay_name());
    transaction.add(std::move(action));
  }
  CHAINFS_TRY(transaction.run());
  return names;
}

}  // namespace chainfs
