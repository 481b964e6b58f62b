// The command line's image option (INTERFACE.md):
//   --image PATH[,chain=NAME][,name=NODE][,read-only]
#pragma once

#include <string_view>

#include "blockcore/graph/graph.h"
#include "blockcore/result.h"

namespace chainfs {

// Parses the value of one --image option. PATH comes first; a comma inside it is written twice
// (",,"), as in qemu's options. Options may come in any order, each at most once; `read-only` may
// also be written `read-only=on|off` (qemu's spelling). PATH is returned as written (relative
// paths are the caller's to resolve). Errors are Errc::Invalid with a message that names the
// offending part, for example
//   --image 'a.qcow2,chian=vm': unknown option 'chian' (did you mean 'chain'?)
Result<ImageSpec> parse_image_option(std::string_view text);

}  // namespace chainfs
