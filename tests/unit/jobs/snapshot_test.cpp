// Snapshots: an overlay is created (or an existing image taken) above a node, every parent and
// chain moves to it, its header names the node's image; the lines of one write are one
// transaction, all applied or none and no file left behind.
#include "chain_fixture.h"

namespace chainfs::testing {
namespace {

constexpr uint64_t kSize = 8 * MiB;

class SnapshotTest : public JobsFixture {
 protected:
  void make_chain() {
    dir_.create("base", kSize);
    dir_.io("base", {"write -P 0x11 0 2M"});
    dir_.create("mid", kSize, "base");
    dir_.io("mid", {"write -P 0x21 1M 2M"});
    dir_.create("top", kSize, "mid");
    dir_.io("top", {"write -P 0x31 2M 1M"});
    expected_ = dir_.raw_view("top");
    open_image("top");
  }
  std::string path(const std::string& name) { return dir_.file(name); }
  bool exists(const std::string& name) { return fs::exists(dir_.path() / name); }

  std::vector<std::byte> expected_;
};

TEST_F(SnapshotTest, OfTheActiveLayer_TheChainMovesToTheOverlay) {
  make_chain();
  EXPECT_EQ(run("snapshot", "top " + path("snap.qcow2")), "ok");
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"snap", "top", "mid", "base"}));
  EXPECT_EQ(backing_of("snap"), "top");
  EXPECT_TRUE(same_bytes(read_node("snap"), expected_));
  EXPECT_TRUE(log_contains("control/snapshot: 'top' onto " + path("snap.qcow2") + ": done"));
  // The overlay takes the writes now; top is a backing layer and does not change.
  std::vector<std::byte> data(64 * KiB, std::byte{0x55});
  {
    auto handle = graph_->open_handle(node("snap"), true);
    ASSERT_TRUE(handle.ok()) << handle.error().message;
    ASSERT_TRUE(handle->write(0, data).ok());
  }
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
  EXPECT_EQ(graph_->check_writable(*node("top")).error().code, Errc::Access);

  close_graph();
  EXPECT_EQ(dir_.backing_file("snap"), "top.qcow2");
  EXPECT_EQ(dir_.chain_files("snap"),
            (std::vector<std::string>{"snap.qcow2", "top.qcow2", "mid.qcow2", "base.qcow2"}));
  EXPECT_EQ(dir_.sh("qemu-img check -q snap.qcow2"), 0);
  std::copy(data.begin(), data.end(), expected_.begin());
  dir_.write_raw("expected.raw", expected_);
  EXPECT_EQ(dir_.sh("qemu-img compare -q -f raw -F qcow2 expected.raw snap.qcow2"), 0);
}

TEST_F(SnapshotTest, OfAMiddleLayer_TheLayerAboveNowBacksOntoTheOverlay) {
  make_chain();
  run("snapshot", "mid " + path("mid-snap.qcow2") + " name=between");
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "between", "mid", "base"}));
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
  close_graph();
  EXPECT_EQ(dir_.backing_file("top"), "mid-snap.qcow2");
  EXPECT_EQ(dir_.backing_file("mid-snap"), "mid.qcow2");
}

// mid is a read-only backing layer (from top's header): its header must name the overlay, so the
// transaction reopens it read-write for that and read-only again at its end.
TEST_F(SnapshotTest, OfTheBottomLayer_TheReadOnlyLayerAboveIsReopenedForItsHeader) {
  make_chain();
  EXPECT_EQ(node("mid")->read_only_cause(), ReadOnlyCause::Backing);
  EXPECT_EQ(run("snapshot", "base " + path("base-snap.qcow2")), "ok");
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base-snap", "base"}));
  EXPECT_EQ(node("mid")->read_only_cause(), ReadOnlyCause::Backing);
  EXPECT_FALSE(node("mid")->capabilities().writable);
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
  close_graph();
  EXPECT_EQ(dir_.backing_file("mid"), "base-snap.qcow2");
  EXPECT_EQ(dir_.sh("qemu-img check -q mid.qcow2"), 0);
  dir_.write_raw("expected.raw", expected_);
  EXPECT_EQ(dir_.sh("qemu-img compare -q -f raw -F qcow2 expected.raw top.qcow2"), 0);
}

TEST_F(SnapshotTest, ModeExisting_TakesTheImageAndRecordsTheBackingInItsHeader) {
  make_chain();
  ASSERT_EQ(dir_.sh("qemu-img create -q -f qcow2 other.qcow2 16M"), 0);
  run("snapshot", "top " + path("other.qcow2") + " mode=existing");
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"other", "top", "mid", "base"}));
  close_graph();
  EXPECT_EQ(dir_.backing_file("other"), "top.qcow2");
  EXPECT_EQ(dir_.sh("qemu-img check -q other.qcow2"), 0);
}

TEST_F(SnapshotTest, ModeExisting_SmallerThanTheNode_IsRefusedAndTheImageUntouched) {
  make_chain();
  ASSERT_EQ(dir_.sh("qemu-img create -q -f qcow2 small.qcow2 1M"), 0);
  const Error e = refused("snapshot", "top " + path("small.qcow2") + " mode=existing");
  EXPECT_EQ(e.code, Errc::Invalid);
  EXPECT_NE(e.message.find("smaller"), std::string::npos) << e.message;
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  EXPECT_FALSE(listed("small"));
  close_graph();
  EXPECT_TRUE(exists("small.qcow2")) << "an existing image is never removed";
  EXPECT_EQ(dir_.backing_file("small"), "");
}

TEST_F(SnapshotTest, Refusals_EachWithItsErrno) {
  make_chain();
  ASSERT_EQ(dir_.sh("touch taken.qcow2"), 0);
  struct Case {
    std::string line;
    Errc code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"nosuch " + path("a.qcow2"), Errc::NotFound, "no node 'nosuch'"},
      {"top " + path("taken.qcow2"), Errc::Exists, "exists"},
      {"top " + path("no/such/folder/a.qcow2"), Errc::NotFound, "does not exist"},
      {"top " + path("mid.qcow2"), Errc::Exists, "node name 'mid' is already taken"},
      {"top " + path("a.qcow2") + " name=base", Errc::Exists, "'base' is already taken"},
      {"top " + path("none.qcow2") + " mode=existing", Errc::NotFound, "does not exist"},
      {"top a.qcow2", Errc::Invalid, "give an absolute path"},
      {"top " + path("a.qcow2") + " mode=sometimes", Errc::Invalid, "mode=sometimes"},
      {"top " + path("a.qcow2") + " size=1G", Errc::Invalid, "unknown option 'size='"},
      {"top", Errc::Invalid, "usage"},
  };
  for (const Case& c : cases) {
    const Error e = refused("snapshot", c.line);
    EXPECT_EQ(e.code, c.code) << c.line << ": " << e.message;
    EXPECT_NE(e.message.find(c.says), std::string::npos) << c.line << ": " << e.message;
  }
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  EXPECT_FALSE(exists("a.qcow2"));
  EXPECT_TRUE(log_contains("refused (ENOENT)"));
}

TEST_F(SnapshotTest, RelativeOverlayPath_IsResolvedAgainstTheWritersDirectory) {
  make_chain();
  ControlRequest request;
  request.cwd = dir_.path().string();
  auto r = plane_->execute("snapshot", "top rel.qcow2", request);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(exists("rel.qcow2"));
  EXPECT_EQ(chain_layers().front(), "rel");
}

// Three lines, one transaction: the second fails, so the first is undone and its file removed,
// and the third never runs.
TEST_F(SnapshotTest, SecondOfThreeLinesFails_NothingAppliedAndNoFilesLeft) {
  make_chain();
  ASSERT_EQ(dir_.sh("qemu-img create -q -f qcow2 small.qcow2 1M"), 0);
  const Error e =
      refused("snapshot", "top " + path("s1.qcow2") + "\n" + "mid " + path("small.qcow2") +
                              " mode=existing\n" + "base " + path("s3.qcow2") + "\n");
  EXPECT_EQ(e.code, Errc::Invalid);
  EXPECT_NE(e.message.find("snapshot of 'mid' onto"), std::string::npos) << e.message;
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  for (const char* n : {"s1", "small", "s3"}) EXPECT_FALSE(listed(n)) << n;
  EXPECT_FALSE(exists("s1.qcow2")) << "the file made for the failed transaction is removed";
  EXPECT_FALSE(exists("s3.qcow2"));
  EXPECT_TRUE(exists("small.qcow2"));
  EXPECT_TRUE(log_contains("nothing applied"));
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
  for (const char* n : {"top", "mid", "base"}) EXPECT_TRUE(node(n)->claims().empty()) << n;
  close_graph();
  EXPECT_EQ(dir_.chain_files("top"),
            (std::vector<std::string>{"top.qcow2", "mid.qcow2", "base.qcow2"}));
}

// The third line fails after two snapshots were made, the second on top of the first: both are
// undone, newest first.
TEST_F(SnapshotTest, ThirdLineFails_TwoStackedSnapshotsAreUndone) {
  make_chain();
  const Error e = refused("snapshot", "top " + path("s1.qcow2") + "\n" + "s1 " + path("s2.qcow2") +
                                          "\n" + "mid " + path("missing/s3.qcow2") + "\n");
  EXPECT_EQ(e.code, Errc::NotFound) << e.message;
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  EXPECT_FALSE(exists("s1.qcow2"));
  EXPECT_FALSE(exists("s2.qcow2"));
  close_graph();
  EXPECT_EQ(dir_.chain_files("top"),
            (std::vector<std::string>{"top.qcow2", "mid.qcow2", "base.qcow2"}));
}

TEST_F(SnapshotTest, SeveralLines_AllApplied) {
  make_chain();
  run("snapshot", "top " + path("s1.qcow2") + "\ns1 " + path("s2.qcow2") + " name=two");
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"two", "s1", "top", "mid", "base"}));
  EXPECT_TRUE(same_bytes(read_node("two"), expected_));
}

TEST_F(SnapshotTest, OfANodeAJobUses_IsRefusedWithEbusy) {
  make_chain();
  const std::string id = start("stream", "top speed=64K");
  Error e = refused("snapshot", "mid " + path("s.qcow2"));
  EXPECT_EQ(e.code, Errc::Busy);
  EXPECT_NE(e.message.find("job stream0"), std::string::npos) << e.message;
  run("job", "cancel " + id);
  wait_concluded(id);
  EXPECT_FALSE(exists("s.qcow2"));
  run("snapshot", "top " + path("s.qcow2"));
}

// A live snapshot of a running guest: its open writable handle moves to the overlay, later writes
// land there, and the node keeps its point-in-time content.
TEST_F(SnapshotTest, WithAnOpenWriter_TheWriterMovesToTheOverlayAndTheNodeKeepsItsContent) {
  make_chain();
  auto guest = graph_->open_handle(node("top"), true);
  ASSERT_TRUE(guest.ok()) << guest.error().message;
  std::vector<std::byte> before(64 * KiB, std::byte{0x41});
  ASSERT_TRUE(guest->write(1 * MiB, before).ok());
  std::copy(before.begin(), before.end(), expected_.begin() + 1 * MiB);
  const std::vector<std::byte> point_in_time = expected_;

  EXPECT_EQ(run("snapshot", "top " + path("snap.qcow2")), "ok");
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"snap", "top", "mid", "base"}));
  EXPECT_EQ(guest->node_id(), node("snap")->id());
  EXPECT_EQ(node("top")->writers(), 0);
  EXPECT_EQ(node("snap")->writers(), 1);

  std::vector<std::byte> after(64 * KiB, std::byte{0x42});
  ASSERT_TRUE(guest->write(3 * MiB, after).ok());
  ASSERT_TRUE(guest->flush().ok());
  std::copy(after.begin(), after.end(), expected_.begin() + 3 * MiB);
  EXPECT_TRUE(same_bytes(read_node("top"), point_in_time)) << "top changed after the snapshot";
  EXPECT_TRUE(same_bytes(read_node("snap"), expected_));
  *guest = BlockHandle(nullptr, false);

  close_graph();
  EXPECT_EQ(dir_.sh("qemu-img check -q snap.qcow2"), 0);
  EXPECT_EQ(dir_.sh("qemu-img check -q top.qcow2"), 0);
  dir_.write_raw("expected.raw", expected_);
  dir_.write_raw("point.raw", point_in_time);
  EXPECT_EQ(dir_.sh("qemu-img compare -q -f raw -F qcow2 expected.raw snap.qcow2"), 0);
  EXPECT_EQ(dir_.sh("qemu-img compare -q -f raw -F qcow2 point.raw top.qcow2"), 0);
}

// A failed transaction puts the writers back where they were, with the parents and chains.
TEST_F(SnapshotTest, FailedTransactionWithAnOpenWriter_PutsTheWriterBack) {
  make_chain();
  auto guest = graph_->open_handle(node("top"), true);
  ASSERT_TRUE(guest.ok());
  dir_.create("taken", kSize);
  const Error e = refused("snapshot", "top " + path("s1.qcow2") + "\nmid " + path("taken.qcow2"));
  EXPECT_EQ(e.code, Errc::Exists) << e.message;
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  EXPECT_EQ(guest->node_id(), node("top")->id());
  EXPECT_EQ(node("top")->writers(), 1);
  EXPECT_FALSE(exists("s1.qcow2"));
  std::vector<std::byte> data(4 * KiB, std::byte{0x77});
  ASSERT_TRUE(guest->write(0, data).ok());
  std::copy(data.begin(), data.end(), expected_.begin());
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
}

}  // namespace
}  // namespace chainfs::testing
