// Jobs through a real mount inside the test process (needs root and /dev/fuse): control files run
// through the mount's ControlPlane, jobs/ follows the JobManager, an open reader of a commit's base
// sees the bytes the job mirrors into it (the held invalidation), and the end of run() cancels the
// jobs that still run before the graph goes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "blockcore/drivers/qcow2/create.h"
#include "fusefs/mount.h"
#include "fusefs_test_util.h"

namespace chainfs::fusefs {
namespace {

using testing::byte_at;
using testing::eventually;

using testing::TempFolder;

constexpr uint64_t kSize = 16 << 20;  // several job windows (4 MiB)

class JobsMount : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount";
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/fuse";
    if (std::system("command -v fusermount3 >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "fusermount3 is not installed";
    // base (all 'b', declared by name: writable, a commit may write it) <- top (empty), chain vm.
    for (const char* name : {"base", "top"}) {
      Qcow2CreateOptions create;
      create.path = dir.path() + "/" + name + ".qcow2";
      create.size = kSize;
      ASSERT_TRUE(qcow2_create(create).ok());
    }
    auto base = graph.open_named_node(
        {"base", "qcow2", dir.path() + "/base.qcow2", "", false, std::string(), {}});
    ASSERT_TRUE(base.ok()) << base.error().message;
    {
      auto writer = graph.open_handle(*base, true);
      ASSERT_TRUE(writer.ok());
      std::string bytes(kSize, 'b');
      ASSERT_TRUE(writer->write(0, std::as_bytes(std::span(bytes))).ok());
    }
    auto top = graph.open_named_node(
        {"top", "qcow2", dir.path() + "/top.qcow2", "", false, std::string("base"), {}});
    ASSERT_TRUE(top.ok()) << top.error().message;
    ASSERT_TRUE(graph.add_chain("vm", *top).ok());

    mnt = dir.path() + "/mnt";
    ::mkdir(mnt.c_str(), 0755);
    MountOptions options;
    options.mountpoint = mnt;
    options.threads = 2;
    options.handle_signals = false;
    auto mounted = FuseMount::mount(graph, options);
    ASSERT_TRUE(mounted.ok()) << mounted.error().message;
    mount = std::move(*mounted);
    server = std::thread([this] { served = mount->run().ok(); });
    struct stat st {};
    ASSERT_EQ(::stat((mnt + "/graph.json").c_str(), &st), 0);
  }

  void TearDown() override { unmount(); }

  void unmount() {
    if (!server.joinable()) return;
    std::string cmd = "fusermount3 -u '" + mnt + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    server.join();
    EXPECT_TRUE(served);
  }

  // One write to control/<file> through one descriptor; returns "<errno> <read-back line>".
  std::string control(const std::string& file, const std::string& text) {
    int fd = ::open((mnt + "/control/" + file).c_str(), O_RDWR);
    if (fd < 0) return "open failed";
    ssize_t n = ::write(fd, text.data(), text.size());
    int err = n < 0 ? errno : 0;
    char buf[512] = {};
    ssize_t got = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    std::string back = got > 0 ? std::string(buf, static_cast<size_t>(got)) : "";
    if (!back.empty() && back.back() == '\n') back.pop_back();
    return std::to_string(err) + " " + back;
  }

  std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  TempFolder dir;
  std::string mnt;
  Graph graph;  // outlives the mount
  std::unique_ptr<FuseMount> mount;
  std::thread server;
  bool served = false;
};

TEST_F(JobsMount, ActiveCommit_ControlFilesJobFilesAndTheBasesCacheFollowTheJob) {
  EXPECT_EQ(control("commit", "top id=ac\n"), "0 ok ac");
  JobManager& jobs = mount->control_plane().jobs();
  auto ready = jobs.wait_until(
      "ac", [](const JobInfo& j) { return j.state == JobState::Ready; }, std::chrono::seconds(20));
  ASSERT_TRUE(ready.ok()) << ready.error().message;
  EXPECT_EQ(ready->type, "active-commit");
  EXPECT_EQ(read_file(mnt + "/jobs/ac"), *jobs.status_yaml("ac"));
  struct stat st {};
  EXPECT_EQ(::stat((mnt + "/jobs/ac").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);

  // A reader of base with base's bytes in the kernel's page cache, after the invalidations that
  // came with the job's state changes.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int base_fd = ::open((mnt + "/nodes/base").c_str(), O_RDONLY);
  ASSERT_GE(base_fd, 0);
  EXPECT_EQ(byte_at(base_fd, 0), 'b');
  // A guest write to top is mirrored into base by the job, behind the kernel's back and with no
  // state change; the open reader of base sees it within the invalidation period, without
  // reopening.
  int top_fd = ::open((mnt + "/nodes/top").c_str(), O_WRONLY);
  ASSERT_GE(top_fd, 0);
  ASSERT_EQ(::pwrite(top_fd, "Z", 1, 0), 1);
  ::close(top_fd);
  EXPECT_TRUE(eventually([&] { return byte_at(base_fd, 0) == 'Z'; }))
      << "the open base file still shows the bytes it had before the job mirrored the write";

  EXPECT_EQ(control("job", "complete ac\n"), "0 ok");
  ASSERT_TRUE(jobs.wait_concluded("ac", std::chrono::seconds(20)).ok());
  EXPECT_EQ(graph.chain("vm")->root->name(), "base");
  EXPECT_EQ(control("job", "dismiss ac\n"), "0 ok");
  EXPECT_TRUE(eventually([&] { return ::stat((mnt + "/jobs/ac").c_str(), &st) != 0; }));
  EXPECT_EQ(errno, ENOENT);
  ::close(base_fd);
}

TEST_F(JobsMount, RefusalsFailTheWriteWithTheErrno_AndReadBackTheReason) {
  EXPECT_EQ(control("stream", "nosuch\n"),
            std::to_string(ENOENT) + " error ENOENT: no node 'nosuch'");
  EXPECT_EQ(control("job", "cancel nosuch\n"),
            std::to_string(ENOENT) + " error ENOENT: no job 'nosuch'");
  std::string busy = control("node", "remove base\n");
  EXPECT_EQ(busy.rfind(std::to_string(EBUSY) + " error EBUSY: ", 0), 0u) << busy;
  std::string bad = control("stream", "top colour=red\n");
  EXPECT_EQ(bad.rfind(std::to_string(EINVAL) + " error EINVAL: ", 0), 0u) << bad;
}

TEST_F(JobsMount, EndOfServing_CancelsRunningJobs_GraphUnchanged) {
  EXPECT_EQ(control("stream", "top speed=64K id=slow\n"), "0 ok slow");
  JobManager& jobs = mount->control_plane().jobs();
  ASSERT_TRUE(
      jobs.wait_until(
              "slow", [](const JobInfo& j) { return j.progress > 0; }, std::chrono::seconds(20))
          .ok());
  unmount();  // run() returns: it cancels the job and waits for it
  auto info = jobs.info("slow");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, JobState::Concluded);
  ASSERT_TRUE(info->error.has_value());
  std::optional<ChainView> vm = graph.chain("vm");
  ASSERT_TRUE(vm.has_value());
  ASSERT_EQ(vm->layers.size(), 2u);
  EXPECT_EQ(vm->layers[1]->name(), "base");
}

}  // namespace
}  // namespace chainfs::fusefs
