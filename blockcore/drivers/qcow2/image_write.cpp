// Image: the write paths (write, write-zeroes, discard). A request is cut into chunks of at most
// 8 MiB. Writes into clusters that are already allocated to this image (copied flag set) go
// straight to the host under a shared range lock: one cache lookup and one submit. Everything
// else takes the clusters exclusively and runs three phases:
//   plan     (meta_mutex_ held) decide per cluster: in place, new host cluster (with copy-on-write
//            of the untouched part from the backing / old cluster / compressed data), or a
//            metadata-only change (zero flag, deallocation); allocate what is needed;
//   data I/O (no lock) all reads the copy-on-write needs in one submit, backing reads, then all
//            writes in one submit;
//   commit   (meta_mutex_ held) install the new L2 entries and queue the freed clusters, which are
//            released only after the next flush wrote the new entries (image.h, rule 4).
#include <algorithm>
#include <cstring>
#include <memory>

#include "blockcore/drivers/qcow2/compression.h"
#include "blockcore/drivers/qcow2/image.h"

namespace chainfs::qcow2 {

struct Image::ClusterWork {
  struct Fill {
    uint64_t from = 0, to = 0;                              // byte range in the cluster
    SubclusterState source = SubclusterState::Unallocated;  // backing | old host data | compressed
  };
  uint64_t guest_cluster = 0;
  uint64_t host = 0;                     // host cluster the data goes to (0: metadata-only change)
  uint64_t wstart = 0, wend = 0;         // byte range of the cluster written
  const std::byte* direct = nullptr;     // caller's bytes for [wstart, wend): no staging copy
  std::unique_ptr<std::byte[]> staging;  // otherwise the bytes to write (wend - wstart)
  std::vector<Fill> fills;               // parts of `staging` to read before writing
  uint64_t fill_host = 0;                // old host cluster (Data fills)
  uint64_t coffset = 0, csize = 0;       // old compressed cluster (Compressed fills)
  bool allocated = false;                // `host` was allocated for this request
  bool set_entry = false;
  L2Entry entry;
  std::vector<PendingFree> frees;  // old clusters to release once the entry is installed
};

struct Image::Plan {
  std::vector<ClusterWork> work;
};

namespace {
constexpr uint64_t kAllZeroBitmap = 0xffffffffull << 32;
constexpr uint64_t kAllAllocBitmap = 0xffffffffull;
constexpr uint64_t kChunkBytes = 8ull << 20;
constexpr size_t kMaxPendingFrees = 16384;
}  // namespace

Result<void> Image::write(uint64_t offset, std::span<const std::byte> buf) {
  return modify(offset, buf.size(), buf.data(), WriteKind::Data);
}
Result<void> Image::discard(uint64_t offset, uint64_t length) {
  return modify(offset, length, nullptr, WriteKind::Discard);
}
Result<void> Image::write_zeroes(uint64_t offset, uint64_t length) {
  return modify(offset, length, nullptr, WriteKind::Zeroes);
}

Result<bool> Image::try_write_in_place(uint64_t offset, std::span<const std::byte> buf) {
  const uint64_t cs = geo_.cluster_size;
  RangeLock::Guard range = ranges_.lock(offset >> geo_.cluster_bits,
                                        (offset + buf.size() - 1) >> geo_.cluster_bits, false);
  std::vector<IoOp> ops;
  {
    std::unique_lock lock(meta_mutex_);
    prefetch_l2(lock, offset >> geo_.cluster_bits, (offset + buf.size() - 1) >> geo_.cluster_bits);
    for (uint64_t pos = 0; pos < buf.size();) {
      const uint64_t guest = offset + pos;
      const uint64_t intra = guest & (cs - 1);
      const uint64_t n = std::min<uint64_t>(cs - intra, buf.size() - pos);
      CHAINFS_ASSIGN_OR_RETURN(DecodedL2 d, mapping(guest >> geo_.cluster_bits));
      if (d.type != ClusterType::Normal || !d.copied) return false;
      if (geo_.extended_l2) {
        for (uint64_t sc = intra >> geo_.subcluster_bits;
             sc <= (intra + n - 1) >> geo_.subcluster_bits; ++sc)
          if (!(d.alloc_mask & (1u << sc))) return false;
      }
      const uint64_t host = d.host_offset + intra;
      if (!ops.empty() && ops.back().offset + ops.back().length == host)
        ops.back().length += n;
      else
        ops.push_back({IoOp::Kind::Write, host, const_cast<std::byte*>(buf.data() + pos), n});
      pos += n;
    }
  }
  CHAINFS_TRY(file_.submit(ops));
  return true;
}

Result<void> Image::modify(uint64_t offset, uint64_t length, const std::byte* data,
                           WriteKind kind) {
  if (read_only_) return make_error(Errc::ReadOnly, "qcow2 image is read-only");
  const uint64_t cs = geo_.cluster_size;
  for (uint64_t done = 0; done < length;) {
    const uint64_t start = offset + done;
    const uint64_t chunk_end =
        std::min(offset + length, (start / cs) * cs + std::max(kChunkBytes, cs));
    const uint64_t n = chunk_end - start;
    const std::byte* chunk_data = data ? data + done : nullptr;
    if (kind == WriteKind::Data) {
      CHAINFS_ASSIGN_OR_RETURN(bool written, try_write_in_place(start, {chunk_data, n}));
      if (written) {
        note_data_written(n);
        done += n;
        continue;
      }
    }
    RangeLock::Guard range = ranges_.lock(start / cs, (chunk_end - 1) / cs, true);
    Plan plan;
    {
      std::lock_guard lock(meta_mutex_);
      for (uint64_t pos = start; pos < chunk_end;) {
        const uint64_t s = pos & (cs - 1);
        const uint64_t e = std::min(cs, s + (chunk_end - pos));
        auto planned = plan_cluster(pos / cs, s, e,
                                    chunk_data ? chunk_data + (pos - start) : nullptr, kind, plan);
        if (!planned.ok()) {
          for (const ClusterWork& w : plan.work)
            if (w.allocated) free_now(w.host, cs).ignore_error();  // never referenced
          return planned.take_error();
        }
        pos += e - s;
      }
    }
    CHAINFS_TRY(execute(plan));
    if (kind == WriteKind::Data) note_data_written(n);
    done += n;
  }
  return {};
}

Result<void> Image::plan_cluster(uint64_t guest_cluster, uint64_t s, uint64_t e,
                                 const std::byte* data, WriteKind kind, Plan& plan) {
  const uint64_t cs = geo_.cluster_size;
  CHAINFS_ASSIGN_OR_RETURN(DecodedL2 d, mapping(guest_cluster));
  const bool full = s == 0 && e == cs;
  const bool v3 = geo_.version >= 3;
  const bool backing = backing_.present();
  const bool ext = geo_.extended_l2;
  const bool has_host = d.type != ClusterType::Compressed && d.host_offset != 0;

  ClusterWork w;
  w.guest_cluster = guest_cluster;
  auto release_old = [&] {
    if (d.type == ClusterType::Compressed)
      w.frees.push_back({d.compressed_offset, d.compressed_size, false});
    else if (has_host)
      w.frees.push_back({d.host_offset, cs, true});
  };
  auto metadata_only = [&](L2Entry entry) -> Result<void> {
    w.set_entry = true;
    w.entry = entry;
    CHAINFS_TRY(l2_for(guest_cluster, true));  // allocate the L2 table now, not after the I/O
    plan.work.push_back(std::move(w));
    return {};
  };
  const bool plain_zero =
      ext ? (!has_host && d.type != ClusterType::Compressed && d.zero_mask == 0xffffffffu)
          : d.type == ClusterType::ZeroPlain;
  const bool plain_unallocated = d.type == ClusterType::Unallocated && (!ext || d.zero_mask == 0);

  if (kind == WriteKind::Discard) {
    if (full && (v3 || !backing)) {
      // Drop the cluster; with a backing node it must still read as zeros (zero flag).
      if (backing) {
        if (plain_zero) return {};
        release_old();
        return metadata_only(ext ? L2Entry{0, kAllZeroBitmap} : L2Entry{kOflagZero, 0});
      }
      if (plain_unallocated) return {};
      release_old();
      return metadata_only(L2Entry{0, 0});
    }
    kind = WriteKind::Zeroes;
  }

  if (kind == WriteKind::Zeroes) {
    if (full && v3) {
      // Keep a host cluster we own (the range stays allocated, like fallocate ZERO_RANGE).
      const bool keep = has_host && d.copied;
      if (keep) {
        if (!ext && d.type == ClusterType::ZeroAllocated) return {};
        if (ext && d.alloc_mask == 0 && d.zero_mask == 0xffffffffu) return {};
        return metadata_only(ext ? L2Entry{d.host_offset | kOflagCopied, kAllZeroBitmap}
                                 : L2Entry{d.host_offset | kOflagCopied | kOflagZero, 0});
      }
      if (plain_zero) return {};
      release_old();
      return metadata_only(ext ? L2Entry{0, kAllZeroBitmap} : L2Entry{kOflagZero, 0});
    }
    if (full && !v3 && !backing) {  // version 2 has no zero flag: deallocate instead
      if (plain_unallocated) return {};
      release_old();
      return metadata_only(L2Entry{0, 0});
    }
    bool already_zero = d.type != ClusterType::Compressed;
    for (uint64_t sc = s >> geo_.subcluster_bits;
         already_zero && sc <= (e - 1) >> geo_.subcluster_bits; ++sc) {
      const SubclusterState st = subcluster_state(geo_, d, static_cast<uint32_t>(sc));
      already_zero =
          st == SubclusterState::Zero || (st == SubclusterState::Unallocated && !backing);
    }
    if (already_zero) return {};
    data = nullptr;  // a data write of zeros over [s, e)
  }

  // ---- data write over [s, e): caller's bytes, or zeros when data == nullptr ----------------
  auto add_fills = [&](uint64_t a, uint64_t b) {
    for (uint64_t at = a; at < b;) {
      const uint32_t sc = static_cast<uint32_t>(at >> geo_.subcluster_bits);
      const uint64_t sc_end = std::min<uint64_t>(b, uint64_t{sc + 1} << geo_.subcluster_bits);
      const SubclusterState st = subcluster_state(geo_, d, sc);
      const bool needs_read = st == SubclusterState::Data || st == SubclusterState::Compressed ||
                              (st == SubclusterState::Unallocated && backing);
      if (needs_read) {
        if (!w.fills.empty() && w.fills.back().to == at && w.fills.back().source == st)
          w.fills.back().to = sc_end;
        else
          w.fills.push_back({at, sc_end, st});
      }
      at = sc_end;
    }
    w.fill_host = d.host_offset;
    w.coffset = d.compressed_offset;
    w.csize = d.compressed_size;
  };
  auto allocate_host = [&]() -> Result<void> {
    CHAINFS_ASSIGN_OR_RETURN(w.host, alloc_cluster(false));
    w.allocated = true;
    return {};
  };

  if (!ext || d.type == ClusterType::Compressed || (has_host && !d.copied)) {
    if (d.type == ClusterType::Normal && d.copied) {  // in place
      w.host = d.host_offset;
      w.wstart = s;
      w.wend = e;
    } else {
      if (d.type == ClusterType::ZeroAllocated && d.copied) {
        w.host = d.host_offset;  // our own preallocated cluster: reuse it, the rest is zeros
      } else {
        CHAINFS_TRY(allocate_host());
        release_old();
        add_fills(0, s);
        add_fills(e, cs);
      }
      w.wstart = 0;
      w.wend = cs;
      w.set_entry = true;
      w.entry = L2Entry{w.host | kOflagCopied, ext ? kAllAllocBitmap : 0};
    }
  } else {
    // Extended L2, cluster unallocated or ours: allocate at subcluster granularity.
    const uint32_t first_sc = static_cast<uint32_t>(s >> geo_.subcluster_bits);
    const uint32_t last_sc = static_cast<uint32_t>((e - 1) >> geo_.subcluster_bits);
    uint32_t touched = 0;
    for (uint32_t sc = first_sc; sc <= last_sc; ++sc) touched |= 1u << sc;
    if (has_host) {
      w.host = d.host_offset;
    } else {
      CHAINFS_TRY(allocate_host());
    }
    const bool first_here = has_host && (d.alloc_mask & (1u << first_sc));
    const bool last_here = has_host && (d.alloc_mask & (1u << last_sc));
    w.wstart = first_here ? s : uint64_t{first_sc} << geo_.subcluster_bits;
    w.wend = last_here ? e : uint64_t{last_sc + 1} << geo_.subcluster_bits;
    add_fills(w.wstart, s);
    add_fills(e, w.wend);
    const uint32_t alloc = d.alloc_mask | touched;
    const uint32_t zero = d.zero_mask & ~touched;
    if (!has_host || alloc != d.alloc_mask || zero != d.zero_mask) {
      w.set_entry = true;
      w.entry = L2Entry{w.host | kOflagCopied, (uint64_t{zero} << 32) | alloc};
    }
  }
  if (w.set_entry) {
    auto l2 = l2_for(guest_cluster, true);
    if (!l2.ok()) {
      if (w.allocated) free_now(w.host, cs).ignore_error();
      return l2.take_error();
    }
  }
  if (data && w.wstart == s && w.wend == e) {
    w.direct = data;
  } else {
    // Left uninitialised: every byte is written below (the caller's bytes, zeros) or by a fill
    // before the buffer is written out. A copy-on-write of a 4 KiB write into a 64 KiB cluster
    // would otherwise clear 60 KiB only to read over them.
    w.staging.reset(new std::byte[w.wend - w.wstart]);
    std::byte* base = w.staging.get();
    uint64_t at = w.wstart;  // bytes before `at` are accounted for
    auto covered = [&](uint64_t from, uint64_t to) {
      if (from > at) std::memset(base + (at - w.wstart), 0, from - at);
      at = std::max(at, to);
    };
    for (const ClusterWork::Fill& f : w.fills)
      if (f.from < s) covered(f.from, f.to);
    if (data) {
      covered(s, e);
      std::memcpy(base + (s - w.wstart), data, e - s);
    }
    for (const ClusterWork::Fill& f : w.fills)
      if (f.from >= e) covered(f.from, f.to);
    covered(w.wend, w.wend);
  }
  plan.work.push_back(std::move(w));
  return {};
}

Result<void> Image::execute(Plan& plan) {
  const uint64_t cs = geo_.cluster_size;
  auto undo_allocations = [&](size_t from) {
    std::lock_guard lock(meta_mutex_);
    for (size_t i = from; i < plan.work.size(); ++i)
      if (plan.work[i].allocated) free_now(plan.work[i].host, cs).ignore_error();
  };
  auto staging_at = [](ClusterWork& w, uint64_t from) {
    return w.staging.get() + (from - w.wstart);
  };

  // Phase 1: what the copy-on-write needs, all host reads in one submit.
  std::vector<IoOp> ops;
  std::vector<std::vector<std::byte>> compressed(plan.work.size());
  for (size_t i = 0; i < plan.work.size(); ++i) {
    ClusterWork& w = plan.work[i];
    bool wants_compressed = false;
    for (const ClusterWork::Fill& f : w.fills) {
      if (f.source == SubclusterState::Data)
        ops.push_back(
            {IoOp::Kind::Read, w.fill_host + f.from, staging_at(w, f.from), f.to - f.from});
      wants_compressed |= f.source == SubclusterState::Compressed;
    }
    if (wants_compressed) {
      compressed[i].resize(w.csize);
      ops.push_back({IoOp::Kind::Read, w.coffset, compressed[i].data(), w.csize});
    }
  }
  Result<void> io = ops.empty() ? Result<void>{} : file_.submit(ops);
  std::vector<std::byte> cluster;
  for (size_t i = 0; io.ok() && i < plan.work.size(); ++i) {
    ClusterWork& w = plan.work[i];
    if (!compressed[i].empty()) {
      cluster.resize(cs);
      io = decompress_cluster(geo_.compression, compressed[i], cluster);
    }
    for (const ClusterWork::Fill& f : w.fills) {
      if (!io.ok()) break;
      if (f.source == SubclusterState::Unallocated)
        io = backing_.read(w.guest_cluster * cs + f.from, {staging_at(w, f.from), f.to - f.from});
      else if (f.source == SubclusterState::Compressed)
        std::memcpy(staging_at(w, f.from), cluster.data() + f.from, f.to - f.from);
    }
  }

  // Phase 2: all data writes in one submit.
  if (io.ok()) {
    ops.clear();
    for (ClusterWork& w : plan.work) {
      if (w.wend <= w.wstart) continue;
      std::byte* src = w.direct ? const_cast<std::byte*>(w.direct) : w.staging.get();
      const uint64_t at = w.host + w.wstart, length = w.wend - w.wstart;
      // Consecutive clusters written from consecutive caller bytes: one host write.
      if (!ops.empty() && ops.back().offset + ops.back().length == at &&
          ops.back().buf + ops.back().length == src)
        ops.back().length += length;
      else
        ops.push_back({IoOp::Kind::Write, at, src, length});
    }
    if (!ops.empty()) io = file_.submit(ops);
  }
  if (!io.ok()) {
    undo_allocations(0);
    return io.take_error();
  }

  // Phase 3: the data is written; now the mapping may point at it.
  std::lock_guard lock(meta_mutex_);
  for (size_t i = 0; i < plan.work.size(); ++i) {
    ClusterWork& w = plan.work[i];
    if (w.set_entry) {
      auto installed = set_mapping(w.guest_cluster, w.entry);
      if (!installed.ok()) {
        for (size_t j = i; j < plan.work.size(); ++j)
          if (plan.work[j].allocated) free_now(plan.work[j].host, cs).ignore_error();
        return installed.take_error();
      }
    }
    for (const PendingFree& f : w.frees) free_later(f.offset, f.length, f.data);
  }
  // Freed clusters become reusable only at a write-back: do one early when many are waiting, so
  // that discards without flushes neither grow the file nor the pending list without bound.
  if (pending_frees_.size() > kMaxPendingFrees) CHAINFS_TRY(write_back_all());
  return {};
}

}  // namespace chainfs::qcow2
