#pragma once

#include <string>
#include <string_view>

namespace chainfs {

// `text` as a double-quoted string with JSON escapes (\" \\ \n \t \r, \u00XX for other control
// characters). The result is also a valid YAML double-quoted scalar, so graph.json and the YAML
// job status files share this one quoting.
std::string double_quoted(std::string_view text);

}  // namespace chainfs
