#include "blockcore/jobs/control_parse.h"

#include <cctype>

namespace chainfs {

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

Result<CommandLine> parse_line(std::string_view line) {
  CommandLine out;
  out.text = std::string(line);
  std::string_view rest = line;
  while (!rest.empty()) {
    while (!rest.empty() && is_blank(rest.front())) rest.remove_prefix(1);
    size_t end = 0;
    while (end < rest.size() && !is_blank(rest[end])) ++end;
    if (end == 0) break;
    std::string_view word = rest.substr(0, end);
    rest.remove_prefix(end);
    if (!is_option_word(word)) {
      out.words.emplace_back(word);
      continue;
    }
    const size_t eq = word.find('=');
    std::string key(word.substr(0, eq));
    std::string value(word.substr(eq + 1));
    if (value.empty()) return make_error(Errc::Invalid, "option '{}=' has no value", key);
    if (!out.options.emplace(key, std::move(value)).second)
      return make_error(Errc::Invalid, "option '{}=' is given twice", key);
  }
  return out;
}

// 2^shift for a suffix ("", K, M, G, T, each optionally with B or iB); -1 if not a suffix.
int suffix_shift(std::string_view suffix) {
  if (suffix.empty()) return 0;
  const std::string_view tail = suffix.substr(1);
  if (!(tail.empty() || tail == "B" || tail == "iB")) return -1;
  switch (std::toupper(static_cast<unsigned char>(suffix.front()))) {
    case 'K':
      return 10;
    case 'M':
      return 20;
    case 'G':
      return 30;
    case 'T':
      return 40;
    default:
      return -1;
  }
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// 128 bits: a 20-digit number times 2^40 fits, so parsing never overflows before the final check.
__extension__ typedef unsigned __int128 Wide;

}  // namespace

bool is_option_word(std::string_view word) {
  const size_t eq = word.find('=');
  if (eq == std::string_view::npos || eq == 0) return false;
  if (!std::isalpha(static_cast<unsigned char>(word[0]))) return false;
  for (size_t i = 1; i < eq; ++i) {
    const auto c = static_cast<unsigned char>(word[i]);
    if (!std::isalnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

Result<std::vector<CommandLine>> parse_command_lines(std::string_view text) {
  if (text.find('\0') != std::string_view::npos)
    return make_error(Errc::Invalid, "the command contains a NUL byte");
  std::vector<CommandLine> lines;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line.front() == '#') continue;
    CHAINFS_ASSIGN_OR_RETURN(CommandLine parsed, parse_line(line));
    lines.push_back(std::move(parsed));
  }
  if (lines.empty()) return make_error(Errc::Invalid, "no command given");
  return lines;
}

Result<uint64_t> parse_rate(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size() && is_digit(text[pos])) ++pos;
  const std::string_view whole = text.substr(0, pos);
  std::string_view fraction;
  if (pos < text.size() && text[pos] == '.') {
    const size_t start = ++pos;
    while (pos < text.size() && is_digit(text[pos])) ++pos;
    fraction = text.substr(start, pos - start);
    if (fraction.empty()) return make_error(Errc::Invalid, "'{}': no digits after the '.'", text);
  }
  if (whole.empty())
    return make_error(Errc::Invalid, "'{}' is not a number such as 0, 65536, 64K or 1.5G", text);
  const int shift = suffix_shift(text.substr(pos));
  if (shift < 0)
    return make_error(Errc::Invalid, "'{}': unknown suffix '{}' (use K, M, G or T)", text,
                      text.substr(pos));
  if (!fraction.empty() && shift == 0)
    return make_error(Errc::Invalid, "'{}': a fraction needs a suffix K, M, G or T", text);
  if (whole.size() > 20 || fraction.size() > 18)
    return make_error(Errc::Invalid, "'{}' has too many digits", text);

  Wide value = 0;
  for (char c : whole) value = value * 10 + static_cast<unsigned>(c - '0');
  value <<= shift;
  if (!fraction.empty()) {
    Wide digits = 0, scale = 1;
    for (char c : fraction) {
      digits = digits * 10 + static_cast<unsigned>(c - '0');
      scale *= 10;
    }
    value += (digits << shift) / scale;  // rounded down to a whole byte
  }
  if (value > UINT64_MAX) return make_error(Errc::Invalid, "'{}' is too large", text);
  return static_cast<uint64_t>(value);
}

Result<bool> parse_switch(std::string_view key, std::string_view value) {
  if (value == "on" || value == "true" || value == "yes" || value == "1") return true;
  if (value == "off" || value == "false" || value == "no" || value == "0") return false;
  return make_error(Errc::Invalid, "{}={}: expected on or off", key, value);
}

}  // namespace chainfs
