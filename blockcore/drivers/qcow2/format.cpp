#include "blockcore/drivers/qcow2/format.h"

#include <algorithm>
#include <cstring>

namespace chainfs::qcow2 {

namespace {

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

bool is_power_of_two_offset(uint64_t off, uint64_t align) {
  return (off & (align - 1)) == 0;
}

std::string feature_label(const Header& h, uint8_t type, uint8_t bit) {
  for (const FeatureName& f : h.feature_names)
    if (f.type == type && f.bit == bit && !f.name.empty()) return f.name;
  return fmt::format("bit {}", bit);
}

}  // namespace

uint64_t Geometry::l1_entries_for(uint64_t virtual_size) const {
  const uint64_t l2_span = cluster_size << l2_bits;  // bytes mapped by one L2 table
  return virtual_size / l2_span + (virtual_size % l2_span ? 1 : 0);
}

Result<Header> parse_fixed_header(std::span<const std::byte> bytes) {
  if (bytes.size() < kV2HeaderLength)
    return make_error(Errc::Invalid, "not a qcow2 image: {} bytes is too short for a header",
                      bytes.size());
  const std::byte* p = bytes.data();
  if (load_be32(p) != kMagic) return make_error(Errc::Invalid, "not a qcow2 image: bad magic");
  Header h;
  h.version = load_be32(p + 4);
  if (h.version != 2 && h.version != 3)
    return make_error(Errc::Unsupported, "qcow2 version {} is not supported (only 2 and 3)",
                      h.version);
  h.backing_file_offset = load_be64(p + 8);
  h.backing_file_size = load_be32(p + 16);
  h.cluster_bits = load_be32(p + 20);
  h.size = load_be64(p + 24);
  h.crypt_method = load_be32(p + 32);
  h.l1_size = load_be32(p + 36);
  h.l1_table_offset = load_be64(p + 40);
  h.refcount_table_offset = load_be64(p + 48);
  h.refcount_table_clusters = load_be32(p + 56);
  h.nb_snapshots = load_be32(p + 60);
  h.snapshots_offset = load_be64(p + 64);
  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits)
    return make_error(Errc::Unsupported,
                      "qcow2 cluster_bits {} is outside the supported range {}..{} (512 B..2 MiB)",
                      h.cluster_bits, kMinClusterBits, kMaxClusterBits);
  if (h.version == 2) {
    h.header_length = kV2HeaderLength;
    h.refcount_order = 4;
    return h;
  }
  if (bytes.size() < kV3MinHeaderLength)
    return make_error(Errc::Invalid, "qcow2 v3 header truncated: {} bytes", bytes.size());
  h.incompatible_features = load_be64(p + 72);
  h.compatible_features = load_be64(p + 80);
  h.autoclear_features = load_be64(p + 88);
  h.refcount_order = load_be32(p + 96);
  h.header_length = load_be32(p + 100);
  const uint64_t cluster_size = 1ull << h.cluster_bits;
  if (h.header_length < kV3MinHeaderLength || h.header_length % 8 != 0 ||
      h.header_length > cluster_size)
    return make_error(Errc::Invalid,
                      "qcow2 header_length {} is invalid (must be >= 104, a multiple of 8 and fit "
                      "in the first cluster)",
                      h.header_length);
  if (bytes.size() < h.header_length)
    return make_error(Errc::Invalid, "qcow2 header truncated: header_length {} but {} bytes",
                      h.header_length, bytes.size());
  if (h.header_length > 104) {
    uint8_t ct = static_cast<uint8_t>(p[104]);
    if (ct > 1)
      return make_error(Errc::Unsupported, "qcow2 compression type {} is not supported", ct);
    h.compression_type = static_cast<CompressionType>(ct);
    h.unknown_fields.assign(p + 105, p + h.header_length);
  }
  return h;
}

Result<Header> parse_header_cluster(std::span<const std::byte> bytes) {
  CHAINFS_ASSIGN_OR_RETURN(Header h, parse_fixed_header(bytes));
  const uint64_t cluster_size = 1ull << h.cluster_bits;
  uint64_t area_end = cluster_size;
  if (h.backing_file_offset != 0) {
    if (h.backing_file_offset > cluster_size || h.backing_file_offset < h.header_length)
      return make_error(Errc::Invalid,
                        "qcow2 backing_file_offset {} is outside the header cluster (must be in "
                        "{}..{})",
                        h.backing_file_offset, h.header_length, cluster_size);
    area_end = h.backing_file_offset;
  }
  area_end = std::min<uint64_t>(area_end, bytes.size());

  bool seen_backing_format = false, seen_features = false;
  uint64_t off = h.header_length;
  while (off + 8 <= area_end) {
    const uint32_t type = load_be32(bytes.data() + off);
    const uint32_t len = load_be32(bytes.data() + off + 4);
    if (type == kExtEnd) break;
    if (len > area_end - off - 8)
      return make_error(Errc::Invalid,
                        "qcow2 header extension 0x{:08x} at {} claims {} bytes, past the end of "
                        "the extension area ({})",
                        type, off, len, area_end);
    HeaderExtension ext;
    ext.type = type;
    ext.data.assign(bytes.data() + off + 8, bytes.data() + off + 8 + len);
    if (type == kExtBackingFormat) {
      if (seen_backing_format)
        return make_error(Errc::Invalid, "qcow2 header has two backing-format extensions");
      seen_backing_format = true;
      if (len > kMaxBackingNameLength)
        return make_error(Errc::Invalid, "qcow2 backing format name of {} bytes is too long", len);
      h.backing_format.assign(reinterpret_cast<const char*>(ext.data.data()), len);
      if (h.backing_format.find('\0') != std::string::npos)
        return make_error(Errc::Invalid, "qcow2 backing format name contains a NUL byte");
    } else if (type == kExtFeatureTable) {
      if (seen_features)
        return make_error(Errc::Invalid, "qcow2 header has two feature name tables");
      seen_features = true;
      for (uint64_t e = 0; e + 48 <= len; e += 48) {
        FeatureName f;
        f.type = static_cast<uint8_t>(ext.data[e]);
        f.bit = static_cast<uint8_t>(ext.data[e + 1]);
        const char* name = reinterpret_cast<const char*>(ext.data.data() + e + 2);
        f.name.assign(name, strnlen(name, 46));
        h.feature_names.push_back(std::move(f));
      }
    }
    h.extensions.push_back(std::move(ext));
    off += 8 + align_up(len, 8);
  }

  if (h.backing_file_offset != 0) {
    if (h.backing_file_size > kMaxBackingNameLength)
      return make_error(Errc::Invalid, "qcow2 backing file name of {} bytes is too long (max {})",
                        h.backing_file_size, kMaxBackingNameLength);
    if (h.backing_file_offset + h.backing_file_size >
        std::min<uint64_t>(cluster_size, bytes.size()))
      return make_error(Errc::Invalid,
                        "qcow2 backing file name ({} bytes at {}) runs past the "
                        "header cluster or the file",
                        h.backing_file_size, h.backing_file_offset);
    std::string name(reinterpret_cast<const char*>(bytes.data() + h.backing_file_offset),
                     h.backing_file_size);
    if (name.find('\0') != std::string::npos)
      return make_error(Errc::Invalid, "qcow2 backing file name contains a NUL byte");
    h.backing_file = std::move(name);
  }
  return h;
}

Result<std::vector<std::byte>> serialize_header_cluster(const Header& h) {
  const uint64_t cluster_size = 1ull << h.cluster_bits;
  const uint32_t header_length = h.version == 2 ? kV2HeaderLength : h.header_length;
  std::vector<std::byte> out(header_length);
  std::byte* p = out.data();  // valid until the extensions below grow `out`
  store_be32(p, kMagic);
  store_be32(p + 4, h.version);
  store_be32(p + 20, h.cluster_bits);
  store_be64(p + 24, h.size);
  store_be32(p + 32, h.crypt_method);
  store_be32(p + 36, h.l1_size);
  store_be64(p + 40, h.l1_table_offset);
  store_be64(p + 48, h.refcount_table_offset);
  store_be32(p + 56, h.refcount_table_clusters);
  store_be32(p + 60, h.nb_snapshots);
  store_be64(p + 64, h.snapshots_offset);
  if (h.version >= 3) {
    store_be64(p + 72, h.incompatible_features);
    store_be64(p + 80, h.compatible_features);
    store_be64(p + 88, h.autoclear_features);
    store_be32(p + 96, h.refcount_order);
    store_be32(p + 100, header_length);
    if (header_length > 104) {
      p[104] = static_cast<std::byte>(h.compression_type);
      size_t n = std::min<size_t>(h.unknown_fields.size(), header_length - 105);
      std::copy_n(h.unknown_fields.begin(), n, out.begin() + 105);
    }
  }
  auto append_ext = [&](uint32_t type, std::span<const std::byte> data) {
    size_t at = out.size();
    out.resize(at + 8 + align_up(data.size(), 8));
    store_be32(out.data() + at, type);
    store_be32(out.data() + at + 4, static_cast<uint32_t>(data.size()));
    std::copy(data.begin(), data.end(), out.begin() + at + 8);
  };
  const bool has_backing = h.backing_file.has_value() && !h.backing_file->empty();
  if (has_backing && !h.backing_format.empty())
    append_ext(kExtBackingFormat, std::as_bytes(std::span(h.backing_format)));
  for (const HeaderExtension& ext : h.extensions)
    if (ext.type != kExtBackingFormat && ext.type != kExtEnd) append_ext(ext.type, ext.data);
  out.resize(out.size() + 8);  // end of the extension area
  if (has_backing) {
    if (h.backing_file->size() > kMaxBackingNameLength)
      return make_error(Errc::Invalid, "backing file name of {} bytes is too long (max {})",
                        h.backing_file->size(), kMaxBackingNameLength);
    const uint64_t name_at = out.size();
    out.insert(out.end(), reinterpret_cast<const std::byte*>(h.backing_file->data()),
               reinterpret_cast<const std::byte*>(h.backing_file->data()) + h.backing_file->size());
    store_be64(out.data() + 8, name_at);  // out.data(), not p: the vector has grown
    store_be32(out.data() + 16, static_cast<uint32_t>(h.backing_file->size()));
  }
  if (out.size() > cluster_size)
    return make_error(Errc::NoSpace,
                      "the qcow2 header, its extensions and the backing file name need {} bytes, "
                      "more than the first cluster holds ({} bytes)",
                      out.size(), cluster_size);
  out.resize(cluster_size);
  return out;
}

Result<Geometry> validate_header(const Header& h, uint64_t file_length) {
  Geometry g;
  g.version = h.version;
  g.cluster_bits = h.cluster_bits;
  g.cluster_size = 1ull << h.cluster_bits;
  if (h.crypt_method != 0)
    return make_error(Errc::Unsupported,
                      "encrypted qcow2 images (crypt_method {}) are not "
                      "supported",
                      h.crypt_method);
  const uint64_t unknown = h.incompatible_features & ~kIncompatKnown;
  if (unknown) {
    std::string names;
    for (uint8_t bit = 0; bit < 64; ++bit)
      if (unknown & (1ull << bit)) names += (names.empty() ? "" : ", ") + feature_label(h, 0, bit);
    return make_error(Errc::Unsupported, "qcow2 image uses unknown incompatible features: {}",
                      names);
  }
  if (h.incompatible_features & kIncompatDataFile)
    return make_error(Errc::Unsupported,
                      "qcow2 images with an external data file are not supported");
  g.extended_l2 = (h.incompatible_features & kIncompatExtendedL2) != 0;
  if (g.extended_l2 && h.cluster_bits < kMinExtendedL2ClusterBits)
    return make_error(Errc::Invalid,
                      "qcow2 extended L2 entries need clusters of at least 16 KiB "
                      "(cluster_bits {})",
                      h.cluster_bits);
  const bool compression_bit = (h.incompatible_features & kIncompatCompression) != 0;
  if (compression_bit && h.compression_type == CompressionType::Zlib)
    return make_error(Errc::Invalid,
                      "qcow2 compression-type feature is set but the "
                      "compression_type field says zlib");
  if (!compression_bit && h.compression_type != CompressionType::Zlib)
    return make_error(Errc::Invalid,
                      "qcow2 compression_type is non-zero without the "
                      "compression-type feature bit");
  g.compression = h.compression_type;
  if (h.refcount_order > 6)
    return make_error(Errc::Invalid, "qcow2 refcount_order {} is invalid (max 6)",
                      h.refcount_order);
  g.refcount_order = h.refcount_order;
  g.refcount_bits = 1u << h.refcount_order;
  g.l2_entry_bytes = g.extended_l2 ? 16 : 8;
  g.l2_bits = h.cluster_bits - (g.extended_l2 ? 4 : 3);
  g.l2_entries = 1ull << g.l2_bits;
  g.subcluster_bits = g.extended_l2 ? h.cluster_bits - 5 : h.cluster_bits;
  g.subclusters = g.extended_l2 ? 32 : 1;
  g.refblock_bits = h.cluster_bits + 3 - h.refcount_order;
  g.refblock_entries = 1ull << g.refblock_bits;
  g.csize_shift = 62 - (h.cluster_bits - 8);
  g.csize_mask = (1ull << (h.cluster_bits - 8)) - 1;
  g.coffset_mask = (1ull << g.csize_shift) - 1;

  if (h.size > kMaxVirtualSize)
    return make_error(Errc::TooLarge, "qcow2 virtual size {} is larger than the supported limit {}",
                      h.size, kMaxVirtualSize);
  if (uint64_t{h.l1_size} * 8 > kMaxL1Bytes)
    return make_error(Errc::TooLarge,
                      "qcow2 L1 table of {} entries is larger than the limit of "
                      "{} MiB",
                      h.l1_size, kMaxL1Bytes >> 20);
  const uint64_t needed = g.l1_entries_for(h.size);
  if (needed > h.l1_size)
    return make_error(Errc::Invalid,
                      "qcow2 L1 table ({} entries) is too small for the virtual "
                      "size {} (needs {})",
                      h.l1_size, h.size, needed);
  if (h.l1_size > 0) {
    if (h.l1_table_offset == 0 || !is_power_of_two_offset(h.l1_table_offset, g.cluster_size))
      return make_error(Errc::Invalid,
                        "qcow2 L1 table offset {} is not a cluster-aligned "
                        "offset past the header",
                        h.l1_table_offset);
    if (h.l1_table_offset > file_length ||
        uint64_t{h.l1_size} * 8 > file_length - h.l1_table_offset)
      return make_error(Errc::Invalid,
                        "qcow2 L1 table ({} entries at {}) lies beyond the end of "
                        "the file ({} bytes)",
                        h.l1_size, h.l1_table_offset, file_length);
  }
  if (h.refcount_table_clusters == 0)
    return make_error(Errc::Invalid, "qcow2 refcount table has no clusters");
  const uint64_t reftable_bytes = uint64_t{h.refcount_table_clusters} << h.cluster_bits;
  if (reftable_bytes > kMaxRefcountTableBytes)
    return make_error(Errc::TooLarge,
                      "qcow2 refcount table of {} clusters is larger than the "
                      "limit of {} MiB",
                      h.refcount_table_clusters, kMaxRefcountTableBytes >> 20);
  if (h.refcount_table_offset == 0 ||
      !is_power_of_two_offset(h.refcount_table_offset, g.cluster_size))
    return make_error(Errc::Invalid,
                      "qcow2 refcount table offset {} is not a cluster-aligned "
                      "offset past the header",
                      h.refcount_table_offset);
  if (h.refcount_table_offset >= file_length)
    return make_error(Errc::Invalid,
                      "qcow2 refcount table at {} lies beyond the end of the file "
                      "({} bytes)",
                      h.refcount_table_offset, file_length);
  if (h.nb_snapshots > 0 && !is_power_of_two_offset(h.snapshots_offset, g.cluster_size))
    return make_error(Errc::Invalid, "qcow2 snapshot table offset {} is not cluster aligned",
                      h.snapshots_offset);
  return g;
}

// ---- L1 / L2 ----------------------------------------------------------------------------------

L2Entry read_l2_entry(const Geometry& geo, const std::byte* table, uint64_t index) {
  const std::byte* p = table + index * geo.l2_entry_bytes;
  L2Entry e;
  e.word = load_be64(p);
  if (geo.extended_l2) e.bitmap = load_be64(p + 8);
  return e;
}

void write_l2_entry(const Geometry& geo, std::byte* table, uint64_t index, L2Entry entry) {
  std::byte* p = table + index * geo.l2_entry_bytes;
  store_be64(p, entry.word);
  if (geo.extended_l2) store_be64(p + 8, entry.bitmap);
}

Result<uint64_t> decode_l1_entry(const Geometry& geo, uint64_t entry, uint64_t host_limit) {
  if (entry & kL1ReservedMask)
    return make_error(Errc::Io, "corrupt qcow2 L1 entry 0x{:016x}: reserved bits set", entry);
  const uint64_t off = entry & kL1OffsetMask;
  if (off == 0) return uint64_t{0};
  if (!is_power_of_two_offset(off, geo.cluster_size))
    return make_error(Errc::Io,
                      "corrupt qcow2 L1 entry: L2 table offset {} is not cluster "
                      "aligned",
                      off);
  if (off >= host_limit)
    return make_error(Errc::Io,
                      "corrupt qcow2 L1 entry: L2 table at {} lies beyond the end of "
                      "the image ({})",
                      off, host_limit);
  return off;
}

Result<DecodedL2> decode_l2_entry(const Geometry& geo, L2Entry e, uint64_t host_limit) {
  DecodedL2 d;
  d.copied = (e.word & kOflagCopied) != 0;
  if (e.word & kOflagCompressed) {
    if (geo.extended_l2 && e.bitmap != 0)
      return make_error(Errc::Io,
                        "corrupt qcow2 L2 entry: compressed cluster with a non-zero "
                        "subcluster bitmap");
    d.type = ClusterType::Compressed;
    d.compressed_offset = e.word & geo.coffset_mask;
    const uint64_t sectors = ((e.word >> geo.csize_shift) & geo.csize_mask) + 1;
    d.compressed_size = sectors * kCompressedSectorSize - (d.compressed_offset & 511);
    if (d.compressed_offset == 0 || d.compressed_offset >= kMaxHostOffset ||
        d.compressed_offset >= host_limit)
      return make_error(Errc::Io,
                        "corrupt qcow2 compressed cluster descriptor: data at {} lies "
                        "outside the image ({} bytes)",
                        d.compressed_offset, host_limit);
    return d;
  }
  if (e.word & kL2StdReservedMask)
    return make_error(Errc::Io, "corrupt qcow2 L2 entry 0x{:016x}: reserved bits set", e.word);
  const uint64_t off = e.word & kL2OffsetMask;
  const bool zero = (e.word & kOflagZero) != 0;
  if (off != 0) {
    if (!is_power_of_two_offset(off, geo.cluster_size))
      return make_error(Errc::Io, "corrupt qcow2 L2 entry: data offset {} is not cluster aligned",
                        off);
    if (off >= host_limit)
      return make_error(Errc::Io,
                        "corrupt qcow2 L2 entry: data cluster at {} lies beyond the end "
                        "of the image ({})",
                        off, host_limit);
  } else if (d.copied) {
    return make_error(Errc::Io, "corrupt qcow2 L2 entry: host offset 0 with the copied flag");
  }
  d.host_offset = off;
  if (geo.extended_l2) {
    if (zero)
      return make_error(Errc::Io,
                        "corrupt qcow2 L2 entry: zero flag set in an image with "
                        "extended L2 entries");
    d.alloc_mask = static_cast<uint32_t>(e.bitmap);
    d.zero_mask = static_cast<uint32_t>(e.bitmap >> 32);
    if (d.alloc_mask & d.zero_mask)
      return make_error(Errc::Io,
                        "corrupt qcow2 extended L2 entry: subclusters both allocated "
                        "and zero (bitmap 0x{:016x})",
                        e.bitmap);
    if (d.alloc_mask && off == 0)
      return make_error(Errc::Io,
                        "corrupt qcow2 extended L2 entry: allocated subclusters "
                        "without a host cluster");
    d.type = off ? ClusterType::Normal : ClusterType::Unallocated;
    return d;
  }
  if (zero && geo.version < 3)
    return make_error(Errc::Io, "corrupt qcow2 L2 entry: zero flag in a version 2 image");
  if (off == 0)
    d.type = zero ? ClusterType::ZeroPlain : ClusterType::Unallocated;
  else
    d.type = zero ? ClusterType::ZeroAllocated : ClusterType::Normal;
  return d;
}

SubclusterState subcluster_state(const Geometry& geo, const DecodedL2& d, uint32_t index) {
  if (d.type == ClusterType::Compressed) return SubclusterState::Compressed;
  if (geo.extended_l2) {
    if (d.alloc_mask & (1u << index)) return SubclusterState::Data;
    if (d.zero_mask & (1u << index)) return SubclusterState::Zero;
    return SubclusterState::Unallocated;
  }
  switch (d.type) {
    case ClusterType::Unallocated:
      return SubclusterState::Unallocated;
    case ClusterType::ZeroPlain:
    case ClusterType::ZeroAllocated:
      return SubclusterState::Zero;
    default:
      return SubclusterState::Data;
  }
}

// ---- refcounts --------------------------------------------------------------------------------

uint64_t refcount_get(const Geometry& geo, std::span<const std::byte> block, uint64_t index) {
  const uint32_t order = geo.refcount_order;
  if (order < 3) {
    const uint64_t per_byte = 8u >> order;
    const uint8_t byte = static_cast<uint8_t>(block[index / per_byte]);
    const uint32_t shift = static_cast<uint32_t>((index % per_byte) << order);
    return (byte >> shift) & ((1u << geo.refcount_bits) - 1);
  }
  const int width = 1 << (order - 3);
  return load_be(block.data() + index * width, width);
}

void refcount_set(const Geometry& geo, std::span<std::byte> block, uint64_t index, uint64_t value) {
  const uint32_t order = geo.refcount_order;
  if (order < 3) {
    const uint64_t per_byte = 8u >> order;
    const uint32_t shift = static_cast<uint32_t>((index % per_byte) << order);
    const uint8_t mask = static_cast<uint8_t>(((1u << geo.refcount_bits) - 1) << shift);
    uint8_t byte = static_cast<uint8_t>(block[index / per_byte]);
    byte = static_cast<uint8_t>((byte & ~mask) | ((value << shift) & mask));
    block[index / per_byte] = static_cast<std::byte>(byte);
    return;
  }
  const int width = 1 << (order - 3);
  store_be(block.data() + index * width, width, value);
}

Result<uint64_t> decode_reftable_entry(const Geometry& geo, uint64_t entry, uint64_t host_limit) {
  if (entry & kRefTableReservedMask)
    return make_error(Errc::Io, "corrupt qcow2 refcount table entry 0x{:016x}: reserved bits set",
                      entry);
  if (entry == 0) return uint64_t{0};
  if (!is_power_of_two_offset(entry, geo.cluster_size))
    return make_error(Errc::Io,
                      "corrupt qcow2 refcount table entry: block offset {} is not "
                      "cluster aligned",
                      entry);
  if (entry >= host_limit || entry >= kMaxHostOffset)
    return make_error(Errc::Io,
                      "corrupt qcow2 refcount table entry: block at {} lies beyond the "
                      "end of the image ({})",
                      entry, host_limit);
  return entry;
}

}  // namespace chainfs::qcow2
