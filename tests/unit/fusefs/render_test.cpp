// What graph.json and graph.dot show, for a graph of raw nodes (and a fault filter) and jobs as the
// job engine lists them. JSON is parsed back with yaml-cpp (JSON is YAML).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "fusefs/render.h"
#include "fusefs_test_util.h"

namespace chainfs::fusefs {
namespace {

using testing::TempFolder;

JobInfo stream_job() {
  JobInfo job;
  job.id = "stream0";
  job.type = "stream";
  job.state = JobState::Running;
  job.node = "top";
  job.progress = 536870912;
  job.total = 2147483648;
  job.rate = 412.3 * 1024 * 1024;
  return job;
}

JobInfo failed_commit() {
  JobInfo job;
  job.id = "commit1";
  job.type = "commit";
  job.state = JobState::Concluded;
  job.node = "mid";
  job.base = "base";
  job.speed = 1 << 20;
  job.io_status = IoStatus::Failed;
  job.error = "read failed: \"x\"\nat 0";
  return job;
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
  YAML::Node g = YAML::Load(render_graph_json(graph, {stream_job(), failed_commit()}));
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
  EXPECT_EQ(by_name(g["nodes"], "plain")["filename"].as<std::string>(),
            dir.path() + "/pl\"ain.raw");

  ASSERT_EQ(g["chains"].size(), 1u);
  EXPECT_EQ(g["chains"][0]["name"].as<std::string>(), "vm");
  EXPECT_EQ(g["chains"][0]["root"].as<std::string>(), "disk");
  EXPECT_EQ(g["chains"][0]["layers"].size(), 1u);

  ASSERT_EQ(g["jobs"].size(), 2u);
  YAML::Node job = g["jobs"][0];
  EXPECT_EQ(job["id"].as<std::string>(), "stream0");
  EXPECT_EQ(job["type"].as<std::string>(), "stream");
  EXPECT_EQ(job["state"].as<std::string>(), "running");
  EXPECT_EQ(job["node"].as<std::string>(), "top");
  EXPECT_TRUE(job["base"].IsNull());
  EXPECT_EQ(job["progress"].as<uint64_t>(), 536870912u);
  EXPECT_EQ(job["total"].as<uint64_t>(), 2147483648u);
  EXPECT_EQ(job["speed"].as<uint64_t>(), 0u);
  EXPECT_EQ(job["rate"].as<std::string>(), "412.3M");
  EXPECT_EQ(job["io-status"].as<std::string>(), "ok");
  EXPECT_TRUE(job["error"].IsNull());
  YAML::Node failed = g["jobs"][1];
  EXPECT_EQ(failed["base"].as<std::string>(), "base");
  EXPECT_EQ(failed["state"].as<std::string>(), "concluded");
  EXPECT_EQ(failed["speed"].as<uint64_t>(), 1u << 20);
  EXPECT_EQ(failed["io-status"].as<std::string>(), "failed");
  EXPECT_EQ(failed["error"].as<std::string>(), "read failed: \"x\"\nat 0");
}

TEST_F(Render, GraphJson_JobKeysComeInTheStatusFilesOrder) {
  std::string json = render_graph_json(graph, {stream_job()});
  std::string yaml = render_job_status_yaml(stream_job());
  size_t at = json.find("\"id\": \"stream0\"");
  ASSERT_NE(at, std::string::npos) << json;
  // Each key of jobs/<id>, in its order, appears in the job's JSON object in the same order.
  size_t line_start = 0;
  while (line_start < yaml.size()) {
    size_t colon = yaml.find(':', line_start);
    std::string key = yaml.substr(line_start, colon - line_start);
    size_t found = json.find("\"" + key + "\": ", at);
    ASSERT_NE(found, std::string::npos) << key;
    at = found;
    line_start = yaml.find('\n', line_start) + 1;
  }
}

TEST_F(Render, GraphJson_WithoutJobs_HasAnEmptyJobList) {
  YAML::Node g = YAML::Load(render_graph_json(graph, {}));
  ASSERT_TRUE(g["jobs"].IsSequence());
  EXPECT_EQ(g["jobs"].size(), 0u);
}

TEST(RenderEmpty, GraphJson_OfAnEmptyReadOnlyGraph) {
  GraphOptions options;
  options.read_only = true;
  Graph graph(options);
  YAML::Node g = YAML::Load(render_graph_json(graph, {}));
  EXPECT_TRUE(g["read-only"].as<bool>());
  EXPECT_EQ(g["nodes"].size(), 0u);
  EXPECT_EQ(g["chains"].size(), 0u);
}

TEST_F(Render, GraphDot_HasEveryNodeAndEdge) {
  std::string dot = render_graph_dot(graph, {});
  EXPECT_EQ(dot.rfind("digraph chainfs {", 0), 0u);
  EXPECT_NE(dot.find("\"disk\" -> \"disk.file\" [label=\"file\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"flaky\" -> \"plain\" [label=\"filtered\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"chain:vm\" -> \"disk\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"plain.file\" [label="), std::string::npos) << dot;
  EXPECT_EQ(dot.back(), '\n');
}

TEST_F(Render, GraphDot_ShowsJobsPointingAtTheirListedNodes) {
  JobInfo job = stream_job();
  job.node = "disk";
  job.base = "gone";  // not listed: no edge to a node that is not drawn
  std::string dot = render_graph_dot(graph, {job});
  EXPECT_NE(dot.find("\"job:stream0\" [shape=diamond, label=\"stream0\\nstream running 25%\"]"),
            std::string::npos)
      << dot;
  EXPECT_NE(dot.find("\"job:stream0\" -> \"disk\" [label=\"node\""), std::string::npos) << dot;
  EXPECT_EQ(dot.find("\"gone\""), std::string::npos) << dot;
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
