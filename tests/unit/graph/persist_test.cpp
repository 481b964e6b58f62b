// Graph changes persist: changing a backing edge records the new backing in the overlay's image
// (Driver::set_backing_reference) inside the drain, and a failure leaves the graph unchanged.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "blockcore/graph/backing_path.h"
#include "blockcore/graph/graph.h"
#include "tests/unit/graph/test_driver.h"

namespace chainfs::testing {
namespace {

namespace fs = std::filesystem;

TEST(BackingFilename, InOverlaysFolderOrBelow_IsRelative) {
  EXPECT_EQ(backing_filename_for("/img/top.qcow2", "/img/base.qcow2"), "base.qcow2");
  EXPECT_EQ(backing_filename_for("/img/top.qcow2", "/img/layers/base.qcow2"), "layers/base.qcow2");
  EXPECT_EQ(backing_filename_for("/img/vm/../top.qcow2", "/img/./base.qcow2"), "base.qcow2");
}

TEST(BackingFilename, ElsewhereIsAbsolute) {
  EXPECT_EQ(backing_filename_for("/img/vm/top.qcow2", "/img/base.qcow2"), "/img/base.qcow2");
  EXPECT_EQ(backing_filename_for("/img/top.qcow2", "/data/base.qcow2"), "/data/base.qcow2");
}

TEST(BackingFilename, RelativeInputs_ResolveAgainstTheCurrentDirectory) {
  const fs::path cwd = fs::current_path();
  EXPECT_EQ(backing_filename_for("vm/top.qcow2", "vm/base.qcow2"), "base.qcow2");
  EXPECT_EQ(backing_filename_for("vm/top.qcow2", "other/base.qcow2"),
            (cwd / "other/base.qcow2").lexically_normal().string());
}

class Persist : public ::testing::Test {
 protected:
  TestNode overlay(const std::string& name) {
    TestDriverOptions o;
    o.persists_backing = true;
    return add_test_node(graph_, name, o, "/images/" + name + ".qcow2");
  }
  Graph graph_;
};

TEST_F(Persist, SetBacking_RecordsReferenceInsideTheDrain) {
  TestNode top = overlay("top");
  TestNode base = add_test_node(graph_, "base", {}, "/images/base.raw");
  ASSERT_TRUE(graph_.set_backing(*top.node, base.node).ok());
  auto ref = top.driver->backing_reference();
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->filename, "base.raw");
  EXPECT_EQ(ref->format, "raw") << "a node that is not a format node is read as raw bytes";
  EXPECT_GT(top.stats->quiesce_at_set_backing, 0) << "recorded before the drained section ended";

  ASSERT_TRUE(graph_.set_backing(*top.node, nullptr).ok());
  EXPECT_FALSE(top.driver->backing_reference()) << "no backing is recorded too";
  EXPECT_EQ(top.stats->set_backing_calls, 2);
}

TEST_F(Persist, RecordingFails_GraphUnchanged) {
  TestNode top = overlay("top");
  TestNode old_base = add_test_node(graph_, "old", {}, "/images/old.raw");
  TestNode new_base = add_test_node(graph_, "new", {}, "/images/new.raw");
  ASSERT_TRUE(graph_.set_backing(*top.node, old_base.node).ok());
  const uint64_t old_refs = old_base.node->use_count();
  const uint64_t new_refs = new_base.node->use_count();

  top.driver->fail_next_set_backing(Errc::NoSpace);
  auto r = graph_.set_backing(*top.node, new_base.node);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::NoSpace);
  EXPECT_NE(r.error().message.find("'top'"), std::string::npos) << r.error().message;
  EXPECT_EQ(top.node->backing_ref(), old_base.node);
  EXPECT_EQ(top.driver->backing_reference()->filename, "old.raw");
  EXPECT_EQ(new_base.node->parent_count(), 0u);
  EXPECT_EQ(old_base.node->use_count(), old_refs);
  EXPECT_EQ(new_base.node->use_count(), new_refs);
  EXPECT_EQ(top.node->gate().quiesce_count(), 0);
}

TEST_F(Persist, AttachingAsFoundInTheHeader_WritesNothing) {
  TestNode top = overlay("top");
  TestNode base = add_test_node(graph_, "base", {}, "/images/base.raw");
  ASSERT_TRUE(graph_.attach_child(*top.node, base.node, ChildRole::Backing).ok());
  EXPECT_EQ(top.stats->set_backing_calls, 0);
}

TEST_F(Persist, BackingWithoutAFile_IsRefusedForPersistingOverlays) {
  TestNode top = overlay("top");
  TestNode anonymous = add_test_node(graph_, "anon");
  auto r = graph_.set_backing(*top.node, anonymous.node);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::Unsupported);
  EXPECT_FALSE(top.node->backing_ref());
}

// The real thing: a qcow2 chain made by qemu-img; cutting the middle layer out rewrites top's
// header, and qemu-img (the independent oracle) reads the new backing file name.
TEST(PersistQcow2, SetBackingRewritesHeader_QemuImgSeesNewBacking) {
  if (std::system("qemu-img --version > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "qemu-img is not installed";
  const fs::path dir =
      fs::temp_directory_path() / ("chainfs-graph-persist-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto sh = [&](const std::string& cmd) {
    return std::system(("cd " + dir.string() + " && " + cmd).c_str());
  };
  ASSERT_EQ(sh("qemu-img create -q -f qcow2 base.qcow2 1M"), 0);
  ASSERT_EQ(sh("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2"), 0);
  ASSERT_EQ(sh("qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2"), 0);
  {
    Graph graph;
    auto top = graph.open_image({.path = (dir / "top.qcow2").string()});
    ASSERT_TRUE(top.ok()) << top.error().message;
    auto base = graph.find("base");
    ASSERT_TRUE(base.ok());
    ASSERT_EQ(chain_names(*top), (std::vector<std::string>{"top", "mid", "base"}));
    auto r = graph.set_backing(**top, *base);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(chain_names(*top), (std::vector<std::string>{"top", "base"}));
    EXPECT_FALSE(graph.find("mid").ok()) << "cut out and closed";
  }
  ASSERT_EQ(sh("qemu-img info --output=json top.qcow2 > info.json"), 0);
  std::ifstream info(dir / "info.json");
  std::string json((std::istreambuf_iterator<char>(info)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"backing-filename\": \"base.qcow2\""), std::string::npos) << json;
  EXPECT_EQ(sh("qemu-img check -q top.qcow2"), 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace chainfs::testing
