// Image: opening (header, L1, refcount table, caches), the L1/L2 mapping, the header-rewriting
// operations (backing reference, truncate) and close. Allocation and write-back live in
// image_alloc.cpp, the read path in image_read.cpp, the write paths in image_write.cpp.
#include "blockcore/drivers/qcow2/image.h"

#include <algorithm>
#include <cstring>

namespace chainfs::qcow2 {

namespace {
uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

// Why an image with this header must not be written by chainfs, or empty.
std::string read_only_reason(const Header& header) {
  if (header.nb_snapshots > 0)
    return fmt::format(
        "the image has {} internal snapshot(s), whose shared clusters chainfs "
        "does not manage",
        header.nb_snapshots);
  if (header.incompatible_features & kIncompatCorrupt)
    return "the image is marked corrupt (run 'qemu-img check -r all' to repair it)";
  if (header.incompatible_features & kIncompatDirty)
    return "the image was not closed cleanly while using lazy refcounts (dirty bit set), so its "
           "refcounts may be wrong (run 'qemu-img check -r all')";
  return {};
}
}  // namespace

// ---- MemoryHostFile ---------------------------------------------------------------------------

Result<void> MemoryHostFile::submit(std::span<IoOp> ops) {
  std::lock_guard lock(mutex_);
  for (IoOp& op : ops) {
    if (op.kind == IoOp::Kind::Read) {
      const uint64_t have =
          op.offset < bytes_.size() ? std::min<uint64_t>(op.length, bytes_.size() - op.offset) : 0;
      if (have) std::memcpy(op.buf, bytes_.data() + op.offset, have);
      std::memset(op.buf + have, 0, op.length - have);
    } else {
      if (op.offset > max_length_ || op.length > max_length_ - op.offset)
        return make_error(Errc::NoSpace, "memory file: write past {} bytes", max_length_);
      if (op.offset + op.length > bytes_.size()) bytes_.resize(op.offset + op.length);
      std::memcpy(bytes_.data() + op.offset, op.buf, op.length);
    }
  }
  return {};
}

uint64_t MemoryHostFile::length() const {
  std::lock_guard lock(mutex_);
  return bytes_.size();
}

std::vector<std::byte> MemoryHostFile::contents() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

// ---- opening ----------------------------------------------------------------------------------

uint64_t default_cache_bytes(const Geometry& geo) {
  // L2 tables for 8 GiB of mapped data, but not more than 16 MiB (tiny clusters) and at least
  // a few tables; plus a quarter of that for refcount blocks.
  const uint64_t l2_bytes = std::clamp<uint64_t>(
      (8ull << 30) / geo.cluster_size * geo.l2_entry_bytes, 4 * geo.cluster_size, 16ull << 20);
  return l2_bytes + std::max<uint64_t>(l2_bytes / 4, 4 * geo.cluster_size);
}

Result<std::unique_ptr<Image>> Image::open(HostFile& file, BackingReader& backing,
                                           const ImageOptions& options) {
  std::unique_ptr<Image> image(new Image(file, backing));
  CHAINFS_TRY(image->load(options));
  return image;
}

Image::~Image() = default;

Result<void> Image::host_read(uint64_t offset, std::span<std::byte> buf) {
  IoOp op{IoOp::Kind::Read, offset, buf.data(), buf.size()};
  return file_.submit({&op, 1});
}

Result<void> Image::host_write(uint64_t offset, std::span<const std::byte> buf) {
  IoOp op{IoOp::Kind::Write, offset, const_cast<std::byte*>(buf.data()), buf.size()};
  return file_.submit({&op, 1});
}

Result<void> Image::sync_file() {
  ++sync_count_;
  unsynced_data_bytes_.store(0, std::memory_order_relaxed);  // what is written later counts again
  return file_.sync();
}

Result<void> Image::write_header_fields(uint64_t offset, std::span<const std::byte> bytes) {
  CHAINFS_TRY(host_write(offset, bytes));
  return sync_file();
}

Result<void> Image::load(const ImageOptions& options) {
  const uint64_t file_length = file_.length();
  // The fixed header first (it says the cluster size), then the rest of the first cluster.
  std::vector<std::byte> first(std::min<uint64_t>(file_length, 512));
  if (!first.empty()) CHAINFS_TRY(host_read(0, first));
  CHAINFS_ASSIGN_OR_RETURN(Header fixed, parse_fixed_header(first));
  const uint64_t header_cluster = std::min<uint64_t>(file_length, 1ull << fixed.cluster_bits);
  if (header_cluster > first.size()) {
    const size_t have = first.size();
    first.resize(header_cluster);
    CHAINFS_TRY(host_read(have, std::span(first).subspan(have)));
  }
  first.resize(header_cluster);
  CHAINFS_ASSIGN_OR_RETURN(header_, parse_header_cluster(first));
  CHAINFS_ASSIGN_OR_RETURN(geo_, validate_header(header_, file_length));

  read_only_.store(options.read_only, std::memory_order_release);
  if (std::string reason = read_only_reason(header_); !reason.empty() && !options.read_only) {
    read_only_.store(true, std::memory_order_release);
    forced_read_only_reason_ = reason;
  }

  host_end_ = std::max(align_up(file_length, geo_.cluster_size), geo_.cluster_size);
  l1_.assign(header_.l1_size, 0);
  l1_dirty_.assign(header_.l1_size, 0);
  if (header_.l1_size) {
    std::vector<std::byte> raw(uint64_t{header_.l1_size} * 8);
    CHAINFS_TRY(host_read(header_.l1_table_offset, raw));
    for (size_t i = 0; i < l1_.size(); ++i) l1_[i] = load_be64(raw.data() + i * 8);
  }
  {
    std::vector<std::byte> raw(uint64_t{header_.refcount_table_clusters} << geo_.cluster_bits);
    CHAINFS_TRY(host_read(header_.refcount_table_offset, raw));
    reftable_.resize(raw.size() / 8);
    for (size_t i = 0; i < reftable_.size(); ++i) reftable_[i] = load_be64(raw.data() + i * 8);
    // Two entries naming one block would make scans of the refcounts (allocation, the used-
    // cluster count) run over the same block again and again: refuse such an image. Without
    // duplicates that work is bounded by the file's size.
    std::vector<uint64_t> blocks;
    for (uint64_t e : reftable_)
      if (e & ~kRefTableReservedMask) blocks.push_back(e & ~kRefTableReservedMask);
    std::sort(blocks.begin(), blocks.end());
    if (std::adjacent_find(blocks.begin(), blocks.end()) != blocks.end())
      return make_error(Errc::Invalid,
                        "corrupt qcow2 image: two refcount table entries point at "
                        "the same refcount block");
  }

  const uint64_t budget = options.cache_bytes ? options.cache_bytes : default_cache_bytes(geo_);
  const uint64_t l2_tables = std::max<uint64_t>(2, budget * 4 / 5 / geo_.cluster_size);
  const uint64_t refblocks = std::max<uint64_t>(2, budget / 5 / geo_.cluster_size);
  l2_cache_ = std::make_unique<TableCache>(l2_tables);
  refblock_cache_ = std::make_unique<TableCache>(refblocks);
  size_.store(header_.size, std::memory_order_release);

  if (!read_only_) CHAINFS_TRY(clear_autoclear_features());
  return {};
}

Result<void> Image::clear_autoclear_features() {
  if (header_.autoclear_features == 0) return {};
  // Spec: a writer that does not maintain the auto-clear features (e.g. persistent bitmaps) must
  // clear their bits before its first write.
  std::byte zero[8] = {};
  CHAINFS_TRY(write_header_fields(88, zero));
  header_.autoclear_features = 0;
  return {};
}

Result<void> Image::reopen(bool read_only) {
  if (read_only == read_only_.load(std::memory_order_acquire)) return {};
  std::lock_guard lock(meta_mutex_);
  if (read_only) {
    // Everything cached reaches the disk while we may still write; then no more writes.
    CHAINFS_TRY(write_back_all());
    read_only_.store(true, std::memory_order_release);
    return {};
  }
  if (!forced_read_only_reason_.empty())
    return make_error(Errc::ReadOnly, "cannot reopen the qcow2 image read-write: {}",
                      forced_read_only_reason_);
  // The image may have changed on disk while we only read it (qemu-img, another program): look
  // at its header again. A reason to stay read-only refuses; a header whose tables moved means
  // our cached metadata no longer describes the file, so writing through it would corrupt it.
  const uint64_t file_length = file_.length();
  std::vector<std::byte> first(std::min<uint64_t>(file_length, geo_.cluster_size));
  if (!first.empty()) CHAINFS_TRY(host_read(0, first));
  auto fresh = parse_header_cluster(first);
  if (!fresh.ok())
    return make_error(fresh.error().code,
                      "cannot reopen the qcow2 image read-write: its header no longer reads: {}",
                      fresh.error().message);
  if (std::string reason = read_only_reason(*fresh); !reason.empty())
    return make_error(Errc::ReadOnly, "cannot reopen the qcow2 image read-write: {}", reason);
  if (fresh->cluster_bits != header_.cluster_bits || fresh->size != header_.size ||
      fresh->l1_size != header_.l1_size || fresh->l1_table_offset != header_.l1_table_offset ||
      fresh->refcount_table_offset != header_.refcount_table_offset ||
      fresh->refcount_table_clusters != header_.refcount_table_clusters ||
      fresh->refcount_order != header_.refcount_order)
    return make_error(Errc::Busy,
                      "cannot reopen the qcow2 image read-write: its header changed on disk since "
                      "it was opened (another program wrote it)");
  // Allocation starts past everything the file holds now.
  host_end_ = std::max(host_end_, align_up(file_length, geo_.cluster_size));
  header_.autoclear_features = fresh->autoclear_features;
  CHAINFS_TRY(clear_autoclear_features());
  read_only_.store(false, std::memory_order_release);
  return {};
}

Result<void> Image::close() {
  if (read_only_) return {};
  std::lock_guard lock(meta_mutex_);
  return write_back_all();
}

std::optional<BackingReference> Image::backing_reference() const {
  std::lock_guard lock(meta_mutex_);
  if (!header_.backing_file || header_.backing_file->empty()) return std::nullopt;
  return BackingReference{*header_.backing_file, header_.backing_format};
}

Result<void> Image::set_backing_reference(const std::optional<BackingReference>& ref) {
  if (read_only_)
    return make_error(Errc::ReadOnly,
                      "cannot record a new backing file in a read-only qcow2 image");
  std::lock_guard lock(meta_mutex_);
  Header updated = header_;
  if (ref && !ref->filename.empty()) {
    updated.backing_file = ref->filename;
    updated.backing_format = ref->format;
  } else {
    updated.backing_file.reset();
    updated.backing_format.clear();
  }
  CHAINFS_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, serialize_header_cluster(updated));
  // Everything else must be on disk first: the header rewrite is one write of the first cluster
  // (which holds nothing but the header, its extensions and the backing name), then a sync.
  CHAINFS_TRY(write_back_all());
  CHAINFS_TRY(host_write(0, bytes));
  CHAINFS_TRY(sync_file());
  CHAINFS_ASSIGN_OR_RETURN(header_, parse_header_cluster(bytes));
  return {};
}

// ---- mapping ----------------------------------------------------------------------------------

Result<void> Image::make_room(TableCache& cache) {
  while (cache.full()) {
    TableCache::Table* victim = cache.victim();
    if (victim->dirty) {
      if (&cache == l2_cache_.get()) {
        CHAINFS_TRY(write_l2_table(*victim));
      } else {
        CHAINFS_TRY(host_write(victim->offset, victim->bytes));
        victim->dirty = false;
        refcounts_unsynced_ = true;
      }
    }
    cache.erase(victim->offset);
  }
  return {};
}

Result<TableCache::Table*> Image::load_l2(uint64_t l2_offset) {
  if (TableCache::Table* t = l2_cache_->find(l2_offset)) return t;
  CHAINFS_TRY(make_room(*l2_cache_));
  TableBytes bytes = l2_cache_->take_buffer(geo_.cluster_size);
  CHAINFS_TRY(host_read(l2_offset, bytes));  // every byte (a short read is zero-filled)
  return l2_cache_->insert(l2_offset, std::move(bytes), false);
}

Result<void> Image::write_l2_table(TableCache::Table& table) {
  CHAINFS_TRY(write_refblocks());  // rule 3: refcounts on disk before the references
  CHAINFS_TRY(host_write(table.offset, table.bytes));
  table.dirty = false;
  l2_unsynced_ = true;
  ++l2_writeback_epoch_;
  return {};
}

void Image::prefetch_l2(std::unique_lock<std::mutex>& lock, uint64_t first_cluster,
                        uint64_t last_cluster) {
  // Which L2 tables of the range are valid, on disk and not cached?
  std::vector<uint64_t> missing;
  const uint64_t first_l1 = first_cluster >> geo_.l2_bits, last_l1 = last_cluster >> geo_.l2_bits;
  for (uint64_t i = first_l1; i <= last_l1 && i < l1_.size(); ++i) {
    auto offset = decode_l1_entry(geo_, l1_[i], host_limit());
    if (offset.ok() && *offset && !l2_cache_->find(*offset)) missing.push_back(*offset);
  }
  if (missing.empty() || missing.size() > l2_cache_->capacity() / 2) return;
  // Read them without the mutex, so that other requests' lookups go on meanwhile. A table that
  // was written back while we read may be newer on disk than our copy: then drop the copies.
  const uint64_t epoch = l2_writeback_epoch_;
  std::vector<TableBytes> tables(missing.size());
  std::vector<IoOp> ops;
  for (size_t i = 0; i < missing.size(); ++i) {
    tables[i] = l2_cache_->take_buffer(geo_.cluster_size);  // each read fills every byte
    ops.push_back({IoOp::Kind::Read, missing[i], tables[i].data(), geo_.cluster_size});
  }
  lock.unlock();
  const bool read_ok = file_.submit(ops).ok();
  lock.lock();
  if (!read_ok || epoch != l2_writeback_epoch_) return;
  for (size_t i = 0; i < missing.size(); ++i) {
    if (l2_cache_->find(missing[i])) continue;  // loaded (and maybe changed) by someone else
    if (!make_room(*l2_cache_).ok() || epoch != l2_writeback_epoch_) return;
    l2_cache_->insert(missing[i], std::move(tables[i]), false);
  }
}

Result<TableCache::Table*> Image::l2_for(uint64_t guest_cluster, bool allocate) {
  const uint64_t l1_index = guest_cluster >> geo_.l2_bits;
  if (l1_index >= l1_.size())
    return make_error(Errc::Io, "qcow2: guest cluster {} lies beyond the L1 table", guest_cluster);
  const uint64_t entry = l1_[l1_index];
  CHAINFS_ASSIGN_OR_RETURN(uint64_t l2_offset, decode_l1_entry(geo_, entry, host_limit()));
  if (l2_offset == 0) {
    if (!allocate) return static_cast<TableCache::Table*>(nullptr);
    CHAINFS_ASSIGN_OR_RETURN(uint64_t fresh, alloc_cluster(true));
    CHAINFS_TRY(make_room(*l2_cache_));
    TableBytes bytes = l2_cache_->take_buffer(geo_.cluster_size);
    std::fill(bytes.begin(), bytes.end(), std::byte{0});  // a new table maps nothing
    TableCache::Table* table = l2_cache_->insert(fresh, std::move(bytes), true);
    l1_[l1_index] = fresh | kOflagCopied;
    l1_dirty_[l1_index] = 1;
    any_l1_dirty_ = true;
    return table;
  }
  if (allocate && !(entry & kOflagCopied))
    return make_error(Errc::Io,
                      "qcow2: L2 table at {} is shared (copied flag clear); refusing to "
                      "write through it",
                      l2_offset);
  return load_l2(l2_offset);
}

Result<DecodedL2> Image::mapping(uint64_t guest_cluster) {
  CHAINFS_ASSIGN_OR_RETURN(TableCache::Table * table, l2_for(guest_cluster, false));
  if (!table) return DecodedL2{};
  const L2Entry e = read_l2_entry(geo_, table->bytes.data(), guest_cluster & (geo_.l2_entries - 1));
  return decode_l2_entry(geo_, e, host_limit());
}

Result<void> Image::set_mapping(uint64_t guest_cluster, L2Entry entry) {
  CHAINFS_ASSIGN_OR_RETURN(TableCache::Table * table, l2_for(guest_cluster, true));
  write_l2_entry(geo_, table->bytes.data(), guest_cluster & (geo_.l2_entries - 1), entry);
  table->dirty = true;
  return {};
}

// ---- resize -----------------------------------------------------------------------------------

Result<void> Image::truncate(uint64_t new_size) {
  if (read_only_) return make_error(Errc::ReadOnly, "qcow2 image is read-only");
  const uint64_t old_size = size();
  if (new_size < old_size)
    return make_error(Errc::Invalid, "shrinking a qcow2 image ({} -> {}) is not supported",
                      old_size, new_size);
  if (new_size == old_size) return {};
  if (new_size > kMaxVirtualSize)
    return make_error(Errc::TooLarge, "qcow2 virtual size {} is larger than the limit {}", new_size,
                      kMaxVirtualSize);
  {
    std::lock_guard lock(meta_mutex_);
    const uint64_t needed = geo_.l1_entries_for(new_size);
    if (needed * 8 > kMaxL1Bytes)
      return make_error(Errc::TooLarge,
                        "qcow2 virtual size {} needs an L1 table larger than {} MiB", new_size,
                        kMaxL1Bytes >> 20);
    std::byte fields[24];
    if (needed > l1_.size()) {
      // A new, larger L1 elsewhere: write the current one back, copy it, sync, then switch the
      // header to it with one write (size, l1_size and l1_table_offset are adjacent), sync, and
      // only then free the old table.
      CHAINFS_TRY(write_back_all());
      const uint64_t clusters = align_up(needed * 8, geo_.cluster_size) >> geo_.cluster_bits;
      CHAINFS_ASSIGN_OR_RETURN(uint64_t table_offset, alloc_contiguous(clusters));
      std::vector<std::byte> raw(clusters << geo_.cluster_bits);
      for (size_t i = 0; i < l1_.size(); ++i) store_be64(raw.data() + i * 8, l1_[i]);
      CHAINFS_TRY(host_write(table_offset, raw));
      CHAINFS_TRY(sync_file());
      store_be64(fields, new_size);
      store_be32(fields + 8, header_.crypt_method);
      store_be32(fields + 12, static_cast<uint32_t>(needed));
      store_be64(fields + 16, table_offset);
      CHAINFS_TRY(write_header_fields(24, fields));
      const uint64_t old_offset = header_.l1_table_offset;
      const uint64_t old_bytes = uint64_t{header_.l1_size} * 8;
      header_.l1_table_offset = table_offset;
      header_.l1_size = static_cast<uint32_t>(needed);
      l1_.resize(needed, 0);
      l1_dirty_.assign(needed, 0);
      if (old_bytes) {
        const uint64_t old_clusters = align_up(old_bytes, geo_.cluster_size) >> geo_.cluster_bits;
        CHAINFS_TRY(free_now(old_offset, old_clusters << geo_.cluster_bits));
        metadata_clusters_ -= static_cast<int64_t>(old_clusters);
      }
      metadata_clusters_ += static_cast<int64_t>(clusters);
    } else {
      store_be64(fields, new_size);
      CHAINFS_TRY(write_header_fields(24, std::span(fields, 8)));
    }
    header_.size = new_size;
    size_.store(new_size, std::memory_order_release);
  }
  // The new range must read as zeros: clear the tail of the old last cluster (which may hold
  // data from COW past the old end) and whatever a larger backing node would show through.
  uint64_t zero_end = std::min(new_size, align_up(old_size, geo_.cluster_size));
  if (backing_.present() && backing_.size() > old_size)
    zero_end = std::max(zero_end, std::min(new_size, backing_.size()));
  if (zero_end > old_size) CHAINFS_TRY(write_zeroes(old_size, zero_end - old_size));
  return {};
}

}  // namespace chainfs::qcow2
