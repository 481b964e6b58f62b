// Reading images that qemu-img made, in every variant the driver claims to read, compared byte for
// byte with `qemu-img convert -O raw` of the same image.
#include <gtest/gtest.h>

#include <random>

#include "qcow2_test_util.h"

namespace chainfs {
namespace {

using namespace qcow2_test;

constexpr size_t kSize = 4 << 20;

struct ReadVariant {
  const char* name;
  const char* convert;     // extra `qemu-img convert -O qcow2` arguments
  const char* after = "";  // qemu-io commands run on the image afterwards
};

class Qcow2Read : public ::testing::TestWithParam<ReadVariant> {};

// The name under which layer `i` refers to `below`: relative or absolute.
std::string below_name(const TempDir& dir, const std::string& below, bool absolute) {
  return absolute ? dir.file(below) : below;
}

void expect_same_as_qemu(const std::string& image, const std::string& dir) {
  const std::string reference = dir + "/reference.raw";
  must_run("qemu-img convert -O raw '" + image + "' '" + reference + "'");
  auto expected = read_file(reference);
  auto opened = open_chain(image, true);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Node& top = *(*opened)->top;
  ASSERT_EQ(top.size(), expected.size());
  auto got = read_all(top);
  EXPECT_EQ(first_difference(got, expected), -1);
}

TEST_P(Qcow2Read, MatchesQemuConvert) {
  REQUIRE_QEMU_IMG();
  const ReadVariant& v = GetParam();
  TempDir dir;
  const std::string raw = dir.file("source.raw"), image = dir.file("image.qcow2");
  write_file(raw, mixed_content(kSize, 42));
  must_run(std::string("qemu-img convert -f raw -O qcow2 ") + v.convert + " '" + raw + "' '" +
           image + "'");
  if (*v.after) must_run(std::string("qemu-io -f qcow2 ") + v.after + " '" + image + "'");
  std::string out;
  ASSERT_EQ(run("qemu-img check '" + image + "'", &out), 0) << out;
  expect_same_as_qemu(image, dir.path());
}

INSTANTIATE_TEST_SUITE_P(
    Variants, Qcow2Read,
    ::testing::Values(
        ReadVariant{"v3_64k", ""}, ReadVariant{"v2_compat010", "-o compat=0.10"},
        ReadVariant{"cluster512", "-o cluster_size=512"},
        ReadVariant{"cluster4k", "-o cluster_size=4096"},
        ReadVariant{"cluster2m", "-o cluster_size=2M"},
        ReadVariant{"refcount1", "-o refcount_bits=1"},
        ReadVariant{"refcount2", "-o refcount_bits=2"},
        ReadVariant{"refcount4", "-o refcount_bits=4"},
        ReadVariant{"refcount8", "-o refcount_bits=8"},
        ReadVariant{"refcount32", "-o refcount_bits=32"},
        ReadVariant{"refcount64", "-o refcount_bits=64"}, ReadVariant{"compressed_zlib", "-c"},
        ReadVariant{"compressed_zstd", "-c -o compression_type=zstd"},
        ReadVariant{"compressed_4k_clusters", "-c -o cluster_size=4096"},
        ReadVariant{"zero_clusters", "",
                    "-c 'write -z 0 1M' -c 'write -z 1536k 64k' -c 'write -z -u 3M 512k'"},
        ReadVariant{"extended_l2", "-o extended_l2=on",
                    "-c 'write -P 0x5a 70k 3k' -c 'write -z 131k 8k' -c 'write -z 1M 2k' "
                    "-c 'discard 2M 64k'"},
        ReadVariant{"extended_l2_compressed", "-c -o extended_l2=on,cluster_size=32k"},
        ReadVariant{"preallocation_metadata", "-o preallocation=metadata",
                    "-c 'write -P 0x33 100k 200k'"},
        ReadVariant{"lazy_refcounts_clean", "-o lazy_refcounts=on", "-c 'write -P 0x44 3M 300k'"}),
    [](const ::testing::TestParamInfo<ReadVariant>& param) {
      return std::string(param.param.name);
    });

TEST(Qcow2Read, BackingChain_RelativeAndAbsoluteNames_MatchQemuConvert) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  write_file(dir.file("base.raw"), mixed_content(kSize, 7));
  // Relative name without a backing format, then an absolute one with a format.
  must_run("cd '" + dir.path() + "' && qemu-img create -f qcow2 -b base.raw -F raw mid.qcow2");
  must_run("qemu-io -f qcow2 -c 'write -P 0x11 1000 70k' -c 'write -z 2M 128k' '" +
           dir.file("mid.qcow2") + "'");
  must_run("qemu-img create -f qcow2 -b '" + dir.file("mid.qcow2") + "' -F qcow2 '" +
           dir.file("top.qcow2") + "'");
  must_run("qemu-io -f qcow2 -c 'write -P 0x22 65000 10' -c 'discard 3M 512k' '" +
           dir.file("top.qcow2") + "'");
  expect_same_as_qemu(dir.file("top.qcow2"), dir.path());
}

TEST(Qcow2Read, EightLayerChain_MixedNamesRawBase_MatchesQemuConvert_AndWritesStayOnTop) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  write_file(dir.file("layer0.raw"), mixed_content(kSize, 11));
  std::mt19937_64 rng(8);
  for (int i = 1; i < 8; ++i) {
    const std::string below = i == 1 ? "layer0.raw" : "layer" + std::to_string(i - 1) + ".qcow2";
    const std::string name = below_name(dir, below, i % 2 == 0);
    const std::string format = i == 1 ? "raw" : "qcow2";
    const std::string me = dir.file("layer" + std::to_string(i) + ".qcow2");
    must_run("cd '" + dir.path() + "' && qemu-img create -f qcow2 -u -b '" + name + "' -F " +
             format + " '" + me + "' " + std::to_string(kSize));
    if (i % 3 == 0) {  // some layers record no backing format: it is probed
      auto opened = open_chain(me, false);
      ASSERT_TRUE(opened.ok()) << opened.error().message;
      ASSERT_TRUE((*opened)->top->driver().set_backing_reference(BackingReference{name, ""}).ok());
    }
    for (int w = 0; w < 3; ++w) {
      const uint64_t off = rng() % (kSize - 200000), len = 1 + rng() % 200000;
      must_run("qemu-io -f qcow2 -c 'write -P " + std::to_string(i * 16 + w) + " " +
               std::to_string(off) + " " + std::to_string(len) + "' '" + me + "'");
    }
  }
  const std::string top = dir.file("layer7.qcow2");
  expect_same_as_qemu(top, dir.path());
  must_run("qemu-img convert -O raw '" + dir.file("layer6.qcow2") + "' '" + dir.file("l6.raw") +
           "'");
  {
    auto opened = open_chain(top, false);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    Node& node = *(*opened)->top;
    std::vector<std::byte> data(300000, std::byte{0x5c});
    ASSERT_TRUE(node.write(123457, data).ok());
    ASSERT_TRUE(node.flush().ok());
  }
  must_run("qemu-img convert -O raw '" + dir.file("layer6.qcow2") + "' '" + dir.file("l6b.raw") +
           "'");
  EXPECT_EQ(first_difference(read_file(dir.file("l6.raw")), read_file(dir.file("l6b.raw"))), -1)
      << "a write through the top changed a lower layer";
  std::string out;
  EXPECT_EQ(run("qemu-img check '" + top + "'", &out), 0) << out;
}

TEST(Qcow2Read, BackingShorterThanOverlay_ReadsZerosPastItsEnd) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  std::vector<std::byte> base(1 << 20 | 512, std::byte{0x7e});
  write_file(dir.file("base.raw"), base);
  must_run("cd '" + dir.path() + "' && qemu-img create -f qcow2 -b base.raw -F raw top.qcow2 4M");
  must_run("qemu-io -f qcow2 -c 'write -P 0x01 3M 4k' '" + dir.file("top.qcow2") + "'");
  auto opened = open_chain(dir.file("top.qcow2"), true);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  auto got = read_all(*(*opened)->top);
  ASSERT_EQ(got.size(), 4u << 20);
  for (size_t i = 0; i < got.size(); ++i) {
    std::byte want = i < base.size()                              ? std::byte{0x7e}
                     : (i >= (3u << 20) && i < (3u << 20) + 4096) ? std::byte{0x01}
                                                                  : std::byte{0};
    ASSERT_EQ(got[i], want) << "at " << i;
  }
}

TEST(Qcow2Read, BlockStatus_ReportsDataZeroAndUnallocated) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  const std::string image = dir.file("a.qcow2");
  must_run("qemu-img create -f qcow2 '" + image + "' 4M");
  must_run("qemu-io -f qcow2 -c 'write 64k 64k' -c 'write -z 256k 128k' '" + image + "'");
  auto opened = open_chain(image, true);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Node& top = *(*opened)->top;
  auto st = top.block_status(0, 4 << 20);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->kind, Alloc::Unallocated);
  EXPECT_EQ(st->length, 64u << 10);
  st = top.block_status(64 << 10, 1 << 20);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->kind, Alloc::Data);
  EXPECT_EQ(st->length, 64u << 10);
  st = top.block_status(256 << 10, 1 << 20);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->kind, Alloc::Zero);
  EXPECT_EQ(st->length, 128u << 10);
  auto allocated = top.allocated_bytes();
  ASSERT_TRUE(allocated.ok());
  EXPECT_EQ(*allocated, 64u << 10);
}

}  // namespace
}  // namespace chainfs
