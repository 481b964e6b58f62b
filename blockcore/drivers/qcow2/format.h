// The qcow2 on-disk format (QEMU docs/interop/qcow2.txt), as pure functions over byte spans: the
// header and its extensions, L1/L2 entries, refcount entries and compressed cluster descriptors.
// Nothing here does I/O, so the fuzz target and the one-byte-corruption tests can drive every
// parser without a Graph or a file. Every parser validates what it reads: an image is untrusted
// input, and a bad field is an Error, never a crash or an unbounded allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "blockcore/result.h"

namespace chainfs::qcow2 {

// ---- big-endian helpers -----------------------------------------------------------------------
inline uint64_t load_be(const std::byte* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline void store_be(std::byte* p, int bytes, uint64_t v) {
  for (int i = bytes - 1; i >= 0; --i) {
    p[i] = static_cast<std::byte>(v & 0xff);
    v >>= 8;
  }
}
inline uint64_t load_be64(const std::byte* p) {
  return load_be(p, 8);
}
inline uint32_t load_be32(const std::byte* p) {
  return static_cast<uint32_t>(load_be(p, 4));
}
inline void store_be64(std::byte* p, uint64_t v) {
  store_be(p, 8, v);
}
inline void store_be32(std::byte* p, uint32_t v) {
  store_be(p, 4, v);
}

// ---- constants --------------------------------------------------------------------------------
inline constexpr uint32_t kMagic = 0x514649fb;  // "QFI\xfb"
inline constexpr uint32_t kV2HeaderLength = 72;
inline constexpr uint32_t kV3MinHeaderLength = 104;
inline constexpr uint32_t kV3HeaderLength = 112;  // what we write: up to compression_type, padded
inline constexpr uint32_t kMinClusterBits = 9;
inline constexpr uint32_t kMaxClusterBits = 21;  // 2 MiB, QEMU's implementation limit
inline constexpr uint32_t kMinExtendedL2ClusterBits = 14;
inline constexpr uint32_t kMaxBackingNameLength = 1023;
inline constexpr uint64_t kMaxL1Bytes = 32ull << 20;  // QEMU's limit on the L1 table
inline constexpr uint64_t kMaxRefcountTableBytes = 8ull
                                                   << 20;  // QEMU's limit on the refcount table
inline constexpr uint64_t kMaxVirtualSize = 1ull << 61;    // past this offsets overflow int64 math
inline constexpr uint64_t kMaxHostOffset = 1ull << 56;     // L1/L2 offset fields hold bits 9..55

inline constexpr uint64_t kIncompatDirty = 1u << 0;
inline constexpr uint64_t kIncompatCorrupt = 1u << 1;
inline constexpr uint64_t kIncompatDataFile = 1u << 2;
inline constexpr uint64_t kIncompatCompression = 1u << 3;
inline constexpr uint64_t kIncompatExtendedL2 = 1u << 4;
inline constexpr uint64_t kIncompatKnown = kIncompatDirty | kIncompatCorrupt | kIncompatDataFile |
                                           kIncompatCompression | kIncompatExtendedL2;
inline constexpr uint64_t kCompatLazyRefcounts = 1u << 0;

inline constexpr uint32_t kExtEnd = 0x00000000;
inline constexpr uint32_t kExtBackingFormat = 0xe2792aca;
inline constexpr uint32_t kExtFeatureTable = 0x6803f857;
inline constexpr uint32_t kExtBitmaps = 0x23852875;
inline constexpr uint32_t kExtCrypto = 0x0537be77;
inline constexpr uint32_t kExtDataFile = 0x44415441;

inline constexpr uint64_t kOflagCopied = 1ull << 63;
inline constexpr uint64_t kOflagCompressed = 1ull << 62;
inline constexpr uint64_t kOflagZero = 1ull << 0;
inline constexpr uint64_t kL1OffsetMask = 0x00fffffffffffe00ull;    // bits 9..55
inline constexpr uint64_t kL1ReservedMask = 0x7f000000000001ffull;  // bits 0..8, 56..62
inline constexpr uint64_t kL2OffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kL2StdReservedMask = 0x3f000000000001feull;  // bits 1..8, 56..61
inline constexpr uint64_t kRefTableReservedMask = 0x1ffull;
inline constexpr uint32_t kCompressedSectorSize = 512;

enum class CompressionType : uint8_t { Zlib = 0, Zstd = 1 };

// ---- header -----------------------------------------------------------------------------------
struct HeaderExtension {
  uint32_t type = 0;
  std::vector<std::byte> data;
};

struct FeatureName {
  uint8_t type = 0;  // 0 incompatible, 1 compatible, 2 autoclear
  uint8_t bit = 0;
  std::string name;
};

struct Header {
  uint32_t version = 3;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 16;
  uint64_t size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = kV3HeaderLength;
  CompressionType compression_type = CompressionType::Zlib;
  // Header bytes past the fields we know, up to header_length: kept verbatim when the header is
  // rewritten (spec: unknown additional fields are preserved).
  std::vector<std::byte> unknown_fields;

  // Extensions in file order, except the end marker. The backing format and feature table are
  // also decoded below; every extension is kept so that rewriting the header preserves them.
  std::vector<HeaderExtension> extensions;
  std::optional<std::string> backing_file;  // as written in the image
  std::string backing_format;               // from the backing-format extension, or empty
  std::vector<FeatureName> feature_names;
};

// Reads the fixed header fields (the first 72..header_length bytes). Checks the magic, version and
// lengths; does not look at the extensions.
Result<Header> parse_fixed_header(std::span<const std::byte> bytes);

// Parses the whole first cluster: fixed header, extensions and backing file name. `bytes` holds the
// image's first min(cluster size, file length) bytes.
Result<Header> parse_header_cluster(std::span<const std::byte> bytes);

// Writes a header (fixed fields, extensions, end marker, backing name) into one cluster; fails with
// a clear error when it does not fit. Returns the bytes to write at offset 0 (<= cluster size).
Result<std::vector<std::byte>> serialize_header_cluster(const Header& header);

// Derived sizes of an image, checked against the limits the driver enforces.
struct Geometry {
  uint32_t version = 3;
  uint32_t cluster_bits = 16;
  uint64_t cluster_size = 65536;
  bool extended_l2 = false;
  uint32_t l2_entry_bytes = 8;    // 16 with extended L2 entries
  uint64_t l2_entries = 8192;     // entries per L2 table
  uint32_t l2_bits = 13;          // log2(l2_entries)
  uint32_t subcluster_bits = 16;  // log2(subcluster size); == cluster_bits without extended L2
  uint32_t subclusters = 1;       // per cluster: 32 with extended L2
  uint32_t refcount_order = 4;
  uint32_t refcount_bits = 16;
  uint64_t refblock_entries = 32768;
  uint32_t refblock_bits = 15;
  CompressionType compression = CompressionType::Zlib;
  uint32_t csize_shift = 54;  // compressed descriptor: where the sector count starts
  uint64_t csize_mask = 0xff;
  uint64_t coffset_mask = 0;

  uint64_t offset_in_cluster(uint64_t off) const { return off & (cluster_size - 1); }
  uint64_t start_of_cluster(uint64_t off) const { return off & ~(cluster_size - 1); }
  uint64_t l1_entries_for(uint64_t virtual_size) const;
};

// Validates what the header claims against our limits and the file length (tables inside the file,
// L1 big enough for the size, known incompatible features...). Errors say which field and why.
Result<Geometry> validate_header(const Header& header, uint64_t file_length);

// ---- L2 entries -------------------------------------------------------------------------------
enum class ClusterType : uint8_t {
  Unallocated,    // offset 0, no zero flag: read from the backing
  ZeroPlain,      // zero flag, no host cluster
  ZeroAllocated,  // zero flag with a preallocated host cluster
  Normal,         // data at host_offset
  Compressed,
};

struct L2Entry {
  uint64_t word = 0;
  uint64_t bitmap = 0;  // extended L2 only
};

struct DecodedL2 {
  ClusterType type = ClusterType::Unallocated;
  uint64_t host_offset = 0;  // Normal / ZeroAllocated (and extended-L2 clusters with subclusters)
  bool copied = false;       // refcount is exactly one (bit 63)
  uint64_t compressed_offset = 0;
  uint64_t compressed_size = 0;  // bytes to read from compressed_offset
  uint32_t alloc_mask = 0;       // extended L2: subclusters allocated here
  uint32_t zero_mask = 0;        // extended L2: subclusters that read as zeros
};

L2Entry read_l2_entry(const Geometry& geo, const std::byte* table, uint64_t index);
void write_l2_entry(const Geometry& geo, std::byte* table, uint64_t index, L2Entry entry);
// Decodes and validates one L2 entry; `host_limit` is the first byte offset past the image's
// valid host area (data must start below it).
Result<DecodedL2> decode_l2_entry(const Geometry& geo, L2Entry entry, uint64_t host_limit);

// What one subcluster (or the whole cluster without extended L2) of a decoded entry holds.
enum class SubclusterState : uint8_t { Unallocated, Zero, Data, Compressed };
SubclusterState subcluster_state(const Geometry& geo, const DecodedL2& d, uint32_t index);

// Validates an L1 entry; returns the L2 table offset (0 = none).
Result<uint64_t> decode_l1_entry(const Geometry& geo, uint64_t entry, uint64_t host_limit);

// ---- refcounts --------------------------------------------------------------------------------
uint64_t refcount_get(const Geometry& geo, std::span<const std::byte> block, uint64_t index);
void refcount_set(const Geometry& geo, std::span<std::byte> block, uint64_t index, uint64_t value);
inline uint64_t refcount_max(const Geometry& geo) {
  return geo.refcount_bits == 64 ? ~0ull : (1ull << geo.refcount_bits) - 1;
}
// Validates a refcount table entry; returns the refcount block offset (0 = none).
Result<uint64_t> decode_reftable_entry(const Geometry& geo, uint64_t entry, uint64_t host_limit);

}  // namespace chainfs::qcow2
