// The driver author's header: one small interface that protocol drivers (file), format drivers
// (raw, qcow2) and filters (fault) all implement. A driver instance is the state of one node.
//
// Lifecycle: construct (via the driver registry) -> open(self, params) once, after the node's file
// child (if any) is attached -> serve requests concurrently -> close() once, when the node's last
// strong reference goes away. A driver reaches its children through its Node (self.file(),
// self.backing()); those pointers are stable while a request is in flight, because edges change
// only inside drained sections (see blockcore/graph/drain.h).
//
// Capability probes are separate from data calls: the graph and the FUSE front-end ask
// capabilities() before they offer an operation.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blockcore/result.h"

namespace chainfs {

class Node;

struct Capabilities {
  bool writable = false;          // accepts write() (the node may still be made read-only)
  bool discard = false;           // discard() can drop allocation
  bool write_zeroes = false;      // write_zeroes() is cheaper than writing a zero buffer
  bool truncate_grow = false;     // truncate() may grow the node
  bool truncate_shrink = false;   // truncate() may shrink the node safely
  bool has_backing = false;       // the format can sit on a backing node
  bool persists_backing = false;  // set_backing_reference() records the backing in the image
  uint32_t request_alignment = 1;
};

// Allocation status of a range *in this node alone* (not the chain below it).
enum class Alloc : uint8_t {
  Data,         // allocated here; reads return this node's bytes
  Zero,         // this node says the range reads as zeros (qcow2 zero flag, raw hole)
  Unallocated,  // not in this node: reads come from the backing node (zeros without one)
};

struct BlockStatus {
  Alloc kind = Alloc::Data;
  uint64_t length = 0;  // bytes starting at the queried offset that share `kind` (>= 1, <= asked)
};

// The image's own record of its backing node, as a format driver reads it from its header.
struct BackingReference {
  std::string filename;  // as written in the image (may be relative to the image's folder)
  std::string format;    // "qcow2", "raw", or empty when the image does not say
};

// One host I/O in a batch submitted to a protocol node.
struct IoOp {
  enum class Kind : uint8_t { Read, Write } kind = Kind::Read;
  uint64_t offset = 0;
  std::byte* buf = nullptr;  // read into / write from
  size_t length = 0;
};

// A rule of the `fault` filter (INTERFACE.md: config `rules:`).
struct FaultRule {
  enum class Op : uint8_t { Any, Read, Write, Flush, Discard, WriteZeroes } op = Op::Any;
  std::optional<uint64_t> offset;  // the rule matches requests that overlap [offset, offset+length)
  std::optional<uint64_t> length;
  std::optional<Errc> error;  // error to inject; none = delay only
  uint32_t delay_ms = 0;
  std::optional<uint32_t> count;  // times the rule fires; none = always
};

// What a driver's open() needs to know. Options a driver does not use are ignored.
struct OpenParams {
  std::string filename;  // protocol drivers: host path
  bool read_only = false;
  std::vector<FaultRule> fault_rules;  // fault filter only
  uint64_t cache_bytes = 0;            // format drivers: metadata cache budget (0 = driver default)
};

class Driver {
 public:
  virtual ~Driver() = default;
  Driver() = default;
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  virtual std::string_view driver_name() const = 0;  // "file", "raw", "qcow2", "fault"

  virtual Result<void> open(Node& self, const OpenParams& params) = 0;
  // Flushes and releases host resources. Called exactly once, with no request in flight.
  virtual void close() {}

  virtual Capabilities capabilities() const = 0;
  virtual uint64_t size() const = 0;

  // Data calls. Offsets and lengths are bytes; the caller keeps off+len within size() for reads
  // and writes (the node checks), so drivers need not. All may run concurrently.
  virtual Result<void> read(uint64_t offset, std::span<std::byte> buf) = 0;
  virtual Result<void> write(uint64_t offset, std::span<const std::byte> buf) = 0;
  virtual Result<void> flush() = 0;
  // A hint: start writing this node's dirty data to the disk now, without waiting for it and
  // without flushing the device's cache (no durability promise: flush() gives that). A long copy
  // calls it as it goes, so that its final flush finds little left. Formats and filters pass it
  // to the child that holds their data. Default: nothing.
  virtual Result<void> start_writeback() { return {}; }
  virtual Result<void> discard(uint64_t offset, uint64_t length) = 0;
  virtual Result<void> write_zeroes(uint64_t offset, uint64_t length) = 0;
  virtual Result<void> truncate(uint64_t new_size) = 0;
  virtual Result<BlockStatus> block_status(uint64_t offset, uint64_t length) = 0;

  // Bytes allocated in this node itself (st_blocks). Default: sums block_status() Data ranges.
  virtual Result<uint64_t> allocated_bytes();

  // Batched host I/O, for protocol drivers: all ops are submitted together (one io_uring
  // submission) and the call returns when all completed. Default: one by one via read()/write().
  virtual Result<void> submit(std::span<IoOp> ops);

  // Format drivers: the backing node named by the image header, if any.
  virtual std::optional<BackingReference> backing_reference() const { return std::nullopt; }
  // Records a new backing reference in the image (graph persistence hook; called inside the drained
  // section that changes the edge). nullopt = no backing.
  virtual Result<void> set_backing_reference(const std::optional<BackingReference>& ref);

  // A short human description of why the driver opened read-only despite being asked for
  // read-write (qcow2 internal snapshots, dirty bit, ...), or empty.
  virtual std::string forced_read_only_reason() const { return {}; }

  // Switches the open driver between read-only and read-write (QEMU's bdrv_reopen); a no-op when
  // it already is. Only the driver's own state: the graph reopens the node's children itself
  // (Graph::reopen: a protocol child before its format node for read-write, after it for
  // read-only). Called inside a drained section of the node, so no request is in flight; queries
  // that need no request (capabilities(), size()) may run concurrently. Going read-only writes
  // back everything cached first; on failure the driver stays as it was. capabilities().writable
  // follows. Default: Unsupported.
  virtual Result<void> reopen(bool read_only);

 protected:
  // reopen() for a driver whose writability follows its one child (raw over its file, filters):
  // the graph reopens the child first (read-write) or after this node (read-only); the driver only
  // follows, and refuses read-write over a child that does not take writes. `read_only` is the
  // driver's own flag; the names are for the refusal.
  static Result<void> reopen_following_child(std::atomic<bool>& read_only, bool to_read_only,
                                             bool child_writable, std::string_view driver,
                                             std::string_view node, std::string_view child);
};

using DriverFactory = std::unique_ptr<Driver> (*)();

// The fixed table of drivers; nullptr for an unknown name. (Implemented in blockcore/drivers.)
std::unique_ptr<Driver> make_driver(std::string_view name);
bool is_format_driver(std::string_view name);  // raw, qcow2 (take a protocol `file` child)

}  // namespace chainfs
