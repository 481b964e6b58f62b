// How a backing reference is written into an overlay's image when the graph changes an edge
// (ARCHITECTURE rule 3's persistence, Driver::set_backing_reference).
//
// qemu-img writes whatever name the user gave and resolves a relative name against the overlay's
// folder. We write a name that resolves to the backing file from the overlay's folder:
//   - relative ("base.qcow2", "layers/base.qcow2") when the backing file is in the overlay's
//     folder or below it: the pair can then be moved or copied together;
//   - absolute otherwise ("/images/base/base.qcow2"): a "../" name would break when the overlay's
//     folder alone is moved, and says less to a reader than the absolute path.
// Both paths are made absolute against the current directory and normalized lexically (symlinks
// are kept as the user named them, as qemu-img does).
#pragma once

#include <optional>
#include <string>

#include "blockcore/driver.h"
#include "blockcore/result.h"

namespace chainfs {

class Node;

std::string backing_filename_for(const std::string& overlay_path, const std::string& backing_path);

// The reference `overlay`'s image should record for `backing` (nullptr: none). The format is the
// backing's format node's driver (through filters); a bare protocol node is "raw". Fails
// (Unsupported) for a backing node without a host file. Takes the topology lock: call it without.
Result<std::optional<BackingReference>> backing_reference_for(const Node& overlay,
                                                              const Node* backing);

}  // namespace chainfs
