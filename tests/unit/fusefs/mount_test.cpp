// A real mount inside the test process (needs root and /dev/fuse): what only a mount can show and
// the integration scripts cannot provoke — the graph changing a node's data behind the kernel's
// page cache (GraphEvent::DataChanged, as a job's final graph change emits it), and handles that
// outlive a node's listing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "fusefs/mount.h"
#include "fusefs_test_util.h"

namespace chainfs::fusefs {
namespace {

using testing::byte_at;
using testing::eventually;

using testing::TempFolder;

class LiveMount : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount";
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/fuse";
    if (std::system("command -v fusermount3 >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "fusermount3 is not installed";
    image = dir.raw_image("disk.raw", 1 << 20);
    int fd = ::open(image.c_str(), O_WRONLY);
    std::string a(1 << 20, 'A');
    ASSERT_EQ(::pwrite(fd, a.data(), a.size(), 0), static_cast<ssize_t>(a.size()));
    ::close(fd);
    ASSERT_TRUE(graph.open_image(ImageSpec{image, "vm", "disk", false}).ok());
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

  void TearDown() override {
    if (!server.joinable()) return;
    std::string cmd = "fusermount3 -u '" + mnt + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    server.join();
    EXPECT_TRUE(served);
    mount.reset();
  }

  TempFolder dir;
  std::string image;
  std::string mnt;
  Graph graph;
  std::unique_ptr<FuseMount> mount;
  std::thread server;
  bool served = false;
};

TEST_F(LiveMount, DataChangedEvent_DropsTheKernelsCachedPages) {
  int fd = ::open((mnt + "/nodes/disk").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string buf(65536, '\0');
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size()));
  EXPECT_EQ(buf[0], 'A');

  // Change the node's bytes behind the kernel, as a job would, and say so.
  NodeRef node = *graph.find("disk");
  auto writer = graph.open_handle(node, true);
  ASSERT_TRUE(writer.ok());
  std::string b(65536, 'B');
  ASSERT_TRUE(writer->write(0, std::as_bytes(std::span(b))).ok());
  graph.notify({GraphEvent::Kind::DataChanged, "disk", node->id()});

  EXPECT_TRUE(eventually([&] { return byte_at(fd, 0) == 'B'; }, 20))
      << "the open file still shows the old bytes";
  EXPECT_EQ(byte_at(fd, 65535), 'B');
  ::close(fd);
}

TEST_F(LiveMount, OpenHandleKeepsAnUnlistedNodeReadable) {
  int fd = ::open((mnt + "/nodes/disk").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(graph.remove_chain("vm").ok());
  struct stat st {};
  EXPECT_NE(::stat((mnt + "/nodes/disk").c_str(), &st), 0);  // no longer listed
  EXPECT_EQ(errno, ENOENT);
  EXPECT_NE(::stat((mnt + "/chains/vm").c_str(), &st), 0);
  ASSERT_EQ(::fstat(fd, &st), 0);  // but the handle still works
  EXPECT_EQ(st.st_size, 1 << 20);
  EXPECT_EQ(byte_at(fd, 12345), 'A');
  ::close(fd);
  // The node closed with its last handle: the image is free again.
  EXPECT_TRUE(eventually([&] { return !graph.find("disk").ok(); }, 20));
}

TEST_F(LiveMount, ConcurrentReadersGetTheirOwnBytes) {
  // Eight threads read their own 128 KiB block of one node through their own O_DIRECT fds.
  NodeRef node = *graph.find("disk");
  auto writer = graph.open_handle(node, true);
  ASSERT_TRUE(writer.ok());
  for (int i = 0; i < 8; ++i) {
    std::string block(128 << 10, static_cast<char>('a' + i));
    ASSERT_TRUE(
        writer->write(static_cast<uint64_t>(i) * block.size(), std::as_bytes(std::span(block)))
            .ok());
  }
  std::vector<std::thread> readers;
  std::atomic<int> wrong{0};
  for (int i = 0; i < 8; ++i)
    readers.emplace_back([&, i] {
      int fd = ::open((mnt + "/nodes/disk").c_str(), O_RDONLY | O_DIRECT);
      void* p = nullptr;
      if (fd < 0 || ::posix_memalign(&p, 4096, 128 << 10) != 0) {
        ++wrong;
        return;
      }
      for (int round = 0; round < 20; ++round) {
        ssize_t n = ::pread(fd, p, 128 << 10, static_cast<off_t>(i) * (128 << 10));
        const char* c = static_cast<const char*>(p);
        if (n != (128 << 10) || c[0] != 'a' + i || c[(128 << 10) - 1] != 'a' + i) ++wrong;
      }
      std::free(p);
      ::close(fd);
    });
  for (auto& t : readers) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace chainfs::fusefs
