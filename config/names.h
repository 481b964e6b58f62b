// What a node or chain name may be. Names become file names in the mount (nodes/<node>,
// chains/<chain>/) and words on control-file lines (`stream NODE base=NODE`) and in --image
// options (`,name=NODE`), so they must survive all three unquoted.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace chainfs {

// Why `name` cannot be used as a node or chain name, or nullopt if it can. Refused: empty, "."
// and "..", longer than 255 bytes, and names holding '/', ',', '=', whitespace or control
// characters.
std::optional<std::string> invalid_name_reason(std::string_view name);

}  // namespace chainfs
