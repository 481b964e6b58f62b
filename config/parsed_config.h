// The parser's output before cross-item validation: the Config plus where each field was written,
// so that checks between items (duplicates, references, cycles, files) can point at the exact
// line. Internal to config/.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/diagnostics.h"

namespace chainfs::config_detail {

// Lines are 1-based; 0 means the key was not given.
struct NodeSource {
  std::string context;  // "node 'base'" or "node #3" (no name), for messages
  int name_line = 0;
  int file_line = 0;
  int backing_line = 0;
  int child_line = 0;
  std::string file_as_written;  // before resolving against the config's folder
  bool known_driver = false;
};

struct ChainSource {
  std::string context;
  int name_line = 0;
  int node_line = 0;
};

struct ImageSource {
  std::string context;
  int path_line = 0;
  int chain_line = 0;
  int name_line = 0;
  std::string path_as_written;
};

struct ParsedConfig {
  Config config;
  std::filesystem::path base_dir;   // relative paths in the file are relative to this
  std::vector<NodeSource> nodes;    // parallel to config.nodes
  std::vector<ChainSource> chains;  // parallel to config.chains
  std::vector<ImageSource> images;  // parallel to config.images
};

// Syntax, keys, types and the checks within one item. Items are kept even when they have
// problems, so that later checks do not repeat an error as a dangling reference.
void parse_config_text(std::string_view text, ParsedConfig& parsed, Problems& problems);

// Checks between items: names taken twice, references to undeclared nodes, backing cycles, files
// that do not exist.
void check_config_items(const ParsedConfig& parsed, Problems& problems);

// The default chain name of an image: its file's stem (INTERFACE.md).
std::string image_stem(const std::string& path);

}  // namespace chainfs::config_detail
