#include "config/image_option.h"

#include <algorithm>
#include <string>
#include <vector>

#include "config/diagnostics.h"
#include "config/names.h"

namespace chainfs {

namespace {

// Splits at single commas; ",," stands for a literal comma.
std::vector<std::string> split_options(std::string_view text) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != ',') {
      parts.back() += text[i];
    } else if (i + 1 < text.size() && text[i + 1] == ',') {
      parts.back() += ',';
      ++i;
    } else {
      parts.emplace_back();
    }
  }
  return parts;
}

}  // namespace

Result<ImageSpec> parse_image_option(std::string_view text) {
  const std::vector<std::string_view> known = {"chain", "name", "read-only"};
  std::vector<std::string> parts = split_options(text);
  ImageSpec spec;
  spec.path = parts.front();
  if (spec.path.empty())
    return make_error(Errc::Invalid, "--image '{}': the image path comes first and is missing",
                      text);
  std::vector<std::string> seen;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    if (part.empty())
      return make_error(Errc::Invalid, "--image '{}': empty option (a stray ',')", text);
    size_t eq = part.find('=');
    std::string key = part.substr(0, eq);
    std::optional<std::string> value;
    if (eq != std::string::npos) value = part.substr(eq + 1);
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string hint = config_detail::did_you_mean(key, known);
      if (hint.empty()) hint = fmt::format(" (known: {})", config_detail::join(known));
      return make_error(Errc::Invalid, "--image '{}': unknown option '{}'{}", text, key, hint);
    }
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      return make_error(Errc::Invalid, "--image '{}': option '{}' is given twice", text, key);
    seen.push_back(key);
    if (key == "read-only") {
      if (!value || *value == "on")
        spec.read_only = true;
      else if (*value == "off")
        spec.read_only = false;
      else
        return make_error(Errc::Invalid,
                          "--image '{}': read-only takes no value, or on|off, not '{}'", text,
                          *value);
      continue;
    }
    if (!value || value->empty())
      return make_error(Errc::Invalid, "--image '{}': option '{}' needs a value ({}=NAME)", text,
                        key, key);
    if (auto why = invalid_name_reason(*value))
      return make_error(Errc::Invalid, "--image '{}': {}: {}", text, key, *why);
    (key == "chain" ? spec.chain : spec.node_name) = *value;
  }
  return spec;
}

}  // namespace chainfs
