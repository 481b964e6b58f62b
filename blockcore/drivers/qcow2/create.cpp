// qcow2_create: new, empty qcow2 v3 images laid out like `qemu-img create -f qcow2` lays them out
// (header cluster with the backing-format and feature-name extensions, refcount table, refcount
// block, L1 table; extra refcount blocks after the L1 when it is large), 16-bit refcounts, zlib.
//
// The image is written to a temporary file in the target folder, synced, and then linked to the
// target name (or renamed over it with `overwrite`), so a failure never leaves a file behind and
// an existing file is never half-overwritten.
#include "blockcore/drivers/qcow2/create.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "blockcore/drivers/qcow2/format.h"

namespace chainfs {

namespace fs = std::filesystem;
using namespace qcow2;

namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) {
  return a / b + (a % b ? 1 : 0);
}

Error errno_error(int err, const std::string& what) {
  return make_error(errc_from_errno(err), "{}: {}", what, std::strerror(err));
}

// Size and format of an existing backing file (qcow2 by its magic, raw otherwise).
Result<std::pair<uint64_t, std::string>> probe_backing(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error(errno, fmt::format("backing file '{}'", path));
  std::byte header[kV2HeaderLength] = {};
  const ssize_t got = ::pread(fd, header, sizeof header, 0);
  struct stat st {};
  const int stat_rc = ::fstat(fd, &st);
  ::close(fd);
  if (stat_rc != 0) return errno_error(errno, fmt::format("backing file '{}'", path));
  if (got == static_cast<ssize_t>(sizeof header) && load_be32(header) == kMagic)
    return std::make_pair(load_be64(header + 24), std::string("qcow2"));
  return std::make_pair(static_cast<uint64_t>(st.st_size), std::string("raw"));
}

std::vector<HeaderExtension> feature_table() {
  struct Entry {
    uint8_t type, bit;
    const char* name;
  };
  static constexpr Entry kEntries[] = {
      {0, 0, "dirty bit"},        {0, 1, "corrupt bit"},         {0, 2, "external data file"},
      {0, 3, "compression type"}, {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
      {2, 0, "bitmaps"},          {2, 1, "raw external data"},
  };
  HeaderExtension ext;
  ext.type = kExtFeatureTable;
  ext.data.resize(std::size(kEntries) * 48);
  for (size_t i = 0; i < std::size(kEntries); ++i) {
    std::byte* e = ext.data.data() + i * 48;
    e[0] = static_cast<std::byte>(kEntries[i].type);
    e[1] = static_cast<std::byte>(kEntries[i].bit);
    std::memcpy(e + 2, kEntries[i].name, std::strlen(kEntries[i].name));
  }
  return {ext};
}

Result<std::vector<std::byte>> build_image(const Qcow2CreateOptions& o, uint64_t size,
                                           const std::string& backing_format) {
  const uint32_t cluster_bits = static_cast<uint32_t>(__builtin_ctz(o.cluster_size));
  const uint64_t cs = o.cluster_size;
  const uint64_t per_block = cs * 8 / 16;  // 16-bit refcounts

  Header h;
  h.version = 3;
  h.cluster_bits = cluster_bits;
  h.size = size;
  h.refcount_order = 4;
  h.header_length = kV3HeaderLength;
  h.unknown_fields.assign(kV3HeaderLength - 105, std::byte{0});
  Geometry geo;
  geo.cluster_size = cs;
  geo.l2_bits = cluster_bits - 3;
  const uint64_t l1_entries = geo.l1_entries_for(size);
  if (l1_entries * 8 > kMaxL1Bytes)
    return make_error(Errc::TooLarge, "virtual size {} needs an L1 table larger than {} MiB", size,
                      kMaxL1Bytes >> 20);
  h.l1_size = static_cast<uint32_t>(l1_entries);
  const uint64_t l1_clusters = ceil_div(l1_entries * 8, cs);

  // Layout: header | refcount table | first refcount block | L1 | further refcount blocks.
  uint64_t table_clusters = 1, blocks = 1;
  for (;;) {
    const uint64_t used = 1 + table_clusters + 1 + l1_clusters + (blocks - 1);
    const uint64_t need_blocks = ceil_div(used, per_block);
    const uint64_t need_table = ceil_div(need_blocks * 8, cs);
    if (need_blocks == blocks && need_table == table_clusters) break;
    blocks = need_blocks;
    table_clusters = need_table;
  }
  const uint64_t first_block = 1 + table_clusters;
  const uint64_t l1_start = first_block + 1;
  const uint64_t used = l1_start + l1_clusters + (blocks - 1);
  h.refcount_table_offset = cs;
  h.refcount_table_clusters = static_cast<uint32_t>(table_clusters);
  h.l1_table_offset = l1_start * cs;

  if (!o.backing_file.empty()) {
    h.backing_file = o.backing_file;
    h.backing_format = backing_format;
  }
  // The feature names are optional; like qemu-img, leave them out with clusters of 4 KiB or less,
  // where they would crowd out the backing file name.
  if (cs > 4096) h.extensions = feature_table();
  CHAINFS_ASSIGN_OR_RETURN(std::vector<std::byte> header, serialize_header_cluster(h));

  // The file ends right after the L1 entries when the L1 is the last thing in it.
  const uint64_t file_length = blocks == 1 ? l1_start * cs + l1_entries * 8 : used * cs;
  std::vector<std::byte> image(std::max(file_length, l1_start * cs));
  std::copy(header.begin(), header.end(), image.begin());
  auto block_cluster = [&](uint64_t j) {
    return j == 0 ? first_block : l1_start + l1_clusters + j - 1;
  };
  for (uint64_t j = 0; j < blocks; ++j) {
    store_be64(image.data() + cs + j * 8, block_cluster(j) * cs);
    std::span<std::byte> block(image.data() + block_cluster(j) * cs, cs);
    for (uint64_t c = j * per_block; c < std::min(used, (j + 1) * per_block); ++c) {
      Geometry refgeo;
      refgeo.refcount_order = 4;
      refgeo.refcount_bits = 16;
      refcount_set(refgeo, block, c - j * per_block, 1);
    }
  }
  return image;
}

Result<void> write_all(int fd, std::span<const std::byte> bytes) {
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n =
        ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error(errno, "writing the new image");
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Result<void> qcow2_create(const Qcow2CreateOptions& o) {
  if (o.path.empty()) return make_error(Errc::Invalid, "qcow2 create: no path given");
  if (o.cluster_size < 512 || o.cluster_size > (2u << 20) ||
      (o.cluster_size & (o.cluster_size - 1)) != 0)
    return make_error(Errc::Invalid, "cluster size {} must be a power of two from 512 B to 2 MiB",
                      o.cluster_size);
  if (!o.backing_format.empty() && o.backing_format != "qcow2" && o.backing_format != "raw")
    return make_error(Errc::Invalid, "backing format '{}' is not qcow2 or raw", o.backing_format);
  if (o.backing_file.size() > kMaxBackingNameLength)
    return make_error(Errc::Invalid, "backing file name is longer than {} bytes",
                      kMaxBackingNameLength);
  const fs::path target(o.path);
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    return make_error(Errc::NotFound, "cannot create '{}': folder '{}' does not exist", o.path,
                      folder.string());
  if (!o.overwrite && fs::exists(fs::symlink_status(target, ec)))
    return make_error(Errc::Exists, "cannot create '{}': the file exists", o.path);

  uint64_t size = o.size;
  std::string backing_format = o.backing_format;
  if (!o.backing_file.empty() && (size == 0 || backing_format.empty())) {
    fs::path backing(o.backing_file);
    if (backing.is_relative()) backing = folder / backing;
    CHAINFS_ASSIGN_OR_RETURN(auto probed, probe_backing(backing.string()));
    if (size == 0) size = probed.first;
    if (backing_format.empty()) backing_format = probed.second;
  }
  if (size > kMaxVirtualSize)
    return make_error(Errc::TooLarge, "virtual size {} is larger than the limit {}", size,
                      kMaxVirtualSize);
  size = (size + 511) / 512 * 512;  // whole sectors, as qemu-img rounds it
  CHAINFS_ASSIGN_OR_RETURN(std::vector<std::byte> image, build_image(o, size, backing_format));

  std::string temp = (folder / ("." + target.filename().string() + ".XXXXXX")).string();
  int fd = ::mkstemp(temp.data());
  if (fd < 0)
    return errno_error(errno, fmt::format("cannot create a file in '{}'", folder.string()));
  auto fail = [&](Error err) -> Result<void> {
    if (fd >= 0) ::close(fd);
    ::unlink(temp.c_str());
    return err;
  };
  if (::fchmod(fd, 0644) != 0) return fail(errno_error(errno, "chmod of the new image"));
  if (auto r = write_all(fd, image); !r.ok()) return fail(r.take_error());
  if (::fsync(fd) != 0) return fail(errno_error(errno, "syncing the new image"));
  if (::close(fd) != 0) {
    fd = -1;
    return fail(errno_error(errno, "closing the new image"));
  }
  fd = -1;
  if (o.overwrite) {
    if (::rename(temp.c_str(), o.path.c_str()) != 0)
      return fail(errno_error(errno, fmt::format("cannot create '{}'", o.path)));
  } else {
    // link() fails if the name was taken meanwhile: never replaces a file that appeared.
    if (::link(temp.c_str(), o.path.c_str()) != 0)
      return fail(errno_error(errno, fmt::format("cannot create '{}'", o.path)));
    ::unlink(temp.c_str());
  }
  return {};
}

}  // namespace chainfs
