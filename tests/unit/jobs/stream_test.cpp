// Stream on real qcow2 chains: the data each layer holds ends up in the top, the graph and the
// headers are relinked, guest writes during the copy win, and cancel/pause leave things as they
// were. qemu-img is the oracle once the graph is closed.
#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "blockcore/io/io_hint.h"
#include "blockcore/jobs/copy_job.h"
#include "chain_fixture.h"

namespace chainfs::testing {
namespace {

constexpr uint64_t kSize = 24 * MiB;

class StreamTest : public JobsFixture {
 protected:
  // base <- mid <- top, 64 KiB clusters; mid hides some of base's data behind zeros (a zero
  // cluster and allocated zero data), and holds data of its own; top holds a little.
  void make_chain() {
    dir_.create("base", kSize);
    dir_.io("base", {"write -P 0x11 0 4M", "write -P 0x12 6M 2M", "write -P 0x13 12M 5M",
                     "write -P 0x14 20M 1M"});
    dir_.create("mid", kSize, "base");
    dir_.io("mid", {"write -P 0x21 1M 2M", "write -z 13M 1M", "write -P 0 3M 1M",
                    "write -P 0x22 7M 64k", "write -P 0x23 22M 1M", "write -P 0 18M 1M"});
    dir_.create("top", kSize, "mid");
    dir_.io("top", {"write -P 0x31 0 512k", "write -P 0x32 1536k 64k", "write -P 0x33 13M 128k"});
  }

  // After the graph is closed: NAME.qcow2 reads exactly `expected` (qemu-img compare follows the
  // backing chain from the headers) and qemu-img check finds nothing wrong.
  void expect_image_reads(const std::string& name, const std::vector<std::byte>& expected) {
    dir_.write_raw("expected.raw", expected);
    EXPECT_EQ(dir_.sh("qemu-img compare -q -f raw -F qcow2 expected.raw " + name + ".qcow2"), 0);
    EXPECT_EQ(dir_.sh("qemu-img check -q " + name + ".qcow2"), 0);
  }
};

TEST_F(StreamTest, WholeChain_TopHoldsEverythingAndLosesItsBacking) {
  make_chain();
  const std::vector<std::byte> expected = dir_.raw_view("top");
  open_image("top");
  ASSERT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));

  const std::string id = start("stream", "top");
  EXPECT_EQ(id, "stream0");
  expect_completed(id);
  const JobInfo info = *plane_->jobs().info(id);
  EXPECT_EQ(info.progress, kSize);
  EXPECT_EQ(info.total, kSize);
  EXPECT_EQ(info.node, "top");
  EXPECT_EQ(info.base, "");

  EXPECT_TRUE(same_bytes(read_node("top"), expected));
  EXPECT_EQ(backing_of("top"), "");
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top"}));
  EXPECT_FALSE(listed("mid")) << "cut out: held by nothing any more";
  EXPECT_FALSE(listed("base"));
  EXPECT_TRUE(log_contains("started job stream0"));
  EXPECT_TRUE(wait_log("job stream0: completed"));

  close_graph();
  EXPECT_EQ(dir_.backing_file("top"), "");
  EXPECT_EQ(dir_.chain_files("top"), (std::vector<std::string>{"top.qcow2"}));
  expect_image_reads("top", expected);
}

TEST_F(StreamTest, WithBase_CutsOutTheMiddleAndTheHeaderNamesBase) {
  make_chain();
  const std::vector<std::byte> expected = dir_.raw_view("top");
  open_image("top");

  const std::string id = start("stream", "top base=base");
  expect_completed(id);
  EXPECT_EQ(plane_->jobs().info(id)->base, "base");

  EXPECT_TRUE(same_bytes(read_node("top"), expected))
      << "mid's zeros over base's data must stay zeros once base shows through";
  EXPECT_EQ(backing_of("top"), "base");
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "base"}));
  EXPECT_FALSE(listed("mid"));

  close_graph();
  EXPECT_EQ(dir_.backing_file("top"), "base.qcow2");
  EXPECT_EQ(dir_.chain_files("top"), (std::vector<std::string>{"top.qcow2", "base.qcow2"}));
  expect_image_reads("top", expected);
  // Only what mid contributed moved: base's own data was not copied into top.
  const std::string map = dir_.sh_out("qemu-img map --output=json top.qcow2");
  EXPECT_NE(map.find("\"depth\": 1"), std::string::npos) << "base's data still comes from base";
}

// mid is a backing layer found through top's header, opened read-only: the job reopens it
// read-write (its data and header change) and read-only again at the end.
TEST_F(StreamTest, StreamOfAMiddleLayerOfAnImageChain_KeepsTheLayersAboveAndMidReadOnlyAfter) {
  make_chain();
  const std::vector<std::byte> expected = dir_.raw_view("top");
  const std::vector<std::byte> expected_mid = dir_.raw_view("mid");
  open_image("top");
  EXPECT_EQ(node("mid")->read_only_cause(), ReadOnlyCause::Backing);

  const std::string id = start("stream", "mid");
  EXPECT_TRUE(node("mid")->capabilities().writable) << "reopened read-write for the job";
  EXPECT_EQ(graph_->check_writable(*node("mid")).error().code, Errc::Access)
      << "but still no new writers: it is top's backing layer";
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid"}));
  EXPECT_EQ(node("mid")->read_only_cause(), ReadOnlyCause::Backing) << "read-only again";
  EXPECT_FALSE(node("mid")->capabilities().writable);
  EXPECT_FALSE(node("mid.file")->capabilities().writable);
  EXPECT_TRUE(same_bytes(read_node("mid"), expected_mid));
  EXPECT_TRUE(same_bytes(read_node("top"), expected));
  close_graph();
  EXPECT_EQ(dir_.chain_files("top"), (std::vector<std::string>{"top.qcow2", "mid.qcow2"}));
  EXPECT_EQ(dir_.backing_file("mid"), "");
  expect_image_reads("top", expected);
  expect_image_reads("mid", expected_mid);
}

// Config `nodes:` layers, all writable: the same job without any reopening.
TEST_F(StreamTest, StreamOfAMiddleLayerOfWritableNodes_KeepsTheLayersAbove) {
  make_chain();
  const std::vector<std::byte> expected = dir_.raw_view("top");
  open_writable_chain({"base", "mid", "top"});
  const std::string id = start("stream", "mid");
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid"}));
  EXPECT_TRUE(node("mid")->capabilities().writable) << "writable as declared";
  close_graph();
  expect_image_reads("top", expected);
}

TEST_F(StreamTest, GuestWritesDuringTheStream_WinOverCopiedData) {
  make_chain();
  open_image("top");
  GuestWriters writers(node("top"), read_node("top"));
  writers.wait_writes(20);
  const std::string id = start("stream", "top base=base");
  expect_completed(id);
  writers.wait_writes(writers.writes() + 20);
  writers.stop();
  EXPECT_TRUE(writers.errors().empty()) << writers.errors().front();
  EXPECT_TRUE(same_bytes(read_node("top"), writers.expected()));
  close_graph();
  expect_image_reads("top", writers.expected());
}

// The exact race: the job has read a chunk from below and not yet written it into top, when a
// guest write lands in that chunk. The guest write waits for the job's window and wins.
TEST_F(StreamTest, GuestWriteBetweenTheJobsReadAndWrite_IsNotOverwritten) {
  if (!kSyncPointsEnabled) GTEST_SKIP() << "sync points are compiled out (release build)";
  make_chain();
  open_image("top");
  SyncPoints& sync = graph_->sync_points();
  sync.enable();
  sync.pause_at("StreamJob::copy:read@top");
  const std::string id = start("stream", "top base=base");
  ASSERT_TRUE(sync.wait_for("StreamJob::copy:read@top"));
  // The job holds its first window ([0, 4M)) and has read mid's data at [1M, 1.5M) (top holds
  // 0..512K and 1.5M..1.5M+64K itself; 512K..1M comes from base). The guest writes inside what
  // the job read.
  constexpr uint64_t kAt = 1 * MiB + 64 * KiB;
  std::atomic<bool> written{false};
  auto guest = std::async(std::launch::async, [&] {
    BlockHandle handle(node("top"), true);
    std::vector<std::byte> data(64 * KiB, std::byte{0x77});
    auto r = handle.write(kAt, data);
    written = true;
    return r.ok();
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(written.load()) << "the guest write went ahead inside the job's window";
  sync.resume("StreamJob::copy:read@top");
  sync.disable();
  EXPECT_TRUE(guest.get());
  expect_completed(id);
  std::vector<std::byte> got(64 * KiB);
  BlockHandle handle(node("top"), false);
  ASSERT_TRUE(handle.read(kAt, got).ok());
  EXPECT_EQ(got, std::vector<std::byte>(64 * KiB, std::byte{0x77}));
}

TEST_F(StreamTest, BusyGuests_TheJobPausesBetweenWindowsAndStillFinishes) {
  make_chain();
  const std::vector<std::byte> expected = dir_.raw_view("top");
  open_image("top");
  std::atomic<bool> stop{false};
  std::thread guest([&] {  // a guest hammering the node files, as the FUSE edge counts it
    while (!stop.load()) graph_->note_guest_request();
  });
  const std::string id = start("stream", "top");
  bool parked = false;
  for (;;) {
    const JobInfo info = *plane_->jobs().info(id);
    parked = parked || (info.parked && info.state == JobState::Running);
    if (info.state == JobState::Concluded) break;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  stop = true;
  guest.join();
  EXPECT_TRUE(parked) << "a running, unthrottled job never left the CPU to busy guests";
  expect_completed(id);
  EXPECT_TRUE(same_bytes(read_node("top"), expected));
}

// Whether the job's thread writes a window through the host page cache (background_io(): the
// file driver keeps such writes buffered) or directly: directly while no guest uses the graph,
// through the cache from the window after guests were seen.
TEST_F(StreamTest, WindowsGoAroundThePageCacheUnlessGuestsAreBusy) {
  if (!kSyncPointsEnabled) GTEST_SKIP() << "needs a build with CHAINFS_SYNC_POINTS";
  // Streams a fresh chain; background_io() per window, in order. With `busy_guest`, a guest
  // request arrives during every window (counted from the job's own thread, so that no
  // scheduling can leave a window without one, as a free-running guest thread could under a
  // sanitizer).
  auto stream = [&](bool busy_guest) {
    close_graph();
    make_chain();
    const std::vector<std::byte> expected = dir_.raw_view("top");
    open_image("top");
    std::mutex mutex;
    std::vector<bool> cached;
    graph_->sync_points().set_callback("CopyJob::for_each_window:window", [&](std::string_view) {
      std::lock_guard lock(mutex);
      cached.push_back(background_io());
      if (busy_guest) graph_->note_guest_request();
    });
    graph_->sync_points().enable();
    expect_completed(start("stream", "top"));
    graph_->sync_points().disable();
    EXPECT_TRUE(same_bytes(read_node("top"), expected));
    std::lock_guard lock(mutex);
    return cached;
  };
  const size_t windows = kSize / CopyJob::kWindow;
  EXPECT_EQ(stream(false), std::vector<bool>(windows, false))
      << "no guest busy: every window writes around the page cache";
  std::vector<bool> busy(windows, true);
  busy[0] = false;  // nothing seen before the first window
  EXPECT_EQ(stream(true), busy) << "guests busy: from the second window on, the page cache";
}

TEST_F(StreamTest, Cancel_LeavesTheGraphAndTheDataAsTheyWere) {
  make_chain();
  const std::vector<std::byte> expected = dir_.raw_view("top");
  open_image("top");
  const std::string id = start("stream", "top speed=2M");
  wait_state(id, JobState::Running);
  run("job", "cancel " + id);
  const JobInfo info = wait_concluded(id);
  ASSERT_TRUE(info.error);
  EXPECT_EQ(*info.error, "job cancelled");
  EXPECT_LT(info.progress, kSize);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  EXPECT_TRUE(same_bytes(read_node("top"), expected));
  EXPECT_TRUE(node("mid")->claims().empty()) << "claims are released when the job concludes";
  close_graph();
  EXPECT_EQ(dir_.backing_file("top"), "mid.qcow2");
  expect_image_reads("top", expected);
}

TEST_F(StreamTest, PauseStopsTheCopy_ResumeFinishesIt) {
  make_chain();
  const std::vector<std::byte> expected = dir_.raw_view("top");
  open_image("top");
  const std::string id = start("stream", "top base=base speed=4M");
  wait_state(id, JobState::Running);
  run("job", "pause " + id);
  auto parked = plane_->jobs().wait_until(id, [](const JobInfo& j) { return j.parked; });
  ASSERT_TRUE(parked.ok());
  const uint64_t progress = parked->progress;
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(plane_->jobs().info(id)->progress, progress) << "a paused job copies nothing";
  EXPECT_EQ(refused("job", "pause " + id).code, Errc::Busy);
  run("job", "speed " + id + " 0");
  run("job", "resume " + id);
  expect_completed(id);
  EXPECT_TRUE(same_bytes(read_node("top"), expected));
  EXPECT_EQ(backing_of("top"), "base");
}

TEST_F(StreamTest, AutoFinalizeOff_WaitsInPendingAndChangesTheGraphOnFinalize) {
  make_chain();
  open_image("top");
  const std::string id = start("stream", "top base=base auto-finalize=off");
  wait_state(id, JobState::Pending);
  EXPECT_EQ(backing_of("top"), "mid") << "no graph change before finalize";
  run("job", "finalize " + id);
  EXPECT_EQ(backing_of("top"), "base") << "finalize returns once the change is made";
  EXPECT_EQ(wait_concluded(id).error, std::nullopt);
  EXPECT_EQ(refused("job", "finalize " + id).code, Errc::Busy);
  run("job", "dismiss " + id);
  EXPECT_EQ(refused("job", "dismiss " + id).code, Errc::NotFound);
}

TEST_F(StreamTest, CancelInPending_MakesNoGraphChange) {
  make_chain();
  const std::vector<std::byte> expected = dir_.raw_view("top");
  open_image("top");
  const std::string id = start("stream", "top auto-finalize=off");
  wait_state(id, JobState::Pending);
  run("job", "cancel " + id);
  EXPECT_EQ(wait_concluded(id).error, std::optional<std::string>("job cancelled"));
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  // The copied data stays in top (it is what top read anyway); the chain is as it was.
  EXPECT_TRUE(same_bytes(read_node("top"), expected));
}

TEST_F(StreamTest, IntoALayerTheUserMadeReadOnly_IsRefusedWithErofsAndALogLine) {
  make_chain();
  open_graph();
  ImageSpec spec;  // `--image top.qcow2,read-only`: the whole chain read-only as asked
  spec.path = dir_.file("top.qcow2");
  spec.chain = "vm";
  spec.read_only = true;
  ASSERT_TRUE(graph_->open_image(spec).ok());
  const Error e = refused("stream", "mid");
  EXPECT_EQ(e.code, Errc::ReadOnly) << e.message;
  EXPECT_NE(e.message.find("stream into 'mid'"), std::string::npos) << e.message;
  EXPECT_TRUE(node("mid")->claims().empty());
  EXPECT_EQ(node("mid")->read_only_cause(), ReadOnlyCause::User);
  EXPECT_TRUE(log_contains("refused (EROFS)")) << log_text();
}

TEST_F(StreamTest, AutoDismiss_RemovesTheJobWhenItSucceeds) {
  make_chain();
  open_image("top");
  const std::string id = start("stream", "top auto-dismiss=on");
  auto gone = plane_->jobs().wait_until(
      id, [](const JobInfo& j) { return j.state == JobState::Concluded; });
  ASSERT_TRUE(gone.ok());
  for (int i = 0; i < 200 && plane_->jobs().info(id).ok(); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(plane_->jobs().info(id).ok()) << "auto-dismissed";
  EXPECT_EQ(backing_of("top"), "");
}

}  // namespace
}  // namespace chainfs::testing
