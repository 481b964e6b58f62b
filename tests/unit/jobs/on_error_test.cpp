// On-error policies on real chains: a `fault` node between top and mid fails one read (EIO or
// ENOSPC) while the job copies through it. report fails and leaves the graph alone; stop pauses
// with io-status set and resume retries; ignore goes on and ends failed; enospc stops only on
// ENOSPC.
#include "chain_fixture.h"

namespace chainfs::testing {
namespace {

constexpr uint64_t kSize = 16 * MiB;
// Inside mid's data, which every job here copies through the fault node.
constexpr uint64_t kFaultAt = 1 * MiB + 512 * KiB;

class OnErrorTest : public JobsFixture {
 protected:
  // Files: base <- mid <- top (qemu-img). Graph: top -> flaky (fault) -> mid -> base, every node
  // declared by name (held by the user), as a config with `backing: flaky` would open it.
  void open_flaky_chain(Errc error) {
    dir_.create("base", kSize);
    dir_.io("base", {"write -P 0x11 0 4M", "write -P 0x12 8M 2M"});
    dir_.create("mid", kSize, "base");
    dir_.io("mid", {"write -P 0x21 1M 2M", "write -P 0x22 9M 64k"});
    dir_.create("top", kSize, "mid");
    dir_.io("top", {"write -P 0x31 0 256k"});
    expected_ = dir_.raw_view("top");
    open_graph();
    auto open = [&](NodeSpec spec) {
      auto n = graph_->open_named_node(spec);
      ASSERT_TRUE(n.ok()) << spec.name << ": " << n.error().message;
    };
    open({.name = "base", .driver = "qcow2", .file = dir_.file("base.qcow2"), .backing = ""});
    open({.name = "mid", .driver = "qcow2", .file = dir_.file("mid.qcow2"), .backing = "base"});
    FaultRule rule;
    rule.op = FaultRule::Op::Read;
    rule.offset = kFaultAt;
    rule.length = 512;
    rule.error = error;
    rule.count = 1;
    open({.name = "flaky", .driver = "fault", .child = "mid", .rules = {rule}});
    open({.name = "top", .driver = "qcow2", .file = dir_.file("top.qcow2"), .backing = "flaky"});
    ASSERT_TRUE(graph_->add_chain("vm", node("top")).ok());
  }

  std::vector<std::byte> expected_;
};

TEST_F(OnErrorTest, Report_FailsTheJobAndLeavesTheGraphUnchanged) {
  open_flaky_chain(Errc::Io);
  const std::string id = start("stream", "top base=base");
  const JobInfo info = wait_concluded(id);
  ASSERT_TRUE(info.error);
  EXPECT_NE(info.error->find("fault injected by node 'flaky'"), std::string::npos) << *info.error;
  EXPECT_EQ(info.io_status, IoStatus::Ok);
  EXPECT_EQ(backing_of("top"), "flaky");
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
  EXPECT_TRUE(wait_log("job stream0: ended without changing the graph"));
}

TEST_F(OnErrorTest, Stop_PausesWithIoStatusFailed_ResumeRetriesAndFinishes) {
  open_flaky_chain(Errc::Io);
  const std::string id = start("stream", "top base=base on-error=stop");
  const JobInfo stopped = wait_state(id, JobState::Paused);
  EXPECT_EQ(stopped.io_status, IoStatus::Failed);
  const std::string yaml = *plane_->jobs().status_yaml(id);
  EXPECT_NE(yaml.find("io-status: failed"), std::string::npos) << yaml;
  EXPECT_TRUE(wait_log("job stream0: stopped by its on-error policy (failed)"));
  run("job", "resume " + id);
  expect_completed(id);
  EXPECT_EQ(plane_->jobs().info(id)->io_status, IoStatus::Ok);
  EXPECT_EQ(backing_of("top"), "base");
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
}

TEST_F(OnErrorTest, Stop_CancelWhileStopped_EndsWithTheGraphUnchanged) {
  open_flaky_chain(Errc::Io);
  const std::string id = start("stream", "top base=base on-error=stop");
  wait_state(id, JobState::Paused);
  run("job", "cancel " + id);
  const JobInfo info = wait_concluded(id);
  EXPECT_EQ(info.error, std::optional<std::string>("job cancelled"));
  EXPECT_EQ(backing_of("top"), "flaky");
}

TEST_F(OnErrorTest, Ignore_GoesOnButEndsFailedWithTheGraphUnchanged) {
  open_flaky_chain(Errc::Io);
  const std::string id = start("stream", "top base=base on-error=ignore");
  const JobInfo info = wait_concluded(id);
  ASSERT_TRUE(info.error);
  EXPECT_NE(info.error->find("1 chunk(s) failed and were skipped"), std::string::npos)
      << *info.error;
  EXPECT_EQ(info.progress, kSize) << "it went on to the end";
  EXPECT_EQ(backing_of("top"), "flaky");
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
}

TEST_F(OnErrorTest, Enospc_ReportsAnEio) {
  open_flaky_chain(Errc::Io);
  const std::string id = start("stream", "top base=base on-error=enospc");
  const JobInfo info = wait_concluded(id);
  ASSERT_TRUE(info.error);
  EXPECT_EQ(backing_of("top"), "flaky");
}

TEST_F(OnErrorTest, Enospc_StopsOnNoSpaceWithIoStatusNospace) {
  open_flaky_chain(Errc::NoSpace);
  const std::string id = start("stream", "top base=base on-error=enospc");
  const JobInfo stopped = wait_state(id, JobState::Paused);
  EXPECT_EQ(stopped.io_status, IoStatus::NoSpace);
  run("job", "resume " + id);
  expect_completed(id);
  EXPECT_EQ(backing_of("top"), "base");
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
}

TEST_F(OnErrorTest, ActiveCommit_StopThenResume_CommitsEverything) {
  open_flaky_chain(Errc::Io);
  const std::string id = start("commit", "top base=base on-error=stop");
  EXPECT_EQ(plane_->jobs().info(id)->type, "active-commit");
  wait_state(id, JobState::Paused);
  run("job", "resume " + id);
  wait_state(id, JobState::Ready);
  run("job", "complete " + id);
  expect_completed(id);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"base"}));
  EXPECT_TRUE(same_bytes(read_node("base"), expected_));
  EXPECT_TRUE(listed("mid")) << "declared by name: the user still holds it";
}

TEST_F(OnErrorTest, Commit_ReportLeavesTheGraphUnchanged) {
  open_flaky_chain(Errc::Io);
  const std::string id = start("commit", "top base=base");
  const JobInfo info = wait_concluded(id);
  ASSERT_TRUE(info.error);
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
}

// A filter right above base is part of base's edge: a stream down to base keeps it.
TEST_F(OnErrorTest, StreamDownToBase_KeepsAFilterRightAboveBase) {
  dir_.create("base", kSize);
  dir_.io("base", {"write -P 0x11 0 4M"});
  dir_.create("mid", kSize, "base");
  dir_.io("mid", {"write -P 0x21 1M 2M"});
  dir_.create("top", kSize, "mid");
  const std::vector<std::byte> expected = dir_.raw_view("top");
  open_graph();
  auto open = [&](NodeSpec spec) {
    auto n = graph_->open_named_node(spec);
    ASSERT_TRUE(n.ok()) << spec.name << ": " << n.error().message;
  };
  open({.name = "base", .driver = "qcow2", .file = dir_.file("base.qcow2"), .backing = ""});
  open({.name = "slow", .driver = "fault", .child = "base"});
  open({.name = "mid", .driver = "qcow2", .file = dir_.file("mid.qcow2"), .backing = "slow"});
  open({.name = "top", .driver = "qcow2", .file = dir_.file("top.qcow2"), .backing = "mid"});
  ASSERT_TRUE(graph_->add_chain("vm", node("top")).ok());
  const std::string id = start("stream", "top base=base");
  expect_completed(id);
  EXPECT_EQ(backing_of("top"), "slow");
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "base"}));
  EXPECT_TRUE(same_bytes(read_node("top"), expected));
}

}  // namespace
}  // namespace chainfs::testing
