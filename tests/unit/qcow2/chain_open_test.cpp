// Chains opened from image headers (Graph::open_image_chain / open_image): what is refused, and how
// the nodes found through headers are named.
#include <gtest/gtest.h>

#include <fstream>

#include "qcow2_test_util.h"

namespace chainfs::qcow2_test {
namespace {

void patch_be64(const std::string& path, uint64_t offset, uint64_t value) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(value >> (56 - 8 * i));
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes, 8);
}

TEST(ChainOpen, BackingLoop_IsRefusedAndNamesTheLoop) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  must_run("qemu-img create -q -f qcow2 " + dir.file("a.qcow2") + " 1M");
  must_run("qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 " + dir.file("b.qcow2"));
  // Now make a's header point back at b: a <- b <- a.
  must_run("qemu-img rebase -u -b b.qcow2 -F qcow2 " + dir.file("a.qcow2"));

  Graph graph;
  auto top = graph.open_image_chain(dir.file("b.qcow2"), "", "", true);
  ASSERT_FALSE(top.ok());
  EXPECT_EQ(top.error().code, Errc::Invalid);
  EXPECT_NE(top.error().message.find("loop"), std::string::npos) << top.error().message;
  EXPECT_TRUE(graph.listed_nodes().empty()) << "a refused chain leaves nothing behind";
}

TEST(ChainOpen, MissingBackingFile_IsRefusedNamingTheFile) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  must_run("qemu-img create -q -f qcow2 " + dir.file("base.qcow2") + " 1M");
  must_run("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 " + dir.file("top.qcow2"));
  std::filesystem::remove(dir.file("base.qcow2"));

  Graph graph;
  auto top = graph.open_image({dir.file("top.qcow2"), "", "", false});
  ASSERT_FALSE(top.ok());
  EXPECT_EQ(top.error().code, Errc::NotFound);
  EXPECT_NE(top.error().message.find("base.qcow2"), std::string::npos) << top.error().message;
  EXPECT_FALSE(graph.chain("top").has_value());
}

TEST(ChainOpen, ImageClaimingAHugeVirtualSize_IsRefused) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  must_run("qemu-img create -q -f qcow2 " + dir.file("huge.qcow2") + " 1M");
  patch_be64(dir.file("huge.qcow2"), 24, uint64_t{1} << 62);  // header field `size`

  Graph graph;
  auto node = graph.open_image_chain(dir.file("huge.qcow2"), "", "", true);
  ASSERT_FALSE(node.ok());
  EXPECT_TRUE(node.error().code == Errc::TooLarge || node.error().code == Errc::Invalid ||
              node.error().code == Errc::Io)
      << errno_name(node.error().code) << ": " << node.error().message;
  EXPECT_FALSE(node.error().message.empty());
}

TEST(ChainOpen, VirtualSizeBeyondItsL1Table_IsRefused) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  must_run("qemu-img create -q -f qcow2 " + dir.file("short-l1.qcow2") + " 1M");
  // 1 TiB of virtual size with the one-entry L1 table of a 1 MiB image: the L1 cannot map it.
  patch_be64(dir.file("short-l1.qcow2"), 24, uint64_t{1} << 40);

  Graph graph;
  auto node = graph.open_image_chain(dir.file("short-l1.qcow2"), "", "", true);
  ASSERT_FALSE(node.ok()) << "an L1 table too small for the virtual size must be refused";
  EXPECT_FALSE(node.error().message.empty());
}

TEST(ChainOpen, SameStemInTwoFolders_GetsASuffix) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  std::filesystem::create_directories(dir.file("old"));
  must_run("qemu-img create -q -f qcow2 " + dir.file("old/disk.qcow2") + " 1M");
  must_run("qemu-io -f qcow2 -c 'write -q -P 0x11 0 64k' " + dir.file("old/disk.qcow2"));
  must_run("qemu-img create -q -f qcow2 -b old/disk.qcow2 -F qcow2 " + dir.file("disk.qcow2"));

  Graph graph;
  auto top = graph.open_image({dir.file("disk.qcow2"), "", "", false});
  ASSERT_TRUE(top.ok()) << top.error().message;
  auto chain = graph.chain("disk");
  ASSERT_TRUE(chain.has_value());
  ASSERT_EQ(chain->layers.size(), 2u);
  EXPECT_EQ(chain->layers[0]->name(), "disk");
  EXPECT_EQ(chain->layers[1]->name(), "disk-2");
  EXPECT_TRUE(graph.find("disk-2.file").ok());

  std::vector<std::byte> buf(4096);
  ASSERT_TRUE((*top)->read(0, buf).ok());
  EXPECT_EQ(buf[0], std::byte{0x11}) << "reads fall through to the backing found by header";
}

TEST(ChainOpen, TwoOverlaysOnOneBase_ShareTheBaseNode) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  must_run("qemu-img create -q -f qcow2 " + dir.file("base.qcow2") + " 1M");
  must_run("qemu-io -f qcow2 -c 'write -q -P 0x22 0 64k' " + dir.file("base.qcow2"));
  must_run("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 " + dir.file("vm1.qcow2"));
  must_run("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 " + dir.file("vm2.qcow2"));

  Graph graph;
  auto vm1 = graph.open_image({dir.file("vm1.qcow2"), "", "", false});
  ASSERT_TRUE(vm1.ok()) << vm1.error().message;
  // The second chain names the base by another spelling of the same file.
  must_run("ln -s base.qcow2 " + dir.file("alias.qcow2"));
  must_run("qemu-img rebase -u -b alias.qcow2 -F qcow2 " + dir.file("vm2.qcow2"));
  auto vm2 = graph.open_image({dir.file("vm2.qcow2"), "", "", false});
  ASSERT_TRUE(vm2.ok()) << vm2.error().message;

  auto chain1 = graph.chain("vm1");
  auto chain2 = graph.chain("vm2");
  ASSERT_TRUE(chain1 && chain2);
  ASSERT_EQ(chain1->layers.size(), 2u);
  ASSERT_EQ(chain2->layers.size(), 2u);
  EXPECT_EQ(chain1->layers[1].get(), chain2->layers[1].get()) << "one node for one image";
  EXPECT_EQ(chain1->layers[1]->parent_count(), 2u);
  EXPECT_FALSE(graph.find("base-2").ok()) << "no second node over base.qcow2";
  EXPECT_EQ(graph.check_writable(*chain1->layers[1]).error().code, Errc::ReadOnly);

  std::vector<std::byte> buf(4096);
  ASSERT_TRUE((*vm2)->read(0, buf).ok());
  EXPECT_EQ(buf[0], std::byte{0x22});
}

TEST(ChainOpen, ImageAlreadyOpen_IsRefusedBusyNamingTheNode) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  must_run("qemu-img create -q -f qcow2 " + dir.file("base.qcow2") + " 1M");
  must_run("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 " + dir.file("top.qcow2"));

  Graph graph;
  ASSERT_TRUE(graph.open_image({dir.file("top.qcow2"), "", "", false}).ok());
  // The active layer again, as a chain of its own: two writers over one qcow2 file.
  auto again = graph.open_image({dir.file("top.qcow2"), "again", "", false});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::Busy);
  EXPECT_NE(again.error().message.find("'top'"), std::string::npos) << again.error().message;
  // A backing layer named directly as the image of a new chain, and as a config node.
  auto base = graph.open_image({dir.file("base.qcow2"), "", "", true});
  ASSERT_FALSE(base.ok());
  EXPECT_EQ(base.error().code, Errc::Busy);
  NodeSpec spec;
  spec.name = "mybase";
  spec.driver = "qcow2";
  spec.file = dir.file("base.qcow2");
  spec.backing = "";
  auto named = graph.open_named_node(spec);
  ASSERT_FALSE(named.ok());
  EXPECT_EQ(named.error().code, Errc::Busy);
  EXPECT_FALSE(graph.chain("again") || graph.chain("base"));
  EXPECT_FALSE(graph.find("mybase").ok());
}

TEST(ChainOpen, BackingThatIsAnotherChainsActiveLayer_IsRefused) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  must_run("qemu-img create -q -f qcow2 " + dir.file("top.qcow2") + " 1M");
  must_run("qemu-img create -q -f qcow2 -b top.qcow2 -F qcow2 " + dir.file("over.qcow2"));

  Graph graph;
  ASSERT_TRUE(graph.open_image({dir.file("top.qcow2"), "", "", false}).ok());
  auto over = graph.open_image({dir.file("over.qcow2"), "", "", false});
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, Errc::Busy);
  EXPECT_NE(over.error().message.find("writable"), std::string::npos) << over.error().message;
  EXPECT_FALSE(graph.find("over").ok()) << "a refused chain leaves nothing behind";
}

TEST(ChainOpen, ImageOpenAgainAfterItsChainClosed_Opens) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  must_run("qemu-img create -q -f qcow2 " + dir.file("disk.qcow2") + " 1M");
  Graph graph;
  ASSERT_TRUE(graph.open_image({dir.file("disk.qcow2"), "", "", false}).ok());
  ASSERT_TRUE(graph.remove_chain("disk").ok());
  auto again = graph.open_image({dir.file("disk.qcow2"), "", "", false});
  EXPECT_TRUE(again.ok()) << again.error().message;
}

}  // namespace
}  // namespace chainfs::qcow2_test
