// YAML text -> ParsedConfig: syntax, keys, value types and the rules within one item.
//
// yaml-cpp reports positions as 0-based Marks and throws on syntax errors; both stay in this file:
// every exception is caught here and becomes a "FILE:LINE: ..." problem. Each problem about a
// key's value is reported at the key's line, because yaml-cpp marks an empty value (`backing:`)
// at the next token, which may be lines further down.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <utility>

#include "config/names.h"
#include "config/parsed_config.h"
#include "config/size.h"

namespace chainfs::config_detail {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string_view> kTopKeys = {"log-level", "threads", "nodes", "chains",
                                                "images"};
const std::vector<std::string_view> kNodeKeys = {"name",    "driver", "file", "read-only",
                                                 "backing", "child",  "rules"};
const std::vector<std::string_view> kChainKeys = {"name", "node"};
const std::vector<std::string_view> kImageKeys = {"path", "chain", "name", "read-only"};
const std::vector<std::string_view> kRuleKeys = {"op",    "offset",   "length",
                                                 "errno", "delay-ms", "count"};
const std::vector<std::string_view> kLogLevels = {"trace", "debug", "info", "warn", "error"};
const std::vector<std::string_view> kDrivers = {"qcow2", "raw", "fault"};

constexpr unsigned kMaxThreads = 1024;

constexpr std::array<std::pair<std::string_view, FaultRule::Op>, 6> kRuleOps = {{
    {"read", FaultRule::Op::Read},
    {"write", FaultRule::Op::Write},
    {"flush", FaultRule::Op::Flush},
    {"discard", FaultRule::Op::Discard},
    {"write-zeroes", FaultRule::Op::WriteZeroes},
    {"any", FaultRule::Op::Any},
}};

// Errors a fault rule may inject: the names of the codes blockcore carries (EPERM has no code of
// its own and is injected as EACCES, as blockcore maps host errors).
constexpr std::array<std::pair<std::string_view, Errc>, 14> kRuleErrnos = {{
    {"EIO", Errc::Io},
    {"ENOSPC", Errc::NoSpace},
    {"EINVAL", Errc::Invalid},
    {"EACCES", Errc::Access},
    {"EPERM", Errc::Access},
    {"EROFS", Errc::ReadOnly},
    {"ENOENT", Errc::NotFound},
    {"EBUSY", Errc::Busy},
    {"EEXIST", Errc::Exists},
    {"EOPNOTSUPP", Errc::Unsupported},
    {"EFBIG", Errc::TooLarge},
    {"ENXIO", Errc::NoData},
    {"ECANCELED", Errc::Cancelled},
    {"EAGAIN", Errc::Again},
}};

template <typename Table>
std::vector<std::string_view> table_names(const Table& table) {
  std::vector<std::string_view> names;
  for (const auto& [name, value] : table) names.push_back(name);
  return names;
}

int line_of(const YAML::Node& node, int fallback) {
  YAML::Mark mark = node.Mark();
  return mark.is_null() ? fallback : mark.line + 1;
}

const char* kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// One `key: value` of a mapping, with the key's line.
struct Entry {
  std::string key;
  int line = 0;
  YAML::Node value;
};

// The entries of a mapping whose keys are known, each key once. Reports keys that are not
// strings, unknown keys (with the closest known one as a hint) and keys given twice.
std::vector<Entry> read_entries(const YAML::Node& map, const std::vector<std::string_view>& known,
                                std::string_view context, std::string_view what,
                                Problems& problems) {
  std::vector<Entry> entries;
  // Copies, not references: a yaml-cpp map iterator yields a temporary pair.
  for (const auto& pair : map) {
    YAML::Node key = pair.first;
    int line = line_of(key, line_of(map, 1));
    if (!key.IsScalar()) {
      problems.add(line, context, fmt::format("a key must be a plain word, not {}", kind_of(key)));
      continue;
    }
    std::string name = key.Scalar();
    bool is_known = false;
    for (std::string_view k : known) is_known = is_known || k == name;
    if (!is_known) {
      std::string hint = did_you_mean(name, known);
      if (hint.empty()) hint = fmt::format(" (known keys: {})", join(known));
      problems.add(line, context, fmt::format("unknown {} '{}'{}", what, name, hint));
      continue;
    }
    auto earlier =
        std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.key == name; });
    if (earlier != entries.end()) {
      problems.add(line, context,
                   fmt::format("key '{}' is given twice (first at line {})", name, earlier->line));
      continue;
    }
    entries.push_back({name, line, pair.second});
  }
  return entries;
}

const Entry* find_entry(const std::vector<Entry>& entries, std::string_view key) {
  for (const Entry& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}

std::optional<std::string> read_string(const Entry& e, std::string_view context,
                                       Problems& problems) {
  if (!e.value.IsScalar()) {
    problems.add(e.line, context,
                 fmt::format("'{}' must be a string, not {}", e.key, kind_of(e.value)));
    return std::nullopt;
  }
  return e.value.Scalar();
}

// A string that names a node or chain.
std::optional<std::string> read_name(const Entry& e, std::string_view context, Problems& problems) {
  std::optional<std::string> name = read_string(e, context, problems);
  if (!name) return std::nullopt;
  if (auto why = invalid_name_reason(*name)) {
    problems.add(e.line, context, fmt::format("'{}': {}", e.key, *why));
    return std::nullopt;
  }
  return name;
}

std::optional<bool> read_bool(const Entry& e, std::string_view context, Problems& problems) {
  if (e.value.IsScalar()) {
    const std::string& s = e.value.Scalar();
    for (std::string_view t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
      if (s == t) return true;
    for (std::string_view f : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
      if (s == f) return false;
  }
  problems.add(e.line, context,
               fmt::format("'{}' must be true or false, not {}", e.key,
                           e.value.IsScalar() ? fmt::format("'{}'", e.value.Scalar())
                                              : std::string(kind_of(e.value))));
  return std::nullopt;
}

// A whole number in [min, max], decimal digits only.
std::optional<uint64_t> read_number(const Entry& e, uint64_t min, uint64_t max,
                                    std::string_view context, Problems& problems) {
  auto complain = [&] {
    problems.add(e.line, context,
                 fmt::format("'{}' must be a whole number from {} to {}, not {}", e.key, min, max,
                             e.value.IsScalar() ? fmt::format("'{}'", e.value.Scalar())
                                                : std::string(kind_of(e.value))));
    return std::nullopt;
  };
  if (!e.value.IsScalar()) return complain();
  const std::string& s = e.value.Scalar();
  if (s.empty()) return complain();
  uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return complain();
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return complain();
    value = value * 10 + digit;
  }
  if (value < min || value > max) return complain();
  return value;
}

std::optional<uint64_t> read_size(const Entry& e, std::string_view context, Problems& problems) {
  if (!e.value.IsScalar()) {
    problems.add(
        e.line, context,
        fmt::format("'{}' must be a size such as 4096 or 64K, not {}", e.key, kind_of(e.value)));
    return std::nullopt;
  }
  Result<uint64_t> size = parse_size(e.value.Scalar());
  if (!size) {
    problems.add(e.line, context, fmt::format("'{}': {}", e.key, size.error().message));
    return std::nullopt;
  }
  return *size;
}

// A value that must be one of `choices`.
template <typename Table>
std::optional<typename Table::value_type::second_type> read_choice(const Entry& e,
                                                                   const Table& table,
                                                                   std::string_view context,
                                                                   Problems& problems) {
  std::optional<std::string> s = read_string(e, context, problems);
  if (!s) return std::nullopt;
  for (const auto& [name, value] : table)
    if (name == *s) return value;
  std::vector<std::string_view> names = table_names(table);
  problems.add(e.line, context,
               fmt::format("'{}' is '{}', which is not one of {}{}", e.key, *s, join(names),
                           did_you_mean(*s, names)));
  return std::nullopt;
}

std::string resolve_path(const fs::path& base_dir, const std::string& path) {
  fs::path p(path);
  if (p.is_absolute() || base_dir.empty()) return path;
  return (base_dir / p).lexically_normal().string();
}

// The items of a list-valued top-level key; null counts as an empty list.
std::vector<YAML::Node> read_list(const Entry& e, Problems& problems) {
  std::vector<YAML::Node> items;
  if (e.value.IsNull()) return items;
  if (!e.value.IsSequence()) {
    problems.add(e.line, "",
                 fmt::format("'{}' must be a list (items starting with '- '), not {}", e.key,
                             kind_of(e.value)));
    return items;
  }
  for (const YAML::Node& item : e.value) items.push_back(item);
  return items;
}

// The plain string value of `key` in a mapping, or "". (operator[] is avoided: on a missing key
// it yields an invalid node that throws when asked its type.)
std::string scalar_of(const YAML::Node& map, std::string_view key) {
  if (!map.IsMap()) return {};
  for (const auto& pair : map) {
    YAML::Node k = pair.first;
    YAML::Node v = pair.second;
    if (k.IsScalar() && k.Scalar() == key) return v.IsScalar() ? v.Scalar() : std::string();
  }
  return {};
}

// "node 'base'" when the item names itself, else "node #3".
std::string item_context(std::string_view kind, const YAML::Node& item, std::string_view key,
                         size_t index) {
  std::string name = scalar_of(item, key);
  return name.empty() ? fmt::format("{} #{}", kind, index + 1) : fmt::format("{} '{}'", kind, name);
}

bool is_mapping_item(const YAML::Node& item, int line, std::string_view context,
                     std::string_view example, Problems& problems) {
  if (item.IsMap()) return true;
  problems.add(line, context,
               fmt::format("must be a mapping ({}), not {}", example, kind_of(item)));
  return false;
}

std::optional<FaultRule> parse_rule(const YAML::Node& item, int line, std::string_view context,
                                    Problems& problems) {
  if (!is_mapping_item(item, line, context, "{op: read, errno: EIO}", problems))
    return std::nullopt;
  FaultRule rule;
  bool ok = true;
  auto keep = [&](auto value, auto& field) {
    if (value)
      field = *value;
    else
      ok = false;
  };
  for (const Entry& e : read_entries(item, kRuleKeys, context, "key", problems)) {
    if (e.key == "op") {
      keep(read_choice(e, kRuleOps, context, problems), rule.op);
    } else if (e.key == "offset") {
      keep(read_size(e, context, problems), rule.offset);
    } else if (e.key == "length") {
      std::optional<uint64_t> length = read_size(e, context, problems);
      if (length && *length == 0) {
        problems.add(e.line, context, "'length' must be greater than 0");
        length.reset();
      }
      keep(length, rule.length);
    } else if (e.key == "errno") {
      keep(read_choice(e, kRuleErrnos, context, problems), rule.error);
    } else if (e.key == "delay-ms") {
      keep(read_number(e, 0, std::numeric_limits<uint32_t>::max(), context, problems),
           rule.delay_ms);
    } else if (e.key == "count") {
      keep(read_number(e, 1, std::numeric_limits<uint32_t>::max(), context, problems), rule.count);
    }
  }
  if (!ok) return std::nullopt;
  if (rule.offset && rule.length && *rule.offset > UINT64_MAX - *rule.length) {
    problems.add(line, context, "'offset' + 'length' is past the largest possible offset");
    return std::nullopt;
  }
  if (!rule.error && rule.delay_ms == 0) {
    problems.add(line, context, "the rule does nothing: give 'errno', 'delay-ms' or both");
    return std::nullopt;
  }
  return rule;
}

// Which drivers a key applies to; empty = all.
std::vector<std::string_view> drivers_of_key(std::string_view key) {
  if (key == "file") return {"qcow2", "raw"};
  if (key == "backing") return {"qcow2"};
  if (key == "child" || key == "rules") return {"fault"};
  return {};
}

void parse_node(const YAML::Node& item, size_t index, ParsedConfig& parsed, Problems& problems) {
  int line = line_of(item, 1);
  NodeSource source;
  source.context = item_context("node", item, "name", index);
  const std::string& context = source.context;
  if (!is_mapping_item(item, line, context, "name: ..., driver: ...", problems)) return;
  std::vector<Entry> entries = read_entries(item, kNodeKeys, context, "key", problems);

  ConfigNode node;
  node.line = line;
  NodeSpec& spec = node.spec;
  if (const Entry* e = find_entry(entries, "name")) {
    source.name_line = e->line;
    if (auto name = read_name(*e, context, problems)) spec.name = *name;
  } else {
    problems.add(line, context, "missing required key 'name'");
  }
  if (const Entry* e = find_entry(entries, "driver")) {
    if (auto driver = read_string(*e, context, problems)) {
      spec.driver = *driver;
      source.known_driver =
          std::find(kDrivers.begin(), kDrivers.end(), spec.driver) != kDrivers.end();
      if (!source.known_driver)
        problems.add(e->line, context,
                     fmt::format("unknown driver '{}'{} (known drivers: {})", spec.driver,
                                 did_you_mean(spec.driver, kDrivers), join(kDrivers)));
    }
  } else {
    problems.add(line, context, fmt::format("missing required key 'driver' ({})", join(kDrivers)));
  }

  for (const Entry& e : entries) {
    std::vector<std::string_view> drivers = drivers_of_key(e.key);
    if (source.known_driver && !drivers.empty() &&
        std::find(drivers.begin(), drivers.end(), spec.driver) == drivers.end()) {
      problems.add(e.line, context,
                   fmt::format("key '{}' does not apply to driver {} (only to {})", e.key,
                               spec.driver, join(drivers)));
      continue;
    }
    if (e.key == "file") {
      source.file_line = e.line;
      if (auto file = read_string(e, context, problems)) {
        if (file->empty()) {
          problems.add(e.line, context, "'file' is empty");
        } else {
          source.file_as_written = *file;
          spec.file = resolve_path(parsed.base_dir, *file);
        }
      }
    } else if (e.key == "read-only") {
      if (auto ro = read_bool(e, context, problems)) spec.read_only = *ro;
    } else if (e.key == "backing") {
      source.backing_line = e.line;
      if (e.value.IsNull()) {
        spec.backing = std::string();  // explicitly none
      } else if (e.value.IsScalar() && e.value.Scalar().empty()) {
        problems.add(e.line, context,
                     "'backing' is empty: write 'backing: null' for no backing, or omit the key "
                     "to follow the image header");
      } else if (auto name = read_name(e, context, problems)) {
        spec.backing = *name;
      }
    } else if (e.key == "child") {
      source.child_line = e.line;
      if (auto name = read_name(e, context, problems)) spec.child = *name;
    } else if (e.key == "rules") {
      if (!e.value.IsNull() && !e.value.IsSequence()) {
        problems.add(e.line, context,
                     fmt::format("'rules' must be a list of rules, not {}", kind_of(e.value)));
        continue;
      }
      size_t rule_index = 0;
      for (const YAML::Node& rule_item : e.value) {
        std::string rule_context = fmt::format("{} rule #{}", context, ++rule_index);
        if (auto rule = parse_rule(rule_item, line_of(rule_item, e.line), rule_context, problems))
          spec.rules.push_back(*rule);
      }
    }
  }
  if (source.known_driver) {
    if ((spec.driver == "qcow2" || spec.driver == "raw") && !find_entry(entries, "file"))
      problems.add(
          line, context,
          fmt::format("missing required key 'file' (the image a {} node reads)", spec.driver));
    if (spec.driver == "fault" && !find_entry(entries, "child"))
      problems.add(line, context,
                   "missing required key 'child' (the node the fault filter forwards to)");
  }
  parsed.config.nodes.push_back(std::move(node));
  parsed.nodes.push_back(std::move(source));
}

void parse_chain(const YAML::Node& item, size_t index, ParsedConfig& parsed, Problems& problems) {
  int line = line_of(item, 1);
  ChainSource source;
  source.context = item_context("chain", item, "name", index);
  const std::string& context = source.context;
  if (!is_mapping_item(item, line, context, "name: ..., node: ...", problems)) return;
  std::vector<Entry> entries = read_entries(item, kChainKeys, context, "key", problems);
  ConfigChain chain;
  chain.line = line;
  for (std::string_view key : kChainKeys) {
    const Entry* e = find_entry(entries, key);
    if (!e) {
      problems.add(line, context, fmt::format("missing required key '{}'", key));
      continue;
    }
    std::optional<std::string> name = read_name(*e, context, problems);
    if (key == "name") {
      source.name_line = e->line;
      if (name) chain.name = *name;
    } else {
      source.node_line = e->line;
      if (name) chain.node = *name;
    }
  }
  parsed.config.chains.push_back(std::move(chain));
  parsed.chains.push_back(std::move(source));
}

void parse_image(const YAML::Node& item, size_t index, ParsedConfig& parsed, Problems& problems) {
  int line = line_of(item, 1);
  ImageSource source;
  source.context = item_context("image", item, "path", index);
  const std::string& context = source.context;
  if (!is_mapping_item(item, line, context, "path: ..., chain: ...", problems)) return;
  ConfigImage image;
  image.line = line;
  ImageSpec& spec = image.spec;
  std::vector<Entry> entries = read_entries(item, kImageKeys, context, "key", problems);
  if (!find_entry(entries, "path")) problems.add(line, context, "missing required key 'path'");
  for (const Entry& e : entries) {
    if (e.key == "path") {
      source.path_line = e.line;
      if (auto path = read_string(e, context, problems)) {
        if (path->empty()) {
          problems.add(e.line, context, "'path' is empty");
        } else {
          source.path_as_written = *path;
          spec.path = resolve_path(parsed.base_dir, *path);
        }
      }
    } else if (e.key == "chain") {
      source.chain_line = e.line;
      if (auto name = read_name(e, context, problems)) spec.chain = *name;
    } else if (e.key == "name") {
      source.name_line = e.line;
      if (auto name = read_name(e, context, problems)) spec.node_name = *name;
    } else if (e.key == "read-only") {
      if (auto ro = read_bool(e, context, problems)) spec.read_only = *ro;
    }
  }
  parsed.config.images.push_back(std::move(image));
  parsed.images.push_back(std::move(source));
}

void parse_document(const YAML::Node& root, ParsedConfig& parsed, Problems& problems) {
  if (root.IsNull()) return;  // an empty file: nothing declared, all defaults
  if (!root.IsMap()) {
    problems.add(line_of(root, 1), "",
                 fmt::format("the config must be a mapping of keys ({}), not {}", join(kTopKeys),
                             kind_of(root)));
    return;
  }
  Config& config = parsed.config;
  for (const Entry& e : read_entries(root, kTopKeys, "", "top-level key", problems)) {
    if (e.key == "log-level") {
      if (auto level = read_string(e, "", problems)) {
        if (std::find(kLogLevels.begin(), kLogLevels.end(), *level) == kLogLevels.end())
          problems.add(e.line, "",
                       fmt::format("'log-level' is '{}', which is not one of {}{}", *level,
                                   join(kLogLevels), did_you_mean(*level, kLogLevels)));
        else
          config.log_level = *level;
      }
    } else if (e.key == "threads") {
      if (auto threads = read_number(e, 0, kMaxThreads, "", problems))
        config.threads = static_cast<unsigned>(*threads);
    } else if (e.key == "nodes") {
      std::vector<YAML::Node> items = read_list(e, problems);
      for (size_t i = 0; i < items.size(); ++i) parse_node(items[i], i, parsed, problems);
    } else if (e.key == "chains") {
      std::vector<YAML::Node> items = read_list(e, problems);
      for (size_t i = 0; i < items.size(); ++i) parse_chain(items[i], i, parsed, problems);
    } else if (e.key == "images") {
      std::vector<YAML::Node> items = read_list(e, problems);
      for (size_t i = 0; i < items.size(); ++i) parse_image(items[i], i, parsed, problems);
    }
  }
}

}  // namespace

std::string image_stem(const std::string& path) {
  return fs::path(path).stem().string();
}

void parse_config_text(std::string_view text, ParsedConfig& parsed, Problems& problems) {
  try {
    std::vector<YAML::Node> documents = YAML::LoadAll(std::string(text));
    if (documents.size() > 1) {
      problems.add(line_of(documents[1], 1), "",
                   "a second YAML document ('---'): the config is one document");
      return;
    }
    if (!documents.empty()) parse_document(documents.front(), parsed, problems);
  } catch (const YAML::Exception& e) {
    problems.add(e.mark.is_null() ? 1 : e.mark.line + 1, "",
                 fmt::format("YAML syntax error: {}", e.msg));
  } catch (const std::exception& e) {
    problems.add(0, "", fmt::format("cannot read the config: {}", e.what()));
  }
}

}  // namespace chainfs::config_detail
