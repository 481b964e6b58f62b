// The control lines of stream, commit and job as ControlPlane::execute runs them: syntax and
// every refusal with its Errc (the errno the FUSE layer answers) and a log line saying why, the
// outcome line, lines of one write in order, closing a chain and shutting down with jobs running.
#include "chain_fixture.h"

namespace chainfs::testing {
namespace {

constexpr uint64_t kSize = 8 * MiB;

class ControlTest : public JobsFixture {
 protected:
  void make_chain() {
    dir_.create("base", kSize);
    dir_.io("base", {"write -P 0x11 0 4M"});
    dir_.create("mid", kSize, "base");
    dir_.io("mid", {"write -P 0x21 1M 4M"});
    dir_.create("top", kSize, "mid");
    dir_.io("top", {"write -P 0x31 2M 1M"});
    expected_ = dir_.raw_view("top");
    open_image("top");
  }
  std::vector<std::byte> expected_;
};

TEST_F(ControlTest, OutcomeLine_NamesTheJobItStarted) {
  make_chain();
  auto r = plane_->execute("stream", "top base=base\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "ok stream0");
  expect_completed("stream0");
  r = plane_->execute("job", "dismiss stream0");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "ok");
}

TEST_F(ControlTest, JobLineRefusals_EachWithItsErrnoAndALogLine) {
  make_chain();
  dir_.create("other", kSize);
  struct Case {
    std::string file, line;
    Errc code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"stream", "", Errc::Invalid, "no command given"},
      {"stream", "top mid", Errc::Invalid, "usage: NODE"},
      {"stream", "top colour=red", Errc::Invalid, "unknown option 'colour='"},
      {"stream", "top speed=fast", Errc::Invalid, "speed="},
      {"stream", "top speed=", Errc::Invalid, "has no value"},
      {"stream", "top base=base base=mid", Errc::Invalid, "given twice"},
      {"stream", "top on-error=retry", Errc::Invalid, "on-error=retry"},
      {"stream", "top auto-finalize=maybe", Errc::Invalid, "expected on or off"},
      {"stream", "top id=a/b", Errc::Invalid, "job id 'a/b'"},
      {"stream", "nosuch", Errc::NotFound, "no node 'nosuch'"},
      {"stream", "top base=nosuch", Errc::NotFound, "no node 'nosuch'"},
      {"stream", "top base=top", Errc::Invalid, "is the node itself"},
      {"stream", "mid base=top", Errc::Invalid, "'top' is not below 'mid'"},
      {"commit", "top base=top.file", Errc::Invalid, "not below 'top'"},
      {"commit", "base", Errc::Invalid, "no backing layer to commit into"},
      {"stream", "top.file", Errc::Invalid, "not a layer"},
      {"job", "", Errc::Invalid, "no command given"},
      {"job", "pause", Errc::Invalid, "usage: pause ID"},
      {"job", "frobnicate stream0", Errc::Invalid, "unknown verb 'frobnicate'"},
      {"job", "cancel nosuch", Errc::NotFound, "no job 'nosuch'"},
      {"job", "complete nosuch", Errc::NotFound, "no job 'nosuch'"},
      {"job", "speed nosuch 1M", Errc::NotFound, "no job 'nosuch'"},
      {"job", "speed nosuch", Errc::Invalid, "usage: speed ID RATE"},
      {"job", "speed nosuch 1Q", Errc::Invalid, "unknown suffix"},
      {"job", "pause stream0 now=1", Errc::Invalid, "takes no options"},
      {"frobnicate", "top", Errc::NotFound, "no control file"},
  };
  for (const Case& c : cases) {
    const Error e = refused(c.file, c.line);
    EXPECT_EQ(e.code, c.code) << c.file << " '" << c.line << "': " << e.message;
    EXPECT_NE(e.message.find(c.says), std::string::npos)
        << c.file << " '" << c.line << "': " << e.message;
  }
  EXPECT_TRUE(plane_->jobs().list().empty());
  EXPECT_TRUE(
      log_contains("control/stream: stream of 'nosuch' (whole chain): refused (ENOENT): "
                   "no node 'nosuch'"))
      << log_text();
  EXPECT_TRUE(log_contains("control/job: cancel nosuch: refused (ENOENT)")) << log_text();
  EXPECT_TRUE(log_contains("control/stream 'top colour=red': refused (EINVAL)")) << log_text();
}

TEST_F(ControlTest, GivenIdTaken_IsRefusedWithEexist) {
  make_chain();
  EXPECT_EQ(start("stream", "top id=mine speed=64K"), "mine");
  dir_.create("x", kSize);
  dir_.create("y", kSize, "x");
  open_image("y", "why");
  EXPECT_EQ(refused("stream", "y id=mine").code, Errc::Exists);
  run("job", "cancel mine");
  wait_concluded("mine");
  EXPECT_EQ(refused("stream", "y id=mine").code, Errc::Exists) << "listed until dismissed";
  run("job", "dismiss mine");
  EXPECT_EQ(start("stream", "y id=mine"), "mine") << "a dismissed job's id is free again";
  expect_completed("mine");
}

TEST_F(ControlTest, SeveralLinesInOneWrite_RunInOrderAndStopAtTheFirstRefusal) {
  make_chain();
  const Error e = refused("stream", "top id=first speed=64K\nnosuch\ntop id=third\n");
  EXPECT_EQ(e.code, Errc::NotFound);
  const std::vector<JobInfo> jobs = plane_->jobs().list();
  ASSERT_EQ(jobs.size(), 1u) << "the first line ran, the third did not";
  EXPECT_EQ(jobs[0].id, "first");
  wait_state("first", JobState::Running);
  auto r = plane_->execute("job", "pause first\nresume first\n# a comment\n\nspeed first 0\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  expect_completed("first");
  EXPECT_EQ(backing_of("top"), "");
}

TEST_F(ControlTest, VerbsThatTheStateDoesNotAccept_AreRefusedWithEbusy) {
  make_chain();
  const std::string id = start("stream", "top speed=64K");
  wait_state(id, JobState::Running);
  EXPECT_EQ(refused("job", "resume " + id).code, Errc::Busy);
  EXPECT_EQ(refused("job", "complete " + id).code, Errc::Busy);
  EXPECT_EQ(refused("job", "finalize " + id).code, Errc::Busy);
  EXPECT_EQ(refused("job", "dismiss " + id).code, Errc::Busy);
  run("job", "pause " + id);
  EXPECT_EQ(plane_->jobs().info(id)->state, JobState::Paused);
  EXPECT_EQ(refused("job", "pause " + id).code, Errc::Busy);
  run("job", "speed " + id + " 1.5M");
  EXPECT_EQ(plane_->jobs().info(id)->speed, 1536 * KiB);
  run("job", "cancel " + id);
  wait_concluded(id);
  EXPECT_EQ(refused("job", "cancel " + id).code, Errc::Busy);
  EXPECT_EQ(refused("job", "speed " + id + " 1M").code, Errc::Busy);
  const std::string yaml = *plane_->jobs().status_yaml(id);
  EXPECT_NE(yaml.find("state: concluded"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("error: job cancelled"), std::string::npos) << yaml;
}

TEST_F(ControlTest, StatusFile_ShowsTheJobAsInterfaceMdSaysIt) {
  make_chain();
  const std::string id = start("stream", "top base=base speed=1M");
  ASSERT_TRUE(plane_->jobs().wait_until(id, [](const JobInfo& j) { return j.total > 0; }).ok());
  const std::string yaml = *plane_->jobs().status_yaml(id);
  EXPECT_EQ(yaml.rfind("id: stream0\ntype: stream\nstate: ", 0), 0u) << yaml;
  EXPECT_NE(yaml.find("\nnode: top\nbase: base\nprogress: "), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\ntotal: " + std::to_string(kSize) + "\nspeed: 1048576\nrate: "),
            std::string::npos)
      << yaml;
  run("job", "cancel " + id);
  wait_concluded(id);
}

TEST_F(ControlTest, NodeClose_CancelsTheChainsJobsFirst) {
  make_chain();
  const std::string id = start("stream", "top speed=64K");
  wait_state(id, JobState::Running);
  run("node", "close vm");
  const JobInfo info = *plane_->jobs().info(id);
  EXPECT_EQ(info.state, JobState::Concluded);
  EXPECT_EQ(info.error, std::optional<std::string>("job cancelled"));
  EXPECT_FALSE(graph_->chain("vm"));
  EXPECT_FALSE(listed("top"));
  EXPECT_TRUE(log_contains("closing chain 'vm': cancelling job stream0"));
  EXPECT_EQ(refused("node", "close vm").code, Errc::NotFound);
  close_graph();
  EXPECT_EQ(dir_.backing_file("top"), "mid.qcow2") << "the cancelled stream changed nothing";
}

TEST_F(ControlTest, NodeOpenAndRemove) {
  make_chain();
  dir_.create("extra", kSize);
  ControlRequest request;
  request.cwd = dir_.path().string();
  auto r = plane_->execute("node", "open extra.qcow2 chain=second name=ex", request);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(listed("ex"));
  EXPECT_EQ(refused("node", "remove ex").code, Errc::Busy) << "the chain holds it";
  EXPECT_EQ(refused("node", "open").code, Errc::Invalid);
  EXPECT_EQ(refused("node", "mount x").code, Errc::Invalid);
  run("node", "close second");
  EXPECT_FALSE(listed("ex"));
}

TEST_F(ControlTest, Shutdown_CancelsRunningJobsAndLeavesTheGraphAsItWas) {
  make_chain();
  const std::string stream = start("stream", "top speed=64K");
  dir_.create("a", kSize);
  dir_.create("b", kSize, "a");
  open_writable_chain({"a", "b"}, "second");
  const std::string commit = start("commit", "b");
  wait_state(commit, JobState::Ready);
  plane_->shutdown();
  for (const JobInfo& j : plane_->jobs().list()) {
    EXPECT_EQ(j.state, JobState::Concluded) << j.id;
    EXPECT_EQ(j.error, std::optional<std::string>("job cancelled")) << j.id;
  }
  EXPECT_EQ(refused("stream", "top").code, Errc::Busy) << "no new jobs after shutdown";
  EXPECT_EQ(chain_layers(), (std::vector<std::string>{"top", "mid", "base"}));
  EXPECT_EQ(chain_layers("second"), (std::vector<std::string>{"b", "a"}));
  EXPECT_TRUE(same_bytes(read_node("top"), expected_));
}

// ---- parsing --------------------------------------------------------------------------------

TEST(ParseRate, SuffixesArePowersOf1024_FractionsNeedASuffix) {
  EXPECT_EQ(*parse_rate("0"), 0u);
  EXPECT_EQ(*parse_rate("65536"), 65536u);
  EXPECT_EQ(*parse_rate("64K"), 64u * 1024);
  EXPECT_EQ(*parse_rate("64k"), 64u * 1024);
  EXPECT_EQ(*parse_rate("1M"), 1u << 20);
  EXPECT_EQ(*parse_rate("1MiB"), 1u << 20);
  EXPECT_EQ(*parse_rate("2G"), 2ull << 30);
  EXPECT_EQ(*parse_rate("1T"), 1ull << 40);
  EXPECT_EQ(*parse_rate("1.5M"), 3u << 19);
  EXPECT_EQ(*parse_rate("0.1K"), 102u) << "rounded down";
  EXPECT_EQ(*parse_rate("16777215T"), 16777215ull << 40);
  for (const char* bad :
       {"", "M", "1.5", "1.M", "-1", "1X", "1MB2", "1 M", "16777216T", "99999999999999999999999"}) {
    auto r = parse_rate(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "'";
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, Errc::Invalid);
    }
  }
}

TEST(ParseCommandLines, WordsOptionsCommentsAndBlankLines) {
  auto lines = parse_command_lines("  top base=mid  /a=b.qcow2 \n\n# comment\n\tjob x\n");
  ASSERT_TRUE(lines.ok());
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_EQ((*lines)[0].text, "top base=mid  /a=b.qcow2");
  EXPECT_EQ((*lines)[0].words, (std::vector<std::string>{"top", "/a=b.qcow2"}));
  EXPECT_EQ((*lines)[0].options.at("base"), "mid");
  EXPECT_EQ((*lines)[1].words, (std::vector<std::string>{"job", "x"}));
  EXPECT_FALSE(parse_command_lines(std::string_view("top\0x", 5)).ok());
  EXPECT_FALSE(parse_command_lines("\n# only a comment\n").ok());
  EXPECT_FALSE(parse_command_lines("top a=1 a=2").ok());
  EXPECT_TRUE(is_option_word("on-error=stop"));
  EXPECT_FALSE(is_option_word("=x"));
  EXPECT_FALSE(is_option_word("9a=x"));
  EXPECT_FALSE(is_option_word("/path/a=b"));
}

TEST(ParseSwitch, OnOff) {
  EXPECT_TRUE(*parse_switch("auto-dismiss", "on"));
  EXPECT_FALSE(*parse_switch("auto-finalize", "off"));
  EXPECT_FALSE(parse_switch("auto-finalize", "perhaps").ok());
}

}  // namespace
}  // namespace chainfs::testing
