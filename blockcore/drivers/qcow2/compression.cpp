#include "blockcore/drivers/qcow2/compression.h"

#include <zlib.h>
#include <zstd.h>

#include <memory>

namespace chainfs::qcow2 {

namespace {

Result<void> inflate_raw(std::span<const std::byte> in, std::span<std::byte> out) {
  z_stream strm{};
  // Raw deflate with a 4 KiB window: what QEMU writes for zlib-compressed clusters.
  if (inflateInit2(&strm, -12) != Z_OK)
    return make_error(Errc::Io, "qcow2: cannot initialise zlib");
  strm.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  strm.avail_in = static_cast<uInt>(in.size());
  strm.next_out = reinterpret_cast<Bytef*>(out.data());
  strm.avail_out = static_cast<uInt>(out.size());
  const int ret = inflate(&strm, Z_FINISH);
  const bool filled = strm.avail_out == 0;
  inflateEnd(&strm);
  // Z_BUF_ERROR with a full output is fine: the stream ends exactly at the cluster boundary and
  // the input may carry unrelated trailing bytes.
  if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && filled) return {};
  return make_error(Errc::Io, "qcow2: corrupt zlib-compressed cluster (inflate returned {})", ret);
}

struct DctxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

Result<void> zstd_decompress(std::span<const std::byte> in, std::span<std::byte> out) {
  std::unique_ptr<ZSTD_DCtx, DctxFree> dctx(ZSTD_createDCtx());
  if (!dctx) return make_error(Errc::Io, "qcow2: cannot create a zstd context");
  // Clusters are at most 2 MiB: a frame asking for a larger window is corrupt, and refusing it
  // bounds the memory a malicious image can make us allocate.
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 23);
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  ZSTD_outBuffer output{out.data(), out.size(), 0};
  while (output.pos < output.size) {
    const size_t in_before = input.pos, out_before = output.pos;
    const size_t ret = ZSTD_decompressStream(dctx.get(), &output, &input);
    if (ZSTD_isError(ret))
      return make_error(Errc::Io, "qcow2: corrupt zstd-compressed cluster: {}",
                        ZSTD_getErrorName(ret));
    if (output.pos == output.size) break;
    if (input.pos == in_before && output.pos == out_before)
      return make_error(Errc::Io, "qcow2: zstd-compressed cluster ends after {} of {} bytes",
                        output.pos, output.size);
  }
  return {};
}

}  // namespace

Result<void> decompress_cluster(CompressionType type, std::span<const std::byte> in,
                                std::span<std::byte> out) {
  switch (type) {
    case CompressionType::Zlib:
      return inflate_raw(in, out);
    case CompressionType::Zstd:
      return zstd_decompress(in, out);
  }
  return make_error(Errc::Unsupported, "qcow2: unknown compression type");
}

std::vector<std::byte> compress_cluster(CompressionType type, std::span<const std::byte> in) {
  std::vector<std::byte> out(in.size());
  if (type == CompressionType::Zstd) {
    const size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
    if (ZSTD_isError(n) || n >= in.size()) return {};
    out.resize(n);
    return out;
  }
  z_stream strm{};
  if (deflateInit2(&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
    return {};
  strm.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  strm.avail_in = static_cast<uInt>(in.size());
  strm.next_out = reinterpret_cast<Bytef*>(out.data());
  strm.avail_out = static_cast<uInt>(out.size());
  const int ret = deflate(&strm, Z_FINISH);
  const size_t produced = out.size() - strm.avail_out;
  deflateEnd(&strm);
  if (ret != Z_STREAM_END || produced >= in.size()) return {};
  out.resize(produced);
  return out;
}

}  // namespace chainfs::qcow2
