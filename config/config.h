// The YAML config file (INTERFACE.md "Config file (YAML)"; every key in docs/config.md): parsed and
// validated into plain structures, then built into a Graph.
//
// Two phases, so that nothing is opened for a bad config: load_config() reads and validates the
// whole file (syntax, keys, types, references, cycles, files that must exist) and reports every
// problem as one line "FILE:LINE: problem"; build_graph() then opens the nodes in dependency order
// and reports a failure to open (a corrupt image, say) the same way, at the line of the item.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "blockcore/graph/graph.h"
#include "blockcore/result.h"

namespace chainfs {

// One item of `nodes:`. spec.file is resolved against the config file's folder when relative.
struct ConfigNode {
  NodeSpec spec;
  int line = 0;  // 1-based line of the item in the config file
};

// One item of `chains:`: a chain named `name` whose active layer is the node `node` of `nodes:`.
struct ConfigChain {
  std::string name;
  std::string node;
  int line = 0;
};

// One item of `images:`, like --image. spec.path is resolved against the config file's folder.
struct ConfigImage {
  ImageSpec spec;
  int line = 0;
};

struct Config {
  std::string path;                // the config file, as given (used in messages)
  std::string log_level = "info";  // trace | debug | info | warn | error
  unsigned threads = 0;            // I/O worker threads; 0 = number of cores
  std::vector<ConfigNode> nodes;   // in file order
  std::vector<ConfigChain> chains;
  std::vector<ConfigImage> images;
};

// Reads and validates a config file. On failure the error (Errc::Invalid, or Errc::NotFound when
// the file itself or a file it names is missing) holds one line per problem, "FILE:LINE: problem",
// ordered by line.
Result<Config> load_config(const std::string& path);

// The same from text; `name` stands for the file in messages and its folder is the one relative
// paths are resolved against (the current directory if `name` has none).
Result<Config> load_config_string(std::string_view text, const std::string& name);

// Opens everything the config declares in `graph`: the nodes in dependency order (each after its
// backing and its fault child), then the chains, then the images. A failure is reported as
// "FILE:LINE: node 'x': <why>" (or chain/image), and what this call had added to the graph is
// removed again before it returns.
Result<void> build_graph(Graph& graph, const Config& config);

}  // namespace chainfs
