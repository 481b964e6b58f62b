// Driver::reopen of the file, raw and fault drivers: the access mode switches on the same open
// file (no fd leaked, same inode), capabilities follow, a path that now names another file is
// refused, and the filters refuse read-write over a child that does not take writes.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "tests/unit/drivers/driver_test_util.h"

namespace chainfs {
namespace {

using namespace testing_util;

int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

class DriverReopenTest : public EngineGraphTest {};

TEST_P(DriverReopenTest, File_ReadWriteThenReadOnly_WritesLandAndCapabilitiesFollow) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 16384);
  NodeRef node = must(graph_.open_named_node(file_spec("img", path, /*read_only=*/true)));
  EXPECT_FALSE(node->capabilities().writable);
  const int fds = open_fds();

  ASSERT_OK(node->driver().reopen(false));
  Capabilities caps = node->capabilities();
  EXPECT_TRUE(caps.writable);
  EXPECT_TRUE(caps.discard);
  EXPECT_TRUE(caps.truncate_grow);
  std::vector<std::byte> data(4096, std::byte{0x42});
  ASSERT_OK(node->write(4096, data));
  ASSERT_OK(node->write_zeroes(8192, 4096));
  EXPECT_EQ(host_bytes(path, 4096, 4096), data) << "written through the reopened fd";

  ASSERT_OK(node->driver().reopen(true));
  EXPECT_FALSE(node->capabilities().writable);
  EXPECT_EQ(node->write(0, data).error().code, Errc::ReadOnly);
  EXPECT_EQ(node->truncate(100).error().code, Errc::ReadOnly);
  EXPECT_EQ(read(*node, 4096, 4096), data);
  EXPECT_EQ(read(*node, 8192, 4096), std::vector<std::byte>(4096));
  EXPECT_EQ(read(*node, 0, 4096), pattern(0, 4096));
  EXPECT_EQ(open_fds(), fds) << "the old fd was replaced, not leaked";

  // Asking for the mode it is in is a no-op.
  ASSERT_OK(node->driver().reopen(true));
  EXPECT_EQ(open_fds(), fds);
}

TEST_P(DriverReopenTest, File_PathNowNamingAnotherFile_IsRefusedAndTheOldFileStaysOpen) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 8192);
  NodeRef node = must(graph_.open_named_node(file_spec("img", path, /*read_only=*/true)));
  // Another program replaces the file under its name.
  const std::string other = dir_.file("b.img");
  {
    std::FILE* f = std::fopen(other.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("another file", f);
    std::fclose(f);
  }
  ASSERT_EQ(::rename(other.c_str(), path.c_str()), 0);

  auto refused = node->driver().reopen(false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::Busy);
  EXPECT_NE(refused.error().message.find("another file"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find(path), std::string::npos) << refused.error().message;
  EXPECT_FALSE(node->capabilities().writable);
  EXPECT_EQ(read(*node, 0, 8192), pattern(0, 8192)) << "still the file it opened";
}

TEST_P(DriverReopenTest, File_MissingPath_IsRefusedWithNotFound) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 8192);
  NodeRef node = must(graph_.open_named_node(file_spec("img", path, /*read_only=*/true)));
  ASSERT_EQ(::unlink(path.c_str()), 0);
  auto refused = node->driver().reopen(false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::NotFound) << refused.error().message;
  EXPECT_FALSE(node->capabilities().writable);
  EXPECT_EQ(read(*node, 0, 8192), pattern(0, 8192));
}

TEST_P(DriverReopenTest, Raw_FollowsItsFileChildAndRefusesReadWriteOverAReadOnlyOne) {
  const std::string path = dir_.file("a.raw");
  write_pattern_file(path, 8192);
  NodeRef raw = must(graph_.open_named_node(raw_spec("img", path, /*read_only=*/true)));
  NodeRef file = must(graph_.find("img.file"));
  EXPECT_FALSE(raw->capabilities().writable);

  auto refused = raw->driver().reopen(false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::ReadOnly);
  EXPECT_NE(refused.error().message.find("img.file"), std::string::npos) << refused.error().message;

  ASSERT_OK(file->driver().reopen(false));  // the graph reopens the child first
  ASSERT_OK(raw->driver().reopen(false));
  EXPECT_TRUE(raw->capabilities().writable);
  std::vector<std::byte> data(512, std::byte{7});
  ASSERT_OK(raw->write(512, data));
  EXPECT_EQ(host_bytes(path, 512, 512), data);

  ASSERT_OK(raw->driver().reopen(true));  // then the child after it
  ASSERT_OK(file->driver().reopen(true));
  EXPECT_FALSE(raw->capabilities().writable);
  EXPECT_EQ(raw->write(0, data).error().code, Errc::ReadOnly);
}

TEST_P(DriverReopenTest, Fault_FollowsItsChild) {
  const std::string path = dir_.file("a.raw");
  write_pattern_file(path, 8192);
  NodeRef base = must(graph_.open_named_node(raw_spec("base", path, /*read_only=*/true)));
  NodeSpec spec = fault_spec("flaky", "base", {});
  spec.read_only = true;
  NodeRef flaky = must(graph_.open_named_node(spec));
  EXPECT_EQ(flaky->driver().reopen(false).error().code, Errc::ReadOnly);

  ASSERT_OK(must(graph_.find("base.file"))->driver().reopen(false));
  ASSERT_OK(base->driver().reopen(false));
  ASSERT_OK(flaky->driver().reopen(false));
  EXPECT_TRUE(flaky->capabilities().writable);
  std::vector<std::byte> data(512, std::byte{9});
  ASSERT_OK(flaky->write(0, data));
  EXPECT_EQ(host_bytes(path, 0, 512), data);
  ASSERT_OK(flaky->driver().reopen(true));
  EXPECT_FALSE(flaky->capabilities().writable);
  EXPECT_EQ(flaky->write(0, data).error().code, Errc::ReadOnly);
}

std::string engine_name(const testing::TestParamInfo<bool>& param) {
  return param.param ? "Fallback" : "IoUring";
}
INSTANTIATE_TEST_SUITE_P(Engines, DriverReopenTest, testing::Values(false, true), engine_name);

}  // namespace
}  // namespace chainfs
