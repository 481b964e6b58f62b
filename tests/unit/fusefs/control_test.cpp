// Control files without a mount: the outcome read back, the writer's working folder, and
// control/node as the mount runs it (through the ControlPlane, with the writer's folder) against a
// real graph of raw images. (Job lines through a real mount: mount_test.cpp and the integration
// scripts.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "blockcore/jobs/control_plane.h"
#include "fusefs/control.h"
#include "fusefs_test_util.h"

namespace chainfs::fusefs {
namespace {

using testing::TempFolder;

TEST(ControlOutcome, ReadsBackAsOneLine) {
  EXPECT_EQ(format_outcome(std::string("ok")), "ok\n");
  EXPECT_EQ(format_outcome(std::string("ok stream0")), "ok stream0\n");
  EXPECT_EQ(format_outcome(std::string()), "ok\n");
  Result<std::string> refused = make_error(Errc::Busy, "node 'b' is\nin use");
  EXPECT_EQ(format_outcome(refused), "error EBUSY: node 'b' is in use\n");
  Result<std::string> missing = make_error(Errc::NotFound, "no job 'x'");
  EXPECT_EQ(format_outcome(missing), "error ENOENT: no job 'x'\n");
}

TEST(WriterFolder, IsTheProcessesWorkingFolder_EmptyWhenUnknown) {
  EXPECT_EQ(process_cwd(::getpid()), std::filesystem::current_path().string());
  EXPECT_EQ(process_cwd(0), "");
  EXPECT_EQ(process_cwd(-1), "");
}

// One write's text through the plane, as Filesystem::write_control hands it over.
class NodeControl : public ::testing::Test {
 protected:
  Result<std::string> run(const std::string& text) {
    ControlRequest request;
    request.cwd = process_cwd(::getpid());
    return plane.execute("node", text, request);
  }
  static Errc code(const Result<std::string>& outcome) {
    return outcome.ok() ? static_cast<Errc>(-1) : outcome.error().code;
  }

  TempFolder dir;
  Graph graph;
  ControlPlane plane{graph};
};

TEST_F(NodeControl, OpenAddsAChain_CloseDropsIt) {
  std::string a = dir.raw_image("alpha.raw", 1 << 20);
  Result<std::string> opened = run("open " + a + " chain=vm name=disk\n");
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ(*opened, "ok");
  ASSERT_TRUE(graph.chain("vm").has_value());
  EXPECT_EQ(graph.chain("vm")->root->name(), "disk");
  EXPECT_TRUE(graph.find("disk.file").ok());
  ASSERT_TRUE(run("close vm").ok());
  EXPECT_FALSE(graph.chain("vm").has_value());
  EXPECT_FALSE(graph.find("disk").ok());  // held only by the chain: gone with it
}

TEST_F(NodeControl, OpenDefaultsToTheFileStem_AndReadOnlyIsAWord) {
  std::string a = dir.raw_image("beta.img", 1 << 20);
  ASSERT_TRUE(run("open " + a + " read-only").ok());
  auto node = graph.find("beta");
  ASSERT_TRUE(node.ok());
  EXPECT_TRUE(graph.chain("beta").has_value());
  EXPECT_FALSE(graph.check_writable(**node).ok());
}

TEST_F(NodeControl, RelativePathsAreTheWritersOnes) {
  dir.raw_image("rel.raw", 1 << 20);
  auto old = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  Result<std::string> opened = run("open rel.raw");
  std::filesystem::current_path(old);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  EXPECT_EQ((*graph.find("rel"))->filename(), dir.path() + "/rel.raw");
}

TEST_F(NodeControl, Refusals_CarryTheInterfaceErrnos) {
  std::string a = dir.raw_image("a.raw", 1 << 20);
  ASSERT_TRUE(run("open " + a + " chain=vm").ok());
  EXPECT_EQ(code(run("open " + a + " chain=vm")), Errc::Exists);             // chain taken
  EXPECT_EQ(code(run("open " + dir.path() + "/none.raw")), Errc::NotFound);  // no such image
  EXPECT_EQ(code(run("close nosuch")), Errc::NotFound);
  EXPECT_EQ(code(run("remove nosuch")), Errc::NotFound);
  EXPECT_EQ(code(run("remove a")), Errc::Busy);  // the chain's active layer
  EXPECT_EQ(code(run("open")), Errc::Invalid);
  EXPECT_EQ(code(run("open " + a + " " + a)), Errc::Invalid);
  EXPECT_EQ(code(run("open " + a + " flavour=red")), Errc::Invalid);
  EXPECT_EQ(code(run("close")), Errc::Invalid);
  EXPECT_EQ(code(run("close vm extra")), Errc::Invalid);
  EXPECT_EQ(code(run("remove a force=yes")), Errc::Invalid);
  EXPECT_EQ(code(run("explode a")), Errc::Invalid);
  EXPECT_EQ(code(run("base=x")), Errc::Invalid);  // options but no command
  EXPECT_TRUE(graph.chain("vm").has_value());     // nothing changed by the refusals
}

TEST_F(NodeControl, LinesRunInOrder_AndStopAtTheFirstRefusal) {
  std::string a = dir.raw_image("a.raw", 1 << 20);
  std::string b = dir.raw_image("b.raw", 1 << 20);
  Result<std::string> outcome =
      run("open " + a + " chain=one\nclose nosuch\nopen " + b + " chain=two\n");
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error().code, Errc::NotFound);
  EXPECT_TRUE(graph.chain("one").has_value());   // ran before the refusal
  EXPECT_FALSE(graph.chain("two").has_value());  // not run after it
  ASSERT_TRUE(run("open " + b + " chain=two\nclose one\n").ok());
  EXPECT_FALSE(graph.chain("one").has_value());
  EXPECT_TRUE(graph.chain("two").has_value());
}

TEST_F(NodeControl, RelativePathsAreRefusedWhenTheWritersFolderIsUnknown) {
  dir.raw_image("rel.raw", 1 << 20);
  Result<std::string> opened = plane.execute("node", "open rel.raw", ControlRequest{});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, Errc::Invalid);
}

}  // namespace
}  // namespace chainfs::fusefs
