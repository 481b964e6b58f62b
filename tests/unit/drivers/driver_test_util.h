// Shared helpers of the driver tests: a temporary folder, pattern files, and a Graph to open
// nodes in (file, raw, fault) the way the config layer does, through open_named_node.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "blockcore/graph/graph.h"

namespace chainfs::testing_util {

// The byte every pattern file holds at `offset`: position-dependent, so misplaced data shows.
inline std::byte pattern_at(uint64_t offset) {
  return static_cast<std::byte>((offset * 2654435761u >> 13) ^ (offset >> 9) ^ 0x5a);
}

inline std::vector<std::byte> pattern(uint64_t offset, size_t length) {
  std::vector<std::byte> out(length);
  for (size_t i = 0; i < length; ++i) out[i] = pattern_at(offset + i);
  return out;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "chainfs-drv-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A host file of `size` pattern bytes.
inline void write_pattern_file(const std::string& path, size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  auto data = pattern(0, size);
  ASSERT_EQ(::pwrite(fd, data.data(), size, 0), static_cast<ssize_t>(size));
  ::close(fd);
}

// The host file's bytes, read behind the driver's back.
inline std::vector<std::byte> host_bytes(const std::string& path, uint64_t offset, size_t length) {
  std::vector<std::byte> out(length);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  ssize_t n = ::pread(fd, out.data(), length, static_cast<off_t>(offset));
  EXPECT_EQ(n, static_cast<ssize_t>(length));
  ::close(fd);
  return out;
}

inline uint64_t host_size(const std::string& path) {
  return std::filesystem::file_size(path);
}

inline NodeSpec file_spec(const std::string& name, const std::string& path,
                          bool read_only = false) {
  NodeSpec spec;
  spec.name = name;
  spec.driver = "file";
  spec.file = path;
  spec.read_only = read_only;
  return spec;
}

inline NodeSpec raw_spec(const std::string& name, const std::string& path, bool read_only = false) {
  NodeSpec spec = file_spec(name, path, read_only);
  spec.driver = "raw";
  return spec;
}

inline NodeSpec fault_spec(const std::string& name, const std::string& child,
                           std::vector<FaultRule> rules) {
  NodeSpec spec;
  spec.name = name;
  spec.driver = "fault";
  spec.child = child;
  spec.rules = std::move(rules);
  return spec;
}

// Unwraps a Result in a test. A failure throws, which GoogleTest reports as the test's failure
// with the message (tests only: nothing in blockcore throws).
template <typename T>
T must(Result<T> result) {
  if (!result.ok())
    throw std::runtime_error(std::string(errno_name(result.error().code)) + ": " +
                             result.error().message);
  return std::move(result).value();
}

#define EXPECT_OK(expr)                                                                       \
  do {                                                                                        \
    auto expect_ok_result_ = (expr);                                                          \
    EXPECT_TRUE(expect_ok_result_.ok()) << errno_name(expect_ok_result_.error().code) << ": " \
                                        << expect_ok_result_.error().message;                 \
  } while (0)

#define ASSERT_OK(expr)                                                                       \
  do {                                                                                        \
    auto assert_ok_result_ = (expr);                                                          \
    ASSERT_TRUE(assert_ok_result_.ok()) << errno_name(assert_ok_result_.error().code) << ": " \
                                        << assert_ok_result_.error().message;                 \
  } while (0)

// A test fixture run once with io_uring and once with the pread/pwrite fallback
// (TestWithParam<bool>: force_fallback), with a temporary folder and a Graph to open nodes in.
class EngineGraphTest : public testing::TestWithParam<bool> {
 protected:
  EngineGraphTest() : graph_(options()) {}
  static GraphOptions options() {
    GraphOptions o;
    o.io.force_fallback = GetParam();
    return o;
  }
  // `length` bytes of `node` at `offset` (0xEE where a failed read left them).
  std::vector<std::byte> read(Node& node, uint64_t offset, size_t length) {
    std::vector<std::byte> out(length, std::byte{0xEE});
    EXPECT_OK(node.read(offset, out));
    return out;
  }

  TempDir dir_;
  Graph graph_;
};

}  // namespace chainfs::testing_util
