// Control files without a mount: parsing the lines of a write, the outcome read back, and the
// control/node commands against a real graph of raw images.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "fusefs/control.h"
#include "fusefs_test_util.h"

namespace chainfs::fusefs {
namespace {

using testing::TempFolder;

TEST(ControlLine, SplitsWordsAndOptions) {
  auto line = parse_control_line("  top   base=mid speed=1048576\tid=s1 ");
  ASSERT_TRUE(line.ok()) << line.error().message;
  EXPECT_EQ(line->text, "top   base=mid speed=1048576\tid=s1");
  EXPECT_EQ(line->words, std::vector<std::string>{"top"});
  EXPECT_EQ(line->options.at("base"), "mid");
  EXPECT_EQ(line->options.at("speed"), "1048576");
  EXPECT_EQ(line->options.at("id"), "s1");
}

TEST(ControlLine, PathsWithEqualsSignsStayWords) {
  auto line = parse_control_line("open /images/a=b.qcow2 chain=vm read-only");
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line->words, (std::vector<std::string>{"open", "/images/a=b.qcow2", "read-only"}));
  EXPECT_EQ(line->options.size(), 1u);
  EXPECT_TRUE(is_option_word("auto-finalize=off"));
  EXPECT_TRUE(is_option_word("on-error=stop"));
  EXPECT_FALSE(is_option_word("=x"));
  EXPECT_FALSE(is_option_word("./a=b"));
  EXPECT_FALSE(is_option_word("1x=2"));
  EXPECT_FALSE(is_option_word("plain"));
}

TEST(ControlLine, RefusesRepeatedAndEmptyOptions) {
  auto repeated = parse_control_line("top base=a base=b");
  ASSERT_FALSE(repeated.ok());
  EXPECT_EQ(repeated.error().code, Errc::Invalid);
  EXPECT_NE(repeated.error().message.find("'base' is given twice"), std::string::npos);
  auto empty = parse_control_line("top base=");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, Errc::Invalid);
}

TEST(ControlText, SplitsLines_SkipsBlankAndCommentLines_LastLineNeedsNoNewline) {
  auto lines = parse_control_text("\n# a comment\nclose a\r\n\n   \nremove b");
  ASSERT_TRUE(lines.ok()) << lines.error().message;
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_EQ((*lines)[0].words, (std::vector<std::string>{"close", "a"}));
  EXPECT_EQ((*lines)[1].words, (std::vector<std::string>{"remove", "b"}));
}

TEST(ControlText, RefusesNothingAtAll_AndNulBytes) {
  for (std::string_view text : {std::string_view(""), std::string_view("\n\n"),
                                std::string_view("# only a comment\n")}) {
    auto lines = parse_control_text(text);
    ASSERT_FALSE(lines.ok());
    EXPECT_EQ(lines.error().code, Errc::Invalid);
  }
  auto nul = parse_control_text(std::string_view("close a\0b\n", 10));
  ASSERT_FALSE(nul.ok());
  EXPECT_EQ(nul.error().code, Errc::Invalid);
}

TEST(ControlOutcome, ReadsBackAsOneLine) {
  EXPECT_EQ(format_outcome(ControlOutcome::success()), "ok\n");
  EXPECT_EQ(format_outcome(ControlOutcome::success("stream0")), "ok stream0\n");
  auto refused = ControlOutcome::failure(make_error(Errc::Busy, "node 'b' is\nin use"), "remove b");
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(format_outcome(refused), "error EBUSY: node 'b' is in use\n");
  EXPECT_EQ(format_outcome(ControlOutcome::failure(make_error(Errc::Unsupported, "no"), "x")),
            "error EOPNOTSUPP: no\n");
}

TEST(ClientPath, AbsoluteKept_RelativeJoinedToTheWritersWorkingFolder) {
  EXPECT_EQ(*resolve_client_path("/a/b.qcow2", 0), "/a/b.qcow2");
  auto cwd = std::filesystem::current_path();
  auto relative = resolve_client_path("images/../x.raw", ::getpid());
  ASSERT_TRUE(relative.ok()) << relative.error().message;
  EXPECT_EQ(*relative, (cwd / "x.raw").string());
  auto unknown = resolve_client_path("x.raw", 0);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Errc::Invalid);
}

class NodeControl : public ::testing::Test {
 protected:
  // Runs one write's text through the handler.
  ControlOutcome run(const std::string& text) {
    auto lines = parse_control_text(text);
    if (!lines) return ControlOutcome::failure(lines.take_error(), text);
    return handler.execute(*lines, ControlContext{::getpid(), 0, 0});
  }
  static Errc code(const ControlOutcome& outcome) {
    return outcome.ok() ? static_cast<Errc>(-1) : outcome.error->code;
  }

  TempFolder dir;
  Graph graph;
  NodeControlHandler handler{graph};
};

TEST_F(NodeControl, OpenAddsAChain_CloseDropsIt) {
  std::string a = dir.raw_image("alpha.raw", 1 << 20);
  ControlOutcome opened = run("open " + a + " chain=vm name=disk\n");
  ASSERT_TRUE(opened.ok()) << opened.error->message;
  EXPECT_EQ(opened.job_id, "");
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
  ControlOutcome opened = run("open rel.raw");
  std::filesystem::current_path(old);
  ASSERT_TRUE(opened.ok()) << opened.error->message;
  EXPECT_EQ((*graph.find("rel"))->filename(), dir.path() + "/rel.raw");
}

TEST_F(NodeControl, Refusals_CarryTheInterfaceErrnos) {
  std::string a = dir.raw_image("a.raw", 1 << 20);
  ASSERT_TRUE(run("open " + a + " chain=vm").ok());
  EXPECT_EQ(code(run("open " + a + " chain=vm")), Errc::Exists);               // chain taken
  EXPECT_EQ(code(run("open " + dir.path() + "/none.raw")), Errc::NotFound);    // no such image
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
  ControlOutcome outcome = run("open " + a + " chain=one\nclose nosuch\nopen " + b + " chain=two\n");
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error->code, Errc::NotFound);
  EXPECT_EQ(outcome.command, "close nosuch");
  EXPECT_TRUE(graph.chain("one").has_value());   // ran before the refusal
  EXPECT_FALSE(graph.chain("two").has_value());  // not run after it
  ASSERT_TRUE(run("open " + b + " chain=two\nclose one\n").ok());
  EXPECT_FALSE(graph.chain("one").has_value());
  EXPECT_TRUE(graph.chain("two").has_value());
}

TEST(JobControl, RefusesEveryLineUntilTheJobEngineExists) {
  auto handler = jobs_not_implemented_handler();
  auto lines = parse_control_text("top base=mid\ntop2\n");
  ASSERT_TRUE(lines.ok());
  ControlOutcome outcome = handler->execute(*lines, {});
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.error->code, Errc::Unsupported);
  EXPECT_EQ(outcome.error->message, "jobs are not implemented yet");
  EXPECT_EQ(outcome.command, "top base=mid");
}

TEST(ControlHandlers, DefaultsFillOnlyWhatIsMissing) {
  Graph graph;
  auto mine = jobs_not_implemented_handler();
  ControlHandlers handlers = complete_control_handlers(graph, {{"node", mine}});
  EXPECT_EQ(handlers.size(), 5u);
  EXPECT_EQ(handlers.at("node"), mine);
  for (const char* name : {"stream", "commit", "snapshot", "job"})
    ASSERT_NE(handlers.at(name), nullptr) << name;
  ControlHandlers defaults = complete_control_handlers(graph, {});
  EXPECT_NE(dynamic_cast<NodeControlHandler*>(defaults.at("node").get()), nullptr);
}

}  // namespace
}  // namespace chainfs::fusefs
