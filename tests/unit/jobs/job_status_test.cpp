// The jobs/<id> status text: exact lines, and values that a YAML reader gets back unchanged.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "blockcore/jobs/job_status.h"

namespace chainfs {
namespace {

JobInfo example() {
  JobInfo info;
  info.id = "stream0";
  info.type = "stream";
  info.state = JobState::Running;
  info.node = "top";
  info.base = "base";
  info.progress = 536870912;
  info.total = 2147483648;
  info.speed = 0;
  info.rate = 412.3 * 1024 * 1024;
  return info;
}

TEST(JobStatusYaml, InterfaceExample_ExactText) {
  EXPECT_EQ(render_job_status_yaml(example()),
            "id: stream0\n"
            "type: stream\n"
            "state: running\n"
            "node: top\n"
            "base: base\n"
            "progress: 536870912\n"
            "total: 2147483648\n"
            "speed: 0\n"
            "rate: 412.3M\n"
            "io-status: ok\n"
            "error: ~\n");
}

TEST(JobStatusYaml, NoBaseAndFailed_TildeAndQuotedMessage) {
  JobInfo info = example();
  info.base.clear();
  info.state = JobState::Concluded;
  info.rate = 0;
  info.io_status = IoStatus::NoSpace;
  info.error = "write failed: No space left on device";
  EXPECT_EQ(render_job_status_yaml(info),
            "id: stream0\n"
            "type: stream\n"
            "state: concluded\n"
            "node: top\n"
            "base: ~\n"
            "progress: 536870912\n"
            "total: 2147483648\n"
            "speed: 0\n"
            "rate: 0\n"
            "io-status: nospace\n"
            "error: \"write failed: No space left on device\"\n");
}

TEST(JobStatusYaml, ParsedByYamlCpp_GivesBackEveryField) {
  JobInfo info = example();
  info.error = "read at 0x1000 failed: \"EIO\" \\ # not a comment\nsecond line\t";
  info.node = "~";
  info.base = "123";
  const YAML::Node doc = YAML::Load(render_job_status_yaml(info));
  ASSERT_TRUE(doc.IsMap());
  EXPECT_EQ(doc.size(), 11u);
  EXPECT_EQ(doc["id"].as<std::string>(), "stream0");
  EXPECT_EQ(doc["node"].as<std::string>(), "~");
  EXPECT_FALSE(doc["node"].IsNull());
  EXPECT_EQ(doc["base"].as<std::string>(), "123");
  EXPECT_EQ(doc["base"].Tag(), "!");  // quoted: a string, not an int
  EXPECT_EQ(doc["progress"].as<uint64_t>(), 536870912u);
  EXPECT_EQ(doc["rate"].as<std::string>(), "412.3M");
  EXPECT_EQ(doc["error"].as<std::string>(), *info.error);
}

TEST(YamlScalar, PlainOnlyWhenItReadsBackAsTheSameString) {
  EXPECT_EQ(yaml_scalar("stream0"), "stream0");
  EXPECT_EQ(yaml_scalar("job cancelled"), "job cancelled");
  EXPECT_EQ(yaml_scalar("a-b.c_d"), "a-b.c_d");
  for (const char* text :
       {"",     "~",    "null", "Null", "true",  "no",     "off", "1",      "-x", "1e3",
        ".inf", "a: b", "a #b", "x:",   " lead", "trail ", "[x]", "{x}",    "*x", "!x",
        "'q",   "\"q",  "%x",   "@x",   "`x",    "|x",     ">x",  "tab\tin"}) {
    const std::string out = yaml_scalar(text);
    EXPECT_EQ(out.front(), '"') << text;
    const YAML::Node node = YAML::Load("k: " + out);
    EXPECT_EQ(node["k"].as<std::string>(), text) << out;
  }
}

}  // namespace
}  // namespace chainfs
