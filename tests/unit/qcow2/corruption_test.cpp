// Untrusted input: one-byte corruptions of every metadata structure (header, extensions, L1, L2,
// refcount table, refcount block, compressed descriptors and data). The image is driven through
// qcow2::Image over an in-memory file: open, read everything, walk block status, write and flush
// a copy. Every outcome must be a refusal or an error for the bad range, never a crash (ASan and
// UBSan watch), a hang or a wild write; specific corruptions must give specific errors.
#include <gtest/gtest.h>

#include "blockcore/drivers/qcow2/format.h"
#include "blockcore/drivers/qcow2/image.h"
#include "qcow2_test_util.h"

namespace chainfs {
namespace {

using namespace qcow2_test;
using qcow2::Image;
using qcow2::MemoryHostFile;

struct Layout {
  uint64_t l1_offset, l2_offset, reftable_offset, refblock_offset, header_end;
};

Layout layout_of(const std::vector<std::byte>& img) {
  Layout l{};
  auto h = qcow2::parse_header_cluster(std::span(img).first(65536));
  EXPECT_TRUE(h.ok());
  l.l1_offset = h->l1_table_offset;
  l.l2_offset = qcow2::load_be64(img.data() + l.l1_offset) & qcow2::kL1OffsetMask;
  l.reftable_offset = h->refcount_table_offset;
  l.refblock_offset = qcow2::load_be64(img.data() + l.reftable_offset);
  l.header_end = h->header_length + 8;
  for (const auto& e : h->extensions) l.header_end += 8 + (e.data.size() + 7) / 8 * 8;
  return l;
}

// Exercises an image; returns the open error (empty when it opened).
std::string exercise(const std::vector<std::byte>& bytes) {
  qcow2::NoBackingReader backing;
  {
    MemoryHostFile file(bytes);
    auto image = Image::open(file, backing, {true, 0});
    if (!image.ok()) return image.error().message.empty() ? "?" : image.error().message;
    Image& img = **image;
    std::vector<std::byte> buf(std::min<uint64_t>(img.size(), 4 << 20));
    for (uint64_t off = 0; off < buf.size(); off += 65536)
      (void)img.read(off, {buf.data(), std::min<uint64_t>(65536, buf.size() - off)});
    for (uint64_t off = 0; off < img.size() && off < (64ull << 20);) {
      auto st = img.block_status(off, img.size() - off);
      if (!st.ok() || st->length == 0) break;
      off += st->length;
    }
    (void)img.allocated_bytes();
  }
  {
    MemoryHostFile file(bytes, 64 << 20);
    auto image = Image::open(file, backing, {false, 0});
    if (image.ok()) {
      Image& img = **image;
      std::vector<std::byte> data(70000, std::byte{0x42});
      for (uint64_t off : {uint64_t{0}, uint64_t{196608 + 100}, uint64_t{600000}})
        if (off + data.size() <= img.size()) (void)img.write(off, data);
      if (img.size() > 300000) (void)img.discard(0, 300000);
      (void)img.flush();
      (void)img.close();
    }
  }
  return {};
}

std::vector<std::byte> make_image(const TempDir& dir, const std::string& convert_args) {
  write_file(dir.file("src.raw"), mixed_content(320 << 10, 3));
  must_run("qemu-img convert -f raw -O qcow2 " + convert_args + " '" + dir.file("src.raw") + "' '" +
           dir.file("img.qcow2") + "'");
  must_run("qemu-img rebase -u -f qcow2 -b base.raw -F raw '" + dir.file("img.qcow2") + "'");
  return read_file(dir.file("img.qcow2"));
}

void corrupt_each_byte(const std::vector<std::byte>& image, uint64_t from, uint64_t to,
                       const char* what) {
  SCOPED_TRACE(what);
  for (uint64_t at = from; at < to && at < image.size(); ++at) {
    const uint8_t orig = static_cast<uint8_t>(image[at]);
    for (uint8_t v : {uint8_t(0xff), uint8_t(orig ^ 0x01), uint8_t(orig ^ 0x80)}) {
      if (v == orig) continue;
      auto bad = image;
      bad[at] = static_cast<std::byte>(v);
      exercise(bad);
    }
  }
}

TEST(Qcow2Corruption, EveryByteOfEveryMetadataStructure_NeverCrashes) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  auto image = make_image(dir, "");
  ASSERT_EQ(exercise(image), "");
  const Layout l = layout_of(image);
  corrupt_each_byte(image, 0, 112, "header");
  // Each extension's type and length, and the first bytes of its data.
  for (uint64_t at = 112; at + 8 <= l.header_end;) {
    corrupt_each_byte(image, at, at + 16, "header extensions");
    const uint64_t len = qcow2::load_be32(image.data() + at + 4);
    if (qcow2::load_be32(image.data() + at) == 0) break;
    at += 8 + (len + 7) / 8 * 8;
  }
  corrupt_each_byte(image, l.header_end, l.header_end + 8, "backing file name");
  corrupt_each_byte(image, l.l1_offset, l.l1_offset + 16, "L1 table");
  corrupt_each_byte(image, l.l2_offset, l.l2_offset + 96, "L2 table");
  corrupt_each_byte(image, l.reftable_offset, l.reftable_offset + 16, "refcount table");
  corrupt_each_byte(image, l.refblock_offset, l.refblock_offset + 24, "refcount block");
  auto compressed = make_image(dir, "-c");
  const Layout c = layout_of(compressed);
  corrupt_each_byte(compressed, c.l2_offset, c.l2_offset + 64, "compressed descriptors");
  const uint64_t coffset = qcow2::load_be64(compressed.data() + c.l2_offset) & ((1ull << 54) - 1);
  corrupt_each_byte(compressed, coffset, coffset + 48, "compressed data");
}

TEST(Qcow2Corruption, SpecificDamage_GivesSpecificErrors) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  write_file(dir.file("src.raw"), mixed_content(1 << 20, 3));
  must_run("qemu-img create -f qcow2 '" + dir.file("img.qcow2") + "' 2M");
  must_run("qemu-io -f qcow2 -c 'write -P 0x11 0 64k' '" + dir.file("img.qcow2") + "'");
  const auto image = read_file(dir.file("img.qcow2"));
  const Layout l = layout_of(image);
  qcow2::NoBackingReader backing;
  std::vector<std::byte> buf(65536);

  {  // magic
    auto bad = image;
    bad[0] = std::byte{'X'};
    MemoryHostFile file(bad);
    auto r = Image::open(file, backing, {true, 0});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("magic"), std::string::npos);
  }
  {  // header extension running past the cluster
    auto bad = image;
    qcow2::store_be32(bad.data() + 112 + 4, 0x7fffffff);
    MemoryHostFile file(bad);
    auto r = Image::open(file, backing, {true, 0});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("extension"), std::string::npos) << r.error().message;
  }
  {  // L2 entry with a reserved bit: EIO for that cluster only
    auto bad = image;
    bad[l.l2_offset + 7] |= std::byte{0x02};
    MemoryHostFile file(bad);
    auto img = Image::open(file, backing, {true, 0});
    ASSERT_TRUE(img.ok());
    auto r = (*img)->read(0, buf);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::Io);
    EXPECT_TRUE((*img)->read(65536, buf).ok());
  }
  {  // L1 entry not aligned: EIO for its whole range
    auto bad = image;
    bad[l.l1_offset + 6] |= std::byte{0x01};
    MemoryHostFile file(bad);
    auto img = Image::open(file, backing, {true, 0});
    ASSERT_TRUE(img.ok());
    auto r = (*img)->read(65536 * 3, buf);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::Io);
  }
  {  // refcount table entry damaged: allocation fails, nothing is written
    auto bad = image;
    bad[l.reftable_offset + 7] |= std::byte{0x01};
    MemoryHostFile file(bad);
    auto img = Image::open(file, backing, {false, 0});
    ASSERT_TRUE(img.ok());
    auto r = (*img)->write(1 << 20, buf);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::Io);
    EXPECT_EQ(first_difference(file.contents(), bad), -1);
  }
  {  // refcount block says the metadata is free: refuse to allocate over it
    auto bad = image;
    std::fill_n(bad.begin() + static_cast<long>(l.refblock_offset), 64, std::byte{0});
    MemoryHostFile file(bad);
    auto img = Image::open(file, backing, {false, 0});
    ASSERT_TRUE(img.ok());
    auto r = (*img)->write(1 << 20, buf);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("corrupt"), std::string::npos) << r.error().message;
    EXPECT_EQ(first_difference(file.contents(), bad), -1);
  }
}

TEST(Qcow2Corruption, CompressedDescriptorAndData_GiveEio) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  auto image = make_image(dir, "-c");
  const Layout l = layout_of(image);
  qcow2::NoBackingReader backing;
  std::vector<std::byte> buf(65536);
  // Find the first compressed entry.
  uint64_t index = 0, entry = 0;
  for (; index < 16; ++index) {
    entry = qcow2::load_be64(image.data() + l.l2_offset + index * 8);
    if (entry & qcow2::kOflagCompressed) break;
  }
  ASSERT_LT(index, 16u) << "qemu-img made no compressed cluster";
  {
    auto bad = image;
    qcow2::store_be64(bad.data() + l.l2_offset + index * 8,
                      (entry & ~((1ull << 54) - 1)) | (1ull << 40));  // data far past the end
    MemoryHostFile file(bad);
    auto img = Image::open(file, backing, {true, 0});
    ASSERT_TRUE(img.ok());
    auto r = (*img)->read(index * 65536, buf);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::Io);
  }
  {
    auto bad = image;
    const uint64_t coffset = entry & ((1ull << 54) - 1);
    for (int i = 0; i < 16; ++i) bad[coffset + i] = std::byte{0xff};
    MemoryHostFile file(bad);
    auto img = Image::open(file, backing, {true, 0});
    ASSERT_TRUE(img.ok());
    auto r = (*img)->read(index * 65536, buf);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::Io);
  }
}

}  // namespace
}  // namespace chainfs
