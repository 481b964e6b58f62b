// Image: refcounts, the cluster allocator, refcount-table growth and the write-back order.
// Everything here runs with meta_mutex_ held. See image.h for why the order keeps the image
// consistent across a crash.
#include <algorithm>
#include <cstring>

#include "blockcore/drivers/qcow2/image.h"

namespace chainfs::qcow2 {

namespace {
uint64_t ceil_div(uint64_t a, uint64_t b) {
  return a / b + (a % b ? 1 : 0);
}
}  // namespace

Result<TableCache::Table*> Image::load_refblock(uint64_t offset) {
  if (TableCache::Table* t = refblock_cache_->find(offset)) return t;
  CHAINFS_TRY(make_room(*refblock_cache_));
  TableBytes bytes = refblock_cache_->take_buffer(geo_.cluster_size);
  CHAINFS_TRY(host_read(offset, bytes));  // every byte (a short read is zero-filled)
  return refblock_cache_->insert(offset, std::move(bytes), false);
}

Result<uint64_t> Image::refcount(uint64_t cluster_index) {
  const uint64_t table_index = cluster_index >> geo_.refblock_bits;
  if (table_index >= reftable_.size()) return uint64_t{0};
  CHAINFS_ASSIGN_OR_RETURN(uint64_t block,
                           decode_reftable_entry(geo_, reftable_[table_index], host_limit()));
  if (block == 0) return uint64_t{0};
  CHAINFS_ASSIGN_OR_RETURN(TableCache::Table * t, load_refblock(block));
  return refcount_get(geo_, t->bytes, cluster_index & (geo_.refblock_entries - 1));
}

Result<void> Image::change_refcount(uint64_t cluster_index, int64_t delta) {
  const uint64_t table_index = cluster_index >> geo_.refblock_bits;
  if (table_index >= reftable_.size())
    return make_error(Errc::Io, "qcow2: cluster {} lies beyond the refcount table", cluster_index);
  CHAINFS_ASSIGN_OR_RETURN(uint64_t block,
                           decode_reftable_entry(geo_, reftable_[table_index], host_limit()));
  if (block == 0)
    return make_error(Errc::Io, "qcow2: cluster {} has no refcount block (corrupt image)",
                      cluster_index);
  CHAINFS_ASSIGN_OR_RETURN(TableCache::Table * t, load_refblock(block));
  const uint64_t index = cluster_index & (geo_.refblock_entries - 1);
  const uint64_t old = refcount_get(geo_, t->bytes, index);
  if (delta < 0 && old < static_cast<uint64_t>(-delta))
    return make_error(Errc::Io,
                      "qcow2: refcount of cluster {} would drop below zero (corrupt "
                      "image)",
                      cluster_index);
  if (delta > 0 && refcount_max(geo_) - old < static_cast<uint64_t>(delta))
    return make_error(Errc::Io, "qcow2: refcount of cluster {} would overflow {} bits",
                      cluster_index, geo_.refcount_bits);
  const uint64_t updated = old + static_cast<uint64_t>(delta);
  refcount_set(geo_, t->bytes, index, updated);
  t->dirty = true;
  if (used_clusters_) {
    if (old == 0 && updated != 0) ++*used_clusters_;
    if (old != 0 && updated == 0) --*used_clusters_;
  }
  if (updated == 0) free_hint_ = std::min(free_hint_, cluster_index);
  return {};
}

bool Image::overlaps_static_metadata(uint64_t cluster_index) const {
  const uint64_t off = cluster_index << geo_.cluster_bits;
  if (cluster_index == 0) return true;
  const uint64_t l1_bytes = uint64_t{header_.l1_size} * 8;
  if (l1_bytes && off + geo_.cluster_size > header_.l1_table_offset &&
      off < header_.l1_table_offset + l1_bytes)
    return true;
  const uint64_t rt_bytes = uint64_t{header_.refcount_table_clusters} << geo_.cluster_bits;
  return off + geo_.cluster_size > header_.refcount_table_offset &&
         off < header_.refcount_table_offset + rt_bytes;
}

Result<void> Image::create_refblock(uint64_t table_index, uint64_t at_cluster) {
  if (overlaps_static_metadata(at_cluster))
    return make_error(Errc::Io,
                      "qcow2: metadata cluster {} is not covered by a refcount block "
                      "(corrupt image)",
                      at_cluster);
  const uint64_t offset = at_cluster << geo_.cluster_bits;
  TableBytes bytes(geo_.cluster_size);
  refcount_set(geo_, bytes, at_cluster & (geo_.refblock_entries - 1), 1);  // it counts itself
  // The block reaches the disk before the table entry that points at it.
  CHAINFS_TRY(host_write(offset, bytes));
  CHAINFS_TRY(sync_file());
  std::byte entry[8];
  store_be64(entry, offset);
  CHAINFS_TRY(host_write(header_.refcount_table_offset + table_index * 8, entry));
  refcounts_unsynced_ = true;  // synced before any L2 entry refers to a cluster it counts
  reftable_[table_index] = offset;
  host_end_ = std::max(host_end_, offset + geo_.cluster_size);
  CHAINFS_TRY(make_room(*refblock_cache_));
  refblock_cache_->insert(offset, std::move(bytes), false);
  if (used_clusters_) ++*used_clusters_;
  ++metadata_clusters_;
  return {};
}

Result<void> Image::grow_reftable(uint64_t needed_index) {
  // Every cluster the current table covers is in use; put the new table and the refcount blocks
  // that describe it right after the covered range, where nothing can live yet.
  const uint64_t per_block = geo_.refblock_entries;
  const uint64_t old_entries = reftable_.size();
  const uint64_t start = old_entries * per_block;  // first cluster no block can describe yet
  uint64_t entries = std::max(needed_index + 1, old_entries + old_entries / 2 + 1);
  uint64_t table_clusters = 0, blocks = 0;
  for (;;) {
    table_clusters = ceil_div(entries * 8, geo_.cluster_size);
    blocks = 0;
    for (uint64_t prev = ~0ull; prev != blocks;) {
      prev = blocks;
      blocks = ceil_div(table_clusters + blocks, per_block);
    }
    if (start / per_block + blocks <= entries) break;
    entries = start / per_block + blocks;
  }
  if ((table_clusters << geo_.cluster_bits) > kMaxRefcountTableBytes)
    return make_error(Errc::NoSpace, "qcow2: the refcount table would exceed {} MiB",
                      kMaxRefcountTableBytes >> 20);
  const uint64_t area_end = start + table_clusters + blocks;
  if ((area_end << geo_.cluster_bits) >= kMaxHostOffset)
    return make_error(Errc::NoSpace, "qcow2: image file would exceed the format's offset limit");

  entries = (table_clusters << geo_.cluster_bits) / 8;
  std::vector<uint64_t> table = reftable_;
  table.resize(entries, 0);
  for (uint64_t j = 0; j < blocks; ++j) {
    const uint64_t block_cluster = start + table_clusters + j;
    std::vector<std::byte> bytes(geo_.cluster_size);
    const uint64_t first = start + j * per_block;
    for (uint64_t c = first; c < std::min(area_end, first + per_block); ++c)
      refcount_set(geo_, bytes, c - first, 1);
    CHAINFS_TRY(host_write(block_cluster << geo_.cluster_bits, bytes));
    table[start / per_block + j] = block_cluster << geo_.cluster_bits;
  }
  std::vector<std::byte> raw(table_clusters << geo_.cluster_bits);
  for (size_t i = 0; i < table.size(); ++i) store_be64(raw.data() + i * 8, table[i]);
  CHAINFS_TRY(write_refblocks());  // earlier refcount changes first: the new table copies entries
  CHAINFS_TRY(host_write(start << geo_.cluster_bits, raw));
  CHAINFS_TRY(sync_file());
  std::byte fields[12];
  store_be64(fields, start << geo_.cluster_bits);
  store_be32(fields + 8, static_cast<uint32_t>(table_clusters));
  CHAINFS_TRY(write_header_fields(48, fields));

  const uint64_t old_offset = header_.refcount_table_offset;
  const uint64_t old_clusters = header_.refcount_table_clusters;
  header_.refcount_table_offset = start << geo_.cluster_bits;
  header_.refcount_table_clusters = static_cast<uint32_t>(table_clusters);
  reftable_ = std::move(table);
  host_end_ = std::max(host_end_, area_end << geo_.cluster_bits);
  if (used_clusters_) *used_clusters_ += static_cast<int64_t>(table_clusters + blocks);
  metadata_clusters_ += static_cast<int64_t>(table_clusters + blocks);
  // The header no longer points at the old table: it can go now.
  CHAINFS_TRY(free_now(old_offset, old_clusters << geo_.cluster_bits));
  metadata_clusters_ -= static_cast<int64_t>(old_clusters);
  return {};
}

Result<uint64_t> Image::alloc_cluster_from(uint64_t& cursor) {
  for (;;) {
    const uint64_t index = cursor;
    if ((index << geo_.cluster_bits) >= kMaxHostOffset)
      return make_error(Errc::NoSpace, "qcow2: no free cluster below the format's offset limit");
    const uint64_t table_index = index >> geo_.refblock_bits;
    if (table_index >= reftable_.size()) {
      CHAINFS_TRY(grow_reftable(table_index));
      continue;
    }
    CHAINFS_ASSIGN_OR_RETURN(uint64_t block,
                             decode_reftable_entry(geo_, reftable_[table_index], host_limit()));
    if (block == 0) {
      CHAINFS_TRY(create_refblock(table_index, index));
      cursor = index + 1;
      continue;
    }
    CHAINFS_ASSIGN_OR_RETURN(TableCache::Table * t, load_refblock(block));
    const uint64_t end = (table_index + 1) << geo_.refblock_bits;
    const uint64_t mask = geo_.refblock_entries - 1;
    for (uint64_t i = index; i < end; ++i) {
      if (refcount_get(geo_, t->bytes, i & mask) != 0) continue;
      if (overlaps_static_metadata(i))
        return make_error(Errc::Io,
                          "qcow2: metadata cluster {} has refcount 0 (corrupt image); "
                          "refusing to allocate over it",
                          i);
      CHAINFS_TRY(change_refcount(i, +1));
      cursor = i + 1;
      host_end_ = std::max(host_end_, (i + 1) << geo_.cluster_bits);
      return i << geo_.cluster_bits;
    }
    cursor = end;
  }
}

Result<uint64_t> Image::alloc_cluster(bool metadata) {
  uint64_t cursor = free_hint_;
  CHAINFS_ASSIGN_OR_RETURN(uint64_t offset, alloc_cluster_from(cursor));
  free_hint_ = std::max(free_hint_, cursor);
  if (metadata) ++metadata_clusters_;
  return offset;
}

Result<uint64_t> Image::alloc_contiguous(uint64_t count) {
  uint64_t cursor = free_hint_;
  uint64_t run_start = 0, run_length = 0;
  while (run_length < count) {
    CHAINFS_ASSIGN_OR_RETURN(uint64_t offset, alloc_cluster_from(cursor));
    const uint64_t index = offset >> geo_.cluster_bits;
    if (run_length && index == run_start + run_length) {
      ++run_length;
      continue;
    }
    if (run_length)
      CHAINFS_TRY(free_now(run_start << geo_.cluster_bits, run_length << geo_.cluster_bits));
    run_start = index;
    run_length = 1;
  }
  return run_start << geo_.cluster_bits;
}

Result<void> Image::free_now(uint64_t host_offset, uint64_t length) {
  if (length == 0) return {};
  const uint64_t first = host_offset >> geo_.cluster_bits;
  const uint64_t last = (host_offset + length - 1) >> geo_.cluster_bits;
  for (uint64_t c = first; c <= last; ++c) CHAINFS_TRY(change_refcount(c, -1));
  return {};
}

void Image::free_later(uint64_t host_offset, uint64_t length, bool data_cluster) {
  pending_frees_.push_back(PendingFree{host_offset, length, data_cluster});
  if (data_cluster) ++pending_data_clusters_;
}

Result<void> Image::count_used_clusters() {
  int64_t used = 0, metadata = 1 + static_cast<int64_t>(header_.refcount_table_clusters);
  metadata += static_cast<int64_t>(ceil_div(uint64_t{header_.l1_size} * 8, geo_.cluster_size));
  for (uint64_t entry : l1_)
    if (entry & kL1OffsetMask) ++metadata;
  TableBytes scratch(geo_.cluster_size);
  for (uint64_t entry : reftable_) {
    CHAINFS_ASSIGN_OR_RETURN(uint64_t block, decode_reftable_entry(geo_, entry, host_limit()));
    if (block == 0) continue;
    ++metadata;
    std::span<const std::byte> bytes;
    if (TableCache::Table* t = refblock_cache_->find(block)) {
      bytes = t->bytes;
    } else {
      CHAINFS_TRY(host_read(block, scratch));  // not through the cache: a scan would thrash it
      bytes = scratch;
    }
    // Skip zero words quickly: most of a refcount block is usually empty or full.
    const uint64_t per_word = 64 / geo_.refcount_bits;
    for (uint64_t w = 0; w < geo_.cluster_size / 8; ++w) {
      uint64_t word;
      std::memcpy(&word, bytes.data() + w * 8, 8);
      if (word == 0) continue;
      for (uint64_t i = w * per_word; i < (w + 1) * per_word; ++i)
        if (refcount_get(geo_, bytes, i) != 0) ++used;
    }
  }
  used_clusters_ = used;
  metadata_clusters_ = metadata;
  return {};
}

Result<uint64_t> Image::allocated_bytes() {
  std::lock_guard lock(meta_mutex_);
  if (!used_clusters_) CHAINFS_TRY(count_used_clusters());
  const int64_t data = *used_clusters_ - metadata_clusters_ - pending_data_clusters_;
  return static_cast<uint64_t>(std::max<int64_t>(data, 0)) << geo_.cluster_bits;
}

// ---- write-back -------------------------------------------------------------------------------

Result<void> Image::write_refblocks() {
  for (TableCache::Table* t : refblock_cache_->dirty_tables()) {
    CHAINFS_TRY(host_write(t->offset, t->bytes));
    t->dirty = false;
    refcounts_unsynced_ = true;
  }
  if (refcounts_unsynced_) {
    CHAINFS_TRY(sync_file());
    refcounts_unsynced_ = false;
  }
  return {};
}

Result<void> Image::write_back_all() {
  const uint64_t syncs_before = sync_count_;
  // 1. refcounts (and the data written so far) → 2. L2 tables → 3. L1 entries, each synced.
  CHAINFS_TRY(write_refblocks());
  for (TableCache::Table* t : l2_cache_->dirty_tables()) {
    CHAINFS_TRY(host_write(t->offset, t->bytes));
    t->dirty = false;
    l2_unsynced_ = true;
    ++l2_writeback_epoch_;
  }
  if (l2_unsynced_) {
    CHAINFS_TRY(sync_file());
    l2_unsynced_ = false;
  }
  if (any_l1_dirty_) {
    for (size_t i = 0; i < l1_.size(); ++i) {
      if (!l1_dirty_[i]) continue;
      size_t j = i;
      while (j < l1_.size() && l1_dirty_[j]) ++j;
      std::vector<std::byte> raw((j - i) * 8);
      for (size_t k = i; k < j; ++k) store_be64(raw.data() + (k - i) * 8, l1_[k]);
      CHAINFS_TRY(host_write(header_.l1_table_offset + i * 8, raw));
      std::fill(l1_dirty_.begin() + i, l1_dirty_.begin() + j, 0);
      i = j;
    }
    any_l1_dirty_ = false;
    CHAINFS_TRY(sync_file());
  }
  // 4. The dropped references are on disk: lower the refcounts, and the clusters may be reused.
  if (!pending_frees_.empty()) {
    std::vector<PendingFree> frees;
    frees.swap(pending_frees_);
    pending_data_clusters_ = 0;
    for (const PendingFree& f : frees) CHAINFS_TRY(free_now(f.offset, f.length));
    CHAINFS_TRY(write_refblocks());
  }
  if (sync_count_ == syncs_before) CHAINFS_TRY(sync_file());
  return {};
}

Result<void> Image::flush() {
  if (read_only_) return {};
  // Much guest data written since the last sync: it goes to the disk first, without the lock.
  // The ordered write-back below must hold meta_mutex_, and a sync that writes back hundreds of
  // megabytes under it would stall every request that looks up a mapping meanwhile (a job's
  // background flush stalled its own copy). Its syncs are then left with the metadata and what
  // was written meanwhile. Small amounts keep the single sync.
  if (unsynced_data_bytes_.exchange(0, std::memory_order_relaxed) >= kPresyncBytes)
    CHAINFS_TRY(file_.sync());
  std::lock_guard lock(meta_mutex_);
  return write_back_all();
}

}  // namespace chainfs::qcow2
