// chainfs status MOUNTPOINT: the graph and the jobs of a mount, human readable, from its
// graph.json (schema: docs/graph-json.md; JSON is read with the YAML parser, which accepts it).
#include <algorithm>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "fusefs/render.h"
#include "src/cli.h"

namespace chainfs::cli {

namespace {

std::string str(const YAML::Node& node, const std::string& fallback = "") {
  if (!node || node.IsNull()) return fallback;
  try {
    return node.as<std::string>();
  } catch (const YAML::Exception&) {
    return fallback;
  }
}

uint64_t num(const YAML::Node& node) {
  if (!node || node.IsNull()) return 0;
  try {
    return node.as<uint64_t>();
  } catch (const YAML::Exception&) {
    return 0;
  }
}

bool flag(const YAML::Node& node) {
  if (!node || node.IsNull()) return false;
  try {
    return node.as<bool>();
  } catch (const YAML::Exception&) {
    return false;
  }
}

void print_graph(const YAML::Node& graph) {
  std::map<std::string, std::string> driver_of;
  for (const YAML::Node& n : graph["nodes"]) driver_of[str(n["name"])] = str(n["driver"]);

  fmt::print("chains:\n");
  if (!graph["chains"] || graph["chains"].size() == 0) fmt::print("  (none)\n");
  for (const YAML::Node& chain : graph["chains"]) {
    std::string layers;
    size_t depth = 0;
    for (const YAML::Node& layer : chain["layers"]) {
      std::string name = str(layer);
      layers += fmt::format("{}{}-{} ({})", depth ? " -> " : "", depth, name, driver_of[name]);
      ++depth;
    }
    fmt::print("  {}: {}\n", str(chain["name"]), layers);
  }

  fmt::print("nodes:\n");
  if (!graph["nodes"] || graph["nodes"].size() == 0) {
    fmt::print("  (none)\n");
  } else {
    size_t width = 4;
    for (const YAML::Node& n : graph["nodes"]) width = std::max(width, str(n["name"]).size());
    fmt::print("  {:<{}}  {:<6}  {:>7}  {:<6}  {}\n", "NAME", width, "DRIVER", "SIZE", "ACCESS",
               "FILE");
    for (const YAML::Node& n : graph["nodes"])
      fmt::print("  {:<{}}  {:<6}  {:>7}  {:<6}  {}\n", str(n["name"]), width, str(n["driver"]),
                 fusefs::human_size(num(n["size"])), flag(n["writable"]) ? "rw" : "ro",
                 str(n["filename"]));
  }

  fmt::print("jobs:\n");
  if (!graph["jobs"] || graph["jobs"].size() == 0) fmt::print("  (none)\n");
  for (const YAML::Node& job : graph["jobs"]) {
    uint64_t done = num(job["progress"]), total = num(job["total"]);
    std::string percent = total ? fmt::format("{}%", done * 100 / total) : "-";
    fmt::print("  {}: {} {} of node {} (base {}), {} {} of {}", str(job["id"]), str(job["type"]),
               str(job["state"]), str(job["node"]), str(job["base"], "none"), percent,
               fusefs::human_size(done), fusefs::human_size(total));
    if (std::string rate = str(job["rate"]); !rate.empty() && rate != "0")
      fmt::print(", {}/s", rate);
    if (uint64_t speed = num(job["speed"]); speed != 0)
      fmt::print(", limit {}/s", fusefs::human_size(speed));
    if (std::string io = str(job["io-status"]); !io.empty() && io != "ok")
      fmt::print(", io-status {}", io);
    if (std::string error = str(job["error"]); !error.empty() && error != "~")
      fmt::print(", error: {}", error);
    fmt::print("\n");
  }
}

}  // namespace

int status_command(const std::vector<std::string>& words) {
  auto args = parse_args(words, {});
  if (!args) return usage_error("status", args.error().message);
  if (has_flag(*args, "help")) {
    fmt::print("{}", help_text("status"));
    return kExitOk;
  }
  std::vector<std::string> pos = positionals(*args);
  if (pos.size() != 1)
    return usage_error("status", pos.empty() ? "missing MOUNTPOINT"
                                             : fmt::format("unexpected argument '{}'", pos[1]));
  auto text = read_text_file(pos[0] + "/graph.json");
  if (!text)
    return failure(fmt::format("{} (is {} a chainfs mount?)", text.error().message, pos[0]));
  YAML::Node graph;
  try {
    graph = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return failure(fmt::format("{}/graph.json does not parse: {}", pos[0], e.what()));
  }
  if (!graph.IsMap() || !graph["nodes"])
    return failure(fmt::format("{}/graph.json is not a chainfs graph", pos[0]));
  print_graph(graph);
  return kExitOk;
}

}  // namespace chainfs::cli
