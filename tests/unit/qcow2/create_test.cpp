// qcow2_create against `qemu-img create`, byte for byte; the backing reference rewrite; images
// that must open read-only or be refused.
#include <gtest/gtest.h>

#include "blockcore/drivers/qcow2/create.h"
#include "qcow2_test_util.h"

namespace chainfs {
namespace {

using namespace qcow2_test;

struct CreateCase {
  const char* name;
  uint64_t size;
  uint32_t cluster_size;
  const char* backing;  // "" = none; else a qcow2 file made first in the folder
};

class Qcow2Create : public ::testing::TestWithParam<CreateCase> {};

TEST_P(Qcow2Create, SameBytesAsQemuImgCreate) {
  REQUIRE_QEMU_IMG();
  const CreateCase& c = GetParam();
  TempDir dir;
  std::string backing_args;
  if (*c.backing) {
    must_run("qemu-img create -f qcow2 '" + dir.file("base.qcow2") + "' 3G");
    backing_args = std::string(" -b '") + c.backing + "' -F qcow2";
  }
  std::string size_arg = c.size ? " " + std::to_string(c.size) : "";
  must_run("cd '" + dir.path() + "' && qemu-img create -f qcow2 -o cluster_size=" +
           std::to_string(c.cluster_size) + backing_args + " theirs.qcow2" + size_arg);
  Qcow2CreateOptions o;
  o.path = dir.file("ours.qcow2");
  o.size = c.size;
  o.cluster_size = c.cluster_size;
  if (*c.backing) {
    o.backing_file = c.backing;
    o.backing_format = "qcow2";
  }
  auto r = qcow2_create(o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto ours = read_file(o.path), theirs = read_file(dir.file("theirs.qcow2"));
  EXPECT_EQ(ours.size(), theirs.size());
  EXPECT_EQ(first_difference(ours, theirs), -1);
  std::string out;
  EXPECT_EQ(run("qemu-img check '" + o.path + "'", &out), 0) << out;
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, Qcow2Create,
    ::testing::Values(CreateCase{"default_1g", 1ull << 30, 65536, ""},
                      CreateCase{"huge_10t", 10ull << 40, 65536, ""},
                      CreateCase{"cluster512", 1ull << 30, 512, ""},
                      CreateCase{"cluster4k", 100ull << 20, 4096, ""},
                      CreateCase{"cluster2m", 5ull << 30, 2u << 20, ""},
                      CreateCase{"unaligned_size", 12345678, 65536, ""},
                      CreateCase{"backing_relative", 1ull << 30, 65536, "base.qcow2"},
                      CreateCase{"backing_size_from_backing", 0, 65536, "base.qcow2"}),
    [](const ::testing::TestParamInfo<CreateCase>& param) {
      return std::string(param.param.name);
    });

TEST(Qcow2Create, RefusesExistingFileAndMissingFolder_LeavesNothing) {
  TempDir dir;
  write_file(dir.file("taken.qcow2"), std::vector<std::byte>(10, std::byte{1}));
  Qcow2CreateOptions o;
  o.path = dir.file("taken.qcow2");
  o.size = 1 << 20;
  auto r = qcow2_create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Exists);
  EXPECT_EQ(read_file(o.path).size(), 10u);
  o.path = dir.file("missing/x.qcow2");
  r = qcow2_create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::NotFound);
  o.path = dir.file("new.qcow2");
  o.backing_file = "does-not-exist.qcow2";
  o.size = 0;
  r = qcow2_create(o);
  ASSERT_FALSE(r.ok());
  size_t entries = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1u) << "a failed create left a file behind";
}

TEST(Qcow2BackingReference, SetAndClear_QemuImgInfoAgrees) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  must_run(
      "cd '" + dir.path() +
      "' && qemu-img create -f qcow2 a.qcow2 4M && "
      "qemu-img create -f raw b.raw 4M && qemu-img create -f qcow2 -b a.qcow2 -F qcow2 top.qcow2");
  {
    auto opened = open_chain(dir.file("top.qcow2"), false);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    Driver& driver = (*opened)->top->driver();
    auto ref = driver.backing_reference();
    ASSERT_TRUE(ref.has_value());
    EXPECT_EQ(ref->filename, "a.qcow2");
    EXPECT_EQ(ref->format, "qcow2");
    ASSERT_TRUE(driver.set_backing_reference(BackingReference{"b.raw", "raw"}).ok());
    EXPECT_EQ(driver.backing_reference()->filename, "b.raw");
    // A name longer than the format allows is refused; the header stays as it was.
    EXPECT_FALSE(
        driver.set_backing_reference(BackingReference{std::string(1024, 'y'), "raw"}).ok());
  }
  std::string out;
  must_run("qemu-img info '" + dir.file("top.qcow2") + "' > '" + dir.file("info.txt") + "'");
  run("cat '" + dir.file("info.txt") + "'", &out);
  EXPECT_NE(out.find("backing file: b.raw"), std::string::npos) << out;
  EXPECT_NE(out.find("backing file format: raw"), std::string::npos) << out;
  EXPECT_EQ(run("qemu-img check '" + dir.file("top.qcow2") + "'", &out), 0) << out;
  {
    auto opened = open_chain(dir.file("top.qcow2"), false);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    ASSERT_TRUE((*opened)->top->driver().set_backing_reference(std::nullopt).ok());
  }
  run("qemu-img info '" + dir.file("top.qcow2") + "'", &out);
  EXPECT_EQ(out.find("backing file"), std::string::npos) << out;
}

TEST(Qcow2BackingReference, GraphSetBacking_PersistsInTheHeader_ReadsFollowTheNewBacking) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  std::vector<std::byte> other(1 << 20, std::byte{0x3c});
  write_file(dir.file("other.raw"), other);
  must_run("cd '" + dir.path() +
           "' && qemu-img create -f qcow2 a.qcow2 1M && "
           "qemu-img create -f qcow2 -b a.qcow2 -F qcow2 top.qcow2");
  {
    auto opened = open_chain(dir.file("top.qcow2"), false);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    Graph& graph = *(*opened)->graph;
    auto replacement = graph.open_image_chain(dir.file("other.raw"), "raw", "", true);
    ASSERT_TRUE(replacement.ok()) << replacement.error().message;
    auto r = graph.set_backing(*(*opened)->top, *replacement);
    ASSERT_TRUE(r.ok()) << r.error().message;
    std::vector<std::byte> got(4096);
    ASSERT_TRUE((*opened)->top->read(8192, got).ok());
    EXPECT_EQ(got[0], std::byte{0x3c});
  }
  std::string out;
  run("qemu-img info '" + dir.file("top.qcow2") + "'", &out);
  EXPECT_NE(out.find("backing file: other.raw"), std::string::npos) << out;
  EXPECT_NE(out.find("backing file format: raw"), std::string::npos) << out;
  must_run("qemu-img convert -O raw '" + dir.file("top.qcow2") + "' '" + dir.file("out.raw") + "'");
  EXPECT_EQ(first_difference(read_file(dir.file("out.raw")), other), -1);
}

TEST(Qcow2BackingReference, NameTooLongForSmallCluster_IsRefusedWithClearError) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  must_run("qemu-img create -f qcow2 -o cluster_size=512 '" + dir.file("a.qcow2") + "' 1M");
  auto before = read_file(dir.file("a.qcow2"));
  {
    auto opened = open_chain(dir.file("a.qcow2"), false);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    auto r = (*opened)->top->driver().set_backing_reference(
        BackingReference{std::string(500, 'n') + ".qcow2", "qcow2"});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("first cluster"), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(first_difference(read_file(dir.file("a.qcow2")), before), -1);
}

// Pokes bytes of an image's header.
void poke(const std::string& path, size_t offset, std::initializer_list<uint8_t> bytes) {
  auto data = read_file(path);
  size_t i = offset;
  for (uint8_t b : bytes) data[i++] = static_cast<std::byte>(b);
  write_file(path, data);
}

TEST(Qcow2Open, InternalSnapshot_OpensReadOnlyWithReason) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  const std::string image = dir.file("a.qcow2");
  must_run("qemu-img create -f qcow2 '" + image + "' 4M && qemu-img snapshot -c snap1 '" + image +
           "'");
  auto opened = open_chain(image, false);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Node& top = *(*opened)->top;
  EXPECT_TRUE(top.read_only());
  EXPECT_NE(top.driver().forced_read_only_reason().find("snapshot"), std::string::npos);
  EXPECT_FALSE(top.driver().write(0, std::vector<std::byte>(512)).ok());
}

TEST(Qcow2Open, DirtyAndCorruptBits_OpenReadOnlyWithReason) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  const std::string image = dir.file("a.qcow2");
  must_run("qemu-img create -f qcow2 '" + image + "' 4M");
  poke(image, 79, {0x01});  // incompatible_features: dirty
  {
    auto opened = open_chain(image, false);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    EXPECT_TRUE((*opened)->top->read_only());
    EXPECT_NE((*opened)->top->driver().forced_read_only_reason().find("dirty"), std::string::npos);
  }
  poke(image, 79, {0x02});  // corrupt
  auto opened = open_chain(image, false);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_TRUE((*opened)->top->read_only());
  EXPECT_NE((*opened)->top->driver().forced_read_only_reason().find("corrupt"), std::string::npos);
}

TEST(Qcow2Open, UnknownIncompatibleFeature_IsRefusedNamingIt) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  const std::string image = dir.file("a.qcow2");
  must_run("qemu-img create -f qcow2 '" + image + "' 4M");
  poke(image, 78, {0x04});  // bit 10
  auto opened = open_chain(image, true);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find("unknown incompatible features: bit 10"), std::string::npos)
      << opened.error().message;
}

TEST(Qcow2Open, InsaneSizesAndTablesPastTheEnd_AreRefused) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  const std::string image = dir.file("a.qcow2");
  must_run("qemu-img create -f qcow2 '" + image + "' 4M");
  auto pristine = read_file(image);
  poke(image, 24, {0x40, 0, 0, 0, 0, 0, 0, 0});  // size 2^62
  auto opened = open_chain(image, true);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find("virtual size"), std::string::npos);
  write_file(image, pristine);
  poke(image, 40, {0, 0, 0, 0x10, 0, 0, 0, 0});  // L1 table far past the end
  opened = open_chain(image, true);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find("beyond the end"), std::string::npos)
      << opened.error().message;
  write_file(image, pristine);
  poke(image, 36, {0x10, 0, 0, 0});  // l1_size 256M entries
  opened = open_chain(image, true);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find("L1"), std::string::npos) << opened.error().message;
}

}  // namespace
}  // namespace chainfs
