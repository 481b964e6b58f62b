// Helpers of the fusefs unit tests: a private temporary folder with raw images, and a graph over
// them.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

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

}  // namespace chainfs::fusefs::testing
