// Writing: a seeded random sequence of writes, discards, zeroings and flushes applied to a qcow2
// node and to a plain reference buffer; afterwards `qemu-img check` must be clean and
// `qemu-img compare` must find the image identical to the reference.
#include <gtest/gtest.h>

#include "blockcore/drivers/qcow2/create.h"
#include "qcow2_test_util.h"

namespace chainfs {
namespace {

using namespace qcow2_test;

struct WriteVariant {
  const char* name;
  const char* setup;  // shell commands run in the temp folder; must create image.qcow2
  uint64_t size;
  int operations;
};

class Qcow2Write : public ::testing::TestWithParam<WriteVariant> {};

void apply_random_operations(Node& node, std::vector<std::byte>& reference, uint64_t seed,
                             int operations) {
  std::mt19937_64 rng(seed);
  const uint64_t size = reference.size();
  std::vector<std::byte> buf;
  for (int i = 0; i < operations; ++i) {
    const unsigned kind = rng() % 10;
    uint64_t length = 1 + rng() % (rng() % 4 == 0 ? (3u << 20) : 70000u);
    length = std::min(length, size);
    const uint64_t offset = rng() % (size - length + 1);
    if (kind < 6) {
      buf.resize(length);
      fill_random(rng, buf.data(), length);
      auto r = node.write(offset, buf);
      ASSERT_TRUE(r.ok()) << "write " << offset << "+" << length << ": " << r.error().message;
      std::copy(buf.begin(), buf.end(), reference.begin() + offset);
    } else if (kind < 7) {
      auto r = node.discard(offset, length);
      ASSERT_TRUE(r.ok()) << "discard: " << r.error().message;
      std::fill_n(reference.begin() + offset, length, std::byte{0});
    } else if (kind < 9) {
      auto r = node.write_zeroes(offset, length);
      ASSERT_TRUE(r.ok()) << "write_zeroes: " << r.error().message;
      std::fill_n(reference.begin() + offset, length, std::byte{0});
    } else {
      auto r = node.flush();
      ASSERT_TRUE(r.ok()) << "flush: " << r.error().message;
    }
    if (i % 16 == 15) {  // spot-check a random range through the node
      const uint64_t at = rng() % size;
      const uint64_t n = std::min<uint64_t>(size - at, 1 + rng() % 200000);
      std::vector<std::byte> got(n);
      ASSERT_TRUE(node.read(at, got).ok());
      ASSERT_TRUE(std::equal(got.begin(), got.end(), reference.begin() + at))
          << "after operation " << i << " at " << at;
    }
  }
}

TEST_P(Qcow2Write, RandomOperations_MatchReference_AndQemuImgCheckIsClean) {
  REQUIRE_QEMU_IMG();
  const WriteVariant& v = GetParam();
  TempDir dir;
  write_file(dir.file("base.raw"), mixed_content(v.size / 2 + 12345, 99));
  must_run("cd '" + dir.path() + "' && " + v.setup);
  const std::string image = dir.file("image.qcow2");
  must_run("qemu-img convert -O raw '" + image + "' '" + dir.file("before.raw") + "'");
  std::vector<std::byte> reference = read_file(dir.file("before.raw"));
  ASSERT_EQ(reference.size(), v.size);
  {
    // A small cache so that eviction and write-back ordering are exercised too.
    auto opened = open_chain(image, false, 64 << 10);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    Node& top = *(*opened)->top;
    ASSERT_FALSE(top.read_only());
    apply_random_operations(top, reference, 1234, v.operations);
    if (HasFatalFailure()) return;
    ASSERT_TRUE(top.flush().ok());
    auto again = read_all(top, 5);
    EXPECT_EQ(first_difference(again, reference), -1);
  }
  write_file(dir.file("reference.raw"), reference);
  std::string out;
  EXPECT_EQ(run("qemu-img check '" + image + "'", &out), 0) << out;
  EXPECT_EQ(
      run("qemu-img compare -f qcow2 -F raw '" + image + "' '" + dir.file("reference.raw") + "'",
          &out),
      0)
      << out;
}

INSTANTIATE_TEST_SUITE_P(
    Variants, Qcow2Write,
    ::testing::Values(
        WriteVariant{"v3_64k", "qemu-img create -f qcow2 image.qcow2 8M", 8 << 20, 240},
        WriteVariant{"v3_backing", "qemu-img create -f qcow2 -b base.raw -F raw image.qcow2 8M",
                     8 << 20, 240},
        WriteVariant{"v2_backing",
                     "qemu-img create -f qcow2 -o compat=0.10 -b base.raw -F raw image.qcow2 8M",
                     8 << 20, 160},
        WriteVariant{"v2_no_backing", "qemu-img create -f qcow2 -o compat=0.10 image.qcow2 8M",
                     8 << 20, 160},
        WriteVariant{"cluster512_refcount_growth",
                     "qemu-img create -f qcow2 -o cluster_size=512 image.qcow2 6M", 6 << 20, 120},
        WriteVariant{
            "cluster2m",
            "qemu-img create -f qcow2 -o cluster_size=2M -b base.raw -F raw image.qcow2 8M",
            8 << 20, 80},
        WriteVariant{"refcount1", "qemu-img create -f qcow2 -o refcount_bits=1 image.qcow2 8M",
                     8 << 20, 120},
        WriteVariant{"refcount64", "qemu-img create -f qcow2 -o refcount_bits=64 image.qcow2 8M",
                     8 << 20, 120},
        WriteVariant{"extended_l2",
                     "qemu-img create -f qcow2 -o extended_l2=on -b base.raw -F raw image.qcow2 8M",
                     8 << 20, 240},
        WriteVariant{
            "into_compressed_zlib",
            "qemu-img convert -c -f raw -O qcow2 base.raw c.qcow2 && qemu-img resize c.qcow2 8M "
            "&& mv c.qcow2 image.qcow2",
            8 << 20, 160},
        WriteVariant{
            "into_compressed_zstd",
            "qemu-img convert -c -o compression_type=zstd -f raw -O qcow2 base.raw c.qcow2 && "
            "qemu-img resize c.qcow2 8M && mv c.qcow2 image.qcow2",
            8 << 20, 160},
        WriteVariant{"preallocated",
                     "qemu-img create -f qcow2 -o preallocation=metadata image.qcow2 8M", 8 << 20,
                     160}),
    [](const ::testing::TestParamInfo<WriteVariant>& param) {
      return std::string(param.param.name);
    });

TEST(Qcow2Write, QemuIoWritesOnCreatedImage_ReadBackByUs) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  Qcow2CreateOptions options;
  options.path = dir.file("new.qcow2");
  options.size = 16 << 20;
  ASSERT_TRUE(qcow2_create(options).ok());
  must_run(
      "qemu-io -f qcow2 -c 'write -P 0xab 12345 300k' -c 'write -z 1M 128k' "
      "-c 'write -P 0xcd 15M 1M' '" +
      options.path + "'");
  must_run("qemu-img convert -O raw '" + options.path + "' '" + dir.file("ref.raw") + "'");
  auto opened = open_chain(options.path, true);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(first_difference(read_all(*(*opened)->top), read_file(dir.file("ref.raw"))), -1);
}

TEST(Qcow2Write, TruncateUp_GrowsL1_NewRangeReadsZeros) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  const std::string image = dir.file("a.qcow2");
  // 512-byte clusters: one L1 cluster maps 2 MiB... so growing to 64 MiB needs a bigger L1.
  must_run("qemu-img create -f qcow2 -o cluster_size=512 '" + image + "' 1M");
  std::vector<std::byte> reference(1 << 20);
  {
    auto opened = open_chain(image, false);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    Node& top = *(*opened)->top;
    std::mt19937_64 rng(3);
    std::vector<std::byte> data(300000);
    fill_random(rng, data.data(), data.size());
    ASSERT_TRUE(top.write(700000, data).ok());
    std::copy(data.begin(), data.end(), reference.begin() + 700000);
    ASSERT_TRUE(top.truncate(64 << 20).ok());
    reference.resize(64 << 20);
    ASSERT_TRUE(top.write((64 << 20) - 1000, {data.data(), 1000}).ok());
    std::copy_n(data.begin(), 1000, reference.end() - 1000);
    EXPECT_FALSE(top.truncate(1 << 20).ok());  // shrinking is refused
    ASSERT_TRUE(top.flush().ok());
  }
  write_file(dir.file("ref.raw"), reference);
  std::string out;
  EXPECT_EQ(run("qemu-img check '" + image + "'", &out), 0) << out;
  EXPECT_EQ(
      run("qemu-img compare -f qcow2 -F raw '" + image + "' '" + dir.file("ref.raw") + "'", &out),
      0)
      << out;
}

TEST(Qcow2Write, DiscardsWithoutFlush_DoNotGrowTheFileWithoutBound) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  const std::string image = dir.file("a.qcow2");
  must_run("qemu-img create -f qcow2 -o cluster_size=512 '" + image + "' 2M");
  {
    auto opened = open_chain(image, false);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    Node& top = *(*opened)->top;
    std::vector<std::byte> data(2 << 20, std::byte{0x6b});
    for (int round = 0; round < 8; ++round) {  // 4096 clusters freed per round
      ASSERT_TRUE(top.write(0, data).ok());
      ASSERT_TRUE(top.discard(0, data.size()).ok());
    }
    ASSERT_TRUE(top.flush().ok());
  }
  // Without early write-backs every round would take fresh clusters: 8 x 2 MiB.
  EXPECT_LT(std::filesystem::file_size(image), 6u * (2 << 20));
  std::string out;
  EXPECT_EQ(run("qemu-img check '" + image + "'", &out), 0) << out;
}

TEST(Qcow2Write, AllocatedBytes_FollowsWritesAndDiscards) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  const std::string image = dir.file("a.qcow2");
  must_run("qemu-img create -f qcow2 '" + image + "' 8M");
  auto opened = open_chain(image, false);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Node& top = *(*opened)->top;
  EXPECT_EQ(*top.allocated_bytes(), 0u);
  std::vector<std::byte> data(200 << 10, std::byte{1});
  ASSERT_TRUE(top.write(10, data).ok());  // touches 4 clusters
  EXPECT_EQ(*top.allocated_bytes(), 4u << 16);
  ASSERT_TRUE(top.discard(0, 2 << 20).ok());
  ASSERT_TRUE(top.flush().ok());
  EXPECT_EQ(*top.allocated_bytes(), 0u);
}

}  // namespace
}  // namespace chainfs
