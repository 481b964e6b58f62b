// raw driver: a format node mapped 1:1 onto its protocol node.
#include "tests/unit/drivers/driver_test_util.h"

namespace chainfs {
namespace {

using namespace testing_util;

class RawDriverTest : public testing::Test {
 protected:
  TempDir dir_;
  Graph graph_;
};

TEST_F(RawDriverTest, OverFile_ReadsAndWritesTheHostBytes) {
  const std::string path = dir_.file("disk.raw");
  write_pattern_file(path, 3 << 20);
  NodeRef raw = must(graph_.open_named_node(raw_spec("disk", path)));
  ASSERT_EQ(raw->driver_name(), "raw");
  ASSERT_NE(raw->file(), nullptr);
  EXPECT_EQ(raw->file()->name(), "disk.file");
  EXPECT_EQ(raw->size(), 3u << 20);
  EXPECT_EQ(raw->filename(), path);

  std::vector<std::byte> got(100000);
  ASSERT_OK(raw->read(12345, got));
  EXPECT_EQ(got, pattern(12345, got.size()));

  std::vector<std::byte> data(70000, std::byte{0x5c});
  ASSERT_OK(raw->write(1000001, data));
  ASSERT_OK(raw->flush());
  EXPECT_EQ(host_bytes(path, 1000001, data.size()), data);
  EXPECT_EQ(host_bytes(path, 1000000, 1), pattern(1000000, 1));

  // Batched I/O reaches the file as one batch.
  std::vector<std::byte> a(4096), b(4096);
  IoOp ops[] = {{IoOp::Kind::Read, 0, a.data(), a.size()},
                {IoOp::Kind::Read, 1000001, b.data(), b.size()}};
  ASSERT_OK(raw->submit(ops));
  EXPECT_EQ(a, pattern(0, 4096));
  EXPECT_EQ(b, std::vector<std::byte>(4096, std::byte{0x5c}));
}

TEST_F(RawDriverTest, Capabilities_AreTheFilesWithoutBacking) {
  const std::string path = dir_.file("disk.raw");
  write_pattern_file(path, 1 << 20);
  NodeRef raw = must(graph_.open_named_node(raw_spec("disk", path)));
  Capabilities caps = raw->capabilities();
  EXPECT_TRUE(caps.writable);
  EXPECT_TRUE(caps.discard);
  EXPECT_TRUE(caps.write_zeroes);
  EXPECT_TRUE(caps.truncate_grow);
  EXPECT_FALSE(caps.has_backing);
  EXPECT_FALSE(caps.persists_backing);
  EXPECT_FALSE(raw->driver().backing_reference().has_value());
}

TEST_F(RawDriverTest, DiscardZeroesTruncateAndStatus_ReachTheFile) {
  const std::string path = dir_.file("disk.raw");
  write_pattern_file(path, 1 << 20);
  NodeRef raw = must(graph_.open_named_node(raw_spec("disk", path)));

  ASSERT_OK(raw->discard(0, 512 << 10));
  BlockStatus hole = must(raw->block_status(0, 1 << 20));
  EXPECT_EQ(hole.kind, Alloc::Zero);
  EXPECT_EQ(hole.length, 512u << 10);
  BlockStatus data = must(raw->block_status(512 << 10, 512 << 10));
  EXPECT_EQ(data.kind, Alloc::Data);
  EXPECT_EQ(must(raw->allocated_bytes()), 512u << 10);

  ASSERT_OK(raw->write_zeroes(600000, 1000));
  EXPECT_EQ(host_bytes(path, 600000, 1000), std::vector<std::byte>(1000, std::byte{0}));
  EXPECT_EQ(host_bytes(path, 601000, 10), pattern(601000, 10));

  ASSERT_OK(raw->truncate(2 << 20));
  EXPECT_EQ(raw->size(), 2u << 20);
  EXPECT_EQ(raw->file()->size(), 2u << 20);
  EXPECT_EQ(host_size(path), 2u << 20);
}

TEST_F(RawDriverTest, ReadOnly_RefusesWritesAndSaysSo) {
  const std::string path = dir_.file("disk.raw");
  write_pattern_file(path, 65536);
  NodeRef raw = must(graph_.open_named_node(raw_spec("disk", path, /*read_only=*/true)));
  EXPECT_FALSE(raw->capabilities().writable);
  std::vector<std::byte> data(16, std::byte{1});
  auto refused = raw->write(0, data);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::ReadOnly);
  std::vector<std::byte> got(65536);
  ASSERT_OK(raw->read(0, got));
  EXPECT_EQ(got, pattern(0, 65536));
}

}  // namespace
}  // namespace chainfs
