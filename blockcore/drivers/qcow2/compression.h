// Decompression of qcow2 compressed clusters: zlib (raw deflate, 4 KiB window, QEMU's default) and
// zstd (when the header's compression_type says so). Input is untrusted: the compressed bytes may
// be followed by unrelated bytes (the tail of the last sector), and a bad stream is an Error.
#pragma once

#include <cstddef>
#include <span>

#include "blockcore/drivers/qcow2/format.h"
#include "blockcore/result.h"

namespace chainfs::qcow2 {

// Fills `out` (one cluster) from `in`; fails unless exactly out.size() bytes were produced.
Result<void> decompress_cluster(CompressionType type, std::span<const std::byte> in,
                                std::span<std::byte> out);

// Compresses one cluster the way QEMU stores it (for tests and tools); returns the compressed bytes
// or an empty vector when the data does not compress below the cluster size.
std::vector<std::byte> compress_cluster(CompressionType type, std::span<const std::byte> in);

}  // namespace chainfs::qcow2
