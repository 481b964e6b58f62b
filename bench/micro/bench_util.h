// Helpers shared by the micro-benchmarks: real qcow2 images in a temporary folder, a HostFile over
// a host file descriptor (pread/pwrite, page cache), and a HostFile wrapper that can elide data
// I/O so that a benchmark measures the request planning rather than memcpy.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "blockcore/drivers/qcow2/create.h"
#include "blockcore/drivers/qcow2/image.h"
#include "blockcore/io/host_io.h"

namespace chainfs::bench {

// Aborts with a message: a benchmark whose set-up failed must not report numbers.
[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "bench_micro: %s\n", what.c_str());
  std::abort();
}

template <typename T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) die(std::string(what) + ": " + r.error().message);
  if constexpr (!std::is_void_v<T>) return std::move(r).value();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "chainfs-bench-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) die("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The image's host file as a plain file descriptor (what the file driver does, minus io_uring).
class FdHostFile final : public qcow2::HostFile {
 public:
  explicit FdHostFile(const std::string& path) : fd_(::open(path.c_str(), O_RDWR | O_CLOEXEC)) {
    if (fd_ < 0) die("cannot open " + path);
  }
  ~FdHostFile() override { ::close(fd_); }
  FdHostFile(const FdHostFile&) = delete;
  FdHostFile& operator=(const FdHostFile&) = delete;
  Result<void> submit(std::span<IoOp> ops) override { return io_detail::run_ops_sync(fd_, ops); }
  Result<void> sync() override { return io_detail::sync_fd(fd_, true); }
  uint64_t length() const override {
    const off_t end = ::lseek(fd_, 0, SEEK_END);
    return end < 0 ? 0 : static_cast<uint64_t>(end);
  }

 private:
  int fd_;
};

// Forwards to a real HostFile; with elide set, counts the ops and does not run them (the buffers
// are left as they are). Used once every table a benchmark needs is cached, so that every submit
// left is guest data I/O, which is not what is measured.
class ElidingHostFile final : public qcow2::HostFile {
 public:
  explicit ElidingHostFile(qcow2::HostFile& real) : real_(real) {}
  Result<void> submit(std::span<IoOp> ops) override {
    if (!elide) return real_.submit(ops);
    ops_seen += ops.size();
    ++submits_seen;
    return {};
  }
  Result<void> sync() override { return real_.sync(); }
  uint64_t length() const override { return real_.length(); }

  bool elide = false;
  uint64_t ops_seen = 0;
  uint64_t submits_seen = 0;

 private:
  qcow2::HostFile& real_;
};

// A qcow2 image opened directly (no Graph) on a real file.
struct OpenImage {
  std::unique_ptr<FdHostFile> fd;
  std::unique_ptr<ElidingHostFile> host;
  qcow2::NoBackingReader backing;
  std::unique_ptr<qcow2::Image> image;

  OpenImage(const std::string& path, bool read_only, uint64_t cache_bytes = 0) {
    fd = std::make_unique<FdHostFile>(path);
    host = std::make_unique<ElidingHostFile>(*fd);
    qcow2::ImageOptions options;
    options.read_only = read_only;
    options.cache_bytes = cache_bytes;
    image = must(qcow2::Image::open(*host, backing, options), "open image");
  }
  ~OpenImage() {
    if (image && !image->read_only()) {
      host->elide = false;
      image->flush().ignore_error();
      image->close().ignore_error();
    }
    image.reset();
  }
  OpenImage(const OpenImage&) = delete;
  OpenImage& operator=(const OpenImage&) = delete;
};

inline void create_image(const std::string& path, uint64_t size, const std::string& backing = "") {
  Qcow2CreateOptions options;
  options.path = path;
  options.size = size;
  options.backing_file = backing;
  options.backing_format = backing.empty() ? "" : "qcow2";
  must(qcow2_create(options), "qcow2_create");
}

// Writes one whole cluster of a recognisable pattern at each guest cluster index, in the given
// order (the allocator hands out host clusters in write order, so a shuffled order makes a
// fragmented guest-to-host map), then flushes.
inline void write_clusters(const std::string& path, const std::vector<uint64_t>& clusters,
                           uint64_t cluster_size = 65536) {
  OpenImage img(path, false);
  std::vector<std::byte> data(cluster_size);
  for (uint64_t c : clusters) {
    std::fill(data.begin(), data.end(), static_cast<std::byte>(c * 7 + 1));
    must(img.image->write(c * cluster_size, data), "write cluster");
  }
  must(img.image->flush(), "flush");
}

inline std::vector<uint64_t> shuffled_range(uint64_t n, uint64_t seed) {
  std::vector<uint64_t> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

}  // namespace chainfs::bench
