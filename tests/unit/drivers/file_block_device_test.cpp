// file driver over a block device (a loop device over a temporary file): raw images on LVM
// volumes or disks go this way. Needs root and /dev/loop-control; skipped with a reason otherwise.
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include "tests/unit/drivers/driver_test_util.h"

namespace chainfs {
namespace {

using namespace testing_util;

// A loop device bound to a file; it detaches itself when its last fd closes (AUTOCLEAR).
class LoopDevice {
 public:
  // Empty path() and a reason in why() if no loop device could be set up.
  explicit LoopDevice(const std::string& backing) {
    int control = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (control < 0) {
      why_ = std::string("/dev/loop-control: ") + std::strerror(errno);
      return;
    }
    int backing_fd = ::open(backing.c_str(), O_RDWR | O_CLOEXEC);
    for (int attempt = 0; attempt < 8 && path_.empty(); ++attempt) {
      int index = ::ioctl(control, LOOP_CTL_GET_FREE);
      if (index < 0) {
        why_ = std::string("LOOP_CTL_GET_FREE: ") + std::strerror(errno);
        break;
      }
      std::string candidate = "/dev/loop" + std::to_string(index);
      int fd = ::open(candidate.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) {
        why_ = candidate + ": " + std::strerror(errno);
        break;
      }
      loop_config config{};
      config.fd = static_cast<uint32_t>(backing_fd);
      config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
      if (::ioctl(fd, LOOP_CONFIGURE, &config) == 0) {
        fd_ = fd;
        path_ = candidate;
      } else {
        why_ = std::string("LOOP_CONFIGURE: ") + std::strerror(errno);
        ::close(fd);
        if (errno != EBUSY) break;  // someone else took that device: try the next free one
      }
    }
    ::close(backing_fd);
    ::close(control);
  }
  ~LoopDevice() {
    if (fd_ >= 0) ::close(fd_);
  }
  const std::string& path() const { return path_; }
  const std::string& why() const { return why_; }

 private:
  int fd_ = -1;
  std::string path_;
  std::string why_;
};

TEST(FileDriverBlockDevice, ReadsWritesAndZeroesButNeverResizes) {
  TempDir dir;
  const std::string backing = dir.file("disk.img");
  write_pattern_file(backing, 4 << 20);
  LoopDevice loop(backing);
  if (loop.path().empty()) GTEST_SKIP() << "no loop device: " << loop.why();

  Graph graph;
  NodeRef node = must(graph.open_named_node(file_spec("dev", loop.path())));
  EXPECT_EQ(node->size(), 4u << 20);
  Capabilities caps = node->capabilities();
  EXPECT_TRUE(caps.writable);
  EXPECT_FALSE(caps.truncate_grow);
  EXPECT_FALSE(caps.truncate_shrink);

  std::vector<std::byte> got(10000);
  ASSERT_OK(node->read(12345, got));
  EXPECT_EQ(got, pattern(12345, got.size()));

  std::vector<std::byte> data(8192, std::byte{0x7e});
  ASSERT_OK(node->write(1 << 20, data));
  ASSERT_OK(node->flush());
  ASSERT_OK(node->read(1 << 20, got));
  EXPECT_EQ(std::vector<std::byte>(got.begin(), got.begin() + 8192), data);

  // Unaligned for the device: ZERO_RANGE refuses it, a later method must still zero it.
  ASSERT_OK(node->write_zeroes(100, 1000));
  ASSERT_OK(node->read(0, got));
  EXPECT_EQ(std::vector<std::byte>(got.begin(), got.begin() + 100), pattern(0, 100));
  EXPECT_EQ(std::vector<std::byte>(got.begin() + 100, got.begin() + 1100),
            std::vector<std::byte>(1000, std::byte{0}));
  EXPECT_EQ(std::vector<std::byte>(got.begin() + 1100, got.end()), pattern(1100, 10000 - 1100));

  ASSERT_OK(node->write_zeroes(2 << 20, 1 << 20));
  ASSERT_OK(node->read(2 << 20, got));
  EXPECT_EQ(got, std::vector<std::byte>(got.size(), std::byte{0}));
  EXPECT_OK(node->discard(3 << 20, 4096));

  auto resized = node->truncate(8 << 20);
  ASSERT_FALSE(resized.ok());
  EXPECT_EQ(resized.error().code, Errc::Unsupported);
  EXPECT_EQ(node->size(), 4u << 20);
  EXPECT_EQ(must(node->block_status(0, 4 << 20)).kind, Alloc::Data);
  EXPECT_EQ(must(node->allocated_bytes()), 4u << 20);
}

}  // namespace
}  // namespace chainfs
