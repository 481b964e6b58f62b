// Image: one open qcow2 image, independent of the Graph. It reaches its host file through HostFile
// (the driver adapts the node's file child; tests and the fuzzer use an in-memory file) and its
// backing chain through BackingReader, so every piece can be driven without a Graph.
//
// Design note — state and locks
//   ranges_      per-guest-cluster range locks (range_lock.h): shared for data I/O on clusters
//   whose
//                mapping stays, exclusive for anything that changes a mapping. Taken first.
//   meta_mutex_  guards all metadata: header_, l1_, reftable_, both table caches, the allocator
//                (free_hint_, host_end_), pending_frees_ and the allocation counters. Held while
//                metadata is looked up or changed (including metadata I/O), never during guest data
//                I/O and never while waiting for a range lock. Lock order: ranges_ → meta_mutex_.
//   size_        atomic: read by the node's range checks without a lock.
//
// Design note — metadata update order (why a kill -9 at any instant leaves a consistent image)
//   1. A new cluster's refcount is raised in the refcount cache before anything points at it.
//   2. Guest data is written to its host cluster before the L2 entry pointing at it is changed
//      (the cache is updated only after the data I/O completed).
//   3. A dirty L2 table is written only after every dirty refcount block was written and the file
//      synced; dirty L1 entries only after every dirty L2 table was written and synced. So on disk
//      every reference points at a cluster whose refcount is already >= 1.
//   4. A cluster that loses its last reference (discard, zeroing, COW of a compressed cluster) is
//      put on pending_frees_; its refcount is lowered only after the dropped references were
//      written and synced (at flush), and only then can the allocator hand it out again.
//   5. New refcount blocks are written before the refcount table entry that points at them; a
//      grown refcount table or L1 table is written and synced before the header points at it with
//      one small write inside the first sector.
//   A crash can therefore only leak clusters (raised refcount, no reference yet; or reference
//   dropped, refcount not yet lowered) — never leave a reference to a free cluster. flush() runs
//   the whole write-back and syncs, so every write whose flush returned is on disk. A flush after
//   much guest data first syncs that data without meta_mutex_ (the only sync not under it); the
//   order above is unchanged, its syncs just find less to write.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "blockcore/driver.h"
#include "blockcore/drivers/qcow2/format.h"
#include "blockcore/drivers/qcow2/range_lock.h"
#include "blockcore/drivers/qcow2/table_cache.h"
#include "blockcore/result.h"

namespace chainfs::qcow2 {

// The image's host file: batched I/O (one call = one io_uring submission in the file driver).
class HostFile {
 public:
  virtual ~HostFile() = default;
  // Short reads past the end of the file are zero-filled.
  virtual Result<void> submit(std::span<IoOp> ops) = 0;
  virtual Result<void> sync() = 0;
  virtual uint64_t length() const = 0;
};

// The guest view of the backing chain below the image.
class BackingReader {
 public:
  virtual ~BackingReader() = default;
  virtual bool present() const = 0;
  virtual uint64_t size() const = 0;
  // Reads guest bytes; zeros where there is no backing node or past its end.
  virtual Result<void> read(uint64_t offset, std::span<std::byte> buf) = 0;
};

// No backing file: every read yields zeros (images opened on their own: tests, fuzzing, benches).
class NoBackingReader final : public BackingReader {
 public:
  bool present() const override { return false; }
  uint64_t size() const override { return 0; }
  Result<void> read(uint64_t, std::span<std::byte> buf) override {
    std::fill(buf.begin(), buf.end(), std::byte{0});
    return {};
  }
};

struct ImageOptions {
  bool read_only = false;
  uint64_t cache_bytes = 0;  // metadata cache budget; 0 = default (see default_cache_bytes)
};

// A HostFile over a byte vector, for tests and the fuzzer. Writes past `max_length` fail with
// NoSpace so that a malicious image cannot make it grow without bound.
class MemoryHostFile : public HostFile {
 public:
  explicit MemoryHostFile(std::vector<std::byte> bytes, uint64_t max_length = 256ull << 20)
      : bytes_(std::move(bytes)), max_length_(max_length) {}
  Result<void> submit(std::span<IoOp> ops) override;
  Result<void> sync() override { return {}; }
  uint64_t length() const override;
  std::vector<std::byte> contents() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::byte> bytes_;
  uint64_t max_length_;
};

class Image {
 public:
  static Result<std::unique_ptr<Image>> open(HostFile& file, BackingReader& backing,
                                             const ImageOptions& options);
  ~Image();
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  uint64_t size() const { return size_.load(std::memory_order_acquire); }
  bool read_only() const { return read_only_.load(std::memory_order_acquire); }
  const std::string& forced_read_only_reason() const { return forced_read_only_reason_; }
  const Geometry& geometry() const { return geo_; }
  std::optional<BackingReference> backing_reference() const;

  Result<void> read(uint64_t offset, std::span<std::byte> buf);
  Result<void> write(uint64_t offset, std::span<const std::byte> buf);
  Result<void> discard(uint64_t offset, uint64_t length);
  Result<void> write_zeroes(uint64_t offset, uint64_t length);
  Result<void> flush();
  Result<void> truncate(uint64_t new_size);
  Result<BlockStatus> block_status(uint64_t offset, uint64_t length);
  Result<uint64_t> allocated_bytes();
  Result<void> set_backing_reference(const std::optional<BackingReference>& ref);
  // Writes back all metadata (read-write images); called once before destruction.
  Result<void> close();
  // Switches between read-only and read-write (Driver::reopen); the caller makes sure no request
  // is in flight. Read-only: writes back all metadata and syncs first. Read-write: refused while
  // the image has a reason to stay read-only (forced_read_only_reason(), or one its header shows
  // now: dirty or corrupt bit, internal snapshots) or when its header's tables moved on disk
  // since it was opened; clears the auto-clear features as an open for writing does. Refcounts
  // and tables load on demand as for any writable image.
  Result<void> reopen(bool read_only);

 private:
  struct Plan;  // image_write.cpp: what one write-like request does per cluster
  struct ClusterWork;
  enum class WriteKind : uint8_t { Data, Zeroes, Discard };

  Image(HostFile& file, BackingReader& backing) : file_(file), backing_(backing) {}
  Result<void> load(const ImageOptions& options);
  Result<void> clear_autoclear_features();  // meta_mutex_ held (or not yet shared)

  // ---- host I/O helpers (any lock state) --------------------------------------------------
  Result<void> host_read(uint64_t offset, std::span<std::byte> buf);
  Result<void> host_write(uint64_t offset, std::span<const std::byte> buf);

  // ---- mapping (meta_mutex_ held) ---------------------------------------------------------
  Result<TableCache::Table*> load_l2(uint64_t l2_offset);
  Result<void> write_l2_table(TableCache::Table& table);
  // Loads the uncached L2 tables of a cluster range with the mutex released (held on entry and
  // on return); best effort: the lookups that follow load whatever is still missing.
  void prefetch_l2(std::unique_lock<std::mutex>& lock, uint64_t first_cluster,
                   uint64_t last_cluster);
  // The L2 table covering a guest cluster; nullptr when unallocated and !allocate.
  Result<TableCache::Table*> l2_for(uint64_t guest_cluster, bool allocate);
  Result<DecodedL2> mapping(uint64_t guest_cluster);
  Result<void> set_mapping(uint64_t guest_cluster, L2Entry entry);
  uint64_t host_limit() const { return host_end_; }

  // ---- refcounts and allocation (meta_mutex_ held; image_alloc.cpp) -----------------------
  Result<TableCache::Table*> load_refblock(uint64_t offset);
  Result<uint64_t> refcount(uint64_t cluster_index);
  Result<void> change_refcount(uint64_t cluster_index, int64_t delta);
  // Allocates one cluster at or after *cursor (advanced); returns its host offset.
  Result<uint64_t> alloc_cluster_from(uint64_t& cursor);
  Result<uint64_t> alloc_cluster(bool metadata);
  Result<uint64_t> alloc_contiguous(uint64_t count);
  Result<void> create_refblock(uint64_t table_index, uint64_t at_cluster);
  Result<void> grow_reftable(uint64_t needed_index);
  Result<void> free_now(uint64_t host_offset, uint64_t length);
  void free_later(uint64_t host_offset, uint64_t length, bool data_cluster);
  bool overlaps_static_metadata(uint64_t cluster_index) const;
  Result<void> count_used_clusters();

  // ---- write-back (meta_mutex_ held; image_alloc.cpp) -------------------------------------
  Result<void> write_refblocks();  // dirty refcount blocks, then sync if anything changed
  Result<void> write_back_all();   // the full flush order (see the design note)
  Result<void> write_header_fields(uint64_t offset, std::span<const std::byte> bytes);
  Result<void> sync_file();
  Result<void> make_room(TableCache& cache);  // evicts one table (writing it back) if full

  // ---- request paths (image_read.cpp / image_write.cpp) -----------------------------------
  Result<void> modify(uint64_t offset, uint64_t length, const std::byte* data, WriteKind kind);
  Result<bool> try_write_in_place(uint64_t offset, std::span<const std::byte> buf);
  Result<void> plan_cluster(uint64_t guest_cluster, uint64_t start, uint64_t end,
                            const std::byte* data, WriteKind kind, Plan& plan);
  Result<void> execute(Plan& plan);
  Result<void> read_compressed(uint64_t coffset, uint64_t csize, std::span<std::byte> cluster);

  HostFile& file_;
  BackingReader& backing_;
  // Atomic: capabilities() reads it outside requests while reopen() may switch it. Requests
  // never see it change (reopen runs with none in flight).
  std::atomic<bool> read_only_{false};
  std::string forced_read_only_reason_;  // set once, in load()
  Geometry geo_;
  std::atomic<uint64_t> size_{0};

  RangeLock ranges_;  // lock order: ranges_ before meta_mutex_

  mutable std::mutex meta_mutex_;  // lock order: after ranges_; never held during guest data I/O
  Header header_;
  std::vector<uint64_t> l1_;       // raw big-endian-decoded L1 entries
  std::vector<uint8_t> l1_dirty_;  // per entry: changed in memory, not yet written
  bool any_l1_dirty_ = false;
  std::vector<uint64_t> reftable_;  // raw refcount table entries (written through)
  std::unique_ptr<TableCache> l2_cache_;
  std::unique_ptr<TableCache> refblock_cache_;
  uint64_t host_end_ = 0;            // first byte past everything the image uses or we allocated
  uint64_t free_hint_ = 0;           // first cluster index that may be free
  bool refcounts_unsynced_ = false;  // refcount blocks written since the last sync
  bool l2_unsynced_ = false;         // L2 tables written since the last sync
  uint64_t sync_count_ = 0;          // file syncs done (flush syncs at least once)
  // Guest data bytes written since the last sync, counted up to kPresyncBytes (not under
  // meta_mutex_: data I/O runs without it). flush() syncs them without the lock first once there
  // are that many. Past the threshold writers only read it: no cache line bouncing between
  // writer threads on the hot path.
  std::atomic<uint64_t> unsynced_data_bytes_{0};
  static constexpr uint64_t kPresyncBytes = 4 << 20;
  void note_data_written(uint64_t bytes) {
    if (unsynced_data_bytes_.load(std::memory_order_relaxed) < kPresyncBytes)
      unsynced_data_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  uint64_t l2_writeback_epoch_ = 0;  // L2 tables written so far (see prefetch_l2)
  struct PendingFree {
    uint64_t offset, length;
    bool data;
  };
  std::vector<PendingFree> pending_frees_;
  std::optional<int64_t> used_clusters_;  // clusters with refcount > 0 (counted lazily)
  int64_t metadata_clusters_ = 0;         // header, tables, refcount blocks, L2 tables
  int64_t pending_data_clusters_ = 0;     // data clusters on pending_frees_
};

// Default metadata cache budget for a geometry: L2 tables for 8 GiB of mapped data, within bounds.
uint64_t default_cache_bytes(const Geometry& geo);

}  // namespace chainfs::qcow2
