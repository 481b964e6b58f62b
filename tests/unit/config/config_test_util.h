// Shared by the config tests: a temporary folder that holds the config "file" and the images it
// names, removed at the end of the test.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"

namespace chainfs::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "chainfs-config-XXXXXX").string();
    if (char* made = mkdtemp(pattern.data())) path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

  // Creates (or replaces) a file of `size` zero bytes.
  std::string touch(const std::string& name, uintmax_t size = 0) const {
    std::string file = *this / name;
    std::ofstream(file, std::ios::binary | std::ios::trunc).close();
    std::filesystem::resize_file(file, size);
    return file;
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::string file = *this / name;
    std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
    return file;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace chainfs::testing
