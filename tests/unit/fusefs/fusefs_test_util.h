// Helpers of the fusefs unit tests: a private temporary folder with raw images, and a graph over
// them.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "blockcore/graph/graph.h"

namespace chainfs::fusefs::testing {

class TempFolder {
 public:
  TempFolder() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "chainfs-fusefs-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    path_ = made ? made : "";
  }
  ~TempFolder() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;

  const std::string& path() const { return path_; }

  // A raw image of `size` bytes, zero-filled (sparse).
  std::string raw_image(const std::string& name, uint64_t size) const {
    std::string file = path_ + "/" + name;
    std::ofstream out(file, std::ios::binary);
    out.close();
    std::filesystem::resize_file(file, size);
    return file;
  }

 private:
  std::string path_;
};

// Polls `check` every 10 ms for up to `tenths` tenths of a second (default: three seconds).
template <typename Fn>
bool eventually(Fn check, int tenths = 30) {
  for (int i = 0; i < tenths * 10; ++i) {
    if (check()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// The byte at `offset` of the open file `fd` ('\0' if it could not be read).
inline char byte_at(int fd, off_t offset) {
  char c = 0;
  return ::pread(fd, &c, 1, offset) == 1 ? c : '\0';
}

}  // namespace chainfs::fusefs::testing
