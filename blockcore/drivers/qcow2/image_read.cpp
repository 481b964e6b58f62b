// Image: the read path and block status. A read takes its clusters shared, turns the mapping into
// a plan of segments under meta_mutex_ (here at host offset X, zeros, backing, compressed), then
// does all host reads of the request in one submit outside the lock.
#include <cstring>
#include <memory_resource>

#include "blockcore/drivers/qcow2/compression.h"
#include "blockcore/drivers/qcow2/image.h"

namespace chainfs::qcow2 {

namespace {

struct ReadSegment {
  uint64_t pos = 0;  // offset in the request buffer
  uint64_t length = 0;
  SubclusterState state = SubclusterState::Unallocated;
  uint64_t host = 0;                           // Data: host offset of pos
  uint64_t coffset = 0, csize = 0, intra = 0;  // Compressed: descriptor and offset in the cluster
};

void append(std::pmr::vector<ReadSegment>& segs, const ReadSegment& s) {
  if (!segs.empty()) {
    ReadSegment& prev = segs.back();
    const bool adjacent = prev.pos + prev.length == s.pos && prev.state == s.state;
    if (adjacent && (s.state == SubclusterState::Zero || s.state == SubclusterState::Unallocated ||
                     (s.state == SubclusterState::Data && prev.host + prev.length == s.host))) {
      prev.length += s.length;
      return;
    }
  }
  segs.push_back(s);
}

}  // namespace

Result<void> Image::read_compressed(uint64_t coffset, uint64_t csize,
                                    std::span<std::byte> cluster) {
  std::vector<std::byte> compressed(csize);
  CHAINFS_TRY(host_read(coffset, compressed));
  return decompress_cluster(geo_.compression, compressed, cluster);
}

Result<void> Image::read(uint64_t offset, std::span<std::byte> buf) {
  if (buf.empty()) return {};
  const uint64_t cs = geo_.cluster_size;
  RangeLock::Guard range = ranges_.lock(offset >> geo_.cluster_bits,
                                        (offset + buf.size() - 1) >> geo_.cluster_bits, false);
  // The plan and its host reads live on the stack for the usual request (a few segments; a 1 MiB
  // read over 64 KiB clusters has at most 16 + 1 runs): no heap allocation per request and layer.
  alignas(std::max_align_t) std::byte scratch[2048];
  std::pmr::monotonic_buffer_resource arena(scratch, sizeof scratch);
  std::pmr::vector<ReadSegment> segs(&arena);
  segs.reserve(8);
  {
    std::unique_lock lock(meta_mutex_);
    prefetch_l2(lock, offset >> geo_.cluster_bits, (offset + buf.size() - 1) >> geo_.cluster_bits);
    for (uint64_t pos = 0; pos < buf.size();) {
      const uint64_t guest = offset + pos;
      const uint64_t intra = guest & (cs - 1);
      const uint64_t n = std::min<uint64_t>(cs - intra, buf.size() - pos);
      CHAINFS_ASSIGN_OR_RETURN(DecodedL2 d, mapping(guest >> geo_.cluster_bits));
      if (d.type == ClusterType::Compressed) {
        segs.push_back({pos, n, SubclusterState::Compressed, 0, d.compressed_offset,
                        d.compressed_size, intra});
      } else {
        for (uint64_t at = intra; at < intra + n;) {
          const uint32_t sc = static_cast<uint32_t>(at >> geo_.subcluster_bits);
          const uint64_t sc_end =
              std::min<uint64_t>(intra + n, uint64_t{sc + 1} << geo_.subcluster_bits);
          const SubclusterState st = subcluster_state(geo_, d, sc);
          append(segs, {pos + (at - intra), sc_end - at, st,
                        st == SubclusterState::Data ? d.host_offset + at : 0, 0, 0, 0});
          at = sc_end;
        }
      }
      pos += n;
    }
  }

  std::pmr::vector<IoOp> ops(&arena);
  ops.reserve(segs.size());
  std::vector<std::vector<std::byte>> compressed;  // one buffer per compressed segment
  for (const ReadSegment& s : segs) {
    std::byte* dst = buf.data() + s.pos;
    switch (s.state) {
      case SubclusterState::Data:
        ops.push_back({IoOp::Kind::Read, s.host, dst, s.length});
        break;
      case SubclusterState::Zero:
        std::memset(dst, 0, s.length);
        break;
      case SubclusterState::Compressed:
        compressed.emplace_back(s.csize);
        ops.push_back({IoOp::Kind::Read, s.coffset, compressed.back().data(), s.csize});
        break;
      case SubclusterState::Unallocated:
        break;
    }
  }
  if (!ops.empty()) CHAINFS_TRY(file_.submit(ops));
  size_t next_compressed = 0;
  std::vector<std::byte> cluster;
  for (const ReadSegment& s : segs) {
    std::byte* dst = buf.data() + s.pos;
    if (s.state == SubclusterState::Unallocated) {
      CHAINFS_TRY(backing_.read(offset + s.pos, {dst, s.length}));
    } else if (s.state == SubclusterState::Compressed) {
      cluster.resize(cs);
      CHAINFS_TRY(decompress_cluster(geo_.compression, compressed[next_compressed++], cluster));
      std::memcpy(dst, cluster.data() + s.intra, s.length);
    }
  }
  return {};
}

Result<BlockStatus> Image::block_status(uint64_t offset, uint64_t length) {
  if (length == 0) return BlockStatus{Alloc::Unallocated, 0};
  auto to_alloc = [](SubclusterState st) {
    switch (st) {
      case SubclusterState::Data:
      case SubclusterState::Compressed:
        return Alloc::Data;
      case SubclusterState::Zero:
        return Alloc::Zero;
      default:
        return Alloc::Unallocated;
    }
  };
  std::lock_guard lock(meta_mutex_);
  const uint64_t cs = geo_.cluster_size;
  const uint64_t l2_span = cs << geo_.l2_bits;
  // Bounded work per call: callers loop, and a short answer is allowed.
  constexpr uint64_t kMaxEntries = 1u << 16;
  std::optional<Alloc> kind;
  uint64_t done = 0, entries = 0;
  while (done < length && entries < kMaxEntries) {
    const uint64_t guest = offset + done;
    const uint64_t l1_index = guest / l2_span;
    if (l1_index < l1_.size() && (l1_[l1_index] & kL1OffsetMask) == 0 &&
        (l1_[l1_index] & kL1ReservedMask) == 0) {
      // No L2 table: the whole span is unallocated.
      if (kind && *kind != Alloc::Unallocated) break;
      kind = Alloc::Unallocated;
      done += std::min(length - done, (l1_index + 1) * l2_span - guest);
      ++entries;
      continue;
    }
    CHAINFS_ASSIGN_OR_RETURN(DecodedL2 d, mapping(guest >> geo_.cluster_bits));
    ++entries;
    const uint64_t intra = guest & (cs - 1);
    const uint64_t cluster_end = std::min(length - done, cs - intra);
    bool changed = false;
    for (uint64_t at = intra; at < intra + cluster_end;) {
      const uint32_t sc = static_cast<uint32_t>(at >> geo_.subcluster_bits);
      const uint64_t sc_end =
          std::min<uint64_t>(intra + cluster_end, uint64_t{sc + 1} << geo_.subcluster_bits);
      const Alloc a = to_alloc(subcluster_state(geo_, d, sc));
      if (kind && *kind != a) {
        changed = true;
        break;
      }
      kind = a;
      done += sc_end - at;
      at = sc_end;
    }
    if (changed) break;
  }
  return BlockStatus{*kind, done};
}

}  // namespace chainfs::qcow2
