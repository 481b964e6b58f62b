// Helpers for the qcow2 tests: temp folders, running qemu-img/qemu-io (the oracle), opening image
// chains through a Graph, deterministic random data.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "blockcore/graph/graph.h"
#include "blockcore/graph/node.h"

namespace chainfs::qcow2_test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "qcow2-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs a shell command; returns its exit status, stdout+stderr in *out.
inline int run(const std::string& cmd, std::string* out = nullptr) {
  std::string full = cmd + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int status = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline void must_run(const std::string& cmd) {
  std::string out;
  int rc = run(cmd, &out);
  ASSERT_EQ(rc, 0) << cmd << "\n" << out;
}

inline bool have_qemu_img() {
  return run("qemu-img --version") == 0 && run("qemu-io --version") == 0;
}

#define REQUIRE_QEMU_IMG()                                                           \
  do {                                                                               \
    if (!::chainfs::qcow2_test::have_qemu_img())                                     \
      GTEST_SKIP() << "qemu-img/qemu-io are not installed (apt install qemu-utils)"; \
  } while (0)

inline std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::vector<std::byte> out(static_cast<size_t>(std::max<std::streamoff>(in.tellg(), 0)));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
  return out;
}

inline void write_file(const std::string& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

inline void fill_random(std::mt19937_64& rng, std::byte* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<std::byte>(rng() & 0xff);
}

// A raw image with a mix of random data, zero runs and short patterns (so qemu-img makes
// unallocated, zero and compressible clusters from it).
inline std::vector<std::byte> mixed_content(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> data(size);
  for (size_t off = 0; off < size;) {
    size_t run = std::min<size_t>(size - off, 4096 + rng() % (300 * 1024));
    switch (rng() % 4) {
      case 0:
        break;  // zeros
      case 1:
        fill_random(rng, data.data() + off, run);
        break;
      case 2:
        for (size_t i = 0; i < run; ++i) data[off + i] = static_cast<std::byte>((i / 7) & 0xff);
        break;
      default:
        fill_random(rng, data.data() + off, std::min<size_t>(run, 1000));
        break;
    }
    off += run;
  }
  return data;
}

struct OpenedChain {
  std::unique_ptr<Graph> graph;
  NodeRef top;
  void close() {
    top.reset();
    graph.reset();
  }
  ~OpenedChain() { close(); }
};

inline Result<std::unique_ptr<OpenedChain>> open_chain(const std::string& path, bool read_only,
                                                       uint64_t cache_bytes = 0) {
  auto opened = std::make_unique<OpenedChain>();
  GraphOptions options;
  options.cache_bytes = cache_bytes;
  opened->graph = std::make_unique<Graph>(options);
  CHAINFS_ASSIGN_OR_RETURN(opened->top, opened->graph->open_image_chain(path, "", "", read_only));
  return opened;
}

// Reads a whole node in requests of varying, unaligned sizes.
inline std::vector<std::byte> read_all(Node& node, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> out(node.size());
  for (uint64_t off = 0; off < out.size();) {
    uint64_t n = std::min<uint64_t>(out.size() - off, 1 + rng() % (1536 * 1024));
    auto r = node.read(off, {out.data() + off, n});
    EXPECT_TRUE(r.ok()) << "read " << off << "+" << n << ": " << (r.ok() ? "" : r.error().message);
    if (!r.ok()) break;
    off += n;
  }
  return out;
}

// First differing offset, or -1.
inline int64_t first_difference(const std::vector<std::byte>& a, const std::vector<std::byte>& b) {
  const size_t n = std::min(a.size(), b.size());
  if (a.size() == b.size() && std::memcmp(a.data(), b.data(), n) == 0) return -1;
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  return a.size() == b.size() ? -1 : static_cast<int64_t>(n);
}

}  // namespace chainfs::qcow2_test
