#include "config/names.h"

#include <fmt/format.h>

namespace chainfs {

std::optional<std::string> invalid_name_reason(std::string_view name) {
  if (name.empty()) return std::string("a name cannot be empty");
  if (name == "." || name == "..") return fmt::format("'{}' cannot be used as a name", name);
  if (name.size() > 255) return std::string("a name is at most 255 bytes long");
  for (char c : name) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '/' || c == ',' || c == '=')
      return fmt::format("name '{}' contains '{}' (names are file names and control-file words)",
                         name, c);
    if (byte <= 0x20 || byte == 0x7f)
      return fmt::format("name '{}' contains whitespace or a control character", name);
  }
  return std::nullopt;
}

}  // namespace chainfs
