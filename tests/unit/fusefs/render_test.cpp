// What graph.json, graph.dot and jobs/<id> show, for a graph of raw nodes (and a fault filter) and
// a job source standing in for the job engine. JSON is parsed back with yaml-cpp (JSON is YAML).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "fusefs/render.h"
#include "fusefs_test_util.h"

namespace chainfs::fusefs {
namespace {

using testing::TempFolder;

class FakeJobs : public JobSource {
 public:
  std::vector<JobView> jobs() const override { return views; }
  std::optional<JobView> job(const std::string& id) const override {
    for (const JobView& v : views)
      if (v.id == id) return v;
    return std::nullopt;
  }
  std::vector<JobView> views;
};

JobView stream_job() {
  return JobView{"stream0",
                 {{"id", std::string("stream0")},
                  {"type", std::string("stream")},
                  {"state", std::string("running")},
                  {"node", std::string("top")},
                  {"base", std::monostate{}},
                  {"progress", uint64_t{536870912}},
                  {"total", uint64_t{2147483648}},
                  {"rate", std::string("412.3M")},
                  {"error", std::monostate{}}}};
}

class Render : public ::testing::Test {
 protected:
  void SetUp() override {
    auto disk = graph.open_image(ImageSpec{dir.raw_image("disk.raw", 3 << 20), "vm", "", false});
    ASSERT_TRUE(disk.ok()) << disk.error().message;
    NodeSpec plain{"plain", "raw", dir.raw_image("pl\"ain.raw", 1 << 20), "", false, "", {}};
    ASSERT_TRUE(graph.open_named_node(plain).ok());
    NodeSpec flaky{"flaky", "fault", "", "plain", false, std::nullopt, {}};
    auto f = graph.open_named_node(flaky);
    ASSERT_TRUE(f.ok()) << f.error().message;
  }

  static YAML::Node by_name(const YAML::Node& list, const std::string& name) {
    for (const YAML::Node& n : list)
      if (n["name"].as<std::string>() == name) return n;
    ADD_FAILURE() << "no entry '" << name << "'";
    return YAML::Node();
  }

  TempFolder dir;
  Graph graph;
};

TEST_F(Render, GraphJson_ListsNodesChildrenChainsAndJobs) {
  FakeJobs jobs;
  jobs.views.push_back(stream_job());
  YAML::Node g = YAML::Load(render_graph_json(graph, &jobs));
  EXPECT_EQ(g["version"].as<int>(), 1);
  EXPECT_FALSE(g["read-only"].as<bool>());
  ASSERT_EQ(g["nodes"].size(), 5u);  // disk, disk.file, plain, plain.file, flaky

  YAML::Node disk = by_name(g["nodes"], "disk");
  EXPECT_EQ(disk["driver"].as<std::string>(), "raw");
  EXPECT_EQ(disk["size"].as<uint64_t>(), 3u << 20);
  EXPECT_EQ(disk["filename"].as<std::string>(), dir.path() + "/disk.raw");
  EXPECT_TRUE(disk["writable"].as<bool>());
  EXPECT_FALSE(disk["read-only"].as<bool>());
  ASSERT_EQ(disk["children"].size(), 1u);
  EXPECT_EQ(disk["children"][0]["role"].as<std::string>(), "file");
  EXPECT_EQ(disk["children"][0]["node"].as<std::string>(), "disk.file");
  EXPECT_GT(disk["id"].as<uint64_t>(), 0u);

  YAML::Node file = by_name(g["nodes"], "disk.file");
  EXPECT_EQ(file["driver"].as<std::string>(), "file");
  EXPECT_FALSE(file["writable"].as<bool>());  // a protocol node under a format node
  EXPECT_EQ(file["children"].size(), 0u);

  YAML::Node flaky = by_name(g["nodes"], "flaky");
  EXPECT_EQ(flaky["children"][0]["role"].as<std::string>(), "filtered");
  EXPECT_EQ(flaky["children"][0]["node"].as<std::string>(), "plain");
  EXPECT_FALSE(by_name(g["nodes"], "plain")["writable"].as<bool>());  // under a filter
  // Quotes in file names survive the escaping.
  EXPECT_EQ(by_name(g["nodes"], "plain")["filename"].as<std::string>(), dir.path() + "/pl\"ain.raw");

  ASSERT_EQ(g["chains"].size(), 1u);
  EXPECT_EQ(g["chains"][0]["name"].as<std::string>(), "vm");
  EXPECT_EQ(g["chains"][0]["root"].as<std::string>(), "disk");
  EXPECT_EQ(g["chains"][0]["layers"].size(), 1u);

  ASSERT_EQ(g["jobs"].size(), 1u);
  YAML::Node job = g["jobs"][0];
  EXPECT_EQ(job["id"].as<std::string>(), "stream0");
  EXPECT_EQ(job["progress"].as<uint64_t>(), 536870912u);
  EXPECT_TRUE(job["base"].IsNull());
  EXPECT_EQ(job["rate"].as<std::string>(), "412.3M");
}

TEST_F(Render, GraphJson_WithoutJobSource_HasAnEmptyJobList) {
  YAML::Node g = YAML::Load(render_graph_json(graph, nullptr));
  ASSERT_TRUE(g["jobs"].IsSequence());
  EXPECT_EQ(g["jobs"].size(), 0u);
}

TEST(RenderEmpty, GraphJson_OfAnEmptyReadOnlyGraph) {
  GraphOptions options;
  options.read_only = true;
  Graph graph(options);
  YAML::Node g = YAML::Load(render_graph_json(graph, nullptr));
  EXPECT_TRUE(g["read-only"].as<bool>());
  EXPECT_EQ(g["nodes"].size(), 0u);
  EXPECT_EQ(g["chains"].size(), 0u);
}

TEST_F(Render, GraphDot_HasEveryNodeAndEdge) {
  std::string dot = render_graph_dot(graph);
  EXPECT_EQ(dot.rfind("digraph chainfs {", 0), 0u);
  EXPECT_NE(dot.find("\"disk\" -> \"disk.file\" [label=\"file\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"flaky\" -> \"plain\" [label=\"filtered\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"chain:vm\" -> \"disk\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"plain.file\" [label="), std::string::npos) << dot;
  EXPECT_EQ(dot.back(), '\n');
}

TEST(RenderJob, YamlHasOneKeyPerLine_NullsAsTilde) {
  std::string text = render_job_yaml(stream_job());
  EXPECT_EQ(text,
            "id: stream0\ntype: stream\nstate: running\nnode: top\nbase: ~\n"
            "progress: 536870912\ntotal: 2147483648\nrate: 412.3M\nerror: ~\n");
  YAML::Node parsed = YAML::Load(text);
  EXPECT_EQ(parsed["total"].as<uint64_t>(), 2147483648u);
  EXPECT_TRUE(parsed["error"].IsNull());
}

TEST(RenderJob, StringsThatWouldChangeMeaningAreQuoted) {
  JobView job{"j1",
              {{"error", std::string("write failed: no space left")},
               {"node", std::string("123")},
               {"state", std::string("null")},
               {"note", std::string("")}}};
  std::string text = render_job_yaml(job);
  YAML::Node parsed = YAML::Load(text);
  EXPECT_EQ(parsed["id"].as<std::string>(), "j1");  // added when the fields lack it
  EXPECT_EQ(parsed["error"].as<std::string>(), "write failed: no space left");
  EXPECT_EQ(parsed["node"].Tag(), "!");  // quoted: stays a string
  EXPECT_EQ(parsed["node"].as<std::string>(), "123");
  EXPECT_FALSE(parsed["state"].IsNull());
  EXPECT_EQ(parsed["note"].as<std::string>(), "");
}

TEST(JsonQuote, EscapesQuotesBackslashesAndControlBytes) {
  EXPECT_EQ(json_quote("plain"), "\"plain\"");
  EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quote("l1\nl2\t"), "\"l1\\nl2\\t\"");
  EXPECT_EQ(json_quote(std::string("\x01", 1)), "\"\\u0001\"");
}

TEST(HumanSize, BinarySuffixesWithOneDecimal) {
  EXPECT_EQ(human_size(0), "0");
  EXPECT_EQ(human_size(1023), "1023");
  EXPECT_EQ(human_size(1024), "1K");
  EXPECT_EQ(human_size(1536), "1.5K");
  EXPECT_EQ(human_size(8ull << 20), "8M");
  EXPECT_EQ(human_size(3ull << 30), "3G");
  EXPECT_EQ(human_size((5ull << 40) + (1ull << 39)), "5.5T");
}

}  // namespace
}  // namespace chainfs::fusefs
