// Commit and active commit on real qcow2 chains: base receives the data of the layers above it,
// the parents and chains move to base (headers rewritten), guest writes during an active commit
// reach base before the switch, and cancel leaves the chain where it was.
#include "chain_fixture.h"

namespace chainfs::testing {
namespace {

constexpr uint64_t kSize = 24 * MiB;

class CommitTest : public JobsFixture {
 protected:
  void make_chain() {
    dir_.create("base", kSize);
    dir_.io("base", {"write -P 0x11 0 4M", "write -P 0x12 6M 2M", "write -P 0x13 12M 5M"});
    dir_.create("mid", kSize, "base");
    dir_.io("mid", {"write -P 0x21 1M 2M", "write -z 13M 1M", "write -P 0 3M 1M",
                    "write -P 0x22 7M 64k", "write -P 0x23 22M 1M"});
    dir_.create("top", kSize, "mid");
    dir_.io("top", {"write -P 0x31 0 512k", "write -P 0x32 1536k 64k", "write -P 0x33 13M 128k",
                    "write -z 6M 64k"});
  }
  void expect_image_reads(const std::string& name, const std::vector<std::byte>& expected) {
    dir_.write_raw("expected.raw", expected);
    EXPECT_EQ(dir_.sh("qemu-img compare -q -f raw -F qcow2 expected.raw " + name + ".qcow2"), 0);
    EXPECT_EQ(dir_.sh("qemu-img check -q " + name + ".qcow2"), 0);
  }
};

TEST_F(CommitTest, Intermediate_MergesMidIntoBaseAndTopNowBacksOntoBase) {
  make_chain();
  const std::vector<std::byte> expected_top = dir_.raw_view("top");
  const std::vector<std::byte> expected_mid = dir_.raw_view("mid");
  open_writable_chain({"base", "mid", "top"});

  const std::string id = start("commit", "mid base=base");
  EXPECT_EQ(id, "commit0");
  expect_completed(id);
  const JobInfo info = *plane_->jobs().info(id);
  EXPECT_EQ(info.type, "commit");
  EXPECT_EQ(info.progress, info.total);

  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "base"}));
  EXPECT_FALSE(listed("mid"));
  EXPECT_TRUE(same_bytes(read_node("base"), expected_mid)) << "base now reads as mid did";
  EXPECT_TRUE(same_bytes(read_node("top"), expected_top)) << "top's view never changes";

  close_graph();
  EXPECT_EQ(dir_.backing_file("top"), "base.qcow2");
  EXPECT_EQ(dir_.chain_files("top"), (std::vector<std::string>{"top.qcow2", "base.qcow2"}));
  expect_image_reads("top", expected_top);
  expect_image_reads("base", expected_mid);
}

TEST_F(CommitTest, Intermediate_WithGuestWritesOnTop_KeepsEveryWriteAndMidsData) {
  make_chain();
  const std::vector<std::byte> expected_mid = dir_.raw_view("mid");
  open_writable_chain({"base", "mid", "top"});
  GuestWriters writers(node("top"), read_node("top"));
  writers.wait_writes(10);
  const std::string id = start("commit", "mid base=base");
  expect_completed(id);
  writers.wait_writes(writers.writes() + 10);
  writers.stop();
  EXPECT_TRUE(writers.errors().empty());
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "base"}));
  EXPECT_TRUE(same_bytes(read_node("top"), writers.expected()));
  EXPECT_TRUE(same_bytes(read_node("base"), expected_mid)) << "guest writes stay in top";
  close_graph();
  expect_image_reads("top", writers.expected());
}

// More data than CopyJob::kWritebackEvery: writeback of base is started during the copy.
TEST_F(CommitTest, MoreDataThanTheWritebackStep_CommitsEverything) {
  constexpr uint64_t kLarge = 96 * MiB;
  dir_.create("base", kLarge);
  dir_.io("base", {"write -P 0x11 0 8M"});
  dir_.create("mid", kLarge, "base");
  dir_.io("mid", {"write -P 0x21 4M 80M"});
  dir_.create("top", kLarge, "mid");
  const std::vector<std::byte> expected_top = dir_.raw_view("top");
  open_writable_chain({"base", "mid", "top"});
  const std::string id = start("commit", "mid");
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "base"}));
  EXPECT_TRUE(same_bytes(read_node("top"), expected_top));
  close_graph();
  expect_image_reads("top", expected_top);
}

TEST_F(CommitTest, DefaultBase_IsTheBottomLayer) {
  make_chain();
  dir_.create("root", kSize);  // base gets a backing of its own: the bottom is then "root"
  ASSERT_EQ(dir_.sh("qemu-img rebase -u -b root.qcow2 -F qcow2 base.qcow2"), 0);
  const std::vector<std::byte> expected_top = dir_.raw_view("top");
  open_writable_chain({"root", "base", "mid", "top"});
  const std::string id = start("commit", "mid");
  EXPECT_EQ(plane_->jobs().info(id)->base, "root");
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "root"}));
  EXPECT_TRUE(same_bytes(read_node("top"), expected_top));
}

TEST_F(CommitTest, ActiveCommit_ReadyThenComplete_SwitchesTheChainToBaseWithEveryWrite) {
  make_chain();
  open_writable_chain({"base", "mid", "top"});
  GuestWriters writers(node("top"), read_node("top"));
  writers.wait_writes(10);

  const std::string id = start("commit", "top base=base");
  EXPECT_EQ(plane_->jobs().info(id)->type, "active-commit");
  wait_state(id, JobState::Ready);
  EXPECT_TRUE(wait_log("job active-commit0: ready"));
  // Keep writing while ready: the job mirrors the writes into base.
  writers.wait_writes(writers.writes() + 50);
  writers.stop();
  EXPECT_TRUE(writers.errors().empty());

  run("job", "complete " + id);
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"base"}));
  EXPECT_FALSE(listed("top"));
  EXPECT_FALSE(listed("mid"));
  EXPECT_TRUE(same_bytes(read_node("base"), writers.expected()))
      << "every write acknowledged before the switch is in base";
  const JobInfo info = *plane_->jobs().info(id);
  EXPECT_GE(info.total, kSize) << "the total grows with the mirrored writes";
  EXPECT_EQ(info.progress, info.total);

  close_graph();
  EXPECT_EQ(dir_.backing_file("base"), "");
  expect_image_reads("base", writers.expected());
}

TEST_F(CommitTest, ActiveCommit_WritesRightUpToTheSwitch_AreAllInBase) {
  make_chain();
  open_writable_chain({"base", "mid", "top"});
  const std::string id = start("commit", "top base=base");
  wait_state(id, JobState::Ready);
  // Writers run through `complete`, with full 4 KiB blocks so that each block holds one write.
  // Every write that completed before `complete` was asked for must be in base; writes that
  // complete later may or may not be (those after the switch go to top, which the chain no
  // longer uses: like an unlinked file, it stays usable through the handles open on it).
  NodeRef top = node("top");
  const std::vector<std::byte> initial = read_node("top");
  GuestWriters writers(top, initial, 2, 4 * KiB, /*partial=*/false);
  writers.wait_writes(30);
  const uint64_t before_complete = writers.writes();
  run("job", "complete " + id);
  expect_completed(id);
  writers.wait_writes(writers.writes() + 10);
  writers.stop();
  EXPECT_TRUE(writers.errors().empty());
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"base"}));

  const std::vector<std::byte> base = read_node("base");
  ASSERT_EQ(base.size(), initial.size());
  int bad = 0;
  for (uint64_t b = 0; b < base.size() / (4 * KiB) && bad < 5; ++b) {
    const std::byte got = base[b * 4 * KiB];
    const std::vector<std::byte> allowed =
        writers.values_since(b, before_complete, initial[b * 4 * KiB]);
    const bool uniform = std::all_of(base.begin() + b * 4 * KiB, base.begin() + (b + 1) * 4 * KiB,
                                     [&](std::byte x) { return x == got; });
    const bool known = std::find(allowed.begin(), allowed.end(), got) != allowed.end();
    // Blocks the writers never touched keep the initial view (which need not be uniform).
    const bool ok = writers.written(b)
                        ? uniform && known
                        : std::equal(base.begin() + b * 4 * KiB, base.begin() + (b + 1) * 4 * KiB,
                                     initial.begin() + b * 4 * KiB);
    if (!ok) {
      ++bad;
      ADD_FAILURE() << "block " << b << " of base holds " << static_cast<int>(got)
                    << ", older than the last write acknowledged before complete";
    }
  }
  // top, still open through the writers' handles, has every write.
  BlockHandle handle(top, false);
  std::vector<std::byte> top_view(top->size());
  ASSERT_TRUE(handle.read(0, top_view).ok());
  EXPECT_TRUE(same_bytes(top_view, writers.expected()));
}

// A guest's handle (Graph::open_handle: it follows graph changes) stays open on top through the
// whole active commit: writes before the job, while it runs, while ready, then `complete`, then
// more writes through the same handle. Base holds every one of them; top gets none after the
// switch (issue 5: "complete switches the chain to base with no write lost").
TEST_F(CommitTest, ActiveCommit_GuestHandleOnTop_MovesToBaseAtComplete_NoWriteLost) {
  make_chain();
  open_writable_chain({"base", "mid", "top"});
  NodeRef top = node("top");
  std::vector<std::byte> expected = read_node("top");
  auto guest = graph_->open_handle(top, true);
  ASSERT_TRUE(guest.ok()) << guest.error().message;
  ASSERT_TRUE(guest->follows());
  auto guest_write = [&](uint64_t offset, uint8_t value, uint64_t length) {
    std::vector<std::byte> data(length, std::byte{value});
    auto r = guest->write(offset, data);
    ASSERT_TRUE(r.ok()) << r.error().message;
    std::copy(data.begin(), data.end(), expected.begin() + offset);
  };

  guest_write(0, 0x61, 64 * KiB);  // before the job
  const std::string id = start("commit", "top base=base");
  guest_write(1 * MiB, 0x62, 64 * KiB);  // running (or already ready)
  wait_state(id, JobState::Ready);
  guest_write(2 * MiB + 4 * KiB, 0x63, 64 * KiB);  // ready: mirrored
  run("job", "complete " + id);
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"base"}));
  EXPECT_EQ(guest->node_id(), node("base")->id()) << "the guest's handle follows the chain";
  EXPECT_EQ(top->writers(), 0);
  EXPECT_EQ(node("base")->writers(), 1);

  guest_write(3 * MiB, 0x64, 64 * KiB);  // after the switch, through the same handle
  guest_write(4 * KiB, 0x65, 4 * KiB);   // over data top holds itself
  ASSERT_TRUE(guest->flush().ok());
  EXPECT_TRUE(same_bytes(read_node("base"), expected)) << "base has every write";

  // Top got nothing after the switch: its own data at 4K is still the first write, and 3M is
  // still not allocated in top itself.
  {
    BlockHandle top_reader(top, false);
    std::vector<std::byte> got(4 * KiB);
    ASSERT_TRUE(top_reader.read(4 * KiB, got).ok());
    EXPECT_TRUE(
        std::all_of(got.begin(), got.end(), [](std::byte b) { return b == std::byte{0x61}; }));
    auto status = top_reader.block_status(3 * MiB, 64 * KiB);
    ASSERT_TRUE(status.ok());
    EXPECT_EQ(status->kind, Alloc::Unallocated);
  }

  *guest = BlockHandle(nullptr, false);
  top.reset();
  close_graph();
  EXPECT_EQ(dir_.sh("qemu-img check -q base.qcow2"), 0);
  EXPECT_EQ(dir_.sh("qemu-img check -q top.qcow2"), 0);
  expect_image_reads("base", expected);
}

TEST_F(CommitTest, ActiveCommit_CancelWhenReady_LeavesTheChainOnTopAndBaseAConsistentCopy) {
  make_chain();
  open_writable_chain({"base", "mid", "top"});
  GuestWriters writers(node("top"), read_node("top"));
  const std::string id = start("commit", "top base=base");
  wait_state(id, JobState::Ready);
  writers.wait_writes(writers.writes() + 30);
  writers.stop();
  run("job", "cancel " + id);
  const JobInfo info = wait_concluded(id);
  ASSERT_TRUE(info.error);
  EXPECT_EQ(*info.error, "job cancelled");
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  EXPECT_TRUE(same_bytes(read_node("top"), writers.expected())) << "the chain still reads top";
  EXPECT_TRUE(same_bytes(read_node("base"), writers.expected()))
      << "base holds a consistent copy of top as of the cancel";
  close_graph();
  EXPECT_EQ(dir_.backing_file("top"), "mid.qcow2");
}

TEST_F(CommitTest, ActiveCommit_CompleteBeforeReady_IsRefusedWithEbusy) {
  make_chain();
  open_writable_chain({"base", "mid", "top"});
  const std::string id = start("commit", "top base=base speed=1M");
  wait_state(id, JobState::Running);
  const Error e = refused("job", "complete " + id);
  EXPECT_EQ(e.code, Errc::Busy);
  EXPECT_NE(e.message.find("complete needs a ready job"), std::string::npos) << e.message;
  EXPECT_TRUE(log_contains("control/job: complete " + id + ": refused (EBUSY)"));
  run("job", "cancel " + id);
  wait_concluded(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
}

TEST_F(CommitTest, ActiveCommit_PauseInReadyIsStandby_ResumeIsReadyAgain) {
  make_chain();
  open_writable_chain({"base", "mid", "top"});
  const std::string id = start("commit", "top");
  wait_state(id, JobState::Ready);
  run("job", "pause " + id);
  EXPECT_EQ(plane_->jobs().info(id)->state, JobState::Standby);
  EXPECT_EQ(refused("job", "complete " + id).code, Errc::Busy) << "complete needs ready";
  run("job", "resume " + id);
  EXPECT_EQ(plane_->jobs().info(id)->state, JobState::Ready);
  run("job", "complete " + id);
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"base"}));
}

TEST_F(CommitTest, IntoAReadOnlyBase_IsRefusedWithErofsAndNamesTheNode) {
  make_chain();
  open_graph();
  // base opened read-only by the user (config `read-only: true`): nothing writes into it.
  NodeSpec base;
  base.name = "base";
  base.driver = "qcow2";
  base.file = dir_.file("base.qcow2");
  base.read_only = true;
  base.backing = std::string();
  ASSERT_TRUE(graph_->open_named_node(base).ok());
  NodeSpec mid{.name = "mid", .driver = "qcow2", .file = dir_.file("mid.qcow2"), .backing = "base"};
  ASSERT_TRUE(graph_->open_named_node(mid).ok());
  const Error e = refused("commit", "mid base=base");
  EXPECT_EQ(e.code, Errc::ReadOnly) << e.message;
  EXPECT_NE(e.message.find("'base'"), std::string::npos) << e.message;
  EXPECT_TRUE(node("base")->claims().empty()) << "a refused job leaves no claim";
  EXPECT_TRUE(plane_->jobs().list().empty()) << "a refused job is not listed";
  EXPECT_TRUE(log_contains("refused (EROFS)")) << log_text();
  EXPECT_EQ(node("base")->read_only_cause(), ReadOnlyCause::User);
}

// ---- chains opened from image headers (--image): backing layers read-only until a job needs
// them writable (docs/jobs.md, "Read-only layers").

TEST_F(CommitTest, OnAnImageChain_Intermediate_ReopensBaseForTheJobAndReadOnlyAfter) {
  make_chain();
  const std::vector<std::byte> expected_top = dir_.raw_view("top");
  const std::vector<std::byte> expected_mid = dir_.raw_view("mid");
  open_image("top");
  EXPECT_EQ(node("base")->read_only_cause(), ReadOnlyCause::Backing);

  const std::string id = start("commit", "mid base=base");
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "base"}));
  EXPECT_FALSE(listed("mid"));
  EXPECT_EQ(node("base")->read_only_cause(), ReadOnlyCause::Backing)
      << "base is a backing layer again: read-only";
  EXPECT_FALSE(node("base")->capabilities().writable);
  EXPECT_FALSE(node("base.file")->capabilities().writable);
  EXPECT_EQ(node("base")->read_write_holds(), 0);
  EXPECT_TRUE(same_bytes(read_node("base"), expected_mid));
  EXPECT_TRUE(same_bytes(read_node("top"), expected_top));
  close_graph();
  EXPECT_EQ(dir_.chain_files("top"), (std::vector<std::string>{"top.qcow2", "base.qcow2"}));
  expect_image_reads("top", expected_top);
  expect_image_reads("base", expected_mid);
}

// base <- mid <- mid2 <- top: committing mid rewrites mid2's header, and mid2 is a read-only
// backing layer too; the job reopens it for its end and puts it back.
TEST_F(CommitTest, OnAnImageChain_TheLayerAboveNodeIsReopenedForItsHeaderAndReadOnlyAfter) {
  dir_.create("base", kSize);
  dir_.io("base", {"write -P 0x11 0 4M"});
  dir_.create("mid", kSize, "base");
  dir_.io("mid", {"write -P 0x21 1M 2M", "write -z 3M 64k"});
  dir_.create("mid2", kSize, "mid");
  dir_.io("mid2", {"write -P 0x31 2M 64k"});
  dir_.create("top", kSize, "mid2");
  const std::vector<std::byte> expected_top = dir_.raw_view("top");
  const std::vector<std::byte> expected_mid = dir_.raw_view("mid");
  open_image("top");

  const std::string id = start("commit", "mid base=base");
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid2", "base"}));
  for (const char* name : {"mid2", "base"}) {
    EXPECT_EQ(node(name)->read_only_cause(), ReadOnlyCause::Backing) << name;
    EXPECT_FALSE(node(name)->capabilities().writable) << name;
  }
  EXPECT_TRUE(same_bytes(read_node("top"), expected_top));
  close_graph();
  EXPECT_EQ(dir_.backing_file("mid2"), "base.qcow2");
  EXPECT_EQ(dir_.chain_files("top"),
            (std::vector<std::string>{"top.qcow2", "mid2.qcow2", "base.qcow2"}));
  expect_image_reads("top", expected_top);
  expect_image_reads("base", expected_mid);
}

TEST_F(CommitTest, OnAnImageChain_ActiveCommit_BaseStaysWritableAsTheNewActiveLayer) {
  make_chain();
  open_image("top");
  GuestWriters writers(node("top"), read_node("top"));
  writers.wait_writes(10);
  const std::string id = start("commit", "top");
  EXPECT_EQ(plane_->jobs().info(id)->type, "active-commit");
  wait_state(id, JobState::Ready);
  writers.wait_writes(writers.writes() + 20);
  writers.stop();
  EXPECT_TRUE(writers.errors().empty());
  run("job", "complete " + id);
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"base"}));
  EXPECT_EQ(node("base")->read_only_cause(), ReadOnlyCause::None);
  EXPECT_TRUE(node("base")->capabilities().writable);
  EXPECT_TRUE(graph_->check_writable(*node("base")).ok()) << "the active layer takes writers";
  EXPECT_TRUE(same_bytes(read_node("base"), writers.expected()));
  close_graph();
  EXPECT_EQ(dir_.backing_file("base"), "");
  expect_image_reads("base", writers.expected());
}

TEST_F(CommitTest, OnAnImageChain_Cancel_PutsBaseBackToReadOnly) {
  make_chain();
  const std::vector<std::byte> expected_top = dir_.raw_view("top");
  open_image("top");
  const std::string id = start("commit", "mid base=base auto-finalize=off");
  wait_state(id, JobState::Pending);
  EXPECT_TRUE(node("base")->capabilities().writable) << "read-write while the job runs";
  run("job", "cancel " + id);
  EXPECT_EQ(wait_concluded(id).error, std::optional<std::string>("job cancelled"));
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  EXPECT_EQ(node("base")->read_only_cause(), ReadOnlyCause::Backing);
  EXPECT_FALSE(node("base")->capabilities().writable);
  EXPECT_TRUE(same_bytes(read_node("top"), expected_top));
  close_graph();
  EXPECT_EQ(dir_.backing_file("top"), "mid.qcow2");
  EXPECT_EQ(dir_.sh("qemu-img check -q base.qcow2"), 0);
}

// Two overlays on one base (the graph shares the base node): the base may not change under the
// other chain, so the commit is refused by the permissions, and base stays read-only.
TEST_F(CommitTest, OnImageChainsSharingTheirBase_CommitIntoItIsRefusedAndBaseStaysReadOnly) {
  make_chain();
  dir_.create("other", kSize, "base");
  open_image("top");
  open_image("other", "vm2");
  ASSERT_EQ(node("base")->parent_count(), 2u);
  const Error e = refused("commit", "mid base=base");
  EXPECT_EQ(e.code, Errc::Access) << e.message;
  EXPECT_NE(e.message.find("'other'"), std::string::npos) << e.message;
  EXPECT_EQ(node("base")->read_only_cause(), ReadOnlyCause::Backing);
  EXPECT_FALSE(node("base")->capabilities().writable);
  EXPECT_TRUE(node("base")->claims().empty());
}

TEST_F(CommitTest, OnAnImageChainTheUserMadeReadOnly_IsRefusedWithErofs) {
  make_chain();
  open_graph();
  ImageSpec spec;
  spec.path = dir_.file("top.qcow2");
  spec.chain = "vm";
  spec.read_only = true;
  ASSERT_TRUE(graph_->open_image(spec).ok());
  const Error e = refused("commit", "mid base=base");
  EXPECT_EQ(e.code, Errc::ReadOnly) << e.message;
  EXPECT_NE(e.message.find("commit into 'base'"), std::string::npos) << e.message;
  EXPECT_TRUE(node("base")->claims().empty());
  EXPECT_FALSE(node("base")->capabilities().writable);
  EXPECT_TRUE(log_contains("refused (EROFS)")) << log_text();
}

}  // namespace
}  // namespace chainfs::testing
