#include "fusefs/inodes.h"

#include <charconv>

#include <fmt/format.h>

namespace chainfs::fusefs {

const char* control_file_name(Ino ino) {
  for (const auto& entry : kControlFiles)
    if (entry.ino == ino) return entry.name;
  return nullptr;
}

std::optional<Ino> control_file_ino(std::string_view name) {
  for (const auto& entry : kControlFiles)
    if (name == entry.name) return entry.ino;
  return std::nullopt;
}

std::optional<FixedEntry> fixed_entry(Ino ino) {
  switch (ino) {
    case kRoot:
      return FixedEntry{"", kRoot, true};
    case kNodesDir:
      return FixedEntry{"nodes", kRoot, true};
    case kChainsDir:
      return FixedEntry{"chains", kRoot, true};
    case kJobsDir:
      return FixedEntry{"jobs", kRoot, true};
    case kControlDir:
      return FixedEntry{"control", kRoot, true};
    case kGraphJson:
      return FixedEntry{"graph.json", kRoot, false};
    case kGraphDot:
      return FixedEntry{"graph.dot", kRoot, false};
    case kLog:
      return FixedEntry{"log", kRoot, false};
    default:
      break;
  }
  if (const char* name = control_file_name(ino)) return FixedEntry{name, kControlDir, false};
  return std::nullopt;
}

std::optional<Ino> fixed_child(Ino parent, std::string_view name) {
  for (Ino ino = kRoot + 1; ino <= kFixedLast; ++ino) {
    auto entry = fixed_entry(ino);
    if (entry && entry->parent == parent && name == entry->name) return ino;
  }
  return std::nullopt;
}

std::string chain_link_name(size_t depth, std::string_view node) {
  return fmt::format("{}-{}", depth, node);
}

std::optional<ChainLinkName> parse_chain_link_name(std::string_view name) {
  size_t dash = name.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == name.size()) return std::nullopt;
  std::string_view digits = name.substr(0, dash);
  if (digits.size() > 1 && digits[0] == '0') return std::nullopt;
  ChainLinkName out;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out.depth);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  out.node = std::string(name.substr(dash + 1));
  return out;
}

std::string chain_link_target(std::string_view node) {
  return fmt::format("../../nodes/{}", node);
}

Ino DynamicInodes::chain_dir(const std::string& chain) {
  return intern(InodeKind::ChainDir, chain, {});
}

Ino DynamicInodes::chain_link(const std::string& chain, const std::string& link) {
  return intern(InodeKind::ChainLink, chain, link);
}

Ino DynamicInodes::job(const std::string& id) {
  return intern(InodeKind::Job, {}, id);
}

Ino DynamicInodes::intern(InodeKind kind, const std::string& chain, const std::string& name) {
  std::lock_guard lock(mutex_);
  auto key = std::make_pair(kind, std::make_pair(chain, name));
  auto it = by_name_.find(key);
  if (it != by_name_.end()) return it->second;
  Ino ino = make_ino(kind, next_serial_++);
  by_name_.emplace(std::move(key), ino);
  by_ino_.emplace(ino, Entry{kind, chain, name});
  return ino;
}

std::optional<DynamicInodes::Entry> DynamicInodes::lookup(Ino ino) const {
  std::lock_guard lock(mutex_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end()) return std::nullopt;
  return it->second;
}

}  // namespace chainfs::fusefs
