// Inode numbers of the mount tree (docs/fusefs.md "Inodes").
//
// A FUSE inode number is 64 bits: the top byte says what kind of entry it is, the rest identifies
// it within the kind. Fixed entries (root, the top-level folders and files, the control files)
// have small constant numbers; a node file is its node's id (Node::id(), never reused within a
// graph), so one node keeps one inode for its whole life and a new node with an old name gets a
// new one; chain folders, chain links and job files get serial numbers from a table that maps
// their names to numbers and is never pruned (a name seen once keeps its number for the life of
// the mount, so numbers are never reused either).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace chainfs::fusefs {

using Ino = uint64_t;

enum class InodeKind : uint8_t {
  Fixed = 0,      // root, folders, graph.json, graph.dot, log, control files
  Node = 1,       // nodes/<node>: the value is the node's id
  ChainDir = 2,   // chains/<chain>
  ChainLink = 3,  // chains/<chain>/<depth>-<node>
  Job = 4,        // jobs/<id>
};

constexpr int kKindShift = 56;
constexpr Ino kValueMask = (Ino{1} << kKindShift) - 1;

constexpr Ino make_ino(InodeKind kind, uint64_t value) {
  return (Ino{static_cast<uint8_t>(kind)} << kKindShift) | (value & kValueMask);
}
constexpr InodeKind ino_kind(Ino ino) {
  return static_cast<InodeKind>(ino >> kKindShift);
}
constexpr uint64_t ino_value(Ino ino) {
  return ino & kValueMask;
}

// The fixed entries. kRoot must be FUSE_ROOT_ID (1).
enum FixedIno : Ino {
  kRoot = 1,
  kNodesDir = 2,
  kChainsDir = 3,
  kJobsDir = 4,
  kControlDir = 5,
  kGraphJson = 6,
  kGraphDot = 7,
  kLog = 8,
  kControlStream = 9,
  kControlCommit = 10,
  kControlSnapshot = 11,
  kControlJob = 12,
  kControlNode = 13,
  kFixedLast = kControlNode,
};

// The control files, in the order they are listed.
struct ControlFileEntry {
  const char* name;
  FixedIno ino;
};
inline constexpr ControlFileEntry kControlFiles[] = {
    {"stream", kControlStream}, {"commit", kControlCommit}, {"snapshot", kControlSnapshot},
    {"job", kControlJob},       {"node", kControlNode},
};
// The control file's name for its inode, or nullptr.
const char* control_file_name(Ino ino);
std::optional<Ino> control_file_ino(std::string_view name);

// What a fixed inode is: its name in its parent folder, the parent, and whether it is a folder.
struct FixedEntry {
  const char* name;
  FixedIno parent;
  bool directory;
};
std::optional<FixedEntry> fixed_entry(Ino ino);
// The fixed entry named `name` in the fixed folder `parent`, if any.
std::optional<Ino> fixed_child(Ino parent, std::string_view name);

// chains/<chain>/<depth>-<node>: the name of the link for a layer, and its parse.
std::string chain_link_name(size_t depth, std::string_view node);
struct ChainLinkName {
  size_t depth = 0;
  std::string node;
};
// Parses "<depth>-<node>": depth is decimal without sign or leading zeros (except "0"), the node
// name is everything after the first '-' and is not empty.
std::optional<ChainLinkName> parse_chain_link_name(std::string_view name);
// The target of a chain link: "../../nodes/<node>".
std::string chain_link_target(std::string_view node);

// Names of chain folders, chain links and jobs <-> serial inode numbers. Thread-safe.
class DynamicInodes {
 public:
  struct Entry {
    InodeKind kind;
    std::string chain;  // ChainDir, ChainLink: the chain
    std::string name;   // ChainLink: the link name; Job: the job id
  };

  Ino chain_dir(const std::string& chain);
  Ino chain_link(const std::string& chain, const std::string& link);
  Ino job(const std::string& id);
  // What a dynamic inode number was given for (nullopt for numbers never handed out).
  std::optional<Entry> lookup(Ino ino) const;

 private:
  Ino intern(InodeKind kind, const std::string& chain, const std::string& name);

  mutable std::mutex mutex_;  // leaf lock: nothing is called while holding it
  uint64_t next_serial_ = 1;
  std::map<std::pair<InodeKind, std::pair<std::string, std::string>>, Ino> by_name_;
  std::map<Ino, Entry> by_ino_;
};

}  // namespace chainfs::fusefs
