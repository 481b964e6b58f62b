// Several jobs on one chain: claims refuse the ones that conflict (EBUSY naming the holder), jobs
// on disjoint parts run side by side, and seed 002's pair (stream node4 down to node2 while
// node2 is committed into node0) ends with node0 directly under node4 in either order of
// completion, while readers of node4 see the same bytes throughout.
#include "chain_fixture.h"

namespace chainfs::testing {
namespace {

constexpr uint64_t kSize = 8 * MiB;

class OverlapTest : public JobsFixture {
 protected:
  // node0 <- node1 <- node2 <- node3 <- node4: node i writes 0x10+i over [i MiB, i+2 MiB), so
  // every layer hides part of the one below, and a little at the end.
  void make_five_nodes() {
    for (int i = 0; i < 5; ++i) {
      const std::string name = "node" + std::to_string(i);
      dir_.create(name, kSize, i ? "node" + std::to_string(i - 1) : "");
      dir_.io(name, {fmt::format("write -P {} {}M 2M", 0x10 + i, i),
                     fmt::format("write -P {} {}k 64k", 0x20 + i, 7 * 1024 + 64 * i)});
    }
    expected_ = dir_.raw_view("node4");
    open_writable_chain({"node0", "node1", "node2", "node3", "node4"});
  }

  // Readers of node4 that count any read differing from the expected view.
  void start_readers() {
    for (int t = 0; t < 2; ++t)
      readers_.emplace_back([this] {
        BlockHandle handle(node("node4"), false);
        std::vector<std::byte> buf(kSize);
        while (!stop_readers_.load()) {
          if (!handle.read(0, buf).ok() || std::memcmp(buf.data(), expected_.data(), kSize) != 0)
            bad_reads_.fetch_add(1);
          reads_.fetch_add(1);
        }
      });
  }
  // Waits until the readers made `n` reads in all (slow sanitizer builds may take a while).
  void wait_reads(int n) {
    for (int i = 0; i < 6000 && reads_.load() < n; ++i) std::this_thread::sleep_for(5ms);
  }
  void stop_readers() {
    stop_readers_ = true;
    for (auto& t : readers_) t.join();
    readers_.clear();
  }
  void TearDown() override {
    if (!readers_.empty()) stop_readers();
    JobsFixture::TearDown();
  }

  std::vector<std::byte> expected_;
  std::vector<std::thread> readers_;
  std::atomic<bool> stop_readers_{false};
  std::atomic<int> reads_{0}, bad_reads_{0};
};

enum class First { Stream, Commit };

class Seed002 : public OverlapTest, public ::testing::WithParamInterface<First> {};

TEST_P(Seed002, StreamAndCommitOfTheMiddle_EndWithNode0DirectlyUnderNode4) {
  make_five_nodes();
  start_readers();
  wait_reads(1);
  const std::string stream = start("stream", "node4 base=node2 auto-finalize=off");
  const std::string commit = start("commit", "node2 base=node0 auto-finalize=off");
  EXPECT_EQ(plane_->jobs().info(commit)->type, "commit");
  wait_state(stream, JobState::Pending);
  wait_state(commit, JobState::Pending);
  const bool stream_first = GetParam() == First::Stream;
  run("job", "finalize " + (stream_first ? stream : commit));
  if (stream_first)
    EXPECT_EQ(chain_layers(), (std::vector<std::string>{"node4", "node2", "node1", "node0"}));
  else
    EXPECT_EQ(chain_layers(), (std::vector<std::string>{"node4", "node3", "node0"}));
  run("job", "finalize " + (stream_first ? commit : stream));
  EXPECT_EQ(wait_concluded(stream).error, std::nullopt);
  EXPECT_EQ(wait_concluded(commit).error, std::nullopt);

  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"node4", "node0"}));
  for (const char* gone : {"node1", "node2", "node3"}) EXPECT_FALSE(listed(gone)) << gone;
  wait_reads(reads_.load() + 2);  // some reads after both changes too
  stop_readers();
  EXPECT_GT(reads_.load(), 0);
  EXPECT_EQ(bad_reads_.load(), 0) << "node4's view changed while the jobs ran";
  EXPECT_TRUE(same_bytes(read_node("node4"), expected_));

  close_graph();
  EXPECT_EQ(dir_.chain_files("node4"), (std::vector<std::string>{"node4.qcow2", "node0.qcow2"}));
  dir_.write_raw("expected.raw", expected_);
  EXPECT_EQ(dir_.sh("qemu-img compare -q -f raw -F qcow2 expected.raw node4.qcow2"), 0);
  EXPECT_EQ(dir_.sh("qemu-img check -q node0.qcow2 && qemu-img check -q node4.qcow2"), 0);
}

INSTANTIATE_TEST_SUITE_P(BothOrders, Seed002, ::testing::Values(First::Stream, First::Commit),
                         [](const ::testing::TestParamInfo<First>& param) {
                           return param.param == First::Stream ? "StreamFinalizedFirst"
                                                               : "CommitFinalizedFirst";
                         });

TEST_F(OverlapTest, Seed002_BothFinishingOnTheirOwn_EndTheSame) {
  make_five_nodes();
  start_readers();
  wait_reads(1);
  const std::string stream = start("stream", "node4 base=node2");
  const std::string commit = start("commit", "node2 base=node0");
  expect_completed(stream);
  expect_completed(commit);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"node4", "node0"}));
  stop_readers();
  EXPECT_EQ(bad_reads_.load(), 0);
  EXPECT_TRUE(same_bytes(read_node("node4"), expected_));
}

TEST_F(OverlapTest, DisjointSubChains_RunSideBySide) {
  make_five_nodes();
  const std::string stream = start("stream", "node4 base=node2");
  const std::string commit = start("commit", "node1 base=node0");
  expect_completed(stream);
  expect_completed(commit);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"node4", "node2", "node0"}));
  EXPECT_TRUE(same_bytes(read_node("node4"), expected_));
}

TEST_F(OverlapTest, OverlappingJobs_AreRefusedWithEbusyNamingTheHolder) {
  make_five_nodes();
  const std::string stream = start("stream", "node4 speed=64K");  // claims node3 .. node0
  Error e = refused("commit", "node2 base=node0");
  EXPECT_EQ(e.code, Errc::Busy);
  EXPECT_NE(e.message.find("job stream0"), std::string::npos) << e.message;
  EXPECT_TRUE(log_contains("refused (EBUSY)"));
  e = refused("commit", "node4");  // the stream's top
  EXPECT_EQ(e.code, Errc::Busy);
  e = refused("stream", "node3");
  EXPECT_EQ(e.code, Errc::Busy);
  EXPECT_EQ(plane_->jobs().list().size(), 1u) << "refused jobs are not listed";
  // The refused ones used up no default id.
  run("job", "cancel " + stream);
  wait_concluded(stream);
  EXPECT_EQ(start("commit", "node2 base=node0"), "commit1");
}

TEST_F(OverlapTest, ClaimsAreReleasedWhenAJobEnds_SoTheNextOneStarts) {
  make_five_nodes();
  const std::string first = start("commit", "node3 base=node1");
  expect_completed(first);
  EXPECT_TRUE(node("node1")->claims().empty());
  const std::string second = start("stream", "node4 base=node1");
  expect_completed(second);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"node4", "node1", "node0"}));
  EXPECT_TRUE(same_bytes(read_node("node4"), expected_));
}

}  // namespace
}  // namespace chainfs::testing
