// Creating qcow2 v3 images (chainfs create, and snapshot overlays in the job engine).
#pragma once

#include <cstdint>
#include <string>

#include "blockcore/result.h"

namespace chainfs {

struct Qcow2CreateOptions {
  std::string path;             // refused (Exists) if the file exists, unless overwrite
  uint64_t size = 0;            // virtual size in bytes; 0 with a backing file = the backing's size
  std::string backing_file;     // recorded as given (relative names are relative to path's folder)
  std::string backing_format;   // "qcow2" | "raw" | "" (probe the backing file)
  uint32_t cluster_size = 65536;  // power of two, 512 B .. 2 MiB
  bool overwrite = false;
};

// Writes a new, empty qcow2 v3 image that qemu-img check and qemu-img info accept. On failure no
// file is left behind.
Result<void> qcow2_create(const Qcow2CreateOptions& options);

}  // namespace chainfs
